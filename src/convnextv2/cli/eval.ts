/**
 * `nexgrad eval`: top-1 accuracy and a confusion matrix of a classifier on a dataset split, from
 * a fine-tuning checkpoint (its EMA weights by default), a model.safetensors written by
 * `finetune`, or an official/timm checkpoint (with --model flags for its shape).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import { totalStride } from '../config.js';
import type { ConvNeXtV2Params } from '../model.js';
import { padFor } from '../train/pad.js';
import { devicePutAsync } from '../../passes/backends.js';
import { addDataOptions, type DataFlags, normalization, openDataset } from './data_options.js';
import { makeEvaluator } from './evaluation.js';
import { loadModel } from './load_model.js';
import { addModelOptions, type ModelFlags, modelConfig } from './model_options.js';
import { choice, existingFile, nonNegativeInt, positiveInt, threads } from './parse.js';
import { writeConfusion } from './pictures.js';
import { setupBackend } from './run.js';
import { BACKEND_CHOICES, type BackendChoice } from '../train/runtime.js';
import { UsageError } from './usage_error.js';

interface EvalFlags extends ModelFlags, DataFlags {
  checkpoint: string;
  weights: 'ema' | 'params';
  split: 'test' | 'train';
  batchSize: number;
  out: string;
  backend: BackendChoice;
  threads?: number | 'auto';
}

export function evalCommand(): Command {
  const cmd = new Command('eval').description('accuracy and confusion matrix of a classifier checkpoint on a dataset split');
  addModelOptions(cmd, { model: 'mini' });
  addDataOptions(cmd);
  return cmd
    .addOption(new Option('--checkpoint <file>', 'a finetune checkpoint or model.safetensors, or an official/timm checkpoint (give its --model)').argParser(existingFile('safetensors')).makeOptionMandatory())
    .addOption(new Option('--weights <which>', 'of a training checkpoint: its EMA (when it has one) or its raw parameters').argParser(choice(['ema', 'params'] as const)).default('ema'))
    .addOption(new Option('--split <name>', 'which split to evaluate').argParser(choice(['test', 'train'] as const)).default('test'))
    .addOption(new Option('--batch-size <n>', 'images per forward pass').argParser(positiveInt(500)).default(500))
    .addOption(new Option('--out <dir>', 'where eval.json and confusion.png go').default('runs/eval'))
    .addOption(new Option('--backend <name>', `where to run: ${BACKEND_CHOICES.join(', ')}`).argParser(choice(BACKEND_CHOICES)).default('auto'))
    .addOption(new Option('--threads <n>', "CPU threads (a number, or 'auto': every core up to 8)").argParser(threads))
    .addOption(new Option('--seed <n>', 'seed of synthetic data (as given to finetune)').argParser(nonNegativeInt(0)).default(0))
    .addOption(new Option('--quiet', 'print only the results'));
}

export async function runEval(cmd: Command): Promise<number> {
  const f = cmd.opts() as EvalFlags;
  const backend = await setupBackend(f);
  const ds = await openDataset(f, f.split);
  const norm = normalization(f, ds.channels);
  const m = loadModel(f.checkpoint, f.weights, () => modelConfig(f, ds.numClasses, ds.channels));
  if (!m.classifier) throw new UsageError(`--checkpoint ${f.checkpoint} holds ${m.what}, which has no classifier; fine-tune it first (nexgrad finetune --init ${f.checkpoint})`);
  const { cfg, what } = m;
  const params = m.params as ConvNeXtV2Params;
  if (cfg.numClasses !== ds.numClasses) throw new UsageError(`--checkpoint ${f.checkpoint} classifies ${cfg.numClasses} classes but --data ${f.data} has ${ds.numClasses}`);
  if (cfg.inChans !== ds.channels) throw new UsageError(`--checkpoint ${f.checkpoint} takes ${cfg.inChans}-channel images but --data ${f.data} has ${ds.channels} channels`);
  const pad = padFor(ds.height, ds.width, totalStride(cfg), norm.mean.map((m, i) => -m / norm.std[i]!));
  const evaluator = makeEvaluator({ cfg, pad, dataset: ds, norm, batchSize: f.batchSize, backend });
  const t0 = performance.now();
  const r = await evaluator(await devicePutAsync(params, backend));
  const secs = (performance.now() - t0) / 1000;
  fs.mkdirSync(f.out, { recursive: true });
  fs.writeFileSync(path.join(f.out, 'eval.json'), JSON.stringify({ checkpoint: f.checkpoint, weights: what, data: f.data, split: f.split, accuracy: r.accuracy, correct: r.correct, total: r.total, confusion: r.confusion }, null, 1) + '\n');
  const names = ds.classNames ?? [...Array(ds.numClasses).keys()].map(String);
  const pic = await writeConfusion(f.out, r.confusion, names, `${f.data} ${f.split}: ${(r.accuracy * 100).toFixed(2)}% correct`);
  console.log(`${f.split} accuracy: ${(r.accuracy * 100).toFixed(2)}% (${r.correct}/${r.total}; ${what}; ${(r.total / secs).toFixed(0)} img/s)`);
  console.log(`confusion matrix: ${pic}; numbers: ${path.join(f.out, 'eval.json')}`);
  return 0;
}
