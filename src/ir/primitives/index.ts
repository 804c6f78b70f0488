/** The primitive table: one entry per primitive, typed so that a missing rule is a compile error. */
import type { Lowering, PrimName, PrimTable } from '../primitive.js';
import { contractionPrims } from './contraction.js';
import { elementwisePrims } from './elementwise.js';
import { higherOrderPrims } from './higher_order.js';
import { random_bits } from './random.js';
import { reducePrims } from './reduce.js';
import { shapePrims } from './shape_ops.js';

export type { UnaryName as UnaryFn, BinaryName as BinaryFn, CompareName as CmpFn } from './elementwise.js';

export const PRIMS: PrimTable = Object.freeze({
  ...elementwisePrims,
  ...reducePrims,
  ...shapePrims,
  ...contractionPrims,
  random_bits,
  ...higherOrderPrims,
});

/** The primitives lowered as `kind` (the one source of truth for every list of op classes). */
export function primsLoweredAs(kind: Lowering): ReadonlySet<PrimName> {
  return new Set((Object.keys(PRIMS) as PrimName[]).filter((p) => PRIMS[p].lowering === kind));
}
