/**
 * Data flags shared by the commands: which dataset (Fashion-MNIST, MNIST, CIFAR-10, an
 * ImageFolder directory, or synthetic data), where its files are, a size limit, and the
 * per-dataset normalisation.
 */
import * as fs from 'node:fs';
import { Command, Option } from 'commander';
import { cifar10, fashionMnist, type ImageDataset, imageFolder, mnist, subset, synthetic } from '../../nn/data/index.js';
import { existingPath, positiveInt } from './parse.js';
import { UsageError } from './usage_error.js';

export const DATASETS = Object.freeze(['fashion-mnist', 'mnist', 'cifar10', 'synthetic'] as const);

export interface DataFlags {
  data: string;
  dataDir?: string;
  imageSize?: number;
  limit?: number;
  seed: number;
}

export function addDataOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--data <name|dir>', `dataset: ${DATASETS.join(', ')}, or an ImageFolder directory (one sub-directory of JPEG/PNG images per class)`).default('fashion-mnist'))
    .addOption(new Option('--data-dir <dir>', 'folder of the IDX (MNIST, Fashion-MNIST) or CIFAR-10 binary files (Fashion-MNIST: found with dpkg by default)').argParser(existingPath('directory')))
    .addOption(new Option('--image-size <n>', 'image side for ImageFolder and synthetic data (default 32 / 28)').argParser(positiveInt(32)))
    .addOption(new Option('--limit <n>', 'use only the first n examples of each split (quick runs)').argParser(positiveInt(1000)));
}

/** The flag's dataset name, or 'folder' when it names a directory. */
export function datasetKind(f: DataFlags): (typeof DATASETS)[number] | 'folder' {
  if ((DATASETS as readonly string[]).includes(f.data)) return f.data as (typeof DATASETS)[number];
  let isDir = false;
  try {
    isDir = fs.statSync(f.data).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new UsageError(`--data ${JSON.stringify(f.data)}: expected one of ${DATASETS.join(', ')} or an existing ImageFolder directory`);
  return 'folder';
}

/** A split of the dataset the flags name (a folder has one split: its own images). */
export async function openDataset(f: DataFlags, split: 'train' | 'test'): Promise<ImageDataset> {
  const kind = datasetKind(f);
  let ds: ImageDataset;
  switch (kind) {
    case 'fashion-mnist':
      ds = fashionMnist(split, { dir: f.dataDir });
      break;
    case 'mnist':
      ds = mnist(split, { dir: f.dataDir });
      break;
    case 'cifar10':
      if (!f.dataDir) throw new UsageError('--data cifar10 needs --data-dir <folder of data_batch_1.bin ... test_batch.bin>');
      ds = cifar10(split, { dir: f.dataDir });
      break;
    case 'synthetic': {
      const n = f.limit ?? (split === 'train' ? 2048 : 512);
      ds = synthetic({ n, channels: 1, size: f.imageSize ?? 28, numClasses: 10, seed: split === 'train' ? f.seed : f.seed + 1 });
      break;
    }
    case 'folder':
      ds = await imageFolder(f.data, { size: f.imageSize ?? 32 });
      break;
  }
  if (f.limit !== undefined && f.limit < ds.length) ds = subset(ds, Int32Array.from({ length: f.limit }, (_, i) => i));
  return ds;
}

/** Per-channel mean and std of the dataset's [0,1] pixels (measured values for the standard sets). */
export function normalization(f: DataFlags, channels: number): { mean: number[]; std: number[] } {
  const table: Record<string, [number, number][]> = {
    'fashion-mnist': [[0.286, 0.353]],
    mnist: [[0.1307, 0.3081]],
    cifar10: [[0.4914, 0.247], [0.4822, 0.2435], [0.4465, 0.2616]],
  };
  const t = table[datasetKind(f)];
  if (t && t.length === channels) return { mean: t.map((x) => x[0]), std: t.map((x) => x[1]) };
  // ImageFolder and synthetic data: ImageNet's statistics for RGB, 0.5/0.5 otherwise
  if (channels === 3) return { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
  return { mean: new Array<number>(channels).fill(0.5), std: new Array<number>(channels).fill(0.5) };
}
