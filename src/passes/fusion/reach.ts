/**
 * How a value inside an anchor's epilogue relates to the anchor's stored root: built from it by
 * same-shape elementwise ops (so the root is read at the stored index, as `acc 0`), with every
 * other operand free: a literal, a program input, a value materialised before the anchor's
 * equation (a buffer the epilogue loads; it cannot depend on the anchor, so no cycle), or an
 * inlinable, non-reducing function of those (a broadcast parameter). Used by reducing epilogues
 * (reducing.ts) and extra epilogue outputs (extra_outputs.ts).
 */
import { Var } from '../../ir/program.js';
import { shapeEq, sizeOf } from '../../ir/shape.js';
import { isElementwise, isInlinable, isReducing, type ProgramView } from './program_view.js';

type Reach = 'root' | 'free' | 'bad';

/**
 * Whether y is built from `root` as above (`ok`), and whether it reads anything but the root
 * and literals (`extended`). y itself and the materialised values in `transparent` (extra
 * outputs computed in the same epilogue) count as their definitions. With `smallLeaves`, a free
 * leaf must be smaller than the root (a parameter broadcast along it), so the epilogue reads
 * nothing of the root's size but the product.
 */
export function reachOf(
  view: ProgramView, M: ReadonlySet<Var>, y: Var, root: Var, before: (v: Var) => boolean, transparent: ReadonlySet<Var> = new Set(), smallLeaves = false,
): { ok: boolean; extended: boolean } {
  const rootSize = sizeOf(root.aval.shape);
  const memo = new Map<Var, Reach>();
  let extended = false;
  const go = (v: Var): Reach => {
    const have = memo.get(v);
    if (have) return have;
    let r: Reach;
    const e = view.producer.get(v);
    if (v === root) r = 'root';
    else if (!e || (M.has(v) && v !== y && !transparent.has(v))) {
      r = (!e || before(v)) && !(smallLeaves && sizeOf(v.aval.shape) >= rootSize) ? 'free' : 'bad';
      if (r === 'free') extended = true;
    } else if (isElementwise(e.prim) && shapeEq(v.aval.shape, root.aval.shape)) {
      const kids = e.inputs.filter((a): a is Var => a instanceof Var).map(go);
      r = kids.includes('bad') ? 'bad' : kids.includes('root') ? 'root' : 'free';
    } else if (isInlinable(e.prim) && !isReducing(e.prim)) {
      r = e.inputs.every((a) => !(a instanceof Var) || go(a) === 'free') ? 'free' : 'bad';
    } else r = 'bad';
    memo.set(v, r);
    return r;
  };
  return { ok: go(y) === 'root', extended };
}

/** A view's "defined before" test: the position of each equation in the program. */
export function definedBefore(view: ProgramView): (v: Var, anchor: Var) => boolean {
  const order = new Map(view.program.eqns.map((e, i) => [e, i] as const));
  return (v, anchor) => (order.get(view.producer.get(v)!) ?? -1) < order.get(view.producer.get(anchor)!)!;
}
