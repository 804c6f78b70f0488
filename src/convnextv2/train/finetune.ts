/**
 * The fine-tuning trainer: state (params, AdamW moments, EMA, key), the jitted step, and the
 * per-step learning rate and EMA decay. Used by `nexgrad finetune` and usable from code.
 */
import * as ops from '../../ir/ops.js';
import * as random from '../../ir/random.js';
import type { Tensor } from '../../ir/tensor.js';
import type { Batch } from '../../nn/data/index.js';
import type { BackendName } from '../../passes/backends.js';
import { treeMap } from '../../ir/pytree.js';
import type { ConvNeXtV2Config } from '../config.js';
import { type ConvNeXtV2Params, init } from '../model.js';
import { copyTree, emaDecayAt } from './ema.js';
import { type FinetuneState, jitFinetuneStep } from './finetune_step.js';
import type { StepResult, Trainer } from './loop.js';
import { checkOptimConfig, makeOptimizer, makeSchedule, type OptimConfig } from './optimizer.js';
import type { PadSpec } from './pad.js';
import { toDevice } from './runtime.js';

export interface FinetuneRunConfig {
  model: ConvNeXtV2Config;
  optim: OptimConfig;
  labelSmoothing: number;
  /** EMA decay (0 = no EMA). */
  ema: number;
  /** Warm the EMA decay up as min(decay, (1 + t) / (10 + t)). */
  emaWarmup: boolean;
  /** Batches carry mixup/cutmix soft targets. */
  softTargets: boolean;
  pad?: PadSpec;
  seed: number;
  /** Train without GRN (its parameters frozen at zero: the identity). */
  noGrn?: boolean;
}

export class FinetuneTrainer implements Trainer {
  readonly kind = 'finetune' as const;
  state: FinetuneState;
  private readonly run: FinetuneRunConfig;
  private readonly backend: BackendName;
  private readonly schedule: (step: number) => number;
  private readonly jitted: ReturnType<typeof jitFinetuneStep>;

  constructor(run: FinetuneRunConfig, state: FinetuneState, backend: BackendName) {
    checkOptimConfig(run.optim);
    this.run = run;
    this.state = state;
    this.backend = backend;
    this.schedule = makeSchedule(run.optim);
    const optimizer = makeOptimizer(state.params, run.model.depths, run.optim, 'finetune', { noGrn: run.noGrn });
    this.jitted = jitFinetuneStep(
      { model: run.model, optimizer, labelSmoothing: run.labelSmoothing, softTargets: run.softTargets, clipGrad: run.optim.clipGrad, ema: run.ema > 0, pad: run.pad },
      backend,
    );
  }

  lrAt(step: number): number {
    return this.schedule(step);
  }

  step(batch: Batch, step: number): StepResult {
    const dev = <T extends Tensor>(t: T) => toDevice(t, this.backend);
    const out = this.jitted(this.state, {
      images: dev(batch.images),
      labels: dev(batch.labels),
      targets: this.run.softTargets ? dev(batch.targets ?? ops.oneHot(batch.labels, this.run.model.numClasses)) : undefined,
      lr: dev(ops.scalar(this.lrAt(step), 'f32')),
      emaDecay: dev(ops.scalar(this.run.ema > 0 ? emaDecayAt(step, this.run.ema, this.run.emaWarmup) : 0, 'f32')),
    });
    this.state = out.state;
    return { loss: out.loss, gradNorm: out.gradNorm, correct: out.correct };
  }

  stateTree(): unknown {
    return this.state;
  }

  /** The weights to evaluate: the EMA when there is one and `useEma`, else the parameters. */
  weights(useEma = true): ConvNeXtV2Params {
    return useEma && this.state.ema ? this.state.ema : this.state.params;
  }
}

/**
 * A fresh fine-tuning state: parameters from `params` (e.g. loaded from an FCMAE or official
 * checkpoint) or random from the seed, zero AdamW moments, an EMA copy, the seed's PRNG key.
 */
export async function initialFinetuneState(run: FinetuneRunConfig, backend: BackendName, params?: ConvNeXtV2Params): Promise<FinetuneState> {
  const root = random.key(run.seed);
  const [initKey, stepKey] = [random.foldIn(root, 0), random.foldIn(root, 1)];
  const p0 = params ?? init(initKey, run.model);
  const p = treeMap((t: Tensor) => toDevice(t, backend), p0);
  const optimizer = makeOptimizer(p, run.model.depths, run.optim, 'finetune', { noGrn: run.noGrn });
  const opt = optimizer.init(p);
  return {
    params: p,
    opt: { step: toDevice(opt.step, backend), m: await copyTree(opt.m, backend), v: await copyTree(opt.v, backend) },
    ema: run.ema > 0 ? await copyTree(p, backend) : null,
    key: toDevice(stepKey, backend),
  };
}
