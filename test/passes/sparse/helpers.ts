/**
 * Small FCMAE models for the masked sparse tests, the two formulations of one step (the mask
 * drawn inside from a key through fcmae.patch_mask: the sparse path; the same mask passed in as
 * a tensor: the dense-masked path), and comparisons.
 */
import { expect } from 'vitest';
import { fcmae } from '../../../src/convnextv2/index.js';
import type { FcmaeConfig, FcmaeParams } from '../../../src/convnextv2/fcmae.js';
import type { GrnStats } from '../../../src/nn/layers.js';
import * as ops from '../../../src/ir/ops.js';
import type { Program } from '../../../src/ir/program.js';
import * as random from '../../../src/ir/random.js';
import type { Tensor } from '../../../src/ir/tensor.js';

export interface Case {
  readonly name: string;
  readonly stemStride: number;
  readonly depths: number[];
  readonly dims: number[];
  readonly imgSize: number;
  readonly n: number;
  /** The mask ratio of the drawn mask (1 = every patch removed). */
  readonly ratio: number;
  readonly grnStats?: GrnStats;
  /** Train mode with this drop-path rate. */
  readonly dropPath?: number;
  readonly dtype?: 'f32' | 'f64';
  /**
   * 'loss' (default): the FCMAE loss. 'encoder': a weighted sum of the encoder's output at
   * visible sites (the loss is 0/0 when no patch is removed).
   */
  readonly objective?: 'loss' | 'encoder';
}

export interface Built {
  readonly c: Case;
  readonly cfg: FcmaeConfig;
  readonly params: FcmaeParams;
  readonly imgs: Tensor;
  readonly key: Tensor;
  /** The mask the key draws. */
  readonly mask: Tensor;
  readonly patch: number;
}

export function build(c: Case, seed = 0): Built {
  const patch = c.stemStride * 2 ** (c.depths.length - 1);
  const dtype = c.dtype ?? 'f32';
  const cfg = fcmae.config(
    { depths: c.depths, dims: c.dims, stemStride: c.stemStride, dropPathRate: c.dropPath ?? 0, dtype },
    { decoderDim: 8, decoderDepth: 1, patchSize: patch, imgSize: c.imgSize, grnStats: c.grnStats ?? 'per-sample', maskRatio: Math.min(c.ratio, 0.99) },
  );
  let params = fcmae.init(random.key(seed), cfg);
  // GRN starts at 0/0 (the identity): give it values so that its statistics matter
  params = perturbGrn(params, seed);
  const imgs = random.normal(random.key(seed + 1), [c.n, 3, c.imgSize, c.imgSize], { dtype });
  const key = random.key(seed + 2);
  const mask = fcmae.randomMask(key, c.n, c.imgSize, patch, c.ratio, dtype);
  return { c, cfg, params, imgs, key, mask, patch };
}

function perturbGrn(p: FcmaeParams, seed: number): FcmaeParams {
  let k = 0;
  const noisy = (t: Tensor) => ops.mul(random.normal(random.key(1000 + seed * 100 + k++), t.shape, { dtype: t.dtype as 'f32' | 'f64' }), 0.5);
  const stages = p.encoder.stages.map((st) => st.map((b) => ({ ...b, grn: { gamma: noisy(b.grn.gamma), beta: noisy(b.grn.beta) } })));
  return { ...p, encoder: { ...p.encoder, stages } };
}

function objective(b: Built, params: FcmaeParams, imgs: Tensor, mask: Tensor, key: Tensor): Tensor {
  if ((b.c.objective ?? 'loss') === 'loss') return fcmae.forward(params, imgs, mask, lossOpts(b, key)).loss;
  const y = fcmae.encode(params.encoder, imgs, mask, lossOpts(b, key));
  const [n, h, w, c] = y.shape as [number, number, number, number];
  const keep = ops.sub(1, ops.reshape(mask, [n, h, w, 1]));
  const weights = random.normal(random.key(77), [n, h, w, c], { dtype: y.dtype as 'f32' | 'f64' });
  return ops.sum(ops.mul(ops.mul(y, keep), weights));
}

/** The objective with the mask drawn inside (sparse path). */
export const sparseLoss = (b: Built) => (params: FcmaeParams, imgs: Tensor, key: Tensor) =>
  objective(b, params, imgs, fcmae.randomMask(key, b.c.n, b.c.imgSize, b.patch, b.c.ratio, imgs.dtype as 'f32' | 'f64'), key);

/** The same objective with the mask passed in (dense-masked path). */
export const denseLoss = (b: Built) => (params: FcmaeParams, imgs: Tensor, mask: Tensor) => objective(b, params, imgs, mask, b.key);

function lossOpts(b: Built, key: Tensor) {
  return { cfg: b.cfg, train: (b.c.dropPath ?? 0) > 0, key: random.foldIn(key, 7) };
}

/** max |a - b| / max |b| over all elements. */
export function relErr(a: Tensor, b: Tensor): number {
  const x = a.dataSync();
  const y = b.dataSync();
  expect(a.shape).toEqual(b.shape);
  let num = 0;
  let den = 0;
  for (let i = 0; i < y.length; i++) {
    num = Math.max(num, Math.abs(Number(x[i]) - Number(y[i])));
    den = Math.max(den, Math.abs(Number(y[i])));
  }
  return den === 0 ? num : num / den;
}

/** Asserts two lists of tensors agree within `tol` (relErr each), naming the first that does not. */
export function expectClose(got: readonly Tensor[], want: readonly Tensor[], tol: number, what: string): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  got.forEach((g, i) => {
    const e = relErr(g, want[i]!);
    worst = Math.max(worst, e);
    expect(e, `${what}: output ${i} ${want[i]!.dtype}[${want[i]!.shape.join(',')}]`).toBeLessThanOrEqual(tol);
  });
  return worst;
}

/** Equations of a program and its sub-programs whose primitive is `prim` (and, for regions, named `name`). */
export function countEqns(p: Program, prim: string, name?: string): number {
  let n = 0;
  for (const e of p.eqns) {
    if (e.prim === prim && (name === undefined || (e.params as { name?: string }).name === name)) n++;
    const prm = e.params as { body?: Program; fwd?: Program };
    if (prm.body) n += countEqns(prm.body, prim, name);
  }
  return n;
}
