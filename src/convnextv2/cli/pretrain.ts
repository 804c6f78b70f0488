/**
 * `nexgrad pretrain`: FCMAE masked-autoencoder pretraining of a ConvNeXt V2 encoder, with
 * checkpoints, resume, metrics, progress and pictures (loss curve, original / masked /
 * reconstructed images). Writes fcmae.safetensors for `nexgrad finetune --init`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import * as random from '../../ir/random.js';
import { DataLoader, type Augment } from '../../nn/data/index.js';
import { jit } from '../../passes/jit.js';
import { devicePutAsync } from '../../passes/backends.js';
import { saveCheckpoint } from '../checkpoint.js';
import { config as fcmaeConfig, paramCountOf } from '../fcmae.js';
import { totalStride } from '../config.js';
import { loadTrainCheckpoint, readTrainCheckpoint } from '../train/checkpoint_files.js';
import { trainLoop } from '../train/loop.js';
import { MetricsLog } from '../train/metrics.js';
import { padFor } from '../train/pad.js';
import { initialPretrainState, PretrainTrainer, type PretrainRunConfig } from '../train/pretrain.js';
import { reconstructFn } from '../train/pretrain_step.js';
import { createProgress } from '../train/progress.js';
import { toDevice } from '../train/runtime.js';
import { addDataOptions, type DataFlags, normalization, openDataset } from './data_options.js';
import { addModelOptions, type ModelFlags, modelConfig } from './model_options.js';
import { numberIn, positiveInt, nonNegativeInt } from './parse.js';
import { writeCurves, writeReconstruction } from './pictures.js';
import { checkDataOrder, checkFreshOut, mergeResumed, plumbingToStore, resumeCheckpoint, runArgv, setupBackend, storedArgv, totalStepsOf, warmupStepsOf } from './run.js';
import { addTrainOptions, type TrainFlags } from './train_options.js';
import { UsageError } from './usage_error.js';

export interface PretrainFlags extends ModelFlags, DataFlags, TrainFlags {
  maskRatio: number;
  normPixLoss: boolean;
  decoderDim: number;
  decoderDepth: number;
}

export function pretrainOptions(cmd: Command): Command {
  addModelOptions(cmd, { model: 'mini' });
  addDataOptions(cmd);
  addTrainOptions(cmd, { batchSize: 128, epochs: 1, lr: 2e-3, warmupEpochs: 0.1, weightDecay: 0.05, flip: 0, out: 'runs/pretrain' });
  return cmd
    .addOption(new Option('--mask-ratio <r>', 'fraction of patches removed').argParser(numberIn(0, 1, 0.6, true)).default(0.6))
    .addOption(new Option('--norm-pix-loss', 'predict each patch normalised by its own mean and variance (default)').default(true))
    .addOption(new Option('--no-norm-pix-loss', 'predict raw pixels'))
    .addOption(new Option('--decoder-dim <n>', 'decoder width').argParser(positiveInt(512)).default(128))
    .addOption(new Option('--decoder-depth <n>', 'decoder blocks').argParser(nonNegativeInt(1)).default(1));
}

function parseStored(argv: string[]): PretrainFlags {
  const c = pretrainOptions(new Command('pretrain')).exitOverride().action(() => undefined);
  c.parse(argv, { from: 'user' });
  return c.opts() as PretrainFlags;
}

function stored(f: PretrainFlags): Command {
  const c = pretrainOptions(new Command('pretrain'));
  for (const [k, v] of Object.entries(f)) c.setOptionValue(k, v);
  return c;
}

export async function runPretrain(cmd: Command): Promise<number> {
  const opts = cmd.opts() as PretrainFlags;
  const backend = await setupBackend(opts);
  const resume = resumeCheckpoint(opts);
  let f = opts;
  let meta: Record<string, unknown> | undefined;
  if (resume) {
    meta = readTrainCheckpoint(resume).meta;
    if (meta.kind !== 'pretrain') throw new UsageError(`--resume ${resume}: this is a ${String(meta.kind)} checkpoint; resume it with nexgrad ${String(meta.kind)}`);
    f = mergeResumed(cmd, parseStored(storedArgv(meta, resume)), resume, meta);
  } else {
    checkFreshOut(f.out);
  }
  fs.mkdirSync(f.out, { recursive: true });
  const log = (s: string) => (f.quiet ? undefined : process.stderr.write(s + '\n'));

  const train = await openDataset(f, 'train');
  const norm = normalization(f, train.channels);
  const enc = modelConfig(f, 0, train.channels);
  const stride = totalStride(enc);
  const pad = padFor(train.height, train.width, stride, norm.mean.map((m, i) => -m / norm.std[i]!));
  const size = pad?.size ?? train.height;
  const fc = fcmaeConfig(enc, { imgSize: size, patchSize: stride, maskRatio: f.maskRatio, normPixLoss: f.normPixLoss, decoderDim: f.decoderDim, decoderDepth: f.decoderDepth });
  const augment: Augment = { horizontalFlip: f.flip };
  if (f.randomCrop > 0) augment.randomResizedCrop = { size: train.height, scale: [f.randomCrop, 1] };
  if (f.randomShift > 0) augment.randomShift = f.randomShift;
  const loader = new DataLoader(train, { batchSize: f.batchSize, shuffle: true, seed: f.seed, dropLast: true, augment, normalize: norm });
  const spe = loader.batchesPerEpoch;
  if (spe < 1) throw new UsageError(`--batch-size ${f.batchSize} is larger than the training set (${train.length} images)`);
  const total = totalStepsOf(f, spe);
  const run: PretrainRunConfig = {
    fcmae: fc,
    optim: { lr: f.lr, minLr: Math.min(f.minLr, f.lr), warmupSteps: warmupStepsOf(f, spe, total), totalSteps: total, weightDecay: f.weightDecay, layerDecay: 1, betas: [0.9, 0.95], clipGrad: f.clipGrad },
    pad,
    seed: f.seed,
  };
  let state = await initialPretrainState(run, backend);
  let startStep = 0;
  if (resume) {
    state = await devicePutAsync(loadTrainCheckpoint(resume, state).tree, backend);
    startStep = Number(meta!.step);
    checkDataOrder(meta!, resume, train.length, spe);
    if (!(Number.isInteger(startStep) && startStep >= 0 && startStep <= total)) throw new UsageError(`--resume ${resume}: its step ${String(meta!.step)} is outside this run's 0..${total}`);
    log(`resuming from ${resume} at step ${startStep}/${total}`);
  }
  const trainer = new PretrainTrainer(run, state, backend);
  const metrics = new MetricsLog(path.join(f.out, 'metrics.jsonl'));
  if (resume) metrics.truncateTo(startStep);
  else metrics.reset();
  const side = size / stride;
  log(
    `pretrain (FCMAE): encoder ${enc.name} (depths ${enc.depths.join(',')}, dims ${enc.dims.join(',')}, stem ${enc.stemStride}), decoder ${fc.decoderDim}x${fc.decoderDepth}; ` +
      `${(paramCountOf(fc) / 1e6).toFixed(2)}M params; ${f.data} (${train.length} images ${train.channels}x${train.height}x${train.width}${pad ? ` padded to ${size}x${size}` : ''}); ` +
      `${side}x${side} patches of ${stride}x${stride}, mask ratio ${f.maskRatio}; ${total} steps (${spe}/epoch) of batch ${f.batchSize} on ${backend}`,
  );
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
    progress: createProgress('pretrain', total, startStep, { quiet: f.quiet }),
    meta: { kind: 'pretrain', argv: runArgv(stored(f)), plumbing: plumbingToStore(f), model: enc, fcmae: { ...fc, encoder: undefined }, data: { dataset: f.data, seed: f.seed, batchSize: f.batchSize, length: train.length } },
  });
  if (result.interrupted) {
    log(`stopped at step ${result.step}/${total}; checkpoint ${result.checkpoint}\ncontinue with: nexgrad pretrain --resume ${f.out}`);
    return 130;
  }
  const hostParams = await devicePutAsync(trainer.state.params, 'cpu');
  const modelFile = path.join(f.out, 'fcmae.safetensors');
  saveCheckpoint(modelFile, hostParams, { 'nexgrad.config': JSON.stringify(fc) });

  // the picture: 8 images of the first batch of the (unshuffled) data, a fixed mask key
  const n = Math.min(8, train.length);
  const first = await new DataLoader(train, { batchSize: n, shuffle: false, normalize: norm }).epoch(0).next();
  const recon = jit(reconstructFn(fc, pad), { backend })(trainer.state.params, toDevice(first.value!.images, backend), toDevice(random.key(f.seed + 1), backend));
  const shape = { channels: train.channels, height: size, width: size };
  const grid = await writeReconstruction(f.out, { images: (await recon.images.data()) as Float32Array, masked: (await recon.masked.data()) as Float32Array, recon: (await recon.recon.data()) as Float32Array }, n, shape, norm);
  const pictures = [...(await writeCurves(f.out, metrics.read(), 'pretrain')), grid];
  const last = metrics.read().filter((r) => typeof r.loss === 'number').slice(-20);
  const mean = last.reduce((a, r) => a + (r.loss as number), 0) / Math.max(1, last.length);
  console.log(`pretraining loss ${mean.toFixed(4)} (mean of the last ${last.length} steps) after ${total} steps in ${result.seconds.toFixed(0)} s`);
  console.log(`encoder: ${modelFile} (fine-tune with: nexgrad finetune --init ${modelFile})`);
  console.log(`pictures: ${pictures.join(', ')}`);
  return 0;
}

export function pretrainCommand(): Command {
  return pretrainOptions(new Command('pretrain'))
    .description('FCMAE masked-autoencoder pretraining of a ConvNeXt V2 encoder')
    .addHelpText('after', '\nExample (Fashion-MNIST, 28x28 padded to 32x32: 4x4 patches of 8x8):\n  nexgrad pretrain --epochs 1 --out runs/pretrain');
}
