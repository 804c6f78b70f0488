/**
 * The training steps: one jitted step equals the same step run eagerly (op by op, another
 * execution path) to f32 tolerance, for fine-tuning (drop path, label smoothing, clipping,
 * EMA, layer decay) and FCMAE pretraining (mask from the key inside the step); the layer-decay
 * and clipping arithmetic of a step against values computed by hand from the gradients.
 * Runs once per available backend.
 */
import { describe, expect, it } from 'vitest';
import { valueAndGrad } from '../../../src/autodiff/api.js';
import * as ops from '../../../src/ir/ops.js';
import * as random from '../../../src/ir/random.js';
import { treeLeaves } from '../../../src/ir/pytree.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { config } from '../../../src/convnextv2/config.js';
import { config as fcmaeConfig, init as initFcmae } from '../../../src/convnextv2/fcmae.js';
import { apply, init } from '../../../src/convnextv2/model.js';
import { finetuneStep, jitFinetuneStep, type FinetuneState } from '../../../src/convnextv2/train/finetune_step.js';
import { makeOptimizer, type OptimConfig } from '../../../src/convnextv2/train/optimizer.js';
import { jitPretrainStep, pretrainStep } from '../../../src/convnextv2/train/pretrain_step.js';
import { softmaxCrossEntropy } from '../../../src/nn/losses.js';
import { adamw } from '../../../src/nn/optim.js';
import { paramGroups } from '../../../src/convnextv2/param_groups.js';
import { availableBackends, devicePut } from '../../../src/passes/backends.js';

const cfg = config('custom', { depths: [1, 1], dims: [8, 16], stemStride: 2, numClasses: 5, inChans: 1, dropPathRate: 0.2 });
const OPTIM: OptimConfig = { lr: 1e-2, minLr: 0, warmupSteps: 0, totalSteps: 10, weightDecay: 0.05, layerDecay: 0.7, betas: [0.9, 0.999], clipGrad: 0.5 };

async function values(tree: unknown): Promise<number[][]> {
  const out: number[][] = [];
  for (const t of treeLeaves(tree)) out.push(Array.from(await t.data(), Number));
  return out;
}

function expectClose(a: number[][], b: number[][], tol: number): void {
  expect(a.length).toBe(b.length);
  // relative to the value, with a floor for values near zero
  let worst = 0;
  a.forEach((x, i) => x.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i]![j]!) / (1e-3 + Math.abs(b[i]![j]!))))));
  expect(worst).toBeLessThan(tol);
}

/**
 * AdamW with the step's groups and layer decay, but eps 1e-3: with the default 1e-8 a gradient
 * near 1e-8 makes g / (|g| + eps) ill-conditioned, and the last-bit differences between fused
 * (jit) and op-by-op (eager) f32 arithmetic would dominate the comparison.
 */
function wellConditioned(params: unknown, depths: readonly number[], rule: 'finetune' | 'pretrain') {
  return adamw({ lr: OPTIM.lr, eps: 1e-3, weightDecay: OPTIM.weightDecay, groups: paramGroups(params, { depths, weightDecay: OPTIM.weightDecay, layerDecay: OPTIM.layerDecay, rule }) });
}

function freshState(backend: string, withEma: boolean): FinetuneState {
  const params = devicePut(init(random.key(3), cfg), backend);
  const opt = wellConditioned(params, cfg.depths, 'finetune').init(params);
  return { params, opt: devicePut(opt, backend), ema: withEma ? devicePut(init(random.key(3), cfg), backend) : null, key: devicePut(random.key(7), backend) };
}

describe.each(availableBackends())('training steps on %s', (backend) => {
  const images = random.normal(random.key(11), [6, 1, 16, 16]);
  const labels = ops.tensor([0, 1, 2, 3, 4, 0], { dtype: 'i32' });
  const inputs = { images, labels, lr: ops.scalar(1e-2), emaDecay: ops.scalar(0.9) };

  it('a jitted fine-tuning step equals the eager step (loss, correct, params, moments, EMA, key)', async () => {
    const params = init(random.key(3), cfg);
    const optimizer = wellConditioned(params, cfg.depths, 'finetune');
    const stepCfg = { model: cfg, optimizer, labelSmoothing: 0.1, softTargets: false, clipGrad: 0.5, ema: true };
    const eager = finetuneStep(stepCfg)(freshState(backend, true), inputs);
    const jitted = jitFinetuneStep(stepCfg, backend);
    let s = freshState(backend, true);
    const r1 = jitted(s, inputs);
    expect(Math.abs((await r1.loss.data())[0]! - (await eager.loss.data())[0]!)).toBeLessThan(1e-5);
    expect((await r1.correct.data())[0]).toBe((await eager.correct.data())[0]);
    expectClose(await values(r1.state.params), await values(eager.state.params), 1e-4);
    expectClose(await values(r1.state.opt), await values(eager.state.opt), 1e-4);
    expectClose(await values(r1.state.ema), await values(eager.state.ema), 1e-4);
    expect(Array.from(await r1.state.key.data())).toEqual(Array.from(await eager.state.key.data()));
    // the step really trains: a few more steps on the same batch lower the loss
    s = r1.state;
    let last = (await r1.loss.data())[0]!;
    for (let i = 0; i < 5; i++) {
      const r = jitted(s, inputs);
      s = r.state;
      last = (await r.loss.data())[0]!;
    }
    expect(last).toBeLessThan((await r1.loss.data())[0]!);
  });

  it('a jitted FCMAE step equals the eager step, its mask drawn from the key in the state', async () => {
    const fc = fcmaeConfig(config('custom', { depths: [1, 1], dims: [8, 16], stemStride: 2, inChans: 1, numClasses: 0 }), { imgSize: 16, patchSize: 4, decoderDim: 8, maskRatio: 0.5 });
    const p0 = initFcmae(random.key(5), fc);
    const optimizer = wellConditioned(p0, [1, 1], 'pretrain');
    const state = () => ({ params: devicePut(initFcmae(random.key(5), fc), backend), opt: devicePut(optimizer.init(p0), backend), key: devicePut(random.key(9), backend) });
    const stepCfg = { fcmae: fc, optimizer, clipGrad: 1 };
    const inp = { images: random.normal(random.key(12), [4, 1, 16, 16]), lr: ops.scalar(1e-2) };
    const eager = pretrainStep(stepCfg)(state(), inp);
    const r = jitPretrainStep(stepCfg, backend)(state(), inp);
    expect(Math.abs((await r.loss.data())[0]! - (await eager.loss.data())[0]!)).toBeLessThan(1e-5);
    expectClose(await values(r.state.params), await values(eager.state.params), 1e-4);
    // another key gives another mask, hence another loss
    const other = pretrainStep(stepCfg)({ ...state(), key: random.key(10) }, inp);
    expect((await other.loss.data())[0]).not.toBe((await eager.loss.data())[0]);
  });
});

describe('layer decay and clipping inside the step, by hand', () => {
  it('first AdamW step: each parameter moves by lr * scale * g/(|g| + eps) after clipping, plus decoupled weight decay', async () => {
    const c = config('custom', { depths: [1, 1], dims: [8, 16], stemStride: 2, numClasses: 5, inChans: 1 });
    const optim: OptimConfig = { ...OPTIM, clipGrad: 0.05, weightDecay: 0.1, layerDecay: 0.5 };
    const params = init(random.key(3), c);
    const optimizer = makeOptimizer(params, c.depths, optim, 'finetune');
    const images = random.normal(random.key(11), [4, 1, 16, 16]);
    const labels = ops.tensor([0, 1, 2, 3], { dtype: 'i32' });
    const lr = 0.01;
    const out = finetuneStep({ model: c, optimizer, labelSmoothing: 0, softTargets: false, clipGrad: optim.clipGrad, ema: false })(
      { params, opt: optimizer.init(params), ema: null, key: random.key(7) },
      { images, labels, lr: ops.scalar(lr), emaDecay: ops.scalar(0) },
    );
    // the reference gradients, computed separately (no drop path in this config)
    const [, g] = valueAndGrad((p: typeof params) => softmaxCrossEntropy(apply(p, images, { cfg: c }), labels))(params);
    const gs = await values(g);
    const norm = Math.sqrt(gs.flat().reduce((a, x) => a + x * x, 0));
    expect(norm).toBeGreaterThan(optim.clipGrad); // clipping is active
    expect(Math.abs((await out.gradNorm.data())[0]! - norm) / norm).toBeLessThan(1e-4);
    const coef = optim.clipGrad / (norm + 1e-6);
    // 'single' layer ids for depths [1,1]: nL = 2; stem (downsample_layers.0) id 1 -> 0.5^2,
    // stages.1.0 id 2 -> 0.5^1, head id 3 -> 1. Weight decay: not for biases and 1-D params.
    const cases: [Tensor, Tensor, Tensor, number, number][] = [
      [params.downsample_layers[0]![0]!.weight, out.state.params.downsample_layers[0]![0]!.weight, g.downsample_layers[0]![0]!.weight, 0.25, optim.weightDecay],
      [params.stages[1]![0]!.pwconv1.weight, out.state.params.stages[1]![0]!.pwconv1.weight, g.stages[1]![0]!.pwconv1.weight, 0.5, optim.weightDecay],
      [params.head.weight, out.state.params.head.weight, g.head.weight, 1, optim.weightDecay],
      [params.head.bias, out.state.params.head.bias, g.head.bias, 1, 0],
    ];
    for (const [p0, p1, gr, scale, wd] of cases) {
      const [a, b, gg] = [await p0.data(), await p1.data(), await gr.data()];
      for (let i = 0; i < a.length; i++) {
        const gc = gg[i]! * coef;
        // AdamW step 1: m_hat = g, sqrt(v_hat) = |g|
        const want = a[i]! * (1 - lr * scale * wd) - (lr * scale * gc) / (Math.abs(gc) + 1e-8);
        expect(Math.abs(b[i]! - want)).toBeLessThan(2e-6 + 1e-4 * Math.abs(want));
      }
    }
  });
});

describe('training without GRN', () => {
  it('noGrn freezes every GRN gamma and beta at zero (GRN stays the identity) while the rest trains', async () => {
    const c = config('custom', { depths: [1, 1], dims: [8, 16], stemStride: 2, numClasses: 5, inChans: 1 });
    const params = init(random.key(3), c);
    const optimizer = makeOptimizer(params, c.depths, OPTIM, 'finetune', { noGrn: true });
    const step = finetuneStep({ model: c, optimizer, labelSmoothing: 0, softTargets: false, clipGrad: 0, ema: false });
    let s: FinetuneState = { params, opt: optimizer.init(params), ema: null, key: random.key(7) };
    const inp = { images: random.normal(random.key(11), [4, 1, 16, 16]), labels: ops.tensor([0, 1, 2, 3], { dtype: 'i32' }), lr: ops.scalar(1e-2), emaDecay: ops.scalar(0) };
    for (let i = 0; i < 3; i++) s = step(s, inp).state;
    for (const stage of s.params.stages) for (const b of stage) {
      expect(Array.from(await b.grn.gamma.data()).every((v) => v === 0)).toBe(true);
      expect(Array.from(await b.grn.beta.data()).every((v) => v === 0)).toBe(true);
    }
    const before = Array.from(await params.stages[0]![0]!.pwconv1.weight.data());
    const after = Array.from(await s.params.stages[0]![0]!.pwconv1.weight.data());
    expect(after.some((v, i) => v !== before[i])).toBe(true);
    // and with GRN on, the same steps do move gamma
    const withGrn = makeOptimizer(params, c.depths, OPTIM, 'finetune');
    const s2 = finetuneStep({ model: c, optimizer: withGrn, labelSmoothing: 0, softTargets: false, clipGrad: 0, ema: false })({ params, opt: withGrn.init(params), ema: null, key: random.key(7) }, inp).state;
    expect(Array.from(await s2.params.stages[0]![0]!.grn.gamma.data()).some((v) => v !== 0)).toBe(true);
  });
});

