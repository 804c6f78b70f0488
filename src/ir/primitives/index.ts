/** The primitive table: one entry per primitive, typed so that a missing rule is a compile error. */
import type { Lowering, PrimDef, PrimName, PrimTable } from '../primitive.js';
import type { Eqn } from '../program.js';
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

/**
 * The rule-table entry of an equation's primitive, typed for its params. The one place where a
 * primitive's name and its params are correlated by a cast (TypeScript cannot correlate a
 * union of names with a union of entries).
 */
export function defOf<E extends Eqn>(e: E): PrimDef<E['params']> {
  return PRIMS[e.prim] as unknown as PrimDef<E['params']>;
}
