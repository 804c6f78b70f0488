/** The data pipeline's shared types: datasets, examples, batches and loader options. */
import { NexgradError } from '../../ir/errors.js';
import type { Tensor } from '../../ir/tensor.js';

/** One image and its class: `image` is CHW floats in [0, 1]. */
export interface Example {
  image: Float32Array;
  label: number;
}

/** A random-access collection of equally sized images with integer labels in [0, numClasses). */
export interface ImageDataset {
  readonly length: number;
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  readonly numClasses: number;
  readonly classNames?: readonly string[];
  get(i: number): Example | Promise<Example>;
}

export interface Batch {
  /** f32[B, C, H, W], augmented and normalised. */
  images: Tensor;
  /** i32[B]: each image's own label (before mixing). */
  labels: Tensor;
  /**
   * f32[B, K] soft targets; present whenever mixup or cutmix is enabled (on batches the
   * mixProb draw skips, they are the label-smoothed one-hot labels), so a jitted step sees one
   * signature.
   */
  targets?: Tensor;
  /** Dataset indices of the batch (for data-order checkpoints). */
  indices: Int32Array;
}

export interface Augment {
  randomResizedCrop?: { size: number; scale?: [number, number]; ratio?: [number, number] };
  /** Probability of a horizontal flip. */
  horizontalFlip?: number;
  /** Random translation by up to this many pixels along each axis, zero-filled (0 = off). */
  randomShift?: number;
  /** Mixup's Beta(alpha, alpha); 0 = off. */
  mixup?: number;
  /** CutMix's Beta(alpha, alpha); 0 = off. */
  cutmix?: number;
  /** Probability that a batch is mixed at all (default 1). */
  mixProb?: number;
  /** Probability of CutMix rather than mixup when both are on (default 0.5). */
  switchProb?: number;
  /** Label smoothing folded into the soft targets (only used with mixup/cutmix; default 0). */
  labelSmoothing?: number;
}

export interface LoaderOptions {
  batchSize: number;
  shuffle?: boolean;
  seed?: number;
  dropLast?: boolean;
  augment?: Augment;
  normalize?: { mean: number[]; std: number[] };
  /** Batches prepared ahead while the caller computes (default 2). */
  prefetch?: number;
}

/** A file or a dataset is malformed, missing or misused. */
export class DataError extends NexgradError {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

export function requireInt(where: string, what: string, x: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min || x > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new DataError(`${where}: ${what} must be an integer ${range}, got ${describeValue(x)}`);
  }
  return x;
}

export function requireNumber(where: string, what: string, x: unknown, min: number, max: number): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || x < min || x > max) {
    throw new DataError(`${where}: ${what} must be a number in [${min}, ${max}], got ${describeValue(x)}`);
  }
  return x;
}

export function describeValue(x: unknown): string {
  if (typeof x === 'number' || typeof x === 'boolean' || x === null || x === undefined) return String(x);
  if (typeof x === 'string') return JSON.stringify(x.length > 60 ? `${x.slice(0, 60)}...` : x);
  if (Array.isArray(x)) return `an array of length ${x.length}`;
  return typeof x;
}
