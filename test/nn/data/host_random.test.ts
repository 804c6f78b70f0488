import { describe, expect, it } from 'vitest';
import * as random from '../../../src/ir/random.js';
import { hostBits, hostFoldIn, hostKey, hostPermutation, HostStream } from '../../../src/nn/data/host_random.js';

const u32 = (t: { dataSync(): ArrayLike<number> }): number[] => Array.from(t.dataSync());

describe('host Threefry against ng.random (the tensor implementation)', () => {
  it('key and foldIn are bit-exact', () => {
    for (const seed of [0, 1, 42, -1, 2 ** 32 + 5]) {
      expect([...hostKey(seed)]).toEqual(u32(random.key(seed)));
      for (const d of [0, 1, 7, 123456789, -3]) expect([...hostFoldIn(hostKey(seed), d)]).toEqual(u32(random.foldIn(random.key(seed), d)));
    }
  });
  it('bits are bit-exact, including the published split(key(0))', () => {
    const k = hostFoldIn(hostKey(3), 9);
    expect(Array.from(hostBits(k, 11))).toEqual(u32(random.bits(random.foldIn(random.key(3), 9), [11])));
    expect(Array.from(hostBits(hostKey(0), 4))).toEqual([4146024105, 967050713, 2718843009, 1272950319]);
  });
  it('permutation is bit-exact with random.permutation (one and two sort rounds)', () => {
    for (const [seed, n] of [[0, 0], [1, 1], [5, 10], [7, 1000], [11, 2000]] as const) {
      const want = u32(random.permutation(random.key(seed), n));
      expect(Array.from(hostPermutation(hostKey(seed), n)), `seed ${seed} n ${n}`).toEqual(want);
    }
  });
});

describe('HostStream draws', () => {
  it('uniforms lie in [0, 1) with mean 1/2 and variance 1/12; distinct keys give distinct streams', () => {
    const a = new HostStream(hostKey(1));
    const b = new HostStream(hostKey(2));
    const xs = Array.from({ length: 20000 }, () => a.uniform());
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const v = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
    // 20000 draws: the standard error of the mean is 0.002, of the variance ~0.0005.
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
    expect(Math.abs(v - 1 / 12)).toBeLessThan(0.003);
    expect(b.uniform()).not.toBe(xs[0]);
    expect(new HostStream(hostKey(1)).uniform()).toBe(xs[0]);
  });
  it('int(lo, hi) covers [lo, hi) uniformly', () => {
    const r = new HostStream(hostKey(4));
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < 10000; i++) counts[r.int(-2, 3) + 2]!++;
    for (const c of counts) expect(Math.abs(c - 2000)).toBeLessThan(200);
  });
  it('beta(a, a) has mean 1/2 and variance 1/(4(2a+1)), for a < 1 and a > 1', () => {
    for (const a of [0.2, 0.8, 2]) {
      const r = new HostStream(hostKey(10));
      const xs = Array.from({ length: 20000 }, () => r.beta(a, a));
      const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
      const v = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
      expect(xs.every((x) => x >= 0 && x <= 1)).toBe(true);
      expect(Math.abs(mean - 0.5), `a=${a}`).toBeLessThan(0.01);
      expect(Math.abs(v - 1 / (4 * (2 * a + 1))), `a=${a}`).toBeLessThan(0.01);
    }
  });
});
