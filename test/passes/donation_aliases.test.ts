// Donation and aliasing (issue 8, item 5): a donated buffer is consumed, so every tensor that
// shares it (stopGradient's result, an identity region's output) sees it donated, and tensors
// loaded from bytes never share memory with those bytes or with another load of them.
import { describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';
import { serializeSafetensors } from '../../src/nn/safetensors.js';

const step = () => ng.jit((a: ng.Tensor) => a.mul(2), { donate: 0, cacheDir: false });

describe('donation and aliases', () => {
  it('an alias of a donated tensor (stopGradient, identity region) is donated too', () => {
    const x = ng.tensor([1, 2, 3]);
    const alias = ng.stopGradient(x);
    const viaRegion = ng.region('identity', (t: ng.Tensor) => t)(x);
    const y = step()(x);
    expect(Array.from(y.dataSync())).toEqual([2, 4, 6]);
    for (const t of [x, alias, viaRegion]) {
      expect(t.isDonated).toBe(true);
      expect(() => t.dataSync()).toThrow(/was donated to a jitted function/);
    }
  });

  it('two loads of the same bytes share nothing: donating one leaves the other and the bytes alone', () => {
    const bytes = serializeSafetensors(new Map([['w', { dtype: 'F32', shape: [3], data: Float32Array.of(1, 2, 3) }]]));
    const before = bytes.slice();
    const a = ng.io.loadSafetensors(bytes);
    const b = ng.io.loadSafetensors(bytes);
    const y = step()(a.w!);
    expect(Array.from(y.dataSync())).toEqual([2, 4, 6]);
    expect(Array.from(b.w!.dataSync())).toEqual([1, 2, 3]);
    expect(bytes).toEqual(before);
    bytes.fill(0); // mutating the caller's bytes changes no loaded tensor
    expect(Array.from(b.w!.dataSync())).toEqual([1, 2, 3]);
  });
});
