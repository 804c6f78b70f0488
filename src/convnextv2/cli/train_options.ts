/**
 * Flags shared by `pretrain` and `finetune`: batch size, length, learning-rate schedule, weight
 * decay, clipping, augmentation, seed; and the run's plumbing (output directory, resume,
 * checkpoints, logging, backend, threads). The plumbing may change when a run is resumed;
 * everything else is stored in the checkpoint and taken from it.
 */
import { Command, Option } from 'commander';
import { BACKEND_CHOICES, type BackendChoice } from '../train/runtime.js';
import { choice, nonNegativeInt, numberIn, positiveInt, positiveNumber, threads } from './parse.js';

export interface TrainFlags {
  batchSize: number;
  epochs: number;
  steps?: number;
  lr: number;
  minLr: number;
  warmupEpochs: number;
  weightDecay: number;
  clipGrad: number;
  flip: number;
  randomCrop: number;
  randomShift: number;
  seed: number;
  // plumbing
  out: string;
  resume?: string | true;
  checkpointEvery: number;
  logEvery: number;
  backend: BackendChoice;
  threads?: number | 'auto';
  quiet?: boolean;
}

/** Flags that may differ between a run and its resumption (never stored as the run's settings). */
export const PLUMBING = Object.freeze(['out', 'resume', 'checkpointEvery', 'logEvery', 'backend', 'threads', 'quiet', 'init']);

export interface TrainDefaults {
  batchSize: number;
  epochs: number;
  lr: number;
  warmupEpochs: number;
  weightDecay: number;
  flip: number;
  out: string;
}

export function addTrainOptions(cmd: Command, d: TrainDefaults): Command {
  return cmd
    .addOption(new Option('--batch-size <n>', 'images per step').argParser(positiveInt(128)).default(d.batchSize))
    .addOption(new Option('--epochs <n>', 'passes over the training data').argParser(positiveNumber(2)).default(d.epochs))
    .addOption(new Option('--steps <n>', 'run exactly this many steps (overrides --epochs)').argParser(positiveInt(1000)))
    .addOption(new Option('--lr <rate>', 'peak learning rate (after warmup)').argParser(positiveNumber(0.001)).default(d.lr))
    .addOption(new Option('--min-lr <rate>', 'final learning rate of the cosine decay').argParser(numberIn(0, Infinity, 1e-6)).default(1e-6))
    .addOption(new Option('--warmup-epochs <n>', 'linear warmup length in epochs (fractions allowed)').argParser(numberIn(0, Infinity, 0.1)).default(d.warmupEpochs))
    .addOption(new Option('--weight-decay <wd>', 'AdamW decoupled weight decay').argParser(numberIn(0, Infinity, 0.05)).default(d.weightDecay))
    .addOption(new Option('--clip-grad <norm>', 'clip gradients to this global norm (0 = off)').argParser(numberIn(0, Infinity, 1)).default(0))
    .addOption(new Option('--flip <p>', 'probability of a horizontal flip').argParser(numberIn(0, 1, 0.5)).default(d.flip))
    .addOption(new Option('--random-crop <scale>', 'random resized crop with this minimum area scale (0 = off)').argParser(numberIn(0, 1, 0.35)).default(0))
    .addOption(new Option('--random-shift <pixels>', 'random translation by up to this many pixels each way, zero-filled (0 = off)').argParser(nonNegativeInt(2)).default(0))
    .addOption(new Option('--seed <n>', 'seed of initialisation, data order, augmentation and masks').argParser(nonNegativeInt(0)).default(0))
    .addOption(new Option('--out <dir>', 'output directory: checkpoints, metrics.jsonl, pictures').default(d.out))
    .addOption(new Option('--resume [checkpoint]', 'continue a run: a checkpoint file, or a directory (default: --out) whose newest checkpoint is used'))
    .addOption(new Option('--checkpoint-every <steps>', 'save a checkpoint every this many steps (0: only at the end and on Ctrl-C)').argParser(nonNegativeInt(200)).default(200))
    .addOption(new Option('--log-every <steps>', 'read the loss back and report every this many steps').argParser(positiveInt(10)).default(10))
    .addOption(new Option('--backend <name>', `where to run: ${BACKEND_CHOICES.join(', ')} (auto: cuda > wgsl > cpu)`).argParser(choice(BACKEND_CHOICES)).default('auto'))
    .addOption(new Option('--threads <n>', "CPU threads (a number, or 'auto': every core up to 8; default: NEXGRAD_CPU_THREADS, else every core for the native C dialect and one for WebAssembly)").argParser(threads))
    .addOption(new Option('--quiet', 'no progress output'));
}
