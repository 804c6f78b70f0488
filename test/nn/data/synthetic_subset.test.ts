import { describe, expect, it } from 'vitest';
import { subset } from '../../../src/nn/data/subset.js';
import { synthetic } from '../../../src/nn/data/synthetic.js';
import { DataError, type Example } from '../../../src/nn/data/types.js';

const ex = (e: Example | Promise<Example>): Example => e as Example;

describe('synthetic', () => {
  it('is deterministic per (seed, index), in [0,1], labels in range, defaults 1x28x28 and 10 classes', () => {
    const a = synthetic({ n: 50, seed: 3 });
    const b = synthetic({ n: 500, seed: 3 });
    expect([a.length, a.channels, a.height, a.width, a.numClasses]).toEqual([50, 1, 28, 28, 10]);
    for (const i of [0, 17, 49]) {
      expect(ex(b.get(i))).toEqual(ex(a.get(i)));
      const { image, label } = ex(a.get(i));
      expect(image.length).toBe(784);
      expect(Math.min(...image)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...image)).toBeLessThanOrEqual(1);
      expect(Number.isInteger(label) && label >= 0 && label < 10).toBe(true);
    }
    expect(ex(synthetic({ n: 50, seed: 4 }).get(0)).image).not.toEqual(ex(a.get(0)).image);
    expect(() => a.get(50)).toThrow(DataError);
  });
  it('is learnable: nearest class mean (from 300 examples) classifies 300 others at >= 90%', () => {
    const ds = synthetic({ n: 600, channels: 2, size: 16, numClasses: 6, seed: 1 });
    const d = 2 * 16 * 16;
    const means = Array.from({ length: 6 }, () => new Float64Array(d));
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 300; i++) {
      const { image, label } = ex(ds.get(i));
      counts[label]++;
      image.forEach((v, k) => (means[label]![k]! += v));
    }
    expect(counts.every((c) => c > 20)).toBe(true); // every class appears
    means.forEach((m, c) => m.forEach((_, k) => (m[k]! /= counts[c])));
    let right = 0;
    for (let i = 300; i < 600; i++) {
      const { image, label } = ex(ds.get(i));
      const dist = means.map((m) => image.reduce((s, v, k) => s + (v - m[k]!) ** 2, 0));
      if (dist.indexOf(Math.min(...dist)) === label) right++;
    }
    expect(right / 300).toBeGreaterThanOrEqual(0.9);
  });
  it('rejects bad options', () => {
    expect(() => synthetic({ n: -1 })).toThrow(/synthetic: n must be an integer/);
    expect(() => synthetic({ n: 3, size: 0 })).toThrow(/size must be an integer in \[1, 4096\]/);
  });
});

describe('subset', () => {
  it('serves the chosen examples in the given order, keeping the metadata', () => {
    const ds = synthetic({ n: 20, numClasses: 4 });
    const s = subset(ds, [5, 2, 19, 5]);
    expect([s.length, s.channels, s.height, s.width, s.numClasses]).toEqual([4, 1, 28, 28, 4]);
    expect(s.classNames).toEqual(ds.classNames);
    [5, 2, 19, 5].forEach((i, j) => expect(ex(s.get(j))).toEqual(ex(ds.get(i))));
    expect(() => s.get(4)).toThrow(/subset: index 4 out of range \[0, 4\)/);
  });
  it('rejects indices outside the dataset, naming the position', () => {
    const ds = synthetic({ n: 3 });
    expect(() => subset(ds, [0, 3])).toThrow(/indices\[1\] = 3 is not an index of the dataset \(length 3\)/);
    expect(() => subset(ds, Float64Array.of(0.5))).toThrow(DataError);
  });
});
