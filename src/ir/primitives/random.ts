import { OpError } from '../errors.js';
import type { PrimDef, PrimParams } from '../primitive.js';
const pending = (): never => {
  throw new OpError('random_bits', 'pending');
};
export const random_bits: PrimDef<PrimParams['random_bits']> = { shape: pending, impl: pending, jvp: pending, vjp: pending };
