/** Global-norm clipping and the EMA decay schedule against values worked out by hand. */
import { describe, expect, it } from 'vitest';
import * as ops from '../../../src/ir/ops.js';
import { clipByGlobalNorm, globalNorm } from '../../../src/convnextv2/train/clip.js';
import { emaDecayAt } from '../../../src/convnextv2/train/ema.js';

describe('clipByGlobalNorm', () => {
  const grads = { a: ops.tensor([3, 4]), b: [ops.tensor([[12]])] };

  it('the norm of all leaves together: sqrt(9 + 16 + 144) = 13', () => {
    expect(globalNorm(grads).item()).toBeCloseTo(13, 5);
  });

  it('scales every leaf by maxNorm / (norm + 1e-6) when the norm is larger', () => {
    const r = clipByGlobalNorm(grads, 6.5);
    const c = 6.5 / (13 + 1e-6);
    expect(r.norm.item()).toBeCloseTo(13, 5);
    const a = r.grads.a.tolist() as number[];
    expect(a[0]).toBeCloseTo(3 * c, 6);
    expect(a[1]).toBeCloseTo(4 * c, 6);
    expect((r.grads.b[0]!.tolist() as number[][])[0]![0]).toBeCloseTo(12 * c, 5);
    expect(globalNorm(r.grads).item()).toBeCloseTo(6.5, 4);
  });

  it('leaves gradients below the limit unchanged, and 0 means no clipping', () => {
    expect(clipByGlobalNorm(grads, 100).grads.a.tolist()).toEqual([3, 4]);
    expect(clipByGlobalNorm(grads, 0).grads.a.tolist()).toEqual([3, 4]);
  });

  it('rejects a negative limit, naming it', () => {
    expect(() => clipByGlobalNorm(grads, -1)).toThrow(/clipByGlobalNorm: maxNorm must be a number >= 0/);
  });
});

describe('emaDecayAt', () => {
  it('warms up as (1 + t) / (10 + t) until it reaches the decay', () => {
    expect(emaDecayAt(0, 0.999, true)).toBeCloseTo(0.1, 12);
    expect(emaDecayAt(90, 0.999, true)).toBeCloseTo(91 / 100, 12);
    expect(emaDecayAt(1e6, 0.999, true)).toBe(0.999);
    expect(emaDecayAt(0, 0.999, false)).toBe(0.999);
  });
});
