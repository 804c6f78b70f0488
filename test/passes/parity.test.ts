/**
 * Parity with PyTorch through the compiler: the tiny ConvNeXt V2 and FCMAE reference vectors of
 * ../shared/refs (float64) cast to f32 and run through jit on every available backend: forward
 * outputs, losses, every parameter gradient and the input gradient. Tolerance: max-norm
 * relative error max|a - b| / max|b| per tensor <= 1e-4.
 */
import { expect, it } from 'vitest';
import { valueAndGrad } from '../../src/autodiff/index.js';
import * as convnextv2 from '../../src/convnextv2/index.js';
import { fcmae } from '../../src/convnextv2/index.js';
import type { FcmaeParams } from '../../src/convnextv2/fcmae.js';
import type { ConvNeXtV2Params } from '../../src/convnextv2/model.js';
import * as ops from '../../src/ir/ops.js';
import { treeMap } from '../../src/ir/pytree.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { flattenParams, unflattenParams } from '../../src/nn/init.js';
import { softmaxCrossEntropy } from '../../src/nn/losses.js';
import { jit } from '../../src/passes/jit.js';
import { loadRefs, relErr } from '../helpers/refs.js';
import { describeEachBackend } from '../helpers/backends.js';
import { devicePutAsync } from '../../src/passes/backends.js';

const TOL = 1e-4;
const f32 = (t: Tensor): Tensor => ops.cast(t, 'f32');
const up = (t: Tensor): Tensor => ops.cast(t, 'f64');

function report(label: string, errs: Record<string, number>): void {
  const [k, v] = Object.entries(errs).reduce((a, b) => (b[1] > a[1] ? b : a), ['', -1]);
  console.log(`${label}: ${Object.keys(errs).length} tensors, worst ${k} ${v.toExponential(2)}`);
  for (const [name, e] of Object.entries(errs)) expect(e, name).toBeLessThanOrEqual(TOL);
}

describeEachBackend('jit f32 against PyTorch float64', (backend) => {
  it('tiny ConvNeXt V2: logits, loss, every parameter gradient and the input gradient', async () => {
    const r = loadRefs('tiny');
    const cfg = convnextv2.config('custom', { depths: [1, 1, 2, 1], dims: [8, 16, 32, 64], numClasses: 10 });
    const params = treeMap<ConvNeXtV2Params>(f32, unflattenParams<ConvNeXtV2Params>(r.withPrefix('param.')));
    const x = f32(r.get('input'));
    const labels = r.get('labels');
    const step = jit(
      (p: ConvNeXtV2Params, xx: Tensor, y: Tensor) => {
        const f = (pp: ConvNeXtV2Params, xi: Tensor) => {
          const lg = convnextv2.apply(pp, xi, { cfg });
          return [softmaxCrossEntropy(lg, y), lg];
        };
        const [[loss, logits], [gp, gx]] = valueAndGrad(f, { argnums: [0, 1], hasAux: true })(p, xx);
        return { loss, logits, gp, gx };
      },
      { backend, cacheDir: false },
    );
    const out = await devicePutAsync(step(params, x, labels), 'cpu');
    expect(out.logits.dtype).toBe('f32');
    const errs: Record<string, number> = {
      logits: relErr(up(out.logits), r.get('logits')),
      loss: relErr(up(ops.reshape(out.loss, [1])), r.get('loss')),
      'grad.input': relErr(up(out.gx), r.get('grad.input')),
    };
    const flat = flattenParams(out.gp);
    const names = r.withPrefix('param.').map(([k]) => k);
    expect(flat.size).toBe(names.length);
    for (const name of names) {
      const g = flat.get(name);
      errs[`grad.${name}`] = g ? relErr(up(g), r.get(`grad.${name}`)) : Infinity;
    }
    report(`jit tiny f32 [${backend}]`, errs);
  });

  for (const tag of ['npl', 'raw'] as const) {
    it(`FCMAE (${tag === 'npl' ? 'norm_pix_loss' : 'raw pixels'}): loss, pred and every gradient`, async () => {
      const r = loadRefs('fcmae_tiny');
      const cfg = fcmae.config({ depths: [1, 1, 1, 1], dims: [8, 16, 32, 64] }, { decoderDim: 16, decoderDepth: 1, patchSize: 32, imgSize: 64 });
      const params = treeMap<FcmaeParams>(f32, unflattenParams<FcmaeParams>(r.withPrefix('param.')));
      const imgs = f32(r.get('input'));
      const mask = f32(r.get('mask'));
      const step = jit(
        (p: FcmaeParams, im: Tensor, m: Tensor) => {
          const f = (pp: FcmaeParams) => {
            const o = fcmae.forward(pp, im, m, { cfg, normPixLoss: tag === 'npl' });
            return [o.loss, o.pred];
          };
          const [[loss, pred], g] = valueAndGrad(f, { hasAux: true })(p);
          return { loss, pred, g };
        },
        { backend, cacheDir: false },
      );
      const out = await devicePutAsync(step(params, imgs, mask), 'cpu');
      const errs: Record<string, number> = {
        loss: relErr(up(ops.reshape(out.loss, [1])), r.get(`${tag}.loss`)),
        pred: relErr(up(out.pred), r.get(`${tag}.pred`)),
      };
      const flat = flattenParams(out.g);
      const names = r.withPrefix('param.').map(([k]) => k);
      expect(flat.size).toBe(names.length);
      for (const name of names) {
        const g = flat.get(name);
        errs[`grad.${name}`] = g ? relErr(up(g), r.get(`${tag}.grad.${name}`)) : Infinity;
      }
      report(`jit fcmae ${tag} f32 [${backend}]`, errs);
    });
  }
});
