/**
 * The feature-collapse measure against a hand computation, and the tapped forward pass against
 * convnextv2.apply (the taps do not change what the model computes).
 */
import { describe, expect, it } from 'vitest';
import * as ops from '../../../src/ir/ops.js';
import * as random from '../../../src/ir/random.js';
import { treeMap } from '../../../src/ir/pytree.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { config } from '../../../src/convnextv2/config.js';
import { cosineDistance, channelMaps, featureCollapse, logitsWithTaps } from '../../../src/convnextv2/inspect.js';
import { apply, init } from '../../../src/convnextv2/model.js';

describe('cosine distance', () => {
  it('1/C^2 sum (1 - cos)/2 by hand: channels [1,0], [0,1], [1,0] give 2/9', () => {
    // (N=1, H=1, W=2, C=3): channel maps over the two positions
    const x = ops.tensor([[[[1, 0, 1], [0, 1, 0]]]]);
    expect(cosineDistance(x).item()).toBeCloseTo(2 / 9, 6);
  });

  it('identical channels have distance 0, and the mean is over images', () => {
    const same = ops.tensor([[[[2, 2], [3, 3]]]]);
    expect(cosineDistance(same).item()).toBeCloseTo(0, 6);
    const two = ops.concat([same, ops.tensor([[[[1, 0], [0, 1]]]])], 0); // 0 and 2/4 * 0.5 = 0.25
    expect(cosineDistance(two).item()).toBeCloseTo(0.125, 6);
  });
});

describe('tapped forward pass', () => {
  const cfg = config('custom', { depths: [1, 2], dims: [8, 16], stemStride: 2, numClasses: 4, inChans: 1 });
  // GRN parameters away from zero, so that GRN is not the identity
  const params = treeMap((t: Tensor) => ops.add(t, random.normal(random.key(t.size), t.shape, { dtype: t.dtype }).mul(0.1)), init(random.key(1), cfg));
  const x = random.normal(random.key(2), [2, 1, 16, 16]);

  it('gives apply()\'s logits and one (N, H, W, 4C) activation per block', async () => {
    const { logits, taps } = logitsWithTaps(params, x, cfg);
    const want = await apply(params, x, { cfg }).data();
    const got = await logits.data();
    got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-5));
    expect(taps.map((t) => [t.name, t.activation.shape])).toEqual([
      ['stages.0.0', [2, 8, 8, 32]],
      ['stages.1.0', [2, 4, 4, 64]],
      ['stages.1.1', [2, 4, 4, 64]],
    ]);
    const maps = await channelMaps(taps[0]!.activation, 5);
    const a = await taps[0]!.activation.data();
    expect(maps.length).toBe(5);
    expect(maps[3]![10]).toBe(a[10 * 32 + 3]); // map of channel 3 at position 10 of image 0
  });

  it('without GRN the activations change from the first block on, and featureCollapse measures each', async () => {
    const on = featureCollapse(params, x, cfg);
    const off = featureCollapse(params, x, cfg, { grn: false });
    expect(on.map((l) => [l.name, l.channels])).toEqual([['stages.0.0', 32], ['stages.1.0', 64], ['stages.1.1', 64]]);
    const a = await on[0]!.distance.data();
    const b = await off[0]!.distance.data();
    expect(a[0]).not.toBeCloseTo(b[0]!, 6);
    for (const l of [...on, ...off]) {
      const d = (await l.distance.data())[0]!;
      expect(d).toBeGreaterThan(0);
      expect(d).toBeLessThan(1);
    }
  });
});
