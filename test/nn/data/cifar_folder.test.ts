import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { cifar10 } from '../../../src/nn/data/cifar.js';
import { imageFolder } from '../../../src/nn/data/image_folder.js';
import { DataError, type Example } from '../../../src/nn/data/types.js';
import { bytes, tempDir } from './files.js';

async function rejects(p: Promise<unknown> | (() => unknown), ...parts: (string | RegExp)[]): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a DataError').toBeInstanceOf(DataError);
  for (const s of parts) expect((err as Error).message).toMatch(s);
}

/** CIFAR records: label byte then 3072 pixel bytes. */
function cifarFile(labels: number[], seed: number): { file: Uint8Array; pixels: Uint8Array } {
  const pixels = bytes(labels.length * 3072, seed);
  const file = new Uint8Array(labels.length * 3073);
  labels.forEach((l, r) => {
    file[r * 3073] = l;
    file.set(pixels.subarray(r * 3072, (r + 1) * 3072), r * 3073 + 1);
  });
  return { file, pixels };
}

describe('cifar10', () => {
  it('reads the five train batches in order and the test batch, pixels CHW in [0,1]', () => {
    const root = tempDir('cifar');
    const dir = path.join(root, 'cifar-10-batches-bin');
    fs.mkdirSync(dir);
    const parts = [1, 2, 3, 4, 5].map((b) => cifarFile([b % 10, (b * 3) % 10], b));
    parts.forEach((p, b) => fs.writeFileSync(path.join(dir, `data_batch_${b + 1}.bin`), p.file));
    const t = cifarFile([9, 0, 4], 77);
    fs.writeFileSync(path.join(dir, 'test_batch.bin'), t.file);
    const train = cifar10('train', { dir: root });
    expect([train.length, train.channels, train.height, train.width, train.numClasses]).toEqual([10, 3, 32, 32, 10]);
    expect(train.classNames?.[1]).toBe('automobile');
    const ex = train.get(5) as Example; // batch 3, record 1
    expect(ex.label).toBe(9);
    // channel c, row y, column x of the record is pixel byte c*1024 + y*32 + x.
    for (const [c, y, x] of [[0, 0, 0], [1, 5, 7], [2, 31, 31]] as const) {
      const k = c * 1024 + y * 32 + x;
      expect(ex.image[k]).toBeCloseTo(parts[2]!.pixels[3072 + k]! / 255, 7);
    }
    const test = cifar10('test', { dir });
    expect(test.length).toBe(3);
    expect((test.get(2) as Example).label).toBe(4);
  });
  it('uses batches.meta.txt class names when present', () => {
    const dir = tempDir('cifar-meta');
    fs.writeFileSync(path.join(dir, 'test_batch.bin'), cifarFile([0], 1).file);
    fs.writeFileSync(path.join(dir, 'batches.meta.txt'), 'a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n');
    expect(cifar10('test', { dir }).classNames).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']);
  });
  it('rejects a wrong record size, a bad label and a missing folder, naming the file', async () => {
    const dir = tempDir('cifar-bad');
    const f = path.join(dir, 'test_batch.bin');
    fs.writeFileSync(f, cifarFile([1, 2], 1).file.subarray(0, 3073 * 2 - 5));
    await rejects(() => cifar10('test', { dir }), f, '6141 bytes is not a whole number of 3073-byte CIFAR-10 records', '3068 left over');
    const bad = cifarFile([1, 12], 1).file;
    fs.writeFileSync(f, bad);
    await rejects(() => cifar10('test', { dir }), 'record 1 has label 12');
    await rejects(() => cifar10('train', { dir }), 'data_batch_1.bin not found');
    await rejects(() => cifar10('test', {} as { dir: string }), 'opts.dir');
  });
});

describe('imageFolder', () => {
  const w = 6;
  const h = 4;
  const rgb = (seed: number): Uint8Array => bytes(w * h * 3, seed);
  /** A smooth image (JPEG keeps it closely, unlike noise). */
  const smooth = Uint8Array.from({ length: w * h * 3 }, (_, k) => 40 + 20 * (Math.floor(k / 3) % w) + 15 * Math.floor(k / 3 / w) + 30 * (k % 3));
  async function png(file: string, data: Uint8Array, channels: 1 | 3 = 3): Promise<void> {
    await sharp(Buffer.from(data), { raw: { width: w, height: h, channels } }).png().toFile(file);
  }
  async function makeFolder(): Promise<string> {
    const dir = tempDir('folder');
    for (const c of ['zebra', 'ant', 'mole']) fs.mkdirSync(path.join(dir, c));
    fs.mkdirSync(path.join(dir, 'mole', 'deeper'));
    await png(path.join(dir, 'zebra', 'b.png'), rgb(1));
    await png(path.join(dir, 'zebra', 'a.PNG'), rgb(2));
    await png(path.join(dir, 'ant', 'x.png'), rgb(3));
    await sharp(Buffer.from(smooth), { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toFile(path.join(dir, 'mole', 'deeper', 'y.jpg'));
    fs.writeFileSync(path.join(dir, 'ant', 'notes.txt'), 'not an image');
    return dir;
  }

  it('classes are the sorted folder names; PNGs decode exactly to CHW floats; JPEGs closely', async () => {
    const dir = await makeFolder();
    const ds = await imageFolder(dir, { size: [h, w] });
    expect(ds.classNames).toEqual(['ant', 'mole', 'zebra']);
    expect([ds.length, ds.channels, ds.height, ds.width, ds.numClasses]).toEqual([4, 3, h, w, 3]);
    const items = await Promise.all([0, 1, 2, 3].map((i) => ds.get(i)));
    expect(items.map((e) => e.label)).toEqual([0, 1, 2, 2]);
    // zebra's files sort as a.PNG (seed 2) then b.png (seed 1); pixel (y, x) channel c of HWC bytes.
    for (const [item, seed] of [[items[0]!, 3], [items[2]!, 2], [items[3]!, 1]] as const) {
      const src = rgb(seed);
      for (let c = 0; c < 3; c++) for (let p = 0; p < w * h; p++) expect(item.image[c * w * h + p]).toBeCloseTo(src[p * 3 + c]! / 255, 7);
    }
    const jpg = smooth;
    let worst = 0;
    for (let c = 0; c < 3; c++) for (let p = 0; p < w * h; p++) worst = Math.max(worst, Math.abs(items[1]!.image[c * w * h + p]! - jpg[p * 3 + c]! / 255));
    expect(worst).toBeLessThan(0.03); // lossy: close, not exact
  });
  it('resizes to the requested size and converts to grey', async () => {
    const dir = tempDir('folder-grey');
    fs.mkdirSync(path.join(dir, 'only'));
    const flat = new Uint8Array(w * h * 3).fill(200);
    await png(path.join(dir, 'only', 'f.png'), flat);
    const ds = await imageFolder(dir, { size: 3, channels: 1 });
    expect([ds.channels, ds.height, ds.width]).toEqual([1, 3, 3]);
    const ex = await ds.get(0);
    for (const v of ex.image) expect(v).toBeCloseTo(200 / 255, 2);
  });
  it('names an unreadable image, an empty class and a folder without classes', async () => {
    const dir = await makeFolder();
    const bad = path.join(dir, 'ant', 'broken.png');
    fs.writeFileSync(bad, new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
    const ds = await imageFolder(dir, { size: 4 });
    await rejects(Promise.resolve(ds.get(0)), `cannot read image ${bad}`);
    fs.mkdirSync(path.join(dir, 'empty'));
    await rejects(imageFolder(dir, { size: 4 }), `class folder ${path.join(dir, 'empty')} holds no .jpg, .jpeg or .png images`);
    await rejects(imageFolder(tempDir('none'), { size: 4 }), 'has no class sub-folders');
    await rejects(imageFolder(path.join(dir, 'missing'), { size: 4 }), 'cannot list', 'ENOENT');
    await rejects(imageFolder(dir, { size: 0 }), 'size must be an integer in [1, 16384]');
  });
});
