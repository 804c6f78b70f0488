/**
 * A kernel-graph pass: keeps every kernel within the device's storage-buffer limit (WebGPU's
 * default is 8 per shader stage). A kernel binding too many buffers is split:
 *   1. a loop kernel's reductions move to a kernel of their own that stores each result over the
 *      outer axes, and the outputs load them (so nothing else depends on an accumulator);
 *   2. then, repeatedly, the accumulator-free subexpression whose extraction saves the most
 *      buffers is computed by a new loop kernel over just the axes it depends on into a
 *      temporary, and read back from it;
 *      (a matmul prologue's subexpressions included: over b, m, k or b, k, n).
 *   (a matmul whose A prologue has row statistics first moves them, like step 1, to a loop kernel
 *      over (b, m) that stores them, and the prologue loads them: the statistics read the same
 *      buffers as the prologue at another index, so no extraction from one of them alone helps);
 * Every new kernel is split again if it must be. A kernel that cannot be brought under the
 * limit is a named error.
 */
import { AX, axis, type Axis } from '../codegen/kernel/axis.js';
import type { DeviceCaps } from '../codegen/kernel/device.js';
import { type Idx, idx, idxSubst, idxVars, linearize } from '../codegen/kernel/index_expr.js';
import {
  type BufferDecl, type ExprOperand, isExprOperand, type Kernel, type KernelGraph, type KernelOutput, type LoopKernel, type MatmulKernel, outputExprs, rewriteSExpr, type SExpr, sexprChildren, visitSExpr,
} from '../codegen/kernel/kernel_graph.js';
import { rewriteKernel } from '../codegen/lower/kernel_rewrite.js';
import type { DType } from '../ir/dtype.js';
import { NexgradError } from '../ir/errors.js';
import { bufferCount } from './merge_phases.js';

type NewBuffer = (dtype: DType, size: number) => number;

/** The root expressions of a kernel and the axis extents they range over. */
function kernelRoots(k: Kernel): { roots: SExpr[]; ranges: Map<Axis, number> } {
  const ranges = new Map<Axis, number>();
  const outs: KernelOutput[] = [];
  const roots: SExpr[] = [];
  switch (k.kind) {
    case 'loop':
      k.outer.forEach((n, i) => ranges.set(axis('outer', i), n));
      k.row.forEach((n, i) => ranges.set(axis('row', i), n));
      k.reductions.forEach((r) => roots.push(r.expr));
      outs.push(...k.outerOutputs, ...k.rowOutputs);
      break;
    case 'matmul':
      [['batch', k.batch], ['m', k.m], ['n', k.n], ['k', k.k]].forEach(([r, n]) => ranges.set(axis(r as 'batch'), n as number));
      for (const o of [k.a, k.b]) {
        if (!isExprOperand(o)) continue;
        roots.push(o.expr);
        // row statistics read buffers too, over b, m and the row axes
        o.stats?.row.forEach((n, i) => ranges.set(axis('row', i), n));
        o.stats?.reductions.forEach((r) => roots.push(r.expr));
      }
      outs.push(...k.outputs);
      break;
    case 'conv':
      k.outShape.forEach((n, i) => ranges.set(axis('outer', i), n));
      outs.push(...k.outputs);
      break;
    case 'sort':
      break;
  }
  for (const o of outs) roots.push(...outputExprs(o));
  return { roots, ranges };
}

/** Buffers loaded under `roots`, treating `stop` as a leaf. */
function loadedBuffers(roots: readonly SExpr[], stop?: SExpr): Set<number> {
  const bufs = new Set<number>();
  const seen = new Set<SExpr>();
  const go = (e: SExpr): void => {
    if (e === stop || seen.has(e)) return;
    seen.add(e);
    if (e.op === 'load') bufs.add(e.buf);
    sexprChildren(e).forEach(go);
  };
  roots.forEach(go);
  return bufs;
}

function dependsOnAcc(e: SExpr, memo: Map<SExpr, boolean>): boolean {
  const m = memo.get(e);
  if (m !== undefined) return m;
  const r = e.op === 'acc' || sexprChildren(e).some((c) => dependsOnAcc(c, memo));
  memo.set(e, r);
  return r;
}

/** The axes a subexpression reads, in a canonical order. */
function axesOf(e: SExpr): Axis[] {
  const out = new Set<Axis>();
  visitSExpr(e, (n) => {
    if (n.op === 'load' || n.op === 'index') idxVars(n.index, out);
  });
  const order = ['batch', 'm', 'n', 'k', 'outer', 'row'];
  return [...out].sort((a, b) => order.indexOf(a.role) - order.indexOf(b.role) || a.pos - b.pos);
}

/**
 * Moves `sub` into a new loop kernel over the axes it reads, storing a temporary; returns that
 * kernel and the load that replaces `sub`.
 */
function extractKernel(sub: SExpr, ranges: ReadonlyMap<Axis, number>, newBuffer: NewBuffer, name: string): { kernel: LoopKernel; load: SExpr } {
  const axes = axesOf(sub);
  const extents = axes.map((a) => ranges.get(a)!);
  const size = extents.reduce((a, b) => a * b, 1);
  const buf = newBuffer(sub.dtype, size);
  const rename = new Map<Axis, Idx>(axes.map((a, i) => [a, idx.var(axis('outer', i))]));
  const newRanges = new Map<Axis, number>([...ranges, ...axes.map((_, i) => [axis('outer', i), extents[i]!] as const)]);
  const moved = rewriteSExpr(sub, (n) => (n.op === 'load' || n.op === 'index' ? { ...n, index: idxSubst(n.index, rename, newRanges) } : n));
  const outIdx = axes.map((_, i) => idx.var(axis('outer', i)));
  const kernel: LoopKernel = { kind: 'loop', name, outer: extents, row: [], reductions: [], outerOutputs: [{ buf, index: linearize(outIdx, extents), expr: moved }], rowOutputs: [] };
  const load: SExpr = { op: 'load', buf, index: linearize(axes.map((a) => idx.var(a)), extents), dtype: sub.dtype };
  return { kernel, load };
}

/** The accumulator-free subexpression whose extraction leaves the fewest buffers, if any saves one. */
function bestExtraction(k: Kernel, limit: number): SExpr | undefined {
  const { roots } = kernelRoots(k);
  const writes = bufferCount(k) - loadedBuffers(roots).size;
  const memo = new Map<SExpr, boolean>();
  let best: SExpr | undefined;
  let bestCount = bufferCount(k);
  const seen = new Set<SExpr>();
  for (const r of roots) {
    visitSExpr(r, (e) => {
      if (e.op === 'load' || e.op === 'const' || e.op === 'index' || e.op === 'acc' || dependsOnAcc(e, memo)) return;
      const own = loadedBuffers([e]);
      if (own.size < 2 || own.size + 1 > limit) return;
      const count = loadedBuffers(roots, e).size + 1 + writes;
      if (count < bestCount) {
        bestCount = count;
        best = e;
      }
    }, seen);
  }
  return best;
}

/** Step 1: a loop kernel's reductions in a kernel of their own, their results stored over the outer axes. */
function separateReductions(k: LoopKernel, newBuffer: NewBuffer): Kernel[] {
  const outerExtents = k.outer;
  const outerIdx = linearize(k.outer.map((_, i) => idx.var(axis('outer', i))), outerExtents);
  const size = outerExtents.reduce((a, b) => a * b, 1);
  const temps = new Map(k.reductions.map((r) => [r.id, newBuffer(r.dtype, size)] as const));
  const stats: LoopKernel = {
    ...k, name: `${k.name}_stats`, outerOutputs: k.reductions.map((r) => ({ buf: temps.get(r.id)!, index: outerIdx, expr: { op: 'acc', id: r.id, dtype: r.dtype } })), rowOutputs: [],
  };
  const rest = rewriteKernel({ ...k, reductions: [] }, (e) => (e.op === 'acc' ? { op: 'load', buf: temps.get(e.id)!, index: outerIdx, dtype: e.dtype } : e)) as LoopKernel;
  return [stats, rest];
}

/** One reduction per kernel, earlier results read back from their temporaries. */
function splitReductions(k: LoopKernel, newBuffer: NewBuffer): Kernel[] {
  const outerIdx = linearize(k.outer.map((_, i) => idx.var(axis('outer', i))), k.outer);
  const size = k.outer.reduce((a, b) => a * b, 1);
  const stored = new Map<number, number>();
  return k.reductions.map((r, j) => {
    const buf = k.outerOutputs.find((o) => o.expr.op === 'acc' && o.expr.id === r.id)?.buf ?? newBuffer(r.dtype, size);
    const expr = rewriteSExpr(r.expr, (e) => (e.op === 'acc' && stored.has(e.id) ? { op: 'load', buf: stored.get(e.id)!, index: outerIdx, dtype: e.dtype } : e));
    stored.set(r.id, buf);
    return { ...k, name: `${k.name}_r${j}`, reductions: [{ ...r, expr }], outerOutputs: [{ buf, index: outerIdx, expr: { op: 'acc', id: r.id, dtype: r.dtype } }], rowOutputs: [] };
  });
}

/**
 * Step 1 for a matmul: the A prologue's row statistics in a loop kernel over (b, m) of their
 * own (the row axes stay row axes), stored per row; the prologue loads them.
 */
function separateStats(k: MatmulKernel, newBuffer: NewBuffer): Kernel[] {
  const a = k.a as ExprOperand;
  const st = a.stats!;
  const rows = k.batch * k.m;
  const toOuter = new Map<Axis, Idx>([[AX.b, idx.var(AX.outer(0))], [AX.m, idx.var(AX.outer(1))]]);
  const loopRanges = new Map<Axis, number>([[AX.outer(0), k.batch], [AX.outer(1), k.m], ...st.row.map((n, i) => [AX.row(i), n] as const)]);
  const moved = (e: SExpr): SExpr => rewriteSExpr(e, (n) => (n.op === 'load' || n.op === 'index' ? { ...n, index: idxSubst(n.index, toOuter, loopRanges) } : n));
  const temps = new Map(st.reductions.map((r) => [r.id, newBuffer(r.dtype, rows)] as const));
  const outerIdx = linearize([idx.var(AX.outer(0)), idx.var(AX.outer(1))], [k.batch, k.m]);
  const stats: LoopKernel = {
    kind: 'loop', name: `${k.name}_stats`, outer: [k.batch, k.m], row: [...st.row],
    reductions: st.reductions.map((r) => ({ ...r, expr: moved(r.expr) })),
    outerOutputs: st.reductions.map((r) => ({ buf: temps.get(r.id)!, index: outerIdx, expr: { op: 'acc', id: r.id, dtype: r.dtype } })), rowOutputs: [],
  };
  const rowIdx = linearize([idx.var(AX.b), idx.var(AX.m)], [k.batch, k.m]);
  const expr = rewriteSExpr(a.expr, (e) => (e.op === 'acc' ? { op: 'load', buf: temps.get(e.id)!, index: rowIdx, dtype: e.dtype } : e));
  return [stats, { ...k, a: { kind: 'expr', expr } }];
}

function splitKernel(k: Kernel, limit: number, newBuffer: NewBuffer, depth = 0): Kernel[] {
  if (bufferCount(k) <= limit) return [k];
  const again = (ks: Kernel[]): Kernel[] => ks.flatMap((x) => splitKernel(x, limit, newBuffer, depth + 1));
  if (depth > 64) throw new NexgradError(`kernel ${k.name} binds ${bufferCount(k)} buffers and could not be split under the device's limit of ${limit}`);
  if (k.kind === 'loop' && k.reductions.length && (k.outerOutputs.some((o) => o.expr.op !== 'acc') || k.rowOutputs.length)) {
    return again(separateReductions(k, newBuffer));
  }
  if (k.kind === 'matmul' && isExprOperand(k.a) && k.a.stats) return again(separateStats(k, newBuffer));
  const sub = bestExtraction(k, limit);
  if (sub) {
    const { ranges } = kernelRoots(k);
    const { kernel, load } = extractKernel(sub, ranges, newBuffer, `${k.name}_part${depth}`);
    const rest = rewriteKernel(k, (e) => (e === sub ? load : e));
    return [...again([kernel]), ...again([rest])];
  }
  if (k.kind === 'loop' && k.reductions.length > 1) return again(splitReductions(k, newBuffer));
  throw new NexgradError(`kernel ${k.name} binds ${bufferCount(k)} buffers and the device allows ${limit}; it cannot be split further`);
}

export function splitToBufferLimit(g: KernelGraph, caps: Pick<DeviceCaps, 'maxStorageBuffers'>): KernelGraph {
  const limit = caps.maxStorageBuffers;
  if (!Number.isFinite(limit) || g.kernels.every((k) => bufferCount(k) <= limit)) return g;
  const buffers: BufferDecl[] = [...g.buffers];
  const newBuffer: NewBuffer = (dtype, size) => {
    const id = buffers.length;
    buffers.push({ id, dtype, size, kind: 'temp' });
    return id;
  };
  const kernels = g.kernels.flatMap((k) => splitKernel(k, limit, newBuffer));
  return { ...g, buffers, kernels };
}
