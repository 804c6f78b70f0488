/**
 * The FCMAE pretraining trainer: state (FCMAE params, AdamW moments, key), the jitted step and
 * the learning-rate schedule. Used by `nexgrad pretrain` and usable from code.
 */
import * as ops from '../../ir/ops.js';
import * as random from '../../ir/random.js';
import { treeMap } from '../../ir/pytree.js';
import type { Tensor } from '../../ir/tensor.js';
import type { Batch } from '../../nn/data/index.js';
import type { BackendName } from '../../passes/backends.js';
import { type FcmaeConfig, type FcmaeParams, init } from '../fcmae.js';
import { copyTree } from './ema.js';
import type { StepResult, Trainer } from './loop.js';
import { checkOptimConfig, makeOptimizer, makeSchedule, type OptimConfig } from './optimizer.js';
import type { PadSpec } from './pad.js';
import { jitPretrainStep, type PretrainState } from './pretrain_step.js';
import { toDevice } from './runtime.js';

export interface PretrainRunConfig {
  fcmae: FcmaeConfig;
  optim: OptimConfig;
  pad?: PadSpec;
  seed: number;
}

export class PretrainTrainer implements Trainer {
  readonly kind = 'pretrain' as const;
  state: PretrainState;
  private readonly backend: BackendName;
  private readonly schedule: (step: number) => number;
  private readonly jitted: ReturnType<typeof jitPretrainStep>;

  constructor(run: PretrainRunConfig, state: PretrainState, backend: BackendName) {
    checkOptimConfig(run.optim);
    this.state = state;
    this.backend = backend;
    this.schedule = makeSchedule(run.optim);
    const optimizer = makeOptimizer(state.params, run.fcmae.encoder.depths, run.optim, 'pretrain');
    this.jitted = jitPretrainStep({ fcmae: run.fcmae, optimizer, clipGrad: run.optim.clipGrad, pad: run.pad }, backend);
  }

  lrAt(step: number): number {
    return this.schedule(step);
  }

  step(batch: Batch, step: number): StepResult {
    const out = this.jitted(this.state, {
      images: toDevice(batch.images, this.backend),
      lr: toDevice(ops.scalar(this.lrAt(step), 'f32'), this.backend),
    });
    this.state = out.state;
    return { loss: out.loss, gradNorm: out.gradNorm };
  }

  stateTree(): unknown {
    return this.state;
  }
}

/** A fresh pretraining state: random FCMAE params from the seed, zero moments, the seed's key. */
export async function initialPretrainState(run: PretrainRunConfig, backend: BackendName, params?: FcmaeParams): Promise<PretrainState> {
  const root = random.key(run.seed);
  const p0 = params ?? init(random.foldIn(root, 0), run.fcmae);
  const p = treeMap((t: Tensor) => toDevice(t, backend), p0);
  const optimizer = makeOptimizer(p, run.fcmae.encoder.depths, run.optim, 'pretrain');
  const opt = optimizer.init(p);
  return {
    params: p,
    opt: { step: toDevice(opt.step, backend), m: await copyTree(opt.m, backend), v: await copyTree(opt.v, backend) },
    key: toDevice(random.foldIn(root, 1), backend),
  };
}
