/**
 * Work counted: the FCMAE encoder (ConvNeXt V2 atto, 224x224, mask ratio 0.6: 19 of 49 patches
 * visible) does about 40% of the dense-masked encoder's flops with the sparse rewrite, forward
 * and forward + backward. The flop counter itself is checked against the encoder's flops
 * derived by hand from its layer shapes.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../../../src/autodiff/api.js';
import { fcmae } from '../../../src/convnextv2/index.js';
import type { FcmaeParams } from '../../../src/convnextv2/fcmae.js';
import { trace } from '../../../src/ir/functional.js';
import * as ops from '../../../src/ir/ops.js';
import type { Program } from '../../../src/ir/program.js';
import * as random from '../../../src/ir/random.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { dce } from '../../../src/passes/simplify.js';
import { countFlops, sparsifyMasked } from '../../../src/passes/sparse/index.js';
import { flopsOf } from '../../../src/passes/sparse/flops.js';

const N = 2;
const cfg = fcmae.config('atto', { maskRatio: 0.6 });
const params = fcmae.init(random.key(0), cfg);
const imgs = ops.zeros([N, 3, 224, 224]);

/** The encoder's output at visible patches (what the decoder reads), as a scalar for grad. */
const encoderWith = (mask: Tensor) => (p: FcmaeParams) => {
  const y = fcmae.encode(p.encoder, imgs, mask, { cfg });
  return ops.sum(ops.mul(y, ops.sub(1, ops.reshape(mask, [N, 7, 7, 1]))));
};
const drawn = (k: Tensor) => fcmae.randomMask(k, N, 224, 32, 0.6);

/** Contraction flops of the dense atto encoder, by hand: stem, downsamplers, dwconv 7x7 and the two pointwise layers. */
function atto224ByHand(): number {
  const dims = [40, 80, 160, 320];
  const depths = [2, 2, 6, 2];
  let f = 2 * N * 56 * 56 * 40 * (3 * 4 * 4);
  dims.forEach((c, i) => {
    const hw = (56 / 2 ** i) ** 2;
    if (i > 0) f += 2 * N * hw * c * (dims[i - 1]! * 2 * 2);
    f += depths[i]! * (2 * N * hw * c * 49 + 2 * (2 * N * hw * c * 4 * c));
  });
  return f;
}

const live = (p: Program) => dce(p);

describe('flops of the sparse FCMAE encoder (atto, 224, ratio 0.6)', () => {
  const key = random.key(1);
  const mask = drawn(key);

  it('the counter agrees with the hand count of the dense encoder', () => {
    const dense = trace((p: FcmaeParams, m: Tensor) => encoderWith(m)(p), params, mask);
    expect(countFlops(dense).contraction).toBe(atto224ByHand());
  });

  it('forward: about 0.39 of the dense flops (19/49 = 0.388 plus the index tables)', () => {
    const p = trace((pp: FcmaeParams, k: Tensor) => encoderWith(drawn(k))(pp), params, key);
    const q = sparsifyMasked(p);
    const ratio = flopsOf(countFlops(q)) / flopsOf(countFlops(p));
    console.log(`forward flops sparse/dense: ${ratio.toFixed(4)} (contractions ${(countFlops(q).contraction / countFlops(p).contraction).toFixed(4)})`);
    expect(ratio).toBeGreaterThan(19 / 49);
    expect(ratio).toBeLessThan(0.395);
  });

  it('forward + backward: about 0.39 too (the halo convolution has a sparse backward)', () => {
    const sparse = live(trace((pp: FcmaeParams, k: Tensor) => grad(encoderWith(drawn(k)))(pp), params, key));
    const dense = live(trace((pp: FcmaeParams, m: Tensor) => grad(encoderWith(m))(pp), params, mask));
    const ratio = flopsOf(countFlops(sparse)) / flopsOf(countFlops(dense));
    console.log(`forward+backward flops sparse/dense: ${ratio.toFixed(4)}`);
    expect(ratio).toBeGreaterThan(19 / 49);
    expect(ratio).toBeLessThan(0.395);
  });
});
