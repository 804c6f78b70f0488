import { describe, expect, it } from 'vitest';
import { shiftSample } from '../../../src/nn/data/augment.js';
import { DataLoader } from '../../../src/nn/data/loader.js';
import { DataError, type Example, type ImageDataset } from '../../../src/nn/data/types.js';
import { values } from '../../helpers/gradcheck.js';

/** The translation by definition: out[c, y, x] = in[c, y - dy, x - dx], 0 outside. */
function shiftedByDefinition(img: Float32Array, c: number, h: number, w: number, dy: number, dx: number): number[] {
  const out: number[] = [];
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const sy = y - dy;
        const sx = x - dx;
        out.push(sy >= 0 && sy < h && sx >= 0 && sx < w ? img[(ch * h + sy) * w + sx]! : 0);
      }
    }
  }
  return out;
}

const image = (n: number, seed: number): Float32Array => Float32Array.from({ length: n }, (_, j) => 1 + ((seed * 31 + j * 17) % 97) / 10);

describe('random shift', () => {
  it('shiftSample translates every channel and zero-fills, for every offset up to past the edge', () => {
    const [c, h, w] = [2, 5, 7];
    for (let dy = -6; dy <= 6; dy++) {
      for (let dx = -8; dx <= 8; dx++) {
        const img = image(c * h * w, dy * 20 + dx);
        const buf = new Float32Array(3 + c * h * w + 4).fill(-1);
        buf.set(img, 3);
        shiftSample(buf, 3, { channels: c, height: h, width: w }, dy, dx);
        expect(Array.from(buf.subarray(3, 3 + c * h * w))).toEqual(shiftedByDefinition(img, c, h, w, dy, dx));
        expect([...buf.subarray(0, 3), ...buf.subarray(3 + c * h * w)]).toEqual([-1, -1, -1, -1, -1, -1, -1]);
      }
    }
  });

  it('the loader shifts each image by at most randomShift pixels, differently per image, the same for the same seed', async () => {
    const [c, h, w, n] = [1, 6, 6, 64];
    const example = (i: number): Example => ({ image: image(c * h * w, i), label: i % 3 });
    const ds: ImageDataset = { length: n, channels: c, height: h, width: w, numClasses: 3, get: example };
    const run = async (): Promise<number[][]> => {
      const out: number[][] = [];
      for await (const b of new DataLoader(ds, { batchSize: 16, seed: 5, augment: { randomShift: 2 } }).epoch(0)) {
        const imgs = values(b.images);
        Array.from(b.indices).forEach((i, p) => {
          const got = imgs.slice(p * c * h * w, (p + 1) * c * h * w);
          const offsets: number[] = [];
          for (let dy = -2; dy <= 2; dy++) {
            for (let dx = -2; dx <= 2; dx++) if (got.every((v, k) => v === shiftedByDefinition(example(i).image, c, h, w, dy, dx)[k])) offsets.push(dy * 5 + dx);
          }
          expect(offsets.length, `image ${i} is no shift of its source`).toBe(1);
          out.push([i, offsets[0]!]);
        });
      }
      return out;
    };
    const a = await run();
    expect(new Set(a.map(([, o]) => o)).size).toBeGreaterThan(10);
    expect(await run()).toEqual(a);
  });

  it('a bad randomShift is refused by name', () => {
    const ds: ImageDataset = { length: 1, channels: 1, height: 2, width: 2, numClasses: 1, get: () => ({ image: new Float32Array(4), label: 0 }) };
    expect(() => new DataLoader(ds, { batchSize: 1, augment: { randomShift: 1.5 } })).toThrow(DataError);
    expect(() => new DataLoader(ds, { batchSize: 1, augment: { randomShift: -1 } })).toThrow(/randomShift/);
  });
});
