import { describe, expect, it } from 'vitest';
import * as random from '../../../src/ir/random.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { DataLoader } from '../../../src/nn/data/loader.js';
import { resize } from '../../../src/nn/data/resize.js';
import { DataError, type Batch, type Example, type ImageDataset, type LoaderOptions } from '../../../src/nn/data/types.js';
import { tensorOf, values } from '../../helpers/gradcheck.js';

/** A dataset whose images are all different and easy to recognise: pixel k of image i. */
function toyDataset(n: number, c = 3, h = 6, w = 6, k = 5, delayed = false): ImageDataset & { example(i: number): Example } {
  const example = (i: number): Example => ({
    image: Float32Array.from({ length: c * h * w }, (_, j) => ((i * 37 + j * 11 + ((i * j) % 7)) % 101) / 100),
    label: (i * 3) % k,
  });
  return {
    length: n, channels: c, height: h, width: w, numClasses: k, example,
    // The async variant resolves out of order, as decodes on a thread pool would.
    get: (i: number) => (delayed ? new Promise<Example>((res) => setTimeout(() => res(example(i)), (i * 7) % 5)) : example(i)),
  };
}

interface Plain { images: number[]; shape: number[]; labels: number[]; indices: number[]; targets?: number[] }
const plain = (b: Batch): Plain => ({
  images: values(b.images), shape: [...b.images.shape], labels: values(b.labels), indices: Array.from(b.indices),
  ...(b.targets ? { targets: values(b.targets) } : {}),
});
async function collect(it: AsyncIterableIterator<Batch>): Promise<Plain[]> {
  const out: Plain[] = [];
  for await (const b of it) out.push(plain(b));
  return out;
}
const u = (t: Tensor): number[] => Array.from(t.dataSync());

const AUG: LoaderOptions['augment'] = { randomResizedCrop: { size: 4 }, horizontalFlip: 0.5, mixup: 0.8, cutmix: 1, labelSmoothing: 0.1 };

describe('DataLoader order', () => {
  it('without shuffle: the dataset in order, the last batch partial or dropped', async () => {
    const ds = toyDataset(10);
    const keep = new DataLoader(ds, { batchSize: 4 });
    expect(keep.batchesPerEpoch).toBe(3);
    const bs = await collect(keep.epoch(0));
    expect(bs.map((b) => b.indices)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    expect(bs[2]!.shape).toEqual([2, 3, 6, 6]);
    const drop = new DataLoader(ds, { batchSize: 4, dropLast: true });
    expect(drop.batchesPerEpoch).toBe(2);
    expect((await collect(drop.epoch(0))).length).toBe(2);
  });
  it('batches hold the dataset images and labels of their indices, as f32 and i32', async () => {
    const ds = toyDataset(9);
    for await (const b of new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 3 }).epoch(1)) {
      expect(b.images.dtype).toBe('f32');
      expect(b.labels.dtype).toBe('i32');
      const imgs = values(b.images);
      const per = 3 * 6 * 6;
      Array.from(b.indices).forEach((i, p) => {
        expect(values(b.labels)[p]).toBe(ds.example(i).label);
        expect(imgs.slice(p * per, (p + 1) * per)).toEqual(Array.from(ds.example(i).image));
      });
    }
  });
  it('shuffling: each epoch is random.permutation(foldIn(foldIn(key(seed), epoch), 0), n), different per epoch', async () => {
    const n = 37;
    const loader = new DataLoader(toyDataset(n), { batchSize: 8, shuffle: true, seed: 11 });
    const orders: number[][] = [];
    for (const e of [0, 1, 2]) {
      const order = (await collect(loader.epoch(e))).flatMap((b) => b.indices);
      expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(order).toEqual(u(random.permutation(random.foldIn(random.foldIn(random.key(11), e), 0), n)));
      orders.push(order);
    }
    expect(orders[0]).not.toEqual(orders[1]);
    expect(orders[1]).not.toEqual(orders[2]);
  });
});

describe('DataLoader determinism', () => {
  const opts: LoaderOptions = { batchSize: 6, shuffle: true, seed: 5, augment: AUG, normalize: { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] } };
  it('the same seed gives the same batches; another seed or epoch different ones', async () => {
    const a = await collect(new DataLoader(toyDataset(20), opts).epoch(2));
    const b = await collect(new DataLoader(toyDataset(20), opts).epoch(2));
    expect(b).toEqual(a);
    const c = await collect(new DataLoader(toyDataset(20), { ...opts, seed: 6 }).epoch(2));
    expect(c[0]!.images).not.toEqual(a[0]!.images);
    const d = await collect(new DataLoader(toyDataset(20), opts).epoch(3));
    expect(d[0]!.images).not.toEqual(a[0]!.images);
  });
  it('prefetch 0, 3 and 50 give identical batches, for a sync and an out-of-order async dataset', async () => {
    const want = await collect(new DataLoader(toyDataset(20), { ...opts, prefetch: 0 }).epoch(1));
    for (const prefetch of [3, 50]) {
      expect(await collect(new DataLoader(toyDataset(20), { ...opts, prefetch }).epoch(1))).toEqual(want);
      expect(await collect(new DataLoader(toyDataset(20, 3, 6, 6, 5, true), { ...opts, prefetch }).epoch(1))).toEqual(want);
    }
  });
  it('resume: epoch(e, from) is the tail of epoch(e), whatever came before', async () => {
    const loader = new DataLoader(toyDataset(23), opts);
    const full = await collect(loader.epoch(4));
    for (const from of [0, 1, 3, 4]) {
      await collect(new DataLoader(toyDataset(23), opts).epoch(1)); // unrelated work in between changes nothing
      expect(await collect(new DataLoader(toyDataset(23), opts).epoch(4, from))).toEqual(full.slice(from));
    }
    expect(await collect(loader.epoch(4, loader.batchesPerEpoch))).toEqual([]);
  });
  it('breaking out of an epoch leaves no unhandled rejection from batches prefetched ahead', async () => {
    // Items past the first batch fail; the loader has already started them when the caller breaks.
    const ds = toyDataset(30);
    const failing: ImageDataset = { ...ds, get: (i: number) => (i < 6 ? ds.get(i) : Promise.reject(new Error(`item ${i} unreadable`))) };
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => void unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      for await (const b of new DataLoader(failing, { batchSize: 6, prefetch: 4 }).epoch(0)) {
        expect(Array.from(b.indices)).toEqual([0, 1, 2, 3, 4, 5]);
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });
});

describe('DataLoader augmentation', () => {
  const ds = toyDataset(12, 2, 8, 8);
  it('horizontalFlip 1 mirrors every image; 0 never does', async () => {
    for (const p of [0, 1]) {
      const [b] = await collect(new DataLoader(ds, { batchSize: 12, augment: { horizontalFlip: p } }).epoch(0));
      b!.indices.forEach((i, q) => {
        const src = ds.example(i).image;
        for (let k = 0; k < 2 * 64; k++) {
          const x = k % 8;
          expect(b!.images[q * 128 + k]).toBe(src[k - x + (p ? 7 - x : x)]);
        }
      });
    }
  });
  it('flip 0.5 flips about half the images', async () => {
    const big = toyDataset(400, 1, 4, 4);
    let flipped = 0;
    for await (const b of new DataLoader(big, { batchSize: 100, seed: 1, augment: { horizontalFlip: 0.5 } }).epoch(0)) {
      const imgs = values(b.images);
      b.indices.forEach((i, q) => {
        if (imgs[q * 16] !== big.example(i).image[0]) flipped++;
      });
    }
    expect(flipped).toBeGreaterThan(160);
    expect(flipped).toBeLessThan(240);
  });
  it('random resized crop at scale 1/4, ratio 1, size 4 returns an exact 4x4 window of the 8x8 image', async () => {
    const [b] = await collect(new DataLoader(ds, { batchSize: 12, seed: 2, augment: { randomResizedCrop: { size: 4, scale: [0.25, 0.25], ratio: [1, 1] } } }).epoch(0));
    expect(b!.shape).toEqual([12, 2, 4, 4]);
    const offsets = new Set<string>();
    b!.indices.forEach((i, q) => {
      const src = ds.example(i).image;
      const got = b!.images.slice(q * 32, (q + 1) * 32);
      let found: string | undefined;
      for (let top = 0; top <= 4 && !found; top++) {
        for (let left = 0; left <= 4 && !found; left++) {
          const ok = got.every((v, k) => v === src[Math.floor(k / 16) * 64 + (top + Math.floor((k % 16) / 4)) * 8 + left + (k % 4)]);
          if (ok) found = `${top},${left}`;
        }
      }
      expect(found, `image ${q} is not a window`).toBeDefined();
      offsets.add(found!);
    });
    expect(offsets.size).toBeGreaterThan(3); // the windows move
  });
  it('random resized crop of the whole image equals the resize op (antialiased bilinear)', async () => {
    const [b] = await collect(new DataLoader(ds, { batchSize: 3, augment: { randomResizedCrop: { size: 5, scale: [1, 1], ratio: [1, 1] } } }).epoch(0));
    const want = values(resize(tensorOf([0, 1, 2].flatMap((i) => Array.from(ds.example(i).image)), [3, 2, 8, 8], 'f64'), [5, 5]));
    b!.images.forEach((v, k) => expect(v).toBeCloseTo(want[k]!, 6));
  });
  it('normalize: (x - mean[c]) / std[c]', async () => {
    const [b] = await collect(new DataLoader(ds, { batchSize: 2, normalize: { mean: [0.25, 0.5], std: [2, 0.5] } }).epoch(0));
    for (const q of [0, 1]) {
      const src = ds.example(q).image;
      for (const k of [0, 5, 64, 127]) expect(b!.images[q * 128 + k]).toBeCloseTo((src[k]! - [0.25, 0.5][k < 64 ? 0 : 1]!) / [2, 0.5][k < 64 ? 0 : 1]!, 6);
    }
  });
  it('mixup: images are lambda x_i + (1 - lambda) x_{B-1-i}; targets sum to 1 and carry the same lambda', async () => {
    const base: LoaderOptions = { batchSize: 5, shuffle: true, seed: 9, augment: { horizontalFlip: 0.5 } };
    const plainBatches = await collect(new DataLoader(ds, base).epoch(0));
    const mixed = await collect(new DataLoader(ds, { ...base, augment: { horizontalFlip: 0.5, mixup: 0.4, labelSmoothing: 0.1 } }).epoch(0));
    const per = 128;
    const K = ds.numClasses;
    const lambdas: number[] = [];
    mixed.forEach((m, bi) => {
      const x = plainBatches[bi]!.images;
      const n = m.labels.length;
      expect(m.labels).toEqual(plainBatches[bi]!.labels);
      // lambda from the pixels of image 0 (its partner differs from it somewhere).
      const k = x.findIndex((v, j) => j < per && Math.abs(v - x[(n - 1) * per + j]!) > 0.1);
      const lam = (m.images[k]! - x[(n - 1) * per + k]!) / (x[k]! - x[(n - 1) * per + k]!);
      lambdas.push(lam);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < per; j += 7) expect(m.images[i * per + j]).toBeCloseTo(lam * x[i * per + j]! + (1 - lam) * x[(n - 1 - i) * per + j]!, 5);
        const t = m.targets!.slice(i * K, (i + 1) * K);
        expect(t.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 6);
        const want = new Array(K).fill(0.1 / K);
        want[m.labels[i]!] += lam * 0.9;
        want[m.labels[n - 1 - i]!] += (1 - lam) * 0.9;
        t.forEach((v, c) => expect(v).toBeCloseTo(want[c], 5));
      }
    });
    expect(new Set(lambdas.map((l) => l.toFixed(6))).size).toBe(lambdas.length); // a new lambda per batch
  });
  it('cutmix: one box of the partner per batch; targets weigh the labels by area', async () => {
    const base: LoaderOptions = { batchSize: 4, shuffle: true, seed: 4 };
    const plainBatches = await collect(new DataLoader(ds, base).epoch(0));
    const mixed = await collect(new DataLoader(ds, { ...base, augment: { cutmix: 1 } }).epoch(0));
    const K = ds.numClasses;
    let boxes = 0;
    mixed.forEach((m, bi) => {
      const x = plainBatches[bi]!.images;
      const n = m.labels.length;
      // Pixels taken from the partner (image 0 vs image n-1), as a mask over (y, x) of channel 0.
      const taken: boolean[] = [];
      for (let p = 0; p < 64; p++) {
        const own = x[p]!;
        const other = x[(n - 1) * 128 + p]!;
        const got = m.images[p]!;
        expect(got === own || got === other).toBe(true);
        taken.push(got === other && own !== other);
      }
      const ys = taken.flatMap((t, p) => (t ? [Math.floor(p / 8)] : []));
      const xs = taken.flatMap((t, p) => (t ? [p % 8] : []));
      const area = ys.length === 0 ? 0 : (Math.max(...ys) - Math.min(...ys) + 1) * (Math.max(...xs) - Math.min(...xs) + 1);
      if (area > 0) boxes++;
      const lam = 1 - area / 64;
      for (let i = 0; i < n; i++) {
        const t = m.targets!.slice(i * K, (i + 1) * K);
        expect(t.reduce((a, v) => a + v, 0)).toBeCloseTo(1, 6);
        const want = new Array(K).fill(0);
        want[m.labels[i]!] += lam;
        want[m.labels[n - 1 - i]!] += 1 - lam;
        t.forEach((v, c) => expect(v).toBeCloseTo(want[c], 6));
      }
    });
    expect(boxes).toBeGreaterThan(0);
  });
  it('mixProb 0 with mixup on: targets are the smoothed one-hot labels, images unmixed', async () => {
    const [a] = await collect(new DataLoader(ds, { batchSize: 4 }).epoch(0));
    const [b] = await collect(new DataLoader(ds, { batchSize: 4, augment: { mixup: 1, mixProb: 0, labelSmoothing: 0.2 } }).epoch(0));
    expect(b!.images).toEqual(a!.images);
    b!.labels.forEach((y, i) => b!.targets!.slice(i * 5, i * 5 + 5).forEach((v, c) => expect(v).toBeCloseTo(c === y ? 0.84 : 0.04, 6)));
  });
});

describe('DataLoader errors', () => {
  const ds = toyDataset(4);
  it('rejects bad options, naming them', () => {
    const bad = (o: unknown, msg: RegExp): void => {
      expect(() => new DataLoader(ds, o as LoaderOptions)).toThrow(DataError);
      expect(() => new DataLoader(ds, o as LoaderOptions)).toThrow(msg);
    };
    bad({ batchSize: 0 }, /batchSize must be an integer >= 1, got 0/);
    bad({ batchSize: 2, batchsize: 3 }, /unknown option "batchsize"/);
    bad({ batchSize: 2, prefetch: -1 }, /prefetch must be an integer in \[0, 1024\]/);
    bad({ batchSize: 2, normalize: { mean: [0.5], std: [1, 1, 1] } }, /normalize.mean must be 3 finite numbers/);
    bad({ batchSize: 2, normalize: { mean: [0, 0, 0], std: [1, 0, 1] } }, /normalize.std must be 3 positive numbers/);
    bad({ batchSize: 2, augment: { flip: 1 } }, /unknown option "flip"/);
    bad({ batchSize: 2, augment: { horizontalFlip: 2 } }, /horizontalFlip must be a number in \[0, 1\]/);
    bad({ batchSize: 2, augment: { randomResizedCrop: { size: 4, scale: [0.9, 0.1] } } }, /scale must have low <= high/);
  });
  it('rejects an epoch or start batch out of range', () => {
    const l = new DataLoader(ds, { batchSize: 2 });
    expect(() => l.epoch(-1)).toThrow(/epoch must be an integer/);
    expect(() => l.epoch(0, 3)).toThrow(/from must be an integer in \[0, 2\]/);
  });
  it('names a dataset item with a wrong image size or label', async () => {
    const broken: ImageDataset = { ...ds, get: (i: number) => (i === 2 ? { image: new Float32Array(3), label: 0 } : ds.get(i)) };
    await expect(collect(new DataLoader(broken, { batchSize: 2 }).epoch(0))).rejects.toThrow(/dataset item 2 has no Float32Array image of 3x6x6 = 108 values/);
    const badLabel: ImageDataset = { ...ds, get: (i: number) => ({ image: (ds.get(i) as Example).image, label: 9 }) };
    await expect(collect(new DataLoader(badLabel, { batchSize: 2 }).epoch(0))).rejects.toThrow(/dataset item 0 has label 9, expected an integer in \[0, 5\)/);
  });
});
