/**
 * Reducing epilogues (a phase of fusion, on devices with caps.reducingEpilogues): a reduce_sum
 * over spatial axes of an elementwise function of a matmul's epilogue root is accumulated by
 * that matmul as it stores the root, instead of re-reading the root in a kernel of its own.
 * GRN's per-sample, per-channel sum of squares of the first pointwise matmul's GELU output is
 * the case this is for: the block's largest tensor is then read once fewer.
 *
 * The rule, as a table of conditions a candidate must meet (each names why):
 *   - the anchor is a dot_general with an epilogue whose root is stored at the anchor's own index
 *     (no views; an anchor stored bare, its consumers recomputing what follows it, is left alone:
 *     on a training step that costs a kernel);
 *   - the reduction is a reduce_sum whose input has the root's shape and is built from the root
 *     by elementwise ops only (plus literals), none of them materialised;
 *   - its reduced axes are a trailing run of the matmul's row (m) dims: the store index then
 *     depends on m only through m / (rows per group), so each group's sum has one writer.
 */
import { type Eqn, Literal, Var } from '../../ir/program.js';
import { shapeEq, sizeOf } from '../../ir/shape.js';
import type { DotParams } from '../../ir/primitive.js';
import type { Epilogues } from './anchors.js';
import { isElementwise, reducedAxes, type ProgramView } from './program_view.js';

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

/** Whether y is built from `root` by non-materialised elementwise ops and literals only. */
function elementwiseOf(view: ProgramView, M: ReadonlySet<Var>, y: Var, root: Var): boolean {
  let reachesRoot = false;
  const seen = new Set<Var>();
  const stack: Var[] = [y];
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (v === root) {
      reachesRoot = true;
      continue;
    }
    const e = view.producer.get(v);
    if (!e || M.has(v) || !isElementwise(e.prim) || !shapeEq(v.aval.shape, root.aval.shape)) return false;
    for (const a of e.inputs) {
      if (a instanceof Literal) continue;
      stack.push(a);
    }
  }
  return reachesRoot;
}

/** The reducing epilogue a reduction can be, if any (see the conditions above). */
function candidate(view: ProgramView, M: ReadonlySet<Var>, ep: Epilogues, re: Eqn): ReducingEpilogue | undefined {
  if (re.prim !== 'reduce_sum') return undefined;
  const y = re.inputs[0];
  const r = re.outputs[0]!;
  if (!(y instanceof Var) || r.aval.dtype !== y.aval.dtype || (y.aval.dtype !== 'f32' && y.aval.dtype !== 'f64')) return undefined;
  for (const [root, anchor] of ep.anchorOf) {
    const ae = view.producer.get(anchor)!;
    if (ae.prim !== 'dot_general' || (ep.views.get(root) ?? []).length > 0 || !shapeEq(root.aval.shape, anchor.aval.shape)) continue;
    if (!shapeEq(y.aval.shape, root.aval.shape) || !elementwiseOf(view, M, y, root)) continue;
    const axes = [...reducedAxes(re)].sort((a, b) => a - b);
    const rows = rowDims(ae);
    const tail = rows.slice(rows.length - axes.length);
    if (axes.length === 0 || axes.join() !== tail.join()) continue;
    const kept = root.aval.shape.filter((_, d) => !axes.includes(d));
    if (!shapeEq(r.aval.shape, kept)) continue;
    return { r, root, rowsPerGroup: sizeOf(axes.map((d) => root.aval.shape[d]!)) };
  }
  return undefined;
}

/** Every reduction that can be a reducing epilogue of the anchors `ep` found. */
export function findReducingEpilogues(view: ProgramView, M: ReadonlySet<Var>, ep: Epilogues): ReducingEpilogue[] {
  const out: ReducingEpilogue[] = [];
  for (const e of view.program.eqns) {
    const c = candidate(view, M, ep, e);
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
