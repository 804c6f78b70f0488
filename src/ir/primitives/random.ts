/**
 * random_bits(key u32[2], counter u32[...]) -> u32[...]: JAX's threefry_2x32 hash of the flattened
 * counter under the key (see ../threefry.ts), reshaped to the counter's shape. Every random
 * function in ../random.ts is built from this one primitive plus ordinary ops, so each backend
 * only has to implement Threefry-2x32 once to reproduce the reference interpreter bit for bit.
 */
import { OpError } from '../errors.js';
import { HostArray } from '../host.js';
import type { PrimDef, PrimParams } from '../primitive.js';
import type { AbstractValue } from '../program.js';
import { fmtShape } from '../shape.js';
import { threefryHash } from '../threefry.js';

function avalStr(a: AbstractValue): string {
  return `${a.dtype}${fmtShape(a.shape)}`;
}

export const random_bits: PrimDef<PrimParams['random_bits']> = {
  lowering: 'random',
  shape(inputs) {
    if (inputs.length !== 2) {
      throw new OpError('random_bits', `expected 2 operands (key u32[2], counter u32[...]), got ${inputs.length}`);
    }
    const [key, counter] = inputs as [AbstractValue, AbstractValue];
    if (key.dtype !== 'u32' || key.shape.length !== 1 || key.shape[0] !== 2) {
      throw new OpError('random_bits', `key must be u32[2], got ${avalStr(key)} (counter ${avalStr(counter)})`);
    }
    if (counter.dtype !== 'u32') {
      throw new OpError('random_bits', `counter must be a u32 tensor, got ${avalStr(counter)} (key ${avalStr(key)})`);
    }
    return [{ shape: [...counter.shape], dtype: 'u32' }];
  },

  impl([key, counter]) {
    const k = key!.data;
    const c = counter!.data instanceof Uint32Array ? counter!.data : Uint32Array.from(counter!.data);
    return [new HostArray('u32', [...counter!.shape], threefryHash(k[0]!, k[1]!, c))];
  },

  // Integer outputs: no tangents, and no cotangents for the integer key and counter.
  jvp: () => [null],
  vjp: () => [null, null],
};
