/** dot_general and conv_general. (Being written; placeholder so the table compiles.) */
import { OpError } from '../errors.js';
import type { PrimDef, PrimParams } from '../primitive.js';

const pending = (name: string) => (): never => {
  throw new OpError(name, 'pending');
};

const dot_general: PrimDef<PrimParams['dot_general']> = { shape: pending('dot_general'), impl: pending('dot_general'), jvp: pending('dot_general'), vjp: pending('dot_general') };
const conv_general: PrimDef<PrimParams['conv_general']> = { shape: pending('conv_general'), impl: pending('conv_general'), jvp: pending('conv_general'), vjp: pending('conv_general') };

export const contractionPrims = { dot_general, conv_general };
