/**
 * The fine-tuning step as ONE function of (state, inputs): forward with drop path, loss (label
 * smoothing, or soft targets from mixup/cutmix), backward, gradient clipping by global norm,
 * AdamW with layer decay and weight-decay groups, and the parameter EMA. The PRNG key is part
 * of the state and split inside the step. `jitFinetuneStep` compiles it with the state donated,
 * so params, optimizer moments and EMA are updated in place.
 */
import { OpError } from '../../ir/errors.js';
import * as ops from '../../ir/ops.js';
import type { Tensor } from '../../ir/tensor.js';
import { valueAndGrad } from '../../autodiff/api.js';
import { softmaxCrossEntropy, softTargetCrossEntropy } from '../../nn/losses.js';
import { emaUpdate } from '../../nn/ema.js';
import { splitKeys } from '../../nn/init.js';
import type { AdamWState, Optimizer } from '../../nn/optim.js';
import { jit } from '../../passes/jit.js';
import type { BackendName } from '../../passes/backends.js';
import type { ConvNeXtV2Config } from '../config.js';
import { apply, type ConvNeXtV2Params } from '../model.js';
import { clipByGlobalNorm } from './clip.js';
import { padImages, type PadSpec } from './pad.js';

export interface FinetuneStepConfig {
  readonly model: ConvNeXtV2Config;
  readonly optimizer: Optimizer<AdamWState>;
  /** Label smoothing of the hard-label loss (soft targets carry their own). */
  readonly labelSmoothing: number;
  /** The batches carry soft targets (mixup/cutmix): SoftTargetCrossEntropy. */
  readonly softTargets: boolean;
  /** Global-norm clipping (0 = off). */
  readonly clipGrad: number;
  /** Keep an EMA of the parameters. */
  readonly ema: boolean;
  /** Pad images to the model's multiple inside the step. */
  readonly pad?: PadSpec;
}

export interface FinetuneState {
  params: ConvNeXtV2Params;
  opt: AdamWState;
  /** The parameter EMA (null when off). */
  ema: ConvNeXtV2Params | null;
  /** The PRNG key, u32[2]; split every step. */
  key: Tensor;
}

export interface FinetuneInputs {
  images: Tensor;
  labels: Tensor;
  /** f32[B, K] soft targets (softTargets only). */
  targets?: Tensor;
  /** This step's learning rate (f32 scalar). */
  lr: Tensor;
  /** This step's EMA decay (f32 scalar; ignored without EMA). */
  emaDecay: Tensor;
}

export interface FinetuneOutputs {
  state: FinetuneState;
  loss: Tensor;
  /** How many images of the batch the model (before the update) classified as their label. */
  correct: Tensor;
  /** The gradients' global norm before clipping. */
  gradNorm: Tensor;
}

/** The step as a pure function (runs eagerly, under trace and under jit). */
export function finetuneStep(cfg: FinetuneStepConfig): (state: FinetuneState, inputs: FinetuneInputs) => FinetuneOutputs {
  return (state, inputs) => {
    if (cfg.softTargets && !inputs.targets) throw new OpError('finetuneStep', 'the run uses mixup/cutmix but the batch has no soft targets');
    const [nextKey, dropKey] = splitKeys(state.key, 2) as [Tensor, Tensor];
    const images = padImages(inputs.images, cfg.pad);
    const lossOf = (p: ConvNeXtV2Params): [Tensor, Tensor] => {
      const logits = apply(p, images, { cfg: cfg.model, train: true, key: dropKey });
      const loss = cfg.softTargets
        ? softTargetCrossEntropy(logits, inputs.targets!)
        : softmaxCrossEntropy(logits, inputs.labels, { labelSmoothing: cfg.labelSmoothing });
      const hits = ops.sum(ops.cast(ops.equal(ops.argmax(logits, -1), ops.cast(inputs.labels, 'i32')), 'f32'));
      return [loss, hits];
    };
    const [[loss, correct], grads] = valueAndGrad(lossOf, { hasAux: true })(state.params);
    const clipped = clipByGlobalNorm(grads, cfg.clipGrad);
    const upd = cfg.optimizer.update(clipped.grads, state.opt, state.params, { lr: inputs.lr });
    const ema = cfg.ema && state.ema ? emaUpdate(state.ema, upd.params, inputs.emaDecay) : null;
    return { state: { params: upd.params, opt: upd.state, ema, key: nextKey }, loss, correct, gradNorm: clipped.norm };
  };
}

/** The state a step updates in place: everything but the key. */
export type DonatedFinetuneState = Omit<FinetuneState, 'key'>;

/**
 * The step with the donated state apart from the key: the key (8 bytes) is read by the mask and
 * drop-path draws after the new key is written, so it cannot be updated in place.
 */
export function finetuneStepSplit(cfg: FinetuneStepConfig): (donated: DonatedFinetuneState, key: Tensor, inputs: FinetuneInputs) => FinetuneOutputs {
  const step = finetuneStep(cfg);
  return (donated, key, inputs) => step({ ...donated, key }, inputs);
}

/** finetuneStep compiled for `backend`, params, moments and EMA donated (updated in place). */
export function jitFinetuneStep(cfg: FinetuneStepConfig, backend: BackendName): (state: FinetuneState, inputs: FinetuneInputs) => FinetuneOutputs {
  const j = jit(finetuneStepSplit(cfg), { backend, donate: 0 });
  return (state, inputs) => {
    const { key, ...donated } = state;
    return j(donated, key, inputs);
  };
}

/** Predicted classes i32[N] (eval mode, no drop path), for accuracy and confusion matrices. */
export function predictFn(model: ConvNeXtV2Config, pad?: PadSpec): (params: ConvNeXtV2Params, images: Tensor) => Tensor {
  return (params, images) => ops.argmax(apply(params, padImages(images, pad), { cfg: model }), -1);
}
