/**
 * The FCMAE pretraining step as ONE function of (state, inputs): the random patch mask drawn
 * from the state's PRNG key inside the step, the masked encoder and decoder, the (norm-pix)
 * masked MSE, backward, gradient clipping and AdamW (pretraining's weight-decay exemptions).
 * `jitPretrainStep` compiles it with the state donated.
 */
import * as ops from '../../ir/ops.js';
import type { Tensor } from '../../ir/tensor.js';
import { valueAndGrad } from '../../autodiff/api.js';
import { splitKeys } from '../../nn/init.js';
import type { AdamWState, Optimizer } from '../../nn/optim.js';
import { jit } from '../../passes/jit.js';
import type { BackendName } from '../../passes/backends.js';
import { type FcmaeConfig, type FcmaeParams, forward, patchify, randomMask, unpatchify, upsampleMask } from '../fcmae.js';
import { clipByGlobalNorm } from './clip.js';
import { padImages, type PadSpec } from './pad.js';

export interface PretrainStepConfig {
  readonly fcmae: FcmaeConfig;
  readonly optimizer: Optimizer<AdamWState>;
  readonly clipGrad: number;
  readonly pad?: PadSpec;
}

export interface PretrainState {
  params: FcmaeParams;
  opt: AdamWState;
  key: Tensor;
}

export interface PretrainInputs {
  images: Tensor;
  lr: Tensor;
}

export interface PretrainOutputs {
  state: PretrainState;
  loss: Tensor;
  gradNorm: Tensor;
}

/** The mask of a batch of n images from a key: (n, L), 1 = removed. */
export function maskFor(cfg: FcmaeConfig, key: Tensor, n: number): Tensor {
  return randomMask(key, n, cfg.imgSize, cfg.patchSize, cfg.maskRatio);
}

/** The step as a pure function (eager, trace or jit). */
export function pretrainStep(cfg: PretrainStepConfig): (state: PretrainState, inputs: PretrainInputs) => PretrainOutputs {
  return (state, inputs) => {
    const [nextKey, maskKey, dropKey] = splitKeys(state.key, 3) as [Tensor, Tensor, Tensor];
    const images = padImages(inputs.images, cfg.pad);
    const mask = maskFor(cfg.fcmae, maskKey, images.shape[0]!);
    const lossOf = (p: FcmaeParams) => forward(p, images, mask, { cfg: cfg.fcmae, train: true, key: dropKey }).loss;
    const [loss, grads] = valueAndGrad(lossOf)(state.params);
    const clipped = clipByGlobalNorm(grads, cfg.clipGrad);
    const upd = cfg.optimizer.update(clipped.grads, state.opt, state.params, { lr: inputs.lr });
    return { state: { params: upd.params, opt: upd.state, key: nextKey }, loss, gradNorm: clipped.norm };
  };
}

/** The step with the donated state (params, moments) apart from the key (see finetuneStepSplit). */
export function pretrainStepSplit(cfg: PretrainStepConfig): (donated: Omit<PretrainState, 'key'>, key: Tensor, inputs: PretrainInputs) => PretrainOutputs {
  const step = pretrainStep(cfg);
  return (donated, key, inputs) => step({ ...donated, key }, inputs);
}

/** pretrainStep compiled for `backend`, params and moments donated. */
export function jitPretrainStep(cfg: PretrainStepConfig, backend: BackendName): (state: PretrainState, inputs: PretrainInputs) => PretrainOutputs {
  const j = jit(pretrainStepSplit(cfg), { backend, donate: 0 });
  return (state, inputs) => {
    const { key, ...donated } = state;
    return j(donated, key, inputs);
  };
}

/**
 * For the pretraining picture: the (padded) images, the images with removed patches blanked,
 * and the reconstruction (the prediction, de-normalised with each target patch's own mean and
 * variance under norm-pix loss, pasted into the removed patches; visible patches original).
 */
export function reconstructFn(cfg: FcmaeConfig, pad?: PadSpec) {
  return (params: FcmaeParams, rawImages: Tensor, key: Tensor): { images: Tensor; masked: Tensor; recon: Tensor } => {
    const images = padImages(rawImages, pad);
    const n = images.shape[0]!;
    const c = images.shape[1]!;
    const p = cfg.patchSize;
    const mask = maskFor(cfg, key, n);
    const { pred } = forward(params, images, mask, { cfg });
    // pred (N, p*p*C, h, w) -> patches (N, L, p*p*C)
    const [, k, h, w] = pred.shape as [number, number, number, number];
    let patches = ops.reshape(ops.transpose(pred, [0, 2, 3, 1]), [n, h * w, k]);
    if (cfg.normPixLoss) {
      const target = patchify(images, p);
      const mean = ops.mean(target, -1, true);
      const std = ops.sqrt(ops.add(ops.variance(target, -1, true, 1), 1e-6));
      patches = ops.add(ops.mul(patches, std), mean);
    }
    const predImages = unpatchify(patches, p, c);
    const removed = ops.reshape(upsampleMask(mask, p), [n, 1, images.shape[2]!, images.shape[3]!]);
    const keep = ops.sub(1, removed);
    return {
      images,
      masked: ops.mul(images, keep),
      recon: ops.add(ops.mul(images, keep), ops.mul(predImages, removed)),
    };
  };
}
