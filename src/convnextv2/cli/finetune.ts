/**
 * `nexgrad finetune`: supervised training of a ConvNeXt V2 classifier, from an FCMAE
 * checkpoint (--init), an official/timm checkpoint, or from scratch; checkpoints, resume,
 * metrics, progress, a final evaluation and pictures.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { DataLoader, type Augment } from '../../nn/data/index.js';
import { devicePutAsync } from '../../passes/backends.js';
import { saveCheckpoint } from '../checkpoint.js';
import { totalStride } from '../config.js';
import { paramCountOf } from '../model.js';
import { init as initModel } from '../model.js';
import * as random from '../../ir/random.js';
import { loadTrainCheckpoint, readTrainCheckpoint } from '../train/checkpoint_files.js';
import { FinetuneTrainer, type FinetuneRunConfig, initialFinetuneState } from '../train/finetune.js';
import { trainLoop } from '../train/loop.js';
import { MetricsLog } from '../train/metrics.js';
import { padFor } from '../train/pad.js';
import { createProgress } from '../train/progress.js';
import { addDataOptions, type DataFlags, normalization, openDataset } from './data_options.js';
import { makeEvaluator } from './evaluation.js';
import { loadInitWeights } from './init_weights.js';
import { addModelOptions, type ModelFlags, modelConfig } from './model_options.js';
import { existingFile, numberIn, nonNegativeInt } from './parse.js';
import { writeConfusion, writeCurves } from './pictures.js';
import { checkDataOrder, checkFreshOut, mergeResumed, plumbingToStore, resumeCheckpoint, runArgv, setupBackend, storedArgv, totalStepsOf, warmupStepsOf } from './run.js';
import { addTrainOptions, type TrainFlags } from './train_options.js';
import { UsageError } from './usage_error.js';

export interface FinetuneFlags extends ModelFlags, DataFlags, TrainFlags {
  init?: string;
  layerDecay: number;
  ema: number;
  mixup: number;
  cutmix: number;
  mixProb: number;
  labelSmoothing: number;
  evalEvery: number;
  grn: boolean;
}

/** The finetune flags on `cmd` (no action: also used to re-read a checkpoint's settings). */
export function finetuneOptions(cmd: Command): Command {
  addModelOptions(cmd, { model: 'mini' });
  addDataOptions(cmd);
  addTrainOptions(cmd, { batchSize: 128, epochs: 3, lr: 2e-3, warmupEpochs: 0.2, weightDecay: 0.05, flip: 0, out: 'runs/finetune' });
  return cmd
    .addOption(new Option('--init <file>', 'start from these weights: an FCMAE run (fcmae.safetensors or a checkpoint), an official/timm/FCMAE checkpoint').argParser(existingFile('safetensors')))
    .addOption(new Option('--layer-decay <factor>', 'layer-wise lr decay (1 = off)').argParser(numberIn(0, 1, 0.9)).default(1))
    .addOption(new Option('--ema <decay>', 'keep an EMA of the weights with this decay, evaluated at the end (0 = off)').argParser(numberIn(0, 1, 0.999, true)).default(0))
    .addOption(new Option('--mixup <alpha>', 'mixup Beta(alpha, alpha) (0 = off)').argParser(numberIn(0, Infinity, 0.8)).default(0))
    .addOption(new Option('--cutmix <alpha>', 'cutmix Beta(alpha, alpha) (0 = off)').argParser(numberIn(0, Infinity, 1)).default(0))
    .addOption(new Option('--mix-prob <p>', 'probability that a batch is mixed').argParser(numberIn(0, 1, 1)).default(1))
    .addOption(new Option('--label-smoothing <eps>', 'label smoothing').argParser(numberIn(0, 1, 0.1, true)).default(0.1))
    .addOption(new Option('--no-grn', 'train without GRN (gamma and beta frozen at zero, where GRN is the identity), for comparison with nexgrad inspect'))
    .addOption(new Option('--eval-every <epochs>', 'evaluate on the test split every this many epochs (0: only at the end)').argParser(nonNegativeInt(1)).default(0));
}

/** A checkpoint's stored settings, parsed and checked like a command line. */
function parseStored(argv: string[]): FinetuneFlags {
  const c = finetuneOptions(new Command('finetune')).exitOverride().action(() => undefined);
  c.parse(argv, { from: 'user' });
  return c.opts() as FinetuneFlags;
}

function augmentOf(f: FinetuneFlags, size: number): Augment {
  const a: Augment = { horizontalFlip: f.flip };
  if (f.randomCrop > 0) a.randomResizedCrop = { size, scale: [f.randomCrop, 1] };
  if (f.randomShift > 0) a.randomShift = f.randomShift;
  if (f.mixup > 0 || f.cutmix > 0) Object.assign(a, { mixup: f.mixup, cutmix: f.cutmix, mixProb: f.mixProb, labelSmoothing: f.labelSmoothing });
  return a;
}

export async function runFinetune(cmd: Command): Promise<number> {
  const opts = cmd.opts() as FinetuneFlags;
  const backend = await setupBackend(opts);
  const resume = resumeCheckpoint(opts);
  let f = opts;
  let meta: Record<string, unknown> | undefined;
  if (resume) {
    meta = readTrainCheckpoint(resume).meta;
    if (meta.kind !== 'finetune') throw new UsageError(`--resume ${resume}: this is a ${String(meta.kind)} checkpoint; resume it with nexgrad ${String(meta.kind)}`);
    f = mergeResumed(cmd, parseStored(storedArgv(meta, resume)), resume, meta);
  } else {
    checkFreshOut(f.out);
  }
  fs.mkdirSync(f.out, { recursive: true });

  const train = await openDataset(f, 'train');
  const test = await openDataset(f, 'test');
  const norm = normalization(f, train.channels);
  const cfg = modelConfig(f, train.numClasses, train.channels);
  const pad = padFor(train.height, train.width, totalStride(cfg), norm.mean.map((m, i) => -m / norm.std[i]!));
  const size = pad?.size ?? train.height;
  const loader = new DataLoader(train, { batchSize: f.batchSize, shuffle: true, seed: f.seed, dropLast: true, augment: augmentOf(f, train.height), normalize: norm });
  const spe = loader.batchesPerEpoch;
  if (spe < 1) throw new UsageError(`--batch-size ${f.batchSize} is larger than the training set (${train.length} images)`);
  const total = totalStepsOf(f, spe);
  const run: FinetuneRunConfig = {
    model: cfg,
    optim: { lr: f.lr, minLr: Math.min(f.minLr, f.lr), warmupSteps: warmupStepsOf(f, spe, total), totalSteps: total, weightDecay: f.weightDecay, layerDecay: f.layerDecay, betas: [0.9, 0.999], clipGrad: f.clipGrad },
    labelSmoothing: f.labelSmoothing,
    ema: f.ema,
    emaWarmup: true,
    softTargets: f.mixup > 0 || f.cutmix > 0,
    pad,
    seed: f.seed,
    noGrn: !f.grn,
  };

  const log = (s: string) => (f.quiet ? undefined : process.stderr.write(s + '\n'));
  let initParams;
  if (!resume && f.init && !f.grn) throw new UsageError('--no-grn trains GRN-free from scratch; it cannot start from --init weights whose GRN is trained');
  if (!resume && f.init) {
    const template = initModel(random.foldIn(random.key(f.seed), 0), cfg);
    const r = loadInitWeights(f.init, template);
    initParams = r.params;
    log(`initialised from ${f.init} (${r.source}); fresh: ${r.fresh.length ? r.fresh.join(', ') : 'nothing'}`);
  }
  let state = await initialFinetuneState(run, backend, initParams);
  let startStep = 0;
  if (resume) {
    const loaded = loadTrainCheckpoint(resume, state);
    state = await devicePutAsync(loaded.tree, backend);
    startStep = Number(meta!.step);
    checkDataOrder(meta!, resume, train.length, spe);
    if (!(Number.isInteger(startStep) && startStep >= 0 && startStep <= total)) throw new UsageError(`--resume ${resume}: its step ${String(meta!.step)} is outside this run's 0..${total}`);
    log(`resuming from ${resume} at step ${startStep}/${total}`);
  }
  const trainer = new FinetuneTrainer(run, state, backend);
  const metrics = new MetricsLog(path.join(f.out, 'metrics.jsonl'));
  if (resume) metrics.truncateTo(startStep);
  else metrics.reset();

  const dsName = f.data;
  log(
    `finetune: ${cfg.name} (depths ${cfg.depths.join(',')}, dims ${cfg.dims.join(',')}, stem ${cfg.stemStride}; ${(paramCountOf(cfg) / 1e6).toFixed(2)}M params) on ${dsName} ` +
      `(${train.length} train / ${test.length} test, ${train.channels}x${train.height}x${train.width}${pad ? ` padded to ${size}x${size}` : ''}); ` +
      `${total} steps (${spe}/epoch) of batch ${f.batchSize} on ${backend}`,
  );
  const evaluator = makeEvaluator({ cfg, pad, dataset: test, norm, batchSize: 500, backend });
  const useEma = f.ema > 0;
  const result = await trainLoop({
    trainer,
    loader,
    batchSize: f.batchSize,
    totalSteps: total,
    startStep,
    outDir: f.out,
    checkpointEvery: f.checkpointEvery,
    logEvery: f.logEvery,
    metrics,
    progress: createProgress('finetune', total, startStep, { quiet: f.quiet }),
    meta: { kind: 'finetune', argv: runArgv(stored(f)), plumbing: plumbingToStore(f), model: cfg, data: { dataset: dsName, seed: f.seed, batchSize: f.batchSize, length: train.length } },
    onEpochEnd: f.evalEvery > 0
      ? async (epoch, step) => {
          if ((epoch + 1) % f.evalEvery !== 0 || step >= total) return undefined;
          const r = await evaluator(trainer.weights(useEma));
          log(`epoch ${epoch + 1}: test accuracy ${(r.accuracy * 100).toFixed(2)}%`);
          return { event: 'eval', epoch: epoch + 1, atStep: step, testAcc: r.accuracy };
        }
      : undefined,
  });
  if (result.interrupted) {
    log(`stopped at step ${result.step}/${total}; checkpoint ${result.checkpoint}\ncontinue with: nexgrad finetune --resume ${f.out}`);
    return 130;
  }

  const r = await evaluator(trainer.weights(useEma));
  metrics.append([{ event: 'eval', final: true, epoch: total / spe, atStep: total, testAcc: r.accuracy, weights: useEma ? 'ema' : 'params' }]);
  const hostParams = await devicePutAsync(trainer.weights(useEma), 'cpu');
  const modelFile = path.join(f.out, 'model.safetensors');
  saveCheckpoint(modelFile, hostParams, { 'nexgrad.config': JSON.stringify(cfg) });
  fs.writeFileSync(path.join(f.out, 'eval.json'), JSON.stringify({ accuracy: r.accuracy, correct: r.correct, total: r.total, weights: useEma ? 'ema' : 'params', confusion: r.confusion }, null, 1) + '\n');
  const pictures = [...(await writeCurves(f.out, metrics.read(), 'finetune')), await writeConfusion(f.out, r.confusion, test.classNames ?? [...Array(test.numClasses).keys()].map(String), `${dsName} test: ${(r.accuracy * 100).toFixed(2)}% correct`)];
  console.log(`test accuracy: ${(r.accuracy * 100).toFixed(2)}% (${r.correct}/${r.total}${useEma ? ', EMA weights' : ''}) after ${total} steps in ${result.seconds.toFixed(0)} s`);
  console.log(`model: ${modelFile}`);
  console.log(`pictures: ${pictures.join(', ')}`);
  return 0;
}

/** The run's settings as a throwaway command holding them (for runArgv). */
function stored(f: FinetuneFlags): Command {
  const c = finetuneOptions(new Command('finetune'));
  for (const [k, v] of Object.entries(f)) c.setOptionValue(k, v);
  return c;
}

export function finetuneCommand(): Command {
  const cmd = finetuneOptions(new Command('finetune'))
    .description('train a ConvNeXt V2 classifier (from an FCMAE checkpoint with --init, or from scratch)')
    .addHelpText('after', '\nExample (Fashion-MNIST, after nexgrad pretrain):\n  nexgrad finetune --init runs/pretrain/fcmae.safetensors --epochs 3 --out runs/finetune');
  return cmd;
}
