/**
 * Extra epilogue outputs (a phase of fusion, on devices with caps.reducingEpilogues, whose
 * graph fuse() keeps only when it moves fewer bytes in no more kernels): a matmul stored bare
 * (several consumers read its product) also stores the materialised values that are
 * elementwise functions of its product alone, instead of a loop kernel re-reading the product
 * to compute them. In a training step pwconv1 stores its product for the GELU backward; the
 * GELU output and its erf term, materialised for GRN and the backward, are then stored by the
 * same GEMM (the GELU kernel disappears; GRN's sum of squares stays a kernel of its own, see
 * reducing.ts).
 *
 * The rule, as a table of conditions (each names why):
 *   - the anchor is a dot_general whose bare output is materialised (no epilogue root), in f32
 *     or f64: a bf16/f16 product is rounded as it is stored, and an extra output reading the
 *     accumulator would see it unrounded (mixed precision stores half-type products);
 *   - the value is materialised, not a program input, of the anchor's shape, and built from the
 *     product by same-shape elementwise ops whose other operands are free (reach.ts): its
 *     element is a function of the product's element at the same index;
 *   - those operands are smaller than the product (a bias broadcast along it): the GEMM reads
 *     no other tensor of the product's size (an optimizer's moment update, m' = b m + (1 - b) g
 *     of a weight gradient g, stays in the update kernel that overwrites m in place);
 *   - it is no other anchor's epilogue root.
 */
import type { Var } from '../../ir/program.js';
import { shapeEq } from '../../ir/shape.js';
import type { Epilogues } from './anchors.js';
import { isElementwise, type ProgramView } from './program_view.js';
import { definedBefore, reachOf } from './reach.js';

/** Product dtypes whose accumulator is the stored value (a half-type product is rounded as it is stored). */
const WIDE: ReadonlySet<string> = new Set(['f32', 'f64']);

/** Records in `ep` the extra outputs of each bare matmul (see the conditions above). */
export function findExtraOutputs(view: ProgramView, M: ReadonlySet<Var>, ep: Epilogues): void {
  const before = definedBefore(view);
  const withEpilogue = new Set(ep.anchorOf.values());
  for (const e of view.program.eqns) {
    const a = e.outputs[0]!;
    if (e.prim !== 'dot_general' || !M.has(a) || withEpilogue.has(a) || !WIDE.has(a.aval.dtype)) continue;
    const extras: Var[] = [];
    // in program order (after the anchor: they read it), so an extra output built from an
    // earlier one sees it as its definition
    for (const xe of view.program.eqns.slice(view.program.eqns.indexOf(e) + 1)) {
      const x = xe.outputs[0]!;
      if (!M.has(x) || x === a || !isElementwise(xe.prim) || !shapeEq(x.aval.shape, a.aval.shape) || ep.anchorOf.has(x) || ep.extraOf.has(x)) continue;
      if (reachOf(view, M, x, a, (v) => before(v, a), new Set(extras), true).ok) extras.push(x);
    }
    if (extras.length === 0) continue;
    ep.extras.set(a, extras);
    for (const x of extras) ep.extraOf.set(x, a);
  }
}
