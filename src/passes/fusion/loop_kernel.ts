/**
 * Loop kernels: an elementwise/view root, or a reduction root, over an index space of outer
 * axes and row (reduced) axes. Reductions whose input has the root's space and that only this
 * root needs run as phases of the same kernel (a LayerNorm or a softmax is one kernel: outer
 * loops over kept axes, row loops over the reduced axis: mean, then variance, then the output).
 */
import { AX } from '../../codegen/kernel/axis.js';
import { delinearize, type Idx, idx, linearize } from '../../codegen/kernel/index_expr.js';
import type { KernelOutput, ReduceOp, SExpr } from '../../codegen/kernel/kernel_graph.js';
import { type Atom, type Eqn, Var } from '../../ir/program.js';
import { shapeEq } from '../../ir/shape.js';
import type { KernelBuilder } from './build.js';
import { type Ctx, newCtx, sameIndex } from './context.js';
import { isInlinable, isReducing, reducedAxes } from './program_view.js';

const REDUCE_OP: Readonly<Record<string, ReduceOp>> = { reduce_sum: 'sum', reduce_max: 'max', reduce_min: 'min', argmax: 'argmax' };

/** The full-space index of a row layout: outer axes at kept dims, row axes at reduced dims. */
export function fullIndex(F: readonly number[], axes: readonly number[]): Idx[] {
  let o = 0;
  let r = 0;
  return F.map((_, d) => (axes.includes(d) ? idx.var(AX.row(r++)) : idx.var(AX.outer(o++))));
}

/**
 * A reduction read inside a kernel whose row layout is its own space: it becomes a phase (an
 * `acc` node) of that kernel. Undefined when it must be a kernel of its own.
 */
export function reductionPhase(b: KernelBuilder, v: Var, e: Eqn, index: readonly Idx[], ctx: Ctx): SExpr | undefined {
  const L = ctx.layout;
  const x = e.inputs[0] as Var;
  const axes = reducedAxes(e);
  const dtype = v.aval.dtype;
  if (!L || !shapeEq(x.aval.shape, L.F) || axes.join() !== L.axes.join() || !sameIndex(index, L.outerIdx, ctx.ranges)) return undefined;
  if (L.ops && !L.ops.has(REDUCE_OP[e.prim]!)) return undefined;
  let id = ctx.reduceIds.get(v);
  if (id === undefined) {
    const expr = b.valueAt(x, L.fullIdx ?? fullIndex(L.F, L.axes), ctx);
    id = ctx.reductions.length;
    ctx.reductions.push({ id, op: REDUCE_OP[e.prim]!, expr, dtype });
    ctx.reduceIds.set(v, id);
  }
  return { op: 'acc', id, dtype };
}

interface RowLayout {
  readonly F: readonly number[];
  readonly axes: number[];
  readonly inRow: boolean;
}

/**
 * The row layout for a root of shape F: a reduction (not materialised, needed by this root
 * only) whose input has shape F (the root is written in the row loop: LayerNorm, softmax), or
 * else one whose output has shape F (the root is written once per outer index after the
 * reduction: a mean, a loss, a bias gradient with its optimizer update).
 */
function findRowReduction(b: KernelBuilder, root: Var, F: readonly number[]): RowLayout | undefined {
  const seen = new Set<Var>();
  const stack: Var[] = [root];
  let outerCandidate: RowLayout | undefined;
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    const e = b.view.producer.get(v);
    if (!e) continue;
    if (v !== root && b.isKept(v)) continue;
    if (isReducing(e.prim) && v !== root) {
      const x = e.inputs[0] as Var;
      const axes = reducedAxes(e);
      if (shapeEq(x.aval.shape, F)) return { F, axes, inRow: true };
      // the same elements up to unit axes (a keepdims reshape of the reduction, say)
      if (!outerCandidate && shapeEq(v.aval.shape.filter((n) => n !== 1), F.filter((n) => n !== 1))) outerCandidate = { F: x.aval.shape, axes, inRow: false };
    }
    if (!(isInlinable(e.prim) || isReducing(e.prim))) continue;
    for (const a of e.inputs) if (a instanceof Var) stack.push(a);
  }
  return outerCandidate;
}

/** Non-materialised reductions reachable from `from` through inlined values. */
function reachableReductions(b: KernelBuilder, from: readonly Atom[]): Var[] {
  const out: Var[] = [];
  const seen = new Set<Var>();
  const stack = from.filter((a): a is Var => a instanceof Var);
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v) || b.isKept(v)) continue;
    seen.add(v);
    const e = b.view.producer.get(v);
    if (!e || !(isInlinable(e.prim) || isReducing(e.prim))) continue;
    if (isReducing(e.prim)) out.push(v);
    for (const a of e.inputs) if (a instanceof Var) stack.push(a);
  }
  return out;
}

/**
 * A reduction that a root needs both directly and through a reduction over another space
 * (GRN: the spatial sum of squares feeds the channel mean and the output) would run in two
 * kernels: materialise it once instead.
 */
function materialiseSharedReductions(b: KernelBuilder, w: Var): void {
  const e = b.view.producer.get(w)!;
  const spaceKey = (r: Var): string => {
    const re = b.view.producer.get(r)!;
    return `${re.inputs[0]!.aval.shape.join(',')}|${reducedAxes(re).join(',')}`;
  };
  const S = reachableReductions(b, isReducing(e.prim) ? e.inputs : [w]);
  const inS = new Set(S);
  for (const r of S) {
    for (const d of reachableReductions(b, b.view.producer.get(r)!.inputs)) {
      if (inS.has(d) && spaceKey(d) !== spaceKey(r)) b.M.add(d);
    }
  }
}

export function buildLoop(b: KernelBuilder, w: Var): void {
  const e = b.view.producer.get(w)!;
  materialiseSharedReductions(b, w);
  const isReduce = isReducing(e.prim);
  const found = isReduce ? undefined : findRowReduction(b, w, w.aval.shape);
  const F = isReduce ? (e.inputs[0] as Var).aval.shape : (found?.F ?? w.aval.shape);
  const axes = isReduce ? reducedAxes(e) : (found?.axes ?? []);
  const inRow = found?.inRow ?? false;
  const outer = F.filter((_, d) => !axes.includes(d));
  const row = axes.map((d) => F[d]!);
  const ranges = new Map([...outer.map((n, i) => [AX.outer(i), n] as const), ...row.map((n, i) => [AX.row(i), n] as const)]);
  const outerIdx = outer.map((_, i) => idx.var(AX.outer(i)));
  const ctx = newCtx(ranges, axes.length ? { layout: { F, axes, outerIdx }, root: w } : { root: w });
  // The expressions are built first: they may materialise other values (nested kernels with
  // buffers of their own), and they must not read w itself. Then w gets its buffer.
  let outIndex: Idx;
  let outExpr: SExpr;
  if (isReduce) {
    // earlier phases (reductions over the same space) register while building this one's input
    const expr = b.valueAt(e.inputs[0] as Var, fullIndex(F, axes), ctx);
    const id = ctx.reductions.length;
    ctx.reductions.push({ id, op: REDUCE_OP[e.prim]!, expr, dtype: w.aval.dtype });
    outIndex = linearize(outerIdx, w.aval.shape);
    outExpr = { op: 'acc', id, dtype: w.aval.dtype };
  } else if (inRow) {
    const fIdx = fullIndex(F, axes);
    outIndex = linearize(fIdx, F);
    outExpr = b.valueAt(w, fIdx, ctx);
  } else {
    // w's index over the outer loops (equal to them unless w differs by unit axes)
    const wIdx = shapeEq(outer, w.aval.shape) ? outerIdx : delinearize(linearize(outerIdx, outer), w.aval.shape, ranges);
    outIndex = linearize(wIdx, w.aval.shape);
    outExpr = b.valueAt(w, wIdx, ctx);
  }
  const buf = b.newBuf(w, b.outKind(w));
  const out: KernelOutput[] = [{ buf, index: outIndex, expr: outExpr }];
  b.kernels.push({
    kind: 'loop', name: b.kname(w, e.prim), outer, row, reductions: ctx.reductions,
    outerOutputs: inRow ? [] : out, rowOutputs: inRow ? out : [], space: { F, axes },
  });
}
