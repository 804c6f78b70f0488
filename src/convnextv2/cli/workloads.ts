/**
 * The workloads `nexgrad ir` and `nexgrad bench` look at: ConvNeXt V2 inference, the whole
 * fine-tuning step (forward, loss, backward, AdamW, EMA) and the whole FCMAE pretraining step,
 * as a function and example arguments for trace/jit.
 */
import { Option, type Command } from 'commander';
import * as ops from '../../ir/ops.js';
import * as random from '../../ir/random.js';
import type { Tensor } from '../../ir/tensor.js';
import { config as fcmaeConfig, init as initFcmae } from '../fcmae.js';
import { type ConvNeXtV2Config, totalStride } from '../config.js';
import { apply, init } from '../model.js';
import { finetuneStepSplit } from '../train/finetune_step.js';
import { makeOptimizer, type OptimConfig } from '../train/optimizer.js';
import { pretrainStepSplit } from '../train/pretrain_step.js';
import { choice, positiveInt } from './parse.js';

export const MODES = Object.freeze(['inference', 'finetune', 'pretrain'] as const);
export type Mode = (typeof MODES)[number];

export interface WorkloadFlags {
  mode: Mode;
  train?: boolean;
  imageSize: number;
  batchSize: number;
  channels: number;
  classes: number;
}

export function addWorkloadOptions(cmd: Command, d: { imageSize: number; batchSize: number }): Command {
  return cmd
    .addOption(new Option('--mode <what>', `${MODES.join(', ')} (a whole training step, optimizer included)`).argParser(choice(MODES)).default('inference'))
    .addOption(new Option('--train', 'the same as --mode finetune'))
    .addOption(new Option('--image-size <n>', 'image side').argParser(positiveInt(224)).default(d.imageSize))
    .addOption(new Option('--batch-size <n>', 'images per call').argParser(positiveInt(8)).default(d.batchSize))
    .addOption(new Option('--channels <n>', 'image channels').argParser(positiveInt(3)).default(3))
    .addOption(new Option('--classes <n>', 'classes of the head').argParser(positiveInt(1000)).default(1000));
}

export function modeOf(f: WorkloadFlags): Mode {
  return f.train ? 'finetune' : f.mode;
}

export interface Workload {
  mode: Mode;
  fn: (...args: any[]) => unknown;
  /** Fresh arguments: training steps take (donated state, key, inputs). */
  args: () => unknown[];
  /** Argument positions a training step donates. */
  donate: number[];
  batch: number;
}

const OPTIM: OptimConfig = { lr: 1e-3, minLr: 0, warmupSteps: 0, totalSteps: 1, weightDecay: 0.05, layerDecay: 1, betas: [0.9, 0.999], clipGrad: 1 };

export function workload(cfg: ConvNeXtV2Config, f: WorkloadFlags): Workload {
  const mode = modeOf(f);
  const n = f.batchSize;
  const key = random.key(0);
  const images = () => random.uniform(random.foldIn(key, 1), [n, cfg.inChans, f.imageSize, f.imageSize]);
  if (mode === 'inference') {
    const params = init(key, cfg);
    return { mode, fn: (p: typeof params, x: Tensor) => apply(p, x, { cfg }), args: () => [params, images()], donate: [], batch: n };
  }
  if (mode === 'finetune') {
    const params = init(key, cfg);
    const optimizer = makeOptimizer(params, cfg.depths, OPTIM, 'finetune');
    const fn = finetuneStepSplit({ model: cfg, optimizer, labelSmoothing: 0.1, softTargets: false, clipGrad: 1, ema: true });
    const labels = ops.tensor(Array.from({ length: n }, (_, i) => i % cfg.numClasses), { dtype: 'i32' });
    const args = () => {
      const p = init(key, cfg);
      // jit gives donated arguments that share storage (m and v start as the same zeros,
      // the EMA as the params) private copies
      return [{ params: p, opt: optimizer.init(p), ema: p }, random.foldIn(key, 2), { images: images(), labels, lr: ops.scalar(1e-3), emaDecay: ops.scalar(0.999) }];
    };
    return { mode, fn, args, donate: [0], batch: n };
  }
  const stride = totalStride(cfg);
  const fc = fcmaeConfig(cfg, { imgSize: f.imageSize, patchSize: stride, decoderDim: Math.min(512, cfg.dims[cfg.dims.length - 1]! * 2) });
  const optimizer = makeOptimizer(initFcmae(key, fc), cfg.depths, OPTIM, 'pretrain');
  const fn = pretrainStepSplit({ fcmae: fc, optimizer, clipGrad: 1 });
  const args = () => {
    const p = initFcmae(key, fc);
    return [{ params: p, opt: optimizer.init(p) }, random.foldIn(key, 2), { images: images(), lr: ops.scalar(1e-3) }];
  };
  return { mode, fn, args, donate: [0], batch: n };
}
