/**
 * Kernels for the data-dependent primitives: argsort (a sort kernel over a contiguous input)
 * and scatter_add (a loop kernel copying the operand into the result, then one over the
 * updates adding each into the result at its index, dropping out-of-range ones).
 */
import { AX, type Axis } from '../../codegen/kernel/axis.js';
import { idx, linearize } from '../../codegen/kernel/index_expr.js';
import type { SExpr } from '../../codegen/kernel/kernel_graph.js';
import type { Atom, Eqn, Var } from '../../ir/program.js';
import { sizeOf } from '../../ir/shape.js';
import type { KernelBuilder } from './build.js';
import { newCtx } from './context.js';
import { splitGatherIndex } from './views.js';

export function buildSort(b: KernelBuilder, e: Eqn): void {
  const x = e.inputs[0] as Atom;
  const out = e.outputs[0]!;
  const input = b.contiguous(x);
  const output = b.newBuf(out, b.outKind(out));
  const { axis, descending } = e.params as { axis: number; descending: boolean };
  b.kernels.push({ kind: 'sort', name: b.kname(out, 'argsort'), input, dtype: x.aval.dtype, shape: x.aval.shape, axis, descending, output });
}

const outerSpace = (shape: readonly number[]) => {
  const ranges = new Map<Axis, number>(shape.map((n, i) => [AX.outer(i), n]));
  return { ranges, index: shape.map((_, i) => idx.var(AX.outer(i))) };
};

export function buildScatter(b: KernelBuilder, e: Eqn): void {
  const [x, ix, upd] = e.inputs as [Atom, Atom, Atom];
  const out = e.outputs[0]!;
  const { axis, batchDims } = e.params as { axis: number; batchDims: number };
  const xs = x.aval.shape;
  // 1. result = x
  const copy = outerSpace(xs);
  const copyExpr = b.atomValue(x, copy.index, newCtx(copy.ranges));
  const us = upd.aval.shape;
  const adds = outerSpace(us);
  const ctx = newCtx(adds.ranges);
  const value = b.atomValue(upd, adds.index, ctx);
  const { pre, idxIndex, post } = splitGatherIndex(adds.index, xs.length, ix.aval.shape.length, axis, batchDims);
  const at = b.atomValue(ix, idxIndex, ctx);
  const buf = b.newBuf(out as Var, b.outKind(out));
  const outputName = b.kname(out, 'scatter_add');
  b.kernels.push({ kind: 'loop', name: `${outputName}_init`, outer: [...xs], row: [], reductions: [], outerOutputs: [{ buf, index: linearize(copy.index, xs), expr: copyExpr }], rowOutputs: [] });
  // 2. result[pre, i, post] += upd[pre, j, post] where 0 <= i = idx[pre[:batchDims], j] < n
  const n = xs[axis]!;
  const i32 = (v: number): SExpr => ({ op: 'const', value: v, dtype: 'i32' });
  const asI32: SExpr = at.dtype === 'i32' ? at : { op: 'cast', a: at, dtype: 'i32' };
  const inRange: SExpr =
    at.dtype === 'u32'
      ? { op: 'cmp', fn: 'lt', a: at, b: { op: 'const', value: n, dtype: 'u32' }, dtype: 'bool' }
      : { op: 'binary', fn: 'and', a: { op: 'cmp', fn: 'ge', a: asI32, b: i32(0), dtype: 'bool' }, b: { op: 'cmp', fn: 'lt', a: asI32, b: i32(n), dtype: 'bool' }, dtype: 'bool' };
  const stride = sizeOf(xs.slice(axis + 1));
  const dyn: SExpr = stride === 1 ? asI32 : { op: 'binary', fn: 'mul', a: asI32, b: i32(stride), dtype: 'i32' };
  b.kernels.push({
    kind: 'loop', name: outputName, outer: [...us], row: [], reductions: ctx.reductions,
    outerOutputs: [{ buf, index: linearize([...pre, idx.const(0), ...post], xs), expr: value, dyn, accumulate: true, when: inRange }], rowOutputs: [],
  });
}
