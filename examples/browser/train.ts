/**
 * The example's training run: a small ConvNeXt V2 trained with AdamW by one jitted step on the
 * 'wgsl' backend (forward, loss, backward and update in one call; params and optimizer state
 * donated, so they stay in GPU buffers and are updated in place). Only the batch goes up and
 * the loss comes back each step.
 */
import * as ng from '../../src/index.js';
import type { ConvNeXtV2Params } from '../../src/convnextv2/model.js';
import { batch, type Images, shuffled } from './dataset.js';

export interface TrainOptions {
  readonly steps: number;
  readonly batchSize: number;
  readonly lr: number;
  readonly depths: readonly number[];
  readonly dims: readonly number[];
  readonly seed: number;
}

export interface StepReport {
  readonly step: number;
  readonly loss: number;
  /** Training images per second over the steps so far (the first, compiling, step excluded). */
  readonly imagesPerSecond: number;
  readonly compileMs: number;
}

export async function train(images: Images, o: TrainOptions, onStep: (r: StepReport) => void, stop: () => boolean = () => false): Promise<number[]> {
  const cfg = ng.convnextv2.config('custom', { depths: [...o.depths], dims: [...o.dims], numClasses: images.numClasses });
  const opt = ng.nn.adamw({ lr: o.lr, weightDecay: 0.05 });
  const host = ng.convnextv2.init(ng.random.key(o.seed), cfg) as ConvNeXtV2Params;
  let params = ng.devicePut(host, 'wgsl');
  let state = ng.devicePut(opt.init(host), 'wgsl');
  const step = ng.jit(
    (p: ConvNeXtV2Params, s: ReturnType<typeof opt.init>, x: ng.Tensor, y: ng.Tensor) => {
      const [loss, grads] = ng.valueAndGrad((pp: ConvNeXtV2Params) => ng.nn.crossEntropy(ng.convnextv2.apply(pp, x, { cfg }), y))(p);
      const u = opt.update(grads, s, p);
      return { loss, params: u.params, state: u.state };
    },
    { backend: 'wgsl', donate: [0, 1] },
  );
  const order = shuffled(images.count, o.seed + 1);
  const losses: number[] = [];
  let t1 = 0;
  let compileMs = 0;
  for (let i = 0; i < o.steps && !stop(); i++) {
    const t0 = performance.now();
    const { x, y } = batch(images, order, i, o.batchSize);
    const r = step(params, state, x, y);
    params = r.params as ConvNeXtV2Params;
    state = r.state;
    const loss = (await r.loss.data())[0]!;
    r.loss.dispose();
    if (i === 0) {
      compileMs = performance.now() - t0;
      t1 = performance.now();
    }
    losses.push(loss);
    const elapsed = (performance.now() - t1) / 1000;
    onStep({ step: i + 1, loss, imagesPerSecond: i === 0 || elapsed === 0 ? 0 : (i * o.batchSize) / elapsed, compileMs });
  }
  return losses;
}
