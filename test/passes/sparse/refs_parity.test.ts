/**
 * FCMAE parity with PyTorch (../shared/refs/fcmae_tiny.safetensors, float64) with the masked
 * sparse path on: the reference mask goes through fcmae.patchMask (which maps a mask with
 * lenKeep zeros per row to itself) so the compiler knows its visible count; loss, pred and every
 * gradient, eagerly in float64 and through jit in f32 on every backend.
 */
import { describe, expect, it } from 'vitest';
import { grad, valueAndGrad } from '../../../src/autodiff/api.js';
import { fcmae } from '../../../src/convnextv2/index.js';
import type { FcmaeParams } from '../../../src/convnextv2/fcmae.js';
import { trace } from '../../../src/ir/functional.js';
import * as ops from '../../../src/ir/ops.js';
import { treeMap } from '../../../src/ir/pytree.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { flattenParams, unflattenParams } from '../../../src/nn/init.js';
import { devicePutAsync } from '../../../src/passes/backends.js';
import { jit } from '../../../src/passes/jit.js';
import { describeEachBackend } from '../../helpers/backends.js';
import { loadRefs, relErr } from '../../helpers/refs.js';
import { countEqns } from './helpers.js';

const IMG = 64;
const PATCH = 32;

function setup(dtype: 'f32' | 'f64') {
  const r = loadRefs('fcmae_tiny');
  const cast = (t: Tensor) => (dtype === 'f64' ? t : ops.cast(t, dtype));
  const params = treeMap<FcmaeParams>(cast, unflattenParams<FcmaeParams>(r.withPrefix('param.')));
  const cfg = fcmae.config({ depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], dtype }, { decoderDim: 16, decoderDepth: 1, patchSize: PATCH, imgSize: IMG });
  const imgs = cast(r.get('input'));
  const mask = cast(r.get('mask'));
  // every row keeps the same number of patches
  const m = mask.dataSync();
  const [n, L] = mask.shape as [number, number];
  const kept = Array.from({ length: n }, (_, i) => Array.from({ length: L }, (_, l) => (m[i * L + l] === 0 ? 1 : 0) as number).reduce((a, b) => a + b, 0));
  expect(new Set(kept).size).toBe(1);
  const lenKeep = kept[0]!;
  const f = (tag: 'npl' | 'raw') => (p: FcmaeParams, x: Tensor, scores: Tensor) => {
    const o = fcmae.forward(p, x, fcmae.patchMask(scores, lenKeep, { imgSize: IMG, patch: PATCH, dtype }), { cfg, normPixLoss: tag === 'npl' });
    return [o.loss, o.pred] as [Tensor, Tensor];
  };
  return { r, params, imgs, mask, lenKeep, f };
}

function errors(r: ReturnType<typeof loadRefs>, tag: string, loss: Tensor, pred: Tensor, g: FcmaeParams): Record<string, number> {
  const up = (t: Tensor) => ops.cast(t, 'f64');
  const errs: Record<string, number> = {
    loss: relErr(up(ops.reshape(loss, [1])), r.get(`${tag}.loss`)),
    pred: relErr(up(pred), r.get(`${tag}.pred`)),
  };
  const flat = flattenParams(g);
  const names = r.withPrefix('param.').map(([k]) => k);
  expect(flat.size).toBe(names.length);
  for (const name of names) errs[`grad.${name}`] = relErr(up(flat.get(name)!), r.get(`${tag}.grad.${name}`));
  return errs;
}

function check(label: string, errs: Record<string, number>, tol: number): void {
  const [k, v] = Object.entries(errs).reduce((a, b) => (b[1] > a[1] ? b : a), ['', -1]);
  console.log(`${label}: ${Object.keys(errs).length} tensors, worst ${k} ${v.toExponential(2)}`);
  for (const [name, e] of Object.entries(errs)) expect(e, `${label} ${name}`).toBeLessThanOrEqual(tol);
}

describe('FCMAE parity with the sparse path (float64, eager)', () => {
  it('patchMask maps the reference mask to itself', () => {
    const { mask, lenKeep } = setup('f64');
    expect(lenKeep).toBeGreaterThan(0);
    expect(lenKeep).toBeLessThan(4);
    expect(fcmae.patchMask(mask, lenKeep, { imgSize: IMG, patch: PATCH, dtype: 'f64' }).dataSync()).toEqual(mask.dataSync());
  });

  for (const tag of ['npl', 'raw'] as const) {
    it(`${tag}: loss, pred and every gradient within 1e-9, through the rewritten program`, () => {
      const { r, params, imgs, mask, f } = setup('f64');
      const loss = (p: FcmaeParams) => f(tag)(p, imgs, mask)[0];
      // the gradient program is the rewritten one
      expect(countEqns(trace((p: FcmaeParams) => grad(loss)(p), params), 'gather')).toBeGreaterThan(0);
      const [[l, pred], g] = valueAndGrad((p: FcmaeParams) => f(tag)(p, imgs, mask), { hasAux: true })(params);
      check(`sparse fcmae ${tag} f64`, errors(r, tag, l, pred, g), 1e-9);
    });
  }
});

describeEachBackend('FCMAE parity with the sparse path (jit f32)', (backend) => {
  for (const tag of ['npl', 'raw'] as const) {
    it(`${tag}: loss, pred and every gradient within 1e-4`, async () => {
      const { r, params, imgs, mask, f } = setup('f32');
      const step = jit(
        (p: FcmaeParams, x: Tensor, s: Tensor) => {
          const [[l, pred], g] = valueAndGrad((pp: FcmaeParams) => f(tag)(pp, x, s), { hasAux: true })(p);
          return { l, pred, g };
        },
        { backend: backend as 'cpu' },
      );
      expect(countEqns(step.lower(params, imgs, mask).program, 'gather')).toBeGreaterThan(0);
      const out = await devicePutAsync(step(params, imgs, mask), 'cpu');
      check(`sparse fcmae ${tag} f32 [${backend}]`, errors(r, tag, out.l, out.pred, out.g), 1e-4);
    });
  }
});
