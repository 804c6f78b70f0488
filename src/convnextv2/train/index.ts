/**
 * The training product's library side: the jitted fine-tuning and FCMAE steps, the trainers,
 * the loop with resumable checkpoints, evaluation, and their helpers (what `nexgrad pretrain`,
 * `finetune` and `eval` are built from).
 */
export { clipByGlobalNorm, globalNorm } from './clip.js';
export { copyTree, emaDecayAt } from './ema.js';
export { finetuneStep, finetuneStepSplit, jitFinetuneStep, predictFn, type FinetuneInputs, type FinetuneOutputs, type FinetuneState, type FinetuneStepConfig } from './finetune_step.js';
export { pretrainStep, pretrainStepSplit, jitPretrainStep, reconstructFn, maskFor, type PretrainInputs, type PretrainOutputs, type PretrainState, type PretrainStepConfig } from './pretrain_step.js';
export { FinetuneTrainer, initialFinetuneState, type FinetuneRunConfig } from './finetune.js';
export { PretrainTrainer, initialPretrainState, type PretrainRunConfig } from './pretrain.js';
export { makeOptimizer, makeSchedule, type OptimConfig } from './optimizer.js';
export { padFor, padImages, type PadSpec } from './pad.js';
export { trainLoop, type LoopOptions, type LoopResult, type StepResult, type Trainer } from './loop.js';
export { CheckpointFileError, checkpointName, listCheckpoints, loadTrainCheckpoint, pruneCheckpoints, readTrainCheckpoint, saveTrainCheckpoint } from './checkpoint_files.js';
export { MetricsLog, readJsonl } from './metrics.js';
export { ConfusionCounter, evaluate, type EvalResult } from './evaluate.js';
export { resolveBackend, toDevice, readScalars, type BackendChoice } from './runtime.js';
