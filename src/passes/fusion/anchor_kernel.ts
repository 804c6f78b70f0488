/**
 * Anchor kernels: dot_general as a batched matmul C[b, m, n] = sum_k A[b, m, k] B[b, k, n] whose
 * operands are strided views of buffers, prologue expressions, or packed copies; conv_general
 * over contiguous operands. Both carry their epilogue (the root the anchor's result flows into).
 */
import { AX, type Axis } from '../../codegen/kernel/axis.js';
import { delinearize, type Idx, idx, linearize, type Ranges } from '../../codegen/kernel/index_expr.js';
import type { ExprOperand, KernelOutput, MatmulOperand } from '../../codegen/kernel/kernel_graph.js';
import type { ConvParams, DotParams } from '../../ir/primitive.js';
import { type Atom, Var } from '../../ir/program.js';
import { sizeOf } from '../../ir/shape.js';
import type { KernelBuilder } from './build.js';
import { newCtx } from './context.js';
import { reducedAxes } from './program_view.js';

/** Maps an index of the anchor's output through the epilogue's leading views to the root's index. */
function throughViews(b: KernelBuilder, root: Var, index: readonly Idx[], ranges: Ranges): Idx[] {
  let cur = [...index];
  for (const v of b.ep.views.get(root) ?? []) {
    const inShape = v.inputs[0]!.aval.shape;
    if (v.prim === 'transpose') cur = (v.params.perm as number[]).map((q) => cur[q]!);
    else cur = delinearize(linearize(cur, inShape), v.outputs[0]!.aval.shape, ranges);
  }
  return cur;
}

/**
 * The epilogue: the root's value at the anchor's output index (the anchor's value is `acc 0`),
 * then the values a bare anchor stores too (extra outputs, at the same index), then the
 * reductions the anchor accumulates (reducing epilogues: their input at the same index, added
 * into the reduction's element, which the kernel zeroes first).
 */
function epilogue(b: KernelBuilder, a: Var, root: Var, outIdx: Idx[], ranges: Map<Axis, number>): KernelOutput[] {
  const extras = b.ep.extras.get(a) ?? [];
  const ctx = newCtx(ranges, { anchor: { v: a, index: outIdx }, root, inline: new Set(extras) });
  const rootIdx = throughViews(b, root, outIdx, ranges);
  const expr = b.valueAt(root, rootIdx, ctx);
  const buf = b.newBuf(root, b.outKind(root));
  const outs: KernelOutput[] = [{ buf, index: linearize(rootIdx, root.aval.shape), expr }];
  // extra outputs (extra_outputs.ts): elementwise functions of the bare product, at its index
  for (const x of extras) {
    const value = b.valueAt(x, rootIdx, ctx);
    outs.push({ buf: b.newBuf(x, b.outKind(x)), index: linearize(rootIdx, x.aval.shape), expr: value });
  }
  for (const red of b.ep.reducing.get(root) ?? []) {
    const re = b.view.producer.get(red.r)!;
    const axes = reducedAxes(re);
    const value = b.valueAt(re.inputs[0] as Var, rootIdx, ctx);
    const index = linearize(rootIdx.filter((_, d) => !axes.includes(d)), red.r.aval.shape);
    outs.push({ buf: b.newBuf(red.r, b.outKind(red.r)), index, expr: value, accumulate: true, init: 'zero' });
  }
  return outs;
}

/**
 * The A prologue with its row statistics (caps.prologueStats): reductions of the lhs over
 * exactly the contracting axes, read only here, become phases the GEMM runs per (b, m) row over
 * r0 = the flattened k (LayerNorm's mean and variance before the first pointwise matmul).
 */
function statsPrologue(b: KernelBuilder, x: Var, index: Idx[], r: Map<Axis, number>, rowIndex: (r: Ranges) => Idx[], contracting: readonly number[], K: number): ExprOperand | undefined {
  const ranges = new Map([...r, [AX.row(0), K] as const]);
  const outerIdx = index.filter((_, d) => !contracting.includes(d));
  const layout = { F: x.aval.shape, axes: [...contracting], outerIdx, fullIdx: rowIndex(ranges), ops: new Set(['sum'] as const) };
  const ctx = newCtx(ranges, { layout });
  const expr = b.valueAt(x, index, ctx);
  return ctx.reductions.length ? { kind: 'expr', expr, stats: { row: [K], reductions: ctx.reductions } } : undefined;
}

export function buildAnchor(b: KernelBuilder, a: Var, root: Var): void {
  const e = b.view.producer.get(a)!;
  if (e.prim === 'dot_general') buildMatmul(b, a, root, e.inputs as [Atom, Atom], e.params);
  else if (e.prim === 'conv_general') buildConv(b, a, root, e.inputs as [Atom, Atom], e.params);
}

function buildMatmul(b: KernelBuilder, a: Var, root: Var, [lhs, rhs]: [Atom, Atom], pr: DotParams): void {
  const ls = lhs.aval.shape;
  const rs = rhs.aval.shape;
  const [bl, br] = pr.batch;
  const [cl, cr] = pr.contracting;
  const fl = ls.map((_, i) => i).filter((i) => !bl.includes(i) && !cl.includes(i));
  const fr = rs.map((_, i) => i).filter((i) => !br.includes(i) && !cr.includes(i));
  const batchShape = bl.map((i) => ls[i]!);
  const mShape = fl.map((i) => ls[i]!);
  const nShape = fr.map((i) => rs[i]!);
  const kShape = cl.map((i) => ls[i]!);
  const B = sizeOf(batchShape), Mm = sizeOf(mShape), N = sizeOf(nShape), K = sizeOf(kShape);
  /** An operand's index from (batch, free, contracting) axes, under any axes. */
  const operandIndex = (rank: number, bDims: readonly number[], kDims: readonly number[], fDims: readonly number[], fShape: readonly number[]) =>
    (vb: Axis, vf: Axis, vk: Axis, r: Ranges): Idx[] => {
      const out = new Array<Idx>(rank);
      delinearize(idx.var(vb), batchShape, r).forEach((x, i) => (out[bDims[i]!] = x));
      delinearize(idx.var(vk), kShape, r).forEach((x, i) => (out[kDims[i]!] = x));
      delinearize(idx.var(vf), fShape, r).forEach((x, i) => (out[fDims[i]!] = x));
      return out;
    };
  const lhsIndex = operandIndex(ls.length, bl, cl, fl, mShape);
  const rhsIndex = operandIndex(rs.length, br, cr, fr, nShape);
  const rA = new Map([[AX.b, B], [AX.m, Mm], [AX.k, K]]);
  const rB = new Map([[AX.b, B], [AX.k, K], [AX.n, N]]);
  const isPrologue = (x: Atom): x is Var => x instanceof Var && !b.M.has(x) && !b.bufOf.has(x) && b.view.producer.has(x);
  const prologue = (x: Atom, index: Idx[], r: Map<Axis, number>): ExprOperand | undefined => (isPrologue(x) ? { kind: 'expr', expr: b.valueAt(x, index, newCtx(r)) } : undefined);
  // tried before the strided probe, which would build the statistics as kernels of their own
  const withStats = (x: Atom, index: Idx[], r: Map<Axis, number>): ExprOperand | undefined =>
    b.caps.prologueStats && K > 0 && isPrologue(x) ? statsPrologue(b, x, index, r, (rr) => lhsIndex(AX.b, AX.m, AX.row(0), rr), cl, K) : undefined;
  const o = [AX.outer(0), AX.outer(1), AX.outer(2)] as const;
  const opA: MatmulOperand =
    withStats(lhs, lhsIndex(AX.b, AX.m, AX.k, rA), rA) ??
    b.stridedOperand(lhs, lhsIndex(AX.b, AX.m, AX.k, rA), rA, [AX.b, AX.m, AX.k]) ??
    prologue(lhs, lhsIndex(AX.b, AX.m, AX.k, rA), rA) ??
    b.pack(lhs, [B, Mm, K], (r) => lhsIndex(o[0], o[1], o[2], r));
  const opB: MatmulOperand =
    b.stridedOperand(rhs, rhsIndex(AX.b, AX.n, AX.k, rB), rB, [AX.b, AX.k, AX.n]) ??
    prologue(rhs, rhsIndex(AX.b, AX.n, AX.k, rB), rB) ??
    b.pack(rhs, [B, K, N], (r) => rhsIndex(o[0], o[2], o[1], r));
  const rE = new Map([[AX.b, B], [AX.m, Mm], [AX.n, N]]);
  const outIdx = [...delinearize(idx.var(AX.b), batchShape, rE), ...delinearize(idx.var(AX.m), mShape, rE), ...delinearize(idx.var(AX.n), nShape, rE)];
  const outputs = epilogue(b, a, root, outIdx, rE);
  const reduceRows = b.ep.reducing.get(root)?.[0]?.rowsPerGroup;
  b.kernels.push({ kind: 'matmul', name: b.kname(root, 'matmul'), batch: B, m: Mm, n: N, k: K, dtype: a.aval.dtype, a: opA, b: opB, outputs, ...(reduceRows ? { reduceRows } : {}) });
}

function buildConv(b: KernelBuilder, a: Var, root: Var, [lhs, rhs]: [Atom, Atom], pr: ConvParams): void {
  const lb = b.contiguous(lhs);
  const rb = b.contiguous(rhs);
  const outShape = a.aval.shape;
  const rE = new Map<Axis, number>(outShape.map((n, i) => [AX.outer(i), n]));
  const outIdx = outShape.map((_, i) => idx.var(AX.outer(i)));
  const outputs = epilogue(b, a, root, outIdx, rE);
  b.kernels.push({
    kind: 'conv', name: b.kname(root, 'conv'), params: pr, dtype: a.aval.dtype,
    lhs: { buf: lb, shape: lhs.aval.shape }, rhs: { buf: rb, shape: rhs.aval.shape }, outShape, outputs,
  });
}
