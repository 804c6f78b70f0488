/**
 * The DataLoader: seeded shuffling, batching, augmentation and prefetching.
 *
 * Every random choice is a pure function of (seed, epoch, batch, position): the epoch's order
 * is hostPermutation(foldIn(key(seed), epoch) / ORDER); sample j of the epoch draws its crop and
 * flip from foldIn(epochKey / SAMPLE, j); batch b draws its mix from foldIn(epochKey / MIX, b).
 * So batches do not depend on prefetching, on which batches were made before, or on where an
 * epoch is resumed.
 */
import { fromHost } from '../../ir/ops.js';
import { type AugmentPlan, augmentSample, normalizeBatch, planAugment, type SampleShape } from './augment.js';
import { mixBatch, softTargets } from './mix.js';
import { hostFoldIn, hostFoldPath, hostKey, type HostKey, hostPermutation, HostStream } from './host_random.js';
import { type Batch, DataError, type Example, type ImageDataset, type LoaderOptions, requireInt } from './types.js';

/** Streams folded into an epoch's key: one per kind of draw. */
const ORDER = 0;
const SAMPLE = 1;
const MIX = 2;

function checkDataset(ds: ImageDataset): void {
  if (ds === null || typeof ds !== 'object' || typeof ds.get !== 'function') throw new DataError('DataLoader: the dataset must be an ImageDataset (with get(i))');
  for (const k of ['length', 'channels', 'height', 'width', 'numClasses'] as const) requireInt('DataLoader dataset', k, ds[k], k === 'length' ? 0 : 1);
}

function checkNormalize(n: LoaderOptions['normalize'], channels: number): { mean: number[]; std: number[] } | undefined {
  if (n === undefined) return undefined;
  const ok = (v: unknown): v is number[] => Array.isArray(v) && v.length === channels && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  if (!ok(n.mean)) throw new DataError(`DataLoader normalize.mean must be ${channels} finite numbers (one per channel), got ${JSON.stringify(n.mean)}`);
  if (!ok(n.std) || n.std.some((s) => s <= 0)) throw new DataError(`DataLoader normalize.std must be ${channels} positive numbers (one per channel), got ${JSON.stringify(n.std)}`);
  return { mean: [...n.mean], std: [...n.std] };
}

export class DataLoader {
  readonly batchesPerEpoch: number;
  private readonly ds: ImageDataset;
  private readonly batchSize: number;
  private readonly shuffle: boolean;
  private readonly seedKey: HostKey;
  private readonly dropLast: boolean;
  private readonly plan: AugmentPlan;
  private readonly norm: { mean: number[]; std: number[] } | undefined;
  private readonly prefetch: number;
  private readonly out: SampleShape;
  private order: { epoch: number; perm: Int32Array } | undefined;

  constructor(ds: ImageDataset, opts: LoaderOptions) {
    checkDataset(ds);
    if (opts === null || typeof opts !== 'object') throw new DataError('DataLoader: options { batchSize, ... } are required');
    const known = new Set(['batchSize', 'shuffle', 'seed', 'dropLast', 'augment', 'normalize', 'prefetch']);
    for (const k of Object.keys(opts)) if (!known.has(k)) throw new DataError(`DataLoader: unknown option ${JSON.stringify(k)}; expected one of ${[...known].join(', ')}`);
    this.ds = ds;
    this.batchSize = requireInt('DataLoader', 'batchSize', opts.batchSize, 1);
    this.shuffle = opts.shuffle ?? false;
    this.seedKey = hostKey(requireInt('DataLoader', 'seed', opts.seed ?? 0, -(2 ** 53) + 1));
    this.dropLast = opts.dropLast ?? false;
    this.plan = planAugment(opts.augment);
    this.norm = checkNormalize(opts.normalize, ds.channels);
    this.prefetch = requireInt('DataLoader', 'prefetch', opts.prefetch ?? 2, 0, 1024);
    const size = this.plan.crop?.size;
    this.out = { channels: ds.channels, height: size ?? ds.height, width: size ?? ds.width };
    this.batchesPerEpoch = this.dropLast ? Math.floor(ds.length / this.batchSize) : Math.ceil(ds.length / this.batchSize);
  }

  /** The dataset indices of epoch `e` in the order they are served. */
  epochOrder(e: number): Int32Array {
    if (this.order?.epoch !== e) {
      const perm = this.shuffle
        ? hostPermutation(hostFoldPath(this.seedKey, e, ORDER), this.ds.length)
        : Int32Array.from({ length: this.ds.length }, (_, i) => i);
      this.order = { epoch: e, perm };
    }
    return this.order.perm;
  }

  /**
   * Batches of epoch `e` from batch `from` on (resume): the order and every augmentation draw
   * are a pure function of (seed, epoch, batch index, position), independent of prefetching and
   * of where you start.
   */
  epoch(e: number, from = 0): AsyncIterableIterator<Batch> {
    requireInt('DataLoader.epoch', 'epoch', e, 0, 0xffffffff);
    requireInt('DataLoader.epoch', 'from', from, 0, this.batchesPerEpoch);
    return this.batches(e, from);
  }

  private async *batches(e: number, from: number): AsyncIterableIterator<Batch> {
    const order = this.epochOrder(e);
    const pending: Promise<Batch>[] = [];
    let next = from;
    try {
      for (let b = from; b < this.batchesPerEpoch; b++) {
        // Keep `prefetch` batches in flight beyond the one about to be served.
        while (next < this.batchesPerEpoch && next <= b + this.prefetch) {
          const p = this.makeBatch(e, next++, order);
          p.catch(() => undefined); // handled when awaited; silences batches abandoned by a break
          pending.push(p);
        }
        yield await pending.shift()!;
      }
    } finally {
      pending.length = 0;
    }
  }

  private async fetchExample(i: number): Promise<Example> {
    const ex = await this.ds.get(i);
    const { channels: c, height: h, width: w, numClasses: k } = this.ds;
    if (!ex || !(ex.image instanceof Float32Array) || ex.image.length !== c * h * w) {
      throw new DataError(`DataLoader: dataset item ${i} has no Float32Array image of ${c}x${h}x${w} = ${c * h * w} values`);
    }
    if (!Number.isInteger(ex.label) || ex.label < 0 || ex.label >= k) {
      throw new DataError(`DataLoader: dataset item ${i} has label ${String(ex.label)}, expected an integer in [0, ${k})`);
    }
    return ex;
  }

  /** Batch `b` of epoch `e`: fetch, augment, mix, normalise. */
  private async makeBatch(e: number, b: number, order: Int32Array): Promise<Batch> {
    const start = b * this.batchSize;
    const indices = order.slice(start, Math.min(start + this.batchSize, order.length));
    const n = indices.length;
    const examples = await Promise.all(Array.from(indices, (i) => this.fetchExample(i)));
    const s = this.out;
    const per = s.channels * s.height * s.width;
    const images = new Float32Array(n * per);
    const labels = new Int32Array(n);
    const epochKey = hostFoldIn(this.seedKey, e);
    const sampleKey = hostFoldIn(epochKey, SAMPLE);
    examples.forEach((ex, p) => {
      augmentSample(new HostStream(hostFoldIn(sampleKey, start + p)), this.plan, ex.image, this.ds, images, p * per);
      labels[p] = ex.label;
    });
    const mixing = this.plan.mixup > 0 || this.plan.cutmix > 0;
    const mix = mixBatch(new HostStream(hostFoldPath(epochKey, MIX, b)), this.plan, images, n, s);
    if (this.norm) normalizeBatch(images, n, s, this.norm.mean, this.norm.std);
    const batch: Batch = {
      images: fromHost('f32', [n, s.channels, s.height, s.width], images),
      labels: fromHost('i32', [n], labels),
      indices,
    };
    if (mixing) batch.targets = fromHost('f32', [n, this.ds.numClasses], softTargets(labels, this.ds.numClasses, mix, this.plan.labelSmoothing));
    return batch;
  }
}
