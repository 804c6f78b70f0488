/**
 * The masked sparse rewrite computes what the dense-masked FCMAE computes: loss, and gradients
 * with respect to every parameter and the images, in float64 on the reference interpreter. The
 * reference is the same step with the same mask passed in as a tensor, which the rewrite never
 * touches (a mask that is not a fcmae.patch_mask region runs dense). Masks: every patch visible,
 * one visible patch, none visible (empty compact tensors), random; both GRN modes; drop path;
 * stem strides 1, 2 and 4 on small images; three stages so that the depthwise convolution runs
 * at 4, 2 and 1 cells per patch (halo and dense routes).
 */
import { describe, expect, it } from 'vitest';
import { checkpoint, grad, vjp } from '../../../src/autodiff/api.js';
import { fcmae } from '../../../src/convnextv2/index.js';
import type { FcmaeParams } from '../../../src/convnextv2/fcmae.js';
import { trace } from '../../../src/ir/functional.js';
import { interpret } from '../../../src/ir/interpreter.js';
import * as ops from '../../../src/ir/ops.js';
import { treeLeaves } from '../../../src/ir/pytree.js';
import * as random from '../../../src/ir/random.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { evalProgram } from '../../../src/ir/trace.js';
import { sparsifyMasked } from '../../../src/passes/sparse/index.js';
import { build, type Built, type Case, countEqns, denseLoss, expectClose, sparseLoss } from './helpers.js';

const CASES: Case[] = [
  { name: 'random mask, 3 stages (s = 4, 2, 1), stem 2', stemStride: 2, depths: [1, 1, 1], dims: [8, 8, 16], imgSize: 32, n: 2, ratio: 0.6 },
  { name: 'random mask, batch-pooled GRN', stemStride: 2, depths: [1, 1, 1], dims: [8, 8, 16], imgSize: 32, n: 2, ratio: 0.6, grnStats: 'batch-pooled' },
  { name: 'every patch visible (ratio 0)', stemStride: 2, depths: [1, 1, 1], dims: [8, 8, 16], imgSize: 32, n: 2, ratio: 0, objective: 'encoder' },
  { name: 'random mask, encoder objective', stemStride: 2, depths: [1, 1, 1], dims: [8, 8, 16], imgSize: 32, n: 2, ratio: 0.6, objective: 'encoder' },
  { name: 'one visible patch', stemStride: 2, depths: [1, 1, 1], dims: [8, 8, 16], imgSize: 32, n: 2, ratio: 0.9 },
  { name: 'no visible patch (lenKeep 0)', stemStride: 2, depths: [1, 1, 1], dims: [8, 8, 16], imgSize: 32, n: 2, ratio: 1 },
  { name: 'stem 1, 8x8 images in 2-pixel patches', stemStride: 1, depths: [1, 1], dims: [8, 16], imgSize: 8, n: 3, ratio: 0.5 },
  { name: 'stem 4, the main job shape (32x32, 8-pixel patches)', stemStride: 4, depths: [2, 1], dims: [8, 16], imgSize: 32, n: 2, ratio: 0.6 },
  { name: 'drop path in train mode', stemStride: 2, depths: [2, 1], dims: [8, 16], imgSize: 16, n: 4, ratio: 0.5, dropPath: 0.5 },
];

function leavesOf(b: Built, third: Tensor): Tensor[] {
  return [...treeLeaves(b.params), b.imgs, third];
}

const both = { argnums: [0, 1] as [0, 1] };

describe('the masked sparse rewrite equals the dense-masked FCMAE (float64 interpreter)', () => {
  for (const c of CASES) {
    it(`${c.name}: loss and gradients w.r.t. params and images`, () => {
      const b = build(c);
      const sparse = trace((p: FcmaeParams, x: Tensor, k: Tensor) => {
        const [l, g] = [sparseLoss(b)(p, x, k), grad(sparseLoss(b), both)(p, x, k)];
        return [l, g];
      }, b.params, b.imgs, b.key);
      const dense = trace((p: FcmaeParams, x: Tensor, m: Tensor) => [denseLoss(b)(p, x, m), grad(denseLoss(b), both)(p, x, m)], b.params, b.imgs, b.mask);
      // the sparse path was taken: compact gathers (the dense one has none), or with no visible
      // patch no encoder work at all (everything it computed is dead)
      expect(countEqns(dense, 'gather')).toBe(0);
      if (c.ratio < 1) expect(countEqns(sparse, 'gather')).toBeGreaterThan(0);
      else expect(countEqns(sparse, 'conv_general')).toBeLessThan(countEqns(dense, 'conv_general'));
      const got = interpret(sparse, leavesOf(b, b.key), { dtype: 'f64' });
      const want = interpret(dense, leavesOf(b, b.mask), { dtype: 'f64' });
      const worst = expectClose(got, want, 1e-10, c.name);
      console.log(`${c.name}: ${got.length} outputs, worst ${worst.toExponential(2)}`);
    });
  }

  it('both depthwise routes (halo tiles, dense) at every scale give the same values and gradients', () => {
    const b = build(CASES[0]!);
    const loss = sparseLoss(b);
    const p = trace(loss, b.params, b.imgs, b.key);
    const want = interpret(trace(denseLoss(b), b.params, b.imgs, b.mask), leavesOf(b, b.mask), { dtype: 'f64' });
    for (const convRoute of ['halo', 'dense'] as const) {
      const q = sparsifyMasked(p, [], { convRoute });
      expect(q).not.toBe(p);
      // halo: one custom_vjp per depthwise conv (3 blocks); dense: none
      expect(countEqns(q, 'custom_vjp')).toBe(convRoute === 'halo' ? 3 : 0);
      expectClose(interpret(q, leavesOf(b, b.key), { dtype: 'f64' }), want, 1e-10, `${convRoute} loss`);
      // gradients of the rewritten program itself (its custom backward for the halo route)
      const pd = trace(denseLoss(b), b.params, b.imgs, b.mask);
      const floats = leavesOf(b, b.key).slice(0, -1);
      const g = trace((xs: Tensor[], k: Tensor) => grad((ys: Tensor[]) => evalProgram(q, [...ys, k])[0]!)(xs), floats, b.key);
      const gd = trace((xs: Tensor[], m: Tensor) => grad((ys: Tensor[]) => evalProgram(pd, [...ys, m])[0]!)(xs), floats, b.mask);
      const got = interpret(g, leavesOf(b, b.key), { dtype: 'f64' });
      const ref = interpret(gd, leavesOf(b, b.mask), { dtype: 'f64' });
      expectClose(got, ref, 1e-10, `${convRoute} gradients`);
    }
  });

  it('an encoder output returned as is (masked sites observed) keeps its exact values, garbage included', () => {
    const b = build(CASES[0]!);
    const enc = (m: Tensor) => (p: FcmaeParams, x: Tensor) => fcmae.encode(p.encoder, x, m, { cfg: b.cfg });
    const sparse = trace((p: FcmaeParams, x: Tensor, k: Tensor) => enc(fcmae.randomMask(k, b.c.n, b.c.imgSize, b.patch, b.c.ratio))(p, x), b.params, b.imgs, b.key);
    const dense = trace((p: FcmaeParams, x: Tensor, m: Tensor) => enc(m)(p, x), b.params, b.imgs, b.mask);
    const q = sparsifyMasked(sparse);
    // the residual stream stays dense, the branches go compact
    expect(q).not.toBe(sparse);
    const want = interpret(dense, leavesOf(b, b.mask), { dtype: 'f64' });
    expectClose(interpret(q, leavesOf(b, b.key), { dtype: 'f64' }), want, 1e-10, 'encoder output');
    // and its vjp with a random cotangent (hook path)
    const ct = random.normal(random.key(9), want[0]!.shape);
    const gs = trace((p: FcmaeParams, x: Tensor, k: Tensor) => vjp((pp: FcmaeParams, xx: Tensor) => enc(fcmae.randomMask(k, b.c.n, b.c.imgSize, b.patch, b.c.ratio))(pp, xx), p, x)[1](ct), b.params, b.imgs, b.key);
    const gd = trace((p: FcmaeParams, x: Tensor, m: Tensor) => vjp((pp: FcmaeParams, xx: Tensor) => enc(m)(pp, xx), p, x)[1](ct), b.params, b.imgs, b.mask);
    expect(countEqns(gs, 'gather')).toBeGreaterThan(0);
    expectClose(interpret(gs, leavesOf(b, b.key), { dtype: 'f64' }), interpret(gd, leavesOf(b, b.mask), { dtype: 'f64' }), 1e-10, 'encoder vjp');
  });

  it('inside checkpoints (the whole encoder rematerialised) the rewrite still applies, values and gradients equal', () => {
    const b = build(CASES[0]!);
    const enc = (m: Tensor) => checkpoint((p: FcmaeParams, x: Tensor) => fcmae.encode(p.encoder, x, m, { cfg: b.cfg }));
    const upKeep = (m: Tensor) => ops.reshape(m, [b.c.n, 4, 4, 1]);
    const loss = (m: Tensor) => (p: FcmaeParams, x: Tensor) => ops.sum(ops.mul(enc(m)(p, x), ops.sub(1, upKeep(m))));
    const gs = trace((p: FcmaeParams, x: Tensor, k: Tensor) => grad(loss(fcmae.randomMask(k, b.c.n, b.c.imgSize, b.patch, b.c.ratio)), both)(p, x), b.params, b.imgs, b.key);
    const gd = trace((p: FcmaeParams, x: Tensor, m: Tensor) => grad(loss(m), both)(p, x), b.params, b.imgs, b.mask);
    expect(countEqns(gs, 'gather')).toBeGreaterThan(0);
    expectClose(interpret(gs, leavesOf(b, b.key), { dtype: 'f64' }), interpret(gd, leavesOf(b, b.mask), { dtype: 'f64' }), 1e-10, 'checkpointed encoder');
  });

  it('forward mode (jvp) through the rewritten encoder matches the dense one', async () => {
    const { jvp } = await import('../../../src/autodiff/api.js');
    const b = build(CASES[0]!);
    const t = random.normal(random.key(11), b.imgs.shape);
    const f = (m: Tensor) => (x: Tensor) => fcmae.forward(b.params, x, m, { cfg: b.cfg }).loss;
    const js = trace((x: Tensor, k: Tensor) => jvp(f(fcmae.randomMask(k, b.c.n, b.c.imgSize, b.patch, b.c.ratio)), [x], [t]), b.imgs, b.key);
    const jd = trace((x: Tensor, m: Tensor) => jvp(f(m), [x], [t]), b.imgs, b.mask);
    expect(countEqns(js, 'gather')).toBeGreaterThan(0);
    expect(countEqns(js, 'custom_vjp')).toBe(0);
    expectClose(interpret(js, [b.imgs, b.key], { dtype: 'f64' }), interpret(jd, [b.imgs, b.mask], { dtype: 'f64' }), 1e-10, 'jvp');
  });

  it('an f64 model (the mask cast to the images dtype) is rewritten too', () => {
    const b = build({ ...CASES[0]!, dtype: 'f64' });
    const p = trace(sparseLoss(b), b.params, b.imgs, b.key);
    const q = sparsifyMasked(p);
    expect(q).not.toBe(p);
    const want = interpret(trace(denseLoss(b), b.params, b.imgs, b.mask), leavesOf(b, b.mask), { dtype: 'f64' });
    expectClose(interpret(q, leavesOf(b, b.key), { dtype: 'f64' }), want, 1e-12, 'f64 loss');
    expect(ops.cast(b.mask, 'f32').shape).toEqual([2, 16]);
  });
});
