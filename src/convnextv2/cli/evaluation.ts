/**
 * Evaluating a classifier the way the commands do: the test split through a DataLoader
 * (normalised, no augmentation, in order) and a jitted forward pass.
 */
import type { ImageDataset } from '../../nn/data/index.js';
import { DataLoader } from '../../nn/data/index.js';
import { jit } from '../../passes/jit.js';
import type { BackendName } from '../../passes/backends.js';
import type { ConvNeXtV2Config } from '../config.js';
import type { ConvNeXtV2Params } from '../model.js';
import { type EvalResult, evaluate } from '../train/evaluate.js';
import { predictFn } from '../train/finetune_step.js';
import type { PadSpec } from '../train/pad.js';
import { toDevice } from '../train/runtime.js';

export interface EvalSetup {
  cfg: ConvNeXtV2Config;
  pad?: PadSpec;
  dataset: ImageDataset;
  norm: { mean: number[]; std: number[] };
  batchSize: number;
  backend: BackendName;
}

/** A reusable evaluator (the forward pass is compiled once). */
export function makeEvaluator(s: EvalSetup): (params: ConvNeXtV2Params) => Promise<EvalResult> {
  const predict = jit(predictFn(s.cfg, s.pad), { backend: s.backend });
  const loader = new DataLoader(s.dataset, { batchSize: s.batchSize, shuffle: false, normalize: s.norm });
  return (params) => evaluate((x) => predict(params, toDevice(x, s.backend)), loader.epoch(0), s.dataset.numClasses);
}
