/**
 * `nexgrad inspect`: the paper's feature-collapse view of a checkpoint. For each chosen layer, a
 * PNG grid of 64 channels' activation maps (the expansion MLP layer) for one image; for every
 * layer, the average pair-wise cosine distance between channels (over several images), as a
 * bar chart and JSON, side by side with a comparison model: by default the same weights with
 * GRN removed, or another checkpoint (--compare, e.g. one trained with GRN disabled).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import sharp from 'sharp';
import * as ops from '../../ir/ops.js';
import type { Tensor } from '../../ir/tensor.js';
import { DataLoader } from '../../nn/data/index.js';
import { devicePutAsync } from '../../passes/backends.js';
import { jit } from '../../passes/jit.js';
import { totalStride } from '../config.js';
import { channelMaps, encoderTaps, featureCollapse } from '../inspect.js';
import type { EncoderParams } from '../model.js';
import { writeBarChart, writeHeatmapGrid } from '../report/index.js';
import { padFor, padImages } from '../train/pad.js';
import { readScalars, toDevice, BACKEND_CHOICES, type BackendChoice } from '../train/runtime.js';
import { addDataOptions, type DataFlags, normalization, openDataset } from './data_options.js';
import { loadModel, type LoadedModel } from './load_model.js';
import { addModelOptions, type ModelFlags, modelConfig } from './model_options.js';
import { choice, existingFile, nonNegativeInt, positiveInt, threads } from './parse.js';
import { setupBackend } from './run.js';
import { UsageError } from './usage_error.js';

interface InspectFlags extends ModelFlags, DataFlags {
  checkpoint: string;
  compare?: string;
  image?: string;
  index: number;
  images: number;
  layers: string;
  channels: number;
  weights: 'ema' | 'params';
  out: string;
  backend: BackendChoice;
  threads?: number | 'auto';
}

export function inspectCommand(): Command {
  const cmd = new Command('inspect').description("the paper's feature-collapse view: activation maps and per-layer cosine distance, with and without GRN");
  addModelOptions(cmd, { model: 'mini' });
  addDataOptions(cmd);
  return cmd
    .addOption(new Option('--checkpoint <file>', 'a finetune/pretrain checkpoint, model.safetensors, fcmae.safetensors, or an official/timm file (give its --model)').argParser(existingFile('safetensors')).makeOptionMandatory())
    .addOption(new Option('--compare <file>', 'compare with this model (default: the same weights with GRN removed)').argParser(existingFile('safetensors')))
    .addOption(new Option('--image <file>', 'a PNG/JPEG image to show (default: --index of the test split)').argParser(existingFile('image')))
    .addOption(new Option('--index <i>', 'which test image to show').argParser(nonNegativeInt(0)).default(0))
    .addOption(new Option('--images <n>', 'test images the cosine distance is averaged over').argParser(positiveInt(16)).default(16))
    .addOption(new Option('--layers <list>', "blocks to draw, e.g. stages.0.1,stages.1.1, or 'last' (the last block of each stage) or 'all'").default('last'))
    .addOption(new Option('--channels <n>', 'channels per grid').argParser(positiveInt(64)).default(64))
    .addOption(new Option('--weights <which>', 'of a fine-tuning checkpoint: EMA or raw weights').argParser(choice(['ema', 'params'] as const)).default('ema'))
    .addOption(new Option('--out <dir>', 'where the pictures and feature-collapse.json go').default('runs/inspect'))
    .addOption(new Option('--backend <name>', `where to run: ${BACKEND_CHOICES.join(', ')}`).argParser(choice(BACKEND_CHOICES)).default('auto'))
    .addOption(new Option('--threads <n>', "CPU threads (a number, or 'auto': every core up to 8)").argParser(threads))
    .addOption(new Option('--seed <n>', 'seed of synthetic data (as given to finetune)').argParser(nonNegativeInt(0)).default(0))
    .addOption(new Option('--quiet', 'print only the results'));
}

/** A PNG/JPEG file as a normalised (1, C, H, W) batch at the dataset's size. */
async function imageFile(file: string, channels: number, h: number, w: number, norm: { mean: number[]; std: number[] }): Promise<Tensor> {
  let img = sharp(file).resize(w, h, { fit: 'fill' }).removeAlpha();
  img = channels === 1 ? img.toColourspace('b-w') : img.toColourspace('srgb');
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== channels) throw new UsageError(`--image ${file}: decoded to ${info.channels} channels, the model takes ${channels}`);
  const out = new Float32Array(channels * h * w);
  for (let c = 0; c < channels; c++) for (let p = 0; p < h * w; p++) out[c * h * w + p] = (data[p * channels + c]! / 255 - norm.mean[c]!) / norm.std[c]!;
  return ops.fromHost('f32', [1, channels, h, w], out);
}

function chosenLayers(spec: string, names: readonly string[]): string[] {
  if (spec === 'all') return [...names];
  if (spec === 'last') return names.filter((n, i) => names[i + 1]?.split('.')[1] !== n.split('.')[1]);
  const list = spec.split(',').map((s) => s.trim());
  const unknown = list.filter((l) => !names.includes(l));
  if (unknown.length) throw new UsageError(`--layers: ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not a block of this model; expected some of ${names.join(', ')}, 'last' or 'all'`);
  return list;
}

export async function runInspect(cmd: Command): Promise<number> {
  const f = cmd.opts() as InspectFlags;
  const backend = await setupBackend(f);
  const ds = await openDataset(f, 'test');
  const norm = normalization(f, ds.channels);
  const fallback = () => modelConfig(f, ds.numClasses, ds.channels);
  const main = loadModel(f.checkpoint, f.weights, fallback);
  const other: LoadedModel = f.compare ? loadModel(f.compare, f.weights, fallback) : main;
  const cfg = main.cfg;
  if (cfg.inChans !== ds.channels) throw new UsageError(`--checkpoint ${f.checkpoint} takes ${cfg.inChans}-channel images but --data ${f.data} has ${ds.channels}`);
  const pad = padFor(ds.height, ds.width, totalStride(cfg), norm.mean.map((m, i) => -m / norm.std[i]!));
  const models = [
    { label: 'ConvNeXt V2', file: f.checkpoint, m: main, grn: true },
    { label: f.compare ? path.basename(f.compare) : 'GRN removed', file: f.compare ?? f.checkpoint, m: other, grn: f.compare === undefined ? false : true },
  ];
  const batch = (await new DataLoader(ds, { batchSize: Math.min(f.images, ds.length), shuffle: false, normalize: norm }).epoch(0).next()).value!;
  const shown = f.image ? await imageFile(f.image, ds.channels, ds.height, ds.width, norm) : (await new DataLoader(ds, { batchSize: 1, normalize: norm }).epoch(0, Math.min(f.index, ds.length - 1)).next()).value!.images;
  fs.mkdirSync(f.out, { recursive: true });

  const results: { model: string; file: string; grn: boolean; layers: { name: string; channels: number; cosineDistance: number }[] }[] = [];
  const pictures: string[] = [];
  for (const { label, file, m, grn } of models) {
    const params = await devicePutAsync(m.params as EncoderParams, backend);
    const collapse = jit((p: EncoderParams, x: Tensor) => featureCollapse(p, padImages(x, pad), m.cfg, { grn }).map((l) => l.distance), { backend });
    const distances = await readScalars(collapse(params, toDevice(batch.images, backend)));
    const names = encoderTaps(m.params as EncoderParams, padImages(shown, pad), m.cfg, { grn }).taps;
    results.push({ model: label, file, grn, layers: names.map((t, i) => ({ name: t.name, channels: t.activation.shape[3]!, cosineDistance: distances[i]! })) });
    for (const layer of chosenLayers(f.layers, names.map((t) => t.name))) {
      const act = names.find((t) => t.name === layer)!.activation;
      const maps = await channelMaps(act, f.channels);
      const tag = grn ? (f.compare && label !== 'ConvNeXt V2' ? 'compare' : 'v2') : 'no-grn';
      const file2 = path.join(f.out, `activations-${layer}-${tag}.png`);
      const [, h, w] = act.shape as [number, number, number, number];
      await writeHeatmapGrid(file2, maps, { height: h, width: w, cols: 8, scale: Math.max(1, Math.floor(48 / h)), title: `${label}: ${layer} expansion layer, ${maps.length} of ${act.shape[3]} channels` });
      pictures.push(file2);
    }
  }
  const labels = results[0]!.layers.map((l) => l.name.replace('stages.', ''));
  const chart = path.join(f.out, 'cosine-distance.png');
  await writeBarChart(chart, {
    title: 'Feature cosine distance per layer (higher = more diverse channels)',
    labels,
    yLabel: 'mean pair-wise cosine distance',
    series: results.map((r) => ({ name: r.model, values: r.layers.map((l) => l.cosineDistance) })),
  });
  const json = path.join(f.out, 'feature-collapse.json');
  fs.writeFileSync(json, JSON.stringify({ images: batch.indices.length, data: f.data, models: results }, null, 1) + '\n');
  for (const r of results) {
    const mean = r.layers.reduce((a, l) => a + l.cosineDistance, 0) / r.layers.length;
    console.log(`${r.model}: mean cosine distance ${mean.toFixed(4)} over ${r.layers.length} layers (${r.layers.map((l) => l.cosineDistance.toFixed(3)).join(' ')})`);
  }
  console.log(`pictures: ${[chart, ...pictures].join(', ')}\nnumbers: ${json}`);
  return 0;
}
