/**
 * Merges loop kernels over the same index space (same full space F and reduced axes) into one
 * pass: a later kernel takes an earlier one's reductions as extra phases and its outputs as
 * extra outputs, and its loads of what the earlier kernel stores at the same index become that
 * value directly. LayerNorm statistics kept for the backward pass, the two parameter
 * gradients of a LayerNorm, GELU's parts kept for its derivative: one pass each instead of two.
 */
import { type Idx, idx, idxKey, idxSubst } from '../codegen/kernel/index_expr.js';
import { type Kernel, kernelIO, type KernelOutput, type LoopKernel, type SExpr } from '../codegen/kernel/kernel_graph.js';

const sameSpace = (a: LoopKernel, b: LoopKernel): boolean =>
  !!a.space && !!b.space && a.space.F.join() === b.space.F.join() && a.space.axes.join() === b.space.axes.join();

function rebuild(e: SExpr, go: (e: SExpr) => SExpr): SExpr {
  switch (e.op) {
    case 'unary':
    case 'cast':
      return { ...e, a: go(e.a) };
    case 'binary':
    case 'cmp':
      return { ...e, a: go(e.a), b: go(e.b) } as SExpr;
    case 'select':
      return { ...e, c: go(e.c), a: go(e.a), b: go(e.b) };
    default:
      return e;
  }
}

/** Merges a into b (a runs first), or undefined when b reads a's results off their index. */
function tryMerge(a: LoopKernel, b: LoopKernel): LoopKernel | undefined {
  if (!sameSpace(a, b)) return undefined;
  const unit = new Map<string, Idx>();
  a.outer.forEach((n, i) => n === 1 && unit.set(`o${i}`, idx.const(0)));
  a.row.forEach((n, i) => n === 1 && unit.set(`r${i}`, idx.const(0)));
  const norm = (x: Idx): string => idxKey(unit.size ? idxSubst(x, unit, new Map()) : x);
  const shift = a.reductions.length;
  // what a stores, by buffer: the index and the value (in a's numbering, which is kept)
  const stored = new Map<number, { at: string; expr: SExpr; inRow: boolean }>();
  a.outerOutputs.forEach((o) => stored.set(o.buf, { at: norm(o.index), expr: o.expr, inRow: false }));
  a.rowOutputs.forEach((o) => stored.set(o.buf, { at: norm(o.index), expr: o.expr, inRow: true }));
  let ok = true;
  const memo = new Map<SExpr, SExpr>();
  const go = (inRow: boolean) => (e: SExpr): SExpr => {
    const key = e;
    const hit = memo.get(key);
    if (hit && !(e.op === 'load' && stored.has(e.buf))) return hit;
    let r: SExpr;
    if (e.op === 'load' && stored.has(e.buf)) {
      const s = stored.get(e.buf)!;
      if (norm(e.index) !== s.at || (s.inRow && !inRow)) ok = false;
      r = s.expr;
    } else if (e.op === 'acc') r = { op: 'acc', id: e.id + shift, dtype: e.dtype };
    else r = rebuild(e, go(inRow));
    memo.set(key, r);
    return r;
  };
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

export function mergeReductionKernels(kernels: readonly Kernel[]): Kernel[] {
  const out = [...kernels];
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
        if (merged) {
          out[j] = merged;
          out.splice(i, 1);
          i--;
        }
        break;
      }
      if (reads.some((r) => writes.has(r))) break;
    }
  }
  return out;
}
