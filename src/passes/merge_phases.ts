/**
 * A kernel-graph pass: merges loop kernels over the same index space (same full space F and
 * reduced axes) into one pass. A later kernel takes an earlier one's reductions as extra phases
 * and its outputs as extra outputs, and its loads of what the earlier kernel stores at the same
 * index become that value directly. LayerNorm statistics kept for the backward pass, the two
 * parameter gradients of a LayerNorm, GELU's parts kept for its derivative: one pass each
 * instead of two. A merge that would bind more buffers than the device allows is not made.
 */
import { AX, type Axis } from '../codegen/kernel/axis.js';
import type { DeviceCaps } from '../codegen/kernel/device.js';
import { type Idx, idx, idxKey, idxSubst } from '../codegen/kernel/index_expr.js';
import { type Kernel, type KernelGraph, kernelIO, type KernelOutput, type LoopKernel, rewriteSExpr, type SExpr } from '../codegen/kernel/kernel_graph.js';

const sameSpace = (a: LoopKernel, b: LoopKernel): boolean =>
  !!a.space && !!b.space && a.space.F.join() === b.space.F.join() && a.space.axes.join() === b.space.axes.join();

/** Outputs a merge cannot move: scattered or guarded stores. */
const plainOutputs = (k: LoopKernel): boolean => [...k.outerOutputs, ...k.rowOutputs].every((o) => !o.dyn && !o.accumulate && !o.when);

/** The number of buffers a kernel binds. */
export function bufferCount(k: Kernel): number {
  const { reads, writes } = kernelIO(k);
  return new Set([...reads, ...writes]).size;
}

/** Merges a into b (a runs first), or undefined when b reads a's results off their index. */
function tryMerge(a: LoopKernel, b: LoopKernel): LoopKernel | undefined {
  if (!sameSpace(a, b) || !plainOutputs(a) || !plainOutputs(b)) return undefined;
  const unit = new Map<Axis, Idx>();
  a.outer.forEach((n, i) => n === 1 && unit.set(AX.outer(i), idx.const(0)));
  a.row.forEach((n, i) => n === 1 && unit.set(AX.row(i), idx.const(0)));
  const norm = (x: Idx): string => idxKey(unit.size ? idxSubst(x, unit, new Map()) : x);
  const shift = a.reductions.length;
  // what a stores, by buffer: the index and the value (in a's numbering, which is kept)
  const stored = new Map<number, { at: string; expr: SExpr; inRow: boolean }>();
  a.outerOutputs.forEach((o) => stored.set(o.buf, { at: norm(o.index), expr: o.expr, inRow: false }));
  a.rowOutputs.forEach((o) => stored.set(o.buf, { at: norm(o.index), expr: o.expr, inRow: true }));
  let ok = true;
  const memos = [new Map<SExpr, SExpr>(), new Map<SExpr, SExpr>()];
  const go = (inRow: boolean) => (e: SExpr): SExpr =>
    rewriteSExpr(e, (n) => {
      if (n.op === 'load' && stored.has(n.buf)) {
        const s = stored.get(n.buf)!;
        if (n.dyn || norm(n.index) !== s.at || (s.inRow && !inRow)) ok = false;
        return s.expr;
      }
      return n.op === 'acc' ? { op: 'acc', id: n.id + shift, dtype: n.dtype } : n;
    }, memos[inRow ? 1 : 0]);
  const reductions = b.reductions.map((r) => ({ ...r, id: r.id + shift, expr: go(true)(r.expr) }));
  const outerOutputs: KernelOutput[] = b.outerOutputs.map((o) => ({ ...o, expr: go(false)(o.expr) }));
  const rowOutputs: KernelOutput[] = b.rowOutputs.map((o) => ({ ...o, expr: go(true)(o.expr) }));
  if (!ok) return undefined;
  return {
    ...b,
    name: `${b.name}+${a.name}`,
    reductions: [...a.reductions, ...reductions],
    outerOutputs: [...a.outerOutputs, ...outerOutputs],
    rowOutputs: [...a.rowOutputs, ...rowOutputs],
  };
}

export function mergeLoopKernels(g: KernelGraph, caps: Pick<DeviceCaps, 'maxStorageBuffers'>): KernelGraph {
  const out = [...g.kernels];
  for (let i = 0; i < out.length; i++) {
    const a = out[i];
    if (a?.kind !== 'loop' || !a.space) continue;
    const writes = new Set(kernelIO(a).writes);
    // the next kernel over the same space; nothing in between may read what a writes
    for (let j = i + 1; j < out.length; j++) {
      const b = out[j]!;
      const reads = kernelIO(b).reads;
      if (b.kind === 'loop' && sameSpace(a, b)) {
        const merged = tryMerge(a, b);
        if (merged && bufferCount(merged) <= caps.maxStorageBuffers) {
          out[j] = merged;
          out.splice(i, 1);
          i--;
        }
        break;
      }
      if (reads.some((r) => writes.has(r))) break;
    }
  }
  return { ...g, kernels: out };
}
