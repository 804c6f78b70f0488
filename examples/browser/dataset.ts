/**
 * The example's images: nexgrad's synthetic dataset generated in the page (each class a few
 * smooth blobs, shifted, rescaled and noisy: learnable in a few dozen steps), or a CIFAR-10
 * binary batch file the user picks (records of 1 label byte and 3072 CHW pixel bytes). Both
 * become one Float32Array of normalised CHW images and an Int32Array of labels.
 */
import * as ng from '../../src/index.js';

export interface Images {
  readonly name: string;
  readonly count: number;
  readonly size: number;
  readonly numClasses: number;
  /** count x 3 x size x size, normalised to mean 0, std about 1. */
  readonly pixels: Float32Array;
  readonly labels: Int32Array;
}

const CIFAR_RECORD = 1 + 3 * 32 * 32;
/** The most records read from a picked file (a CIFAR-10 batch holds 10000). */
const MAX_RECORDS = 10000;

const normalise = (v: number): number => (v - 0.45) / 0.25;

export async function generated(count: number, numClasses: number, seed: number): Promise<Images> {
  const ds = ng.data.synthetic({ n: count, channels: 3, size: 32, numClasses, seed });
  const pixels = new Float32Array(count * 3 * 32 * 32);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const { image, label } = await ds.get(i);
    for (let j = 0; j < image.length; j++) pixels[i * image.length + j] = normalise(image[j]!);
    labels[i] = label;
  }
  return { name: `${count} generated 32x32 images, ${numClasses} classes`, count, size: 32, numClasses, pixels, labels };
}

/** A CIFAR-10 binary batch: whole records only, labels 0..9, at most MAX_RECORDS. */
export function cifarBatch(bytes: Uint8Array, fileName: string): Images {
  if (bytes.length === 0 || bytes.length % CIFAR_RECORD !== 0) {
    throw new Error(`${fileName}: ${bytes.length} bytes is not a whole number of ${CIFAR_RECORD}-byte CIFAR-10 records (pick a file such as data_batch_1.bin)`);
  }
  const count = Math.min(bytes.length / CIFAR_RECORD, MAX_RECORDS);
  const pixels = new Float32Array(count * 3072);
  const labels = new Int32Array(count);
  for (let r = 0; r < count; r++) {
    const label = bytes[r * CIFAR_RECORD]!;
    if (label > 9) throw new Error(`${fileName}: record ${r} has label ${label}, expected 0..9`);
    labels[r] = label;
    for (let j = 0; j < 3072; j++) pixels[r * 3072 + j] = normalise(bytes[r * CIFAR_RECORD + 1 + j]! / 255);
  }
  return { name: `${fileName}: ${count} CIFAR-10 images`, count, size: 32, numClasses: 10, pixels, labels };
}

/** Batch `b` of a fixed shuffled order (seeded), as host tensors. */
export function batch(images: Images, order: Int32Array, b: number, batchSize: number): { x: ng.Tensor; y: ng.Tensor } {
  const per = 3 * images.size * images.size;
  const x = new Float32Array(batchSize * per);
  const y = new Int32Array(batchSize);
  for (let i = 0; i < batchSize; i++) {
    const k = order[(b * batchSize + i) % order.length]!;
    x.set(images.pixels.subarray(k * per, (k + 1) * per), i * per);
    y[i] = images.labels[k]!;
  }
  return { x: ng.tensor(x, { shape: [batchSize, 3, images.size, images.size] }), y: ng.tensor(y, { dtype: 'i32' }) };
}

/** A seeded permutation of 0..n-1 (Fisher-Yates over a small LCG). */
export function shuffled(n: number, seed: number): Int32Array {
  const out = Int32Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
