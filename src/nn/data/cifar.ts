/**
 * CIFAR-10 in its binary form (cifar-10-batches-bin): records of 1 label byte and 3072 pixel
 * bytes (1024 red, then green, then blue, each 32x32 row-major), so a record's pixels are
 * already CHW. Each file's size must be a whole number of records.
 */
import { DataError, type ImageDataset } from './types.js';
import { U8ImageDataset } from './u8_dataset.js';
import { lazyNode } from '../../ir/node_builtins.js';

// Node modules, looked up on first use (these features need Node; the module itself loads anywhere)
const fs = lazyNode('fs', 'CIFAR-10 files');
const path = lazyNode('path', 'CIFAR-10 files');

export const CIFAR10_CLASSES: readonly string[] = Object.freeze([
  'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck',
]);

const SIDE = 32;
const PIXELS = 3 * SIDE * SIDE;
const RECORD = 1 + PIXELS;
/** Largest batch file accepted (the real ones hold 10000 records, 30.7 MB). */
const MAX_FILE_BYTES = 256 << 20;
const SPLIT_FILES = {
  train: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  test: ['test_batch.bin'],
} as const;

/** The folder holding the .bin files: `dir` itself or its cifar-10-batches-bin subfolder. */
function batchesDir(dir: string, first: string): string {
  for (const d of [dir, path.join(dir, 'cifar-10-batches-bin')]) {
    if (fs.existsSync(path.join(d, first))) return d;
  }
  throw new DataError(`cifar10: ${first} not found in ${dir} or ${path.join(dir, 'cifar-10-batches-bin')} (expected the CIFAR-10 binary version)`);
}

function readBatchFile(file: string): Uint8Array {
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch (e) {
    throw new DataError(`cifar10: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (size > MAX_FILE_BYTES) throw new DataError(`${file}: ${size} bytes, over the limit of ${MAX_FILE_BYTES} for a CIFAR-10 batch file`);
  if (size === 0 || size % RECORD !== 0) {
    const whole = Math.floor(size / RECORD);
    throw new DataError(
      `${file}: ${size} bytes is not a whole number of ${RECORD}-byte CIFAR-10 records ` +
        `(${whole} records would be ${whole * RECORD} bytes; ${size - whole * RECORD} left over: truncated or not CIFAR-10)`,
    );
  }
  return fs.readFileSync(file);
}

/** Class names from batches.meta.txt when present and well-formed, else the standard ten. */
function classNames(dir: string): readonly string[] {
  const meta = path.join(dir, 'batches.meta.txt');
  try {
    if (fs.statSync(meta).size > 4096) return CIFAR10_CLASSES;
    const names = fs.readFileSync(meta, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
    return names.length === 10 && names.every((n) => n.length <= 64) ? Object.freeze(names) : CIFAR10_CLASSES;
  } catch {
    return CIFAR10_CLASSES;
  }
}

/** CIFAR-10 (50000 train / 10000 test 32x32 RGB images, 10 classes) from the binary batch files. */
export function cifar10(split: 'train' | 'test', opts: { dir: string }): ImageDataset {
  if (split !== 'train' && split !== 'test') throw new DataError(`cifar10: split must be 'train' or 'test', got ${JSON.stringify(split)}`);
  if (typeof opts?.dir !== 'string') throw new DataError('cifar10: opts.dir (the folder of the binary batches) is required');
  const files = SPLIT_FILES[split];
  const dir = batchesDir(opts.dir, files[0]);
  const chunks = files.map((f) => readBatchFile(path.join(dir, f)));
  const n = chunks.reduce((a, c) => a + c.length / RECORD, 0);
  const pixels = new Uint8Array(n * PIXELS);
  const labels = new Uint8Array(n);
  let k = 0;
  for (const [fi, c] of chunks.entries()) {
    for (let r = 0; r < c.length / RECORD; r++, k++) {
      const label = c[r * RECORD]!;
      if (label >= 10) throw new DataError(`${path.join(dir, files[fi]!)}: record ${r} has label ${label}, expected 0..9`);
      labels[k] = label;
      pixels.set(c.subarray(r * RECORD + 1, (r + 1) * RECORD), k * PIXELS);
    }
  }
  return new U8ImageDataset({ source: dir, pixels, labels, channels: 3, height: SIDE, width: SIDE, numClasses: 10, classNames: classNames(dir) });
}
