import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fashionMnist, findFashionMnistDir, mnist } from '../../../src/nn/data/mnist.js';
import { readIdx } from '../../../src/nn/data/idx.js';
import { DataError } from '../../../src/nn/data/types.js';
import { NexgradError } from '../../../src/ir/errors.js';
import { bytes, gzip, idxBytes, tempDir, writeMnistSplit } from './files.js';

const dir = tempDir('idx');
function write(name: string, data: Uint8Array): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  return p;
}
function expectDataError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a DataError').toBeInstanceOf(DataError);
  expect(err).toBeInstanceOf(NexgradError);
  for (const p of parts) expect((err as Error).message).toMatch(p);
}

describe('readIdx', () => {
  const pixels = bytes(5 * 4 * 3, 1);
  it('reads raw and gzipped files to the same dims and bytes', () => {
    const raw = readIdx(write('a-idx3-ubyte', idxBytes([5, 4, 3], pixels)), 3);
    const gz = readIdx(write('a-idx3-ubyte.gz', gzip(idxBytes([5, 4, 3], pixels))), 3);
    for (const r of [raw, gz]) {
      expect(r.dims).toEqual([5, 4, 3]);
      expect(Array.from(r.data)).toEqual(Array.from(pixels));
    }
  });
  it('reads a gzip stream whose IDX header needs more than the first compressed bytes', () => {
    // A long gzip FNAME field pushes the deflate data past the first 256 compressed bytes.
    const body = gzip(idxBytes([5, 4, 3], pixels));
    const name = new TextEncoder().encode('x'.repeat(1000));
    const withName = new Uint8Array(body.length + name.length + 1);
    withName.set(body.subarray(0, 10));
    withName[3] = withName[3]! | 0x08; // FLG.FNAME
    withName.set(name, 10);
    withName.set(body.subarray(10), 10 + name.length + 1);
    const r = readIdx(write('named.gz', withName), 3);
    expect(Array.from(r.data)).toEqual(Array.from(pixels));
  });
  it('rejects a bad magic, element type and rank, naming the file', () => {
    expectDataError(() => readIdx(write('magic', idxBytes([2], [0, 1], { magic0: 7 })), 1), /magic\b.*07 00 08 01/, /\/magic: /);
    expectDataError(() => readIdx(write('type', idxBytes([2], [0, 1], { type: 0x0d })), 1), /type\b.*0x0d \(float32\)/, /\/type: /);
    expectDataError(() => readIdx(write('rank', idxBytes([2, 1], [0, 1])), 1), 'IDX rank 2 where 1 was expected', /\/rank: /);
  });
  it('rejects truncated files with the expected size', () => {
    const full = idxBytes([5, 4, 3], pixels);
    expectDataError(() => readIdx(write('trunc', full.subarray(0, full.length - 7)), 3), 'trunc', 'truncated', `need ${full.length} bytes`, `holds ${full.length - 7}`);
    expectDataError(() => readIdx(write('trunc.gz', gzip(full.subarray(0, full.length - 7))), 3), 'trunc.gz', 'truncated', `need ${full.length} bytes uncompressed`);
    const gz = gzip(full);
    expectDataError(() => readIdx(write('cut.gz', gz.subarray(0, gz.length - 20)), 3), 'cut.gz', /truncated gzip stream/);
    expectDataError(() => readIdx(write('tiny', full.subarray(0, 6)), 3), 'tiny', 'truncated', 'shorter than an IDX header');
  });
  it('rejects trailing data, raw and gzipped', () => {
    const extra = new Uint8Array([...idxBytes([3], [1, 2, 3]), 9, 9]);
    expectDataError(() => readIdx(write('extra', extra), 1), '2 bytes after the data');
    expectDataError(() => readIdx(write('extra.gz', gzip(extra)), 1), 'more than the 11 bytes');
  });
  it('rejects huge dims before allocating anything, and respects the limit', () => {
    expectDataError(() => readIdx(write('huge', idxBytes([65536, 65536, 65536], [])), 3), /dims \[65536, 65536, 65536\] claim 281474976710656 bytes/, 'over the limit');
    expectDataError(() => readIdx(write('huge.gz', gzip(idxBytes([4000000000, 4000, 4000], []))), 3), 'over the limit');
    expectDataError(() => readIdx(write('small', idxBytes([5, 4, 3], pixels)), 3, 10), 'claim 60 bytes', 'limit of 10');
  });
  it('rejects a corrupt gzip stream and a missing file', () => {
    const gz = gzip(idxBytes([5, 4, 3], pixels));
    gz.fill(0xff, 10, 40);
    expectDataError(() => readIdx(write('corrupt.gz', gz), 3), 'corrupt.gz', /corrupt gzip stream/);
    expectDataError(() => readIdx(path.join(dir, 'nope'), 3), 'cannot open IDX file', 'ENOENT');
  });
});

describe('MNIST-layout datasets', () => {
  const n = 7;
  const images = bytes(n * 28 * 28, 3);
  const labels = bytes(n, 4, 10);
  it('fashionMnist and mnist read both splits, raw and gzipped, as [0,1] CHW floats', () => {
    for (const gz of [false, true]) {
      const d = tempDir('mnist');
      writeMnistSplit(d, 'train', images, labels, 28, 28, gz);
      writeMnistSplit(d, 't10k', images.subarray(0, 3 * 784), labels.subarray(0, 3), 28, 28, gz);
      const train = fashionMnist('train', { dir: d });
      const test = mnist('test', { dir: d });
      expect([train.length, train.channels, train.height, train.width, train.numClasses]).toEqual([7, 1, 28, 28, 10]);
      expect(test.length).toBe(3);
      expect(train.classNames?.[9]).toBe('Ankle boot');
      expect(test.classNames?.[3]).toBe('3');
      for (let i = 0; i < n; i++) {
        const ex = train.get(i) as { image: Float32Array; label: number };
        expect(ex.label).toBe(labels[i]);
        for (const j of [0, 1, 400, 783]) expect(ex.image[j]).toBeCloseTo(images[i * 784 + j]! / 255, 7);
      }
    }
  });
  it('rejects mismatched counts, out-of-range labels, missing files and bad splits', () => {
    const d = tempDir('mnist-bad');
    fs.writeFileSync(path.join(d, 'train-images-idx3-ubyte'), idxBytes([2, 28, 28], images.subarray(0, 2 * 784)));
    fs.writeFileSync(path.join(d, 'train-labels-idx1-ubyte'), idxBytes([3], [1, 2, 3]));
    expectDataError(() => fashionMnist('train', { dir: d }), 'holds 2 images but', 'holds 3 labels');
    fs.writeFileSync(path.join(d, 'train-labels-idx1-ubyte'), idxBytes([2], [1, 12]));
    expectDataError(() => fashionMnist('train', { dir: d }), 'label 12 at index 1 is out of range [0, 10)');
    expectDataError(() => fashionMnist('test', { dir: d }), 'neither t10k-images-idx3-ubyte nor t10k-images-idx3-ubyte.gz exists');
    expectDataError(() => fashionMnist('valid' as 'train', { dir: d }), "split must be 'train' or 'test'");
    const saved = process.env.NEXGRAD_MNIST_DIR;
    delete process.env.NEXGRAD_MNIST_DIR;
    try {
      expectDataError(() => mnist('train'), 'NEXGRAD_MNIST_DIR');
    } finally {
      if (saved !== undefined) process.env.NEXGRAD_MNIST_DIR = saved;
    }
  });
  it('get() rejects indices outside the dataset', () => {
    const d = tempDir('mnist-idx');
    writeMnistSplit(d, 'train', images, labels, 28, 28, false);
    const ds = fashionMnist('train', { dir: d });
    expectDataError(() => ds.get(7), 'index 7 out of range [0, 7)');
    expectDataError(() => ds.get(1.5), 'index 1.5');
  });
  it('findFashionMnistDir prefers NEXGRAD_FASHION_MNIST_DIR and names a bad one', () => {
    const d = tempDir('fmnist-env');
    writeMnistSplit(d, 'train', images, labels, 28, 28, true);
    const saved = process.env.NEXGRAD_FASHION_MNIST_DIR;
    try {
      process.env.NEXGRAD_FASHION_MNIST_DIR = d;
      expect(findFashionMnistDir()).toBe(d);
      expect(fashionMnist('train').length).toBe(n);
      process.env.NEXGRAD_FASHION_MNIST_DIR = path.join(d, 'nowhere');
      expectDataError(() => findFashionMnistDir(), `NEXGRAD_FASHION_MNIST_DIR=${path.join(d, 'nowhere')} is not a directory`);
    } finally {
      if (saved === undefined) delete process.env.NEXGRAD_FASHION_MNIST_DIR;
      else process.env.NEXGRAD_FASHION_MNIST_DIR = saved;
    }
  });
});
