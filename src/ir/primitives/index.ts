/** The primitive table: one entry per primitive, typed so that a missing rule is a compile error. */
import type { PrimTable } from '../primitive.js';
import { contractionPrims } from './contraction.js';
import { elementwisePrims } from './elementwise.js';
import { higherOrderPrims } from './higher_order.js';
import { random_bits } from './random.js';
import { reducePrims } from './reduce.js';
import { shapePrims } from './shape_ops.js';

export const PRIMS: PrimTable = Object.freeze({
  ...elementwisePrims,
  ...reducePrims,
  ...shapePrims,
  ...contractionPrims,
  random_bits,
  ...higherOrderPrims,
});
