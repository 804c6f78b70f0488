/**
 * Reducing epilogues (a phase of fusion, on devices with caps.reducingEpilogues): a reduce_sum
 * over spatial axes of an elementwise function of a matmul's output is accumulated by that
 * matmul as it stores the output, instead of re-reading it in a kernel of its own.
 *   - forward: GRN's per-sample, per-channel sum of squares of the first pointwise matmul's GELU
 *     output (the block's largest tensor is then read once fewer);
 *   - backward: GRN's per-sample sum of dY * gamma * x (x its stored input) accumulated by the
 *     GEMM that produces dY = dOut W2^T, which the GRN backward reads anyway.
 *
 * The rule, as a table of conditions a candidate must meet (each names why):
 *   - the anchor is a dot_general whose result is stored at its own index: either an epilogue
 *     root without views, or the anchor's bare output (it has several consumers) in f32 or f64
 *     (a half-type product is rounded as it is stored; the epilogue would read it unrounded);
 *   - the reduction is a reduce_sum whose input has the root's shape and is built from the root
 *     by same-shape elementwise ops (so the root is read at the stored index, as `acc 0`), whose
 *     other operands are literals, program inputs, or values materialised before the anchor (a
 *     buffer the epilogue loads; never one that depends on the anchor: no cycle) and views or
 *     elementwise functions of them (a broadcast parameter), none materialised after it;
 *   - its reduced axes are a trailing run of the matmul's row (m) dims: the store index then
 *     depends on m only through m / (rows per group), so each group's sum has one writer;
 *   - a bare anchor's or another buffer-reading reduction (the new cases) also needs at least
 *     two groups: one group would serialise the whole GEMM on a device that splits rows by group;
 *   - the anchor stores no extra outputs (extra_outputs.ts): pwconv1 storing its product, the
 *     GELU output and its erf term and also accumulating GRN's sum of squares ran its epilogue 3x
 *     slower on the native CPU GEMM than the three stores plus a separate statistics pass
 *     (atto stage 1, batch 32: 257 vs 86 + 15 ms on one thread), so the statistics keep their kernel.
 */
import { type Eqn, Var } from '../../ir/program.js';
import { shapeEq, sizeOf } from '../../ir/shape.js';
import type { DotParams } from '../../ir/primitive.js';
import type { Epilogues } from './anchors.js';
import { reducedAxes, type ProgramView } from './program_view.js';
import { reachOf } from './reach.js';

/** A reduction accumulated in an anchor's epilogue. */
export interface ReducingEpilogue {
  /** The reduce_sum's output. */
  readonly r: Var;
  /** The epilogue root it reduces a function of. */
  readonly root: Var;
  /** Rows of the matmul's m space per reduction group. */
  readonly rowsPerGroup: number;
}

/** The output dims of a dot_general that are its lhs free (m) dims, in order. */
function rowDims(e: Eqn): number[] {
  const pr = e.params as DotParams;
  const ls = e.inputs[0]!.aval.shape;
  const [bl] = pr.batch;
  const [cl] = pr.contracting;
  const free = ls.map((_, i) => i).filter((i) => !bl.includes(i) && !cl.includes(i));
  return free.map((_, j) => bl.length + j);
}

/** Epilogue roots stored at their anchor's index (no views), with bare anchors as their own roots. */
function storedRoots(view: ProgramView, M: ReadonlySet<Var>, ep: Epilogues): [Var, Var][] {
  const out: [Var, Var][] = [];
  for (const [root, anchor] of ep.anchorOf) if ((ep.views.get(root) ?? []).length === 0 && shapeEq(root.aval.shape, anchor.aval.shape)) out.push([root, anchor]);
  const withEpilogue = new Set(ep.anchorOf.values());
  for (const e of view.program.eqns) {
    const a = e.outputs[0]!;
    if (e.prim === 'dot_general' && M.has(a) && !withEpilogue.has(a) && (a.aval.dtype === 'f32' || a.aval.dtype === 'f64')) out.push([a, a]);
  }
  return out;
}

/** The reducing epilogue a reduction can be, if any (see the conditions above). */
function candidate(view: ProgramView, M: ReadonlySet<Var>, ep: Epilogues, re: Eqn, order: ReadonlyMap<Eqn, number>): ReducingEpilogue | undefined {
  if (re.prim !== 'reduce_sum') return undefined;
  const y = re.inputs[0];
  const r = re.outputs[0]!;
  if (!(y instanceof Var) || r.aval.dtype !== y.aval.dtype || (y.aval.dtype !== 'f32' && y.aval.dtype !== 'f64')) return undefined;
  for (const [root, anchor] of storedRoots(view, M, ep)) {
    if (ep.extras.has(anchor)) continue; // measured: see the last condition above
    const ae = view.producer.get(anchor)!;
    if (ae.prim !== 'dot_general' || !shapeEq(y.aval.shape, root.aval.shape)) continue;
    const at = order.get(ae)!;
    const reach = reachOf(view, M, y, root, (v) => (order.get(view.producer.get(v)!) ?? Infinity) < at);
    if (!reach.ok) continue;
    const axes = [...reducedAxes(re)].sort((a, b) => a - b);
    const rows = rowDims(ae);
    const tail = rows.slice(rows.length - axes.length);
    if (axes.length === 0 || axes.join() !== tail.join()) continue;
    const kept = root.aval.shape.filter((_, d) => !axes.includes(d));
    if (!shapeEq(r.aval.shape, kept)) continue;
    const rowsPerGroup = sizeOf(axes.map((d) => root.aval.shape[d]!));
    // the GEMM's rows: its batch dims and row dims, which lead its output
    const allRows = sizeOf(root.aval.shape.slice(0, rows[rows.length - 1]! + 1));
    if ((root === anchor || reach.extended) && rowsPerGroup >= allRows) continue;
    return { r, root, rowsPerGroup };
  }
  return undefined;
}

/** Every reduction that can be a reducing epilogue of the anchors `ep` found. */
export function findReducingEpilogues(view: ProgramView, M: ReadonlySet<Var>, ep: Epilogues): ReducingEpilogue[] {
  const out: ReducingEpilogue[] = [];
  const order = new Map(view.program.eqns.map((e, i) => [e, i] as const));
  for (const e of view.program.eqns) {
    const c = candidate(view, M, ep, e, order);
    if (c && c.rowsPerGroup > 0) out.push(c);
  }
  return out;
}

/** Records reducing epilogues in `ep` (per root, those sharing the first one's group size). */
export function attachReducing(ep: Epilogues, found: readonly ReducingEpilogue[]): void {
  for (const f of found) {
    const have = ep.reducing.get(f.root) ?? [];
    if (have.length && have[0]!.rowsPerGroup !== f.rowsPerGroup) continue;
    ep.reducing.set(f.root, [...have, f]);
    ep.reducedBy.set(f.r, f);
  }
}
