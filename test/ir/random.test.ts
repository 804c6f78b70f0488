import { describe, expect, it } from 'vitest';
import { OpError } from '../../src/ir/errors.js';
import * as ops from '../../src/ir/ops.js';
import * as random from '../../src/ir/random.js';
import { Tensor } from '../../src/ir/tensor.js';
import { threefry2x32Block, threefryHash } from '../../src/ir/threefry.js';
import { bind1, evalProgram, traceFlat } from '../../src/ir/trace.js';

const list = (t: Tensor): number[] => Array.from(t.dataSync());
const iotaU32 = (n: number): Uint32Array => Uint32Array.from({ length: n }, (_, i) => i);

/** zlib.adler32, which JAX's tests use to derive the seeds of their golden values. */
function adler32(s: string): number {
  let a = 1;
  let b = 0;
  for (const c of Buffer.from(s, 'utf8')) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** erf to ~1e-16 relative (|x| < 6): 2/sqrt(pi) exp(-x^2) sum 2^n x^(2n+1) / (2n+1)!!. */
function erfRef(x: number): number {
  const a = Math.abs(x);
  let term = a;
  let sum = a;
  for (let n = 1; n < 400 && term > sum * 1e-18; n++) {
    term *= (2 * a * a) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
}

/** erfinv(y) by Newton's method on erfRef, started from a close guess. */
function erfinvRef(y: number, guess: number): number {
  let x = guess;
  for (let i = 0; i < 6; i++) x -= (erfRef(x) - y) / ((2 / Math.sqrt(Math.PI)) * Math.exp(-x * x));
  return x;
}

function meanStd(xs: number[]): [number, number] {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const v = xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length;
  return [m, Math.sqrt(v)];
}

describe('threefry2x32 (host)', () => {
  it('matches the Random123 known-answer vectors', () => {
    expect(threefry2x32Block(0, 0, 0, 0)).toEqual([0x6b200159, 0x99ba4efe]);
    expect(threefry2x32Block(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff)).toEqual([0x1cb996fc, 0xbb002be7]);
    expect(threefry2x32Block(0x13198a2e, 0x03707344, 0x243f6a88, 0x85a308d3)).toEqual([0xc4923a9c, 0x483df7a0]);
  });

  it('threefryHash pairs the first half of the counts with the second half (jax threefry_2x32)', () => {
    expect(Array.from(threefryHash(0x13198a2e, 0x03707344, Uint32Array.of(0x243f6a88, 0x85a308d3)))).toEqual([
      0xc4923a9c, 0x483df7a0,
    ]);
    // JAX's testThreefry2x32Large, scaled down.
    const n = 1001;
    const counts = new Uint32Array(2 * n);
    counts.fill(0x243f6a88, 0, n);
    counts.fill(0x85a308d3, n);
    const out = threefryHash(0x13198a2e, 0x03707344, counts);
    expect(out.subarray(0, n).every((v) => v === 0xc4923a9c)).toBe(true);
    expect(out.subarray(n).every((v) => v === 0x483df7a0)).toBe(true);
  });

  it('pads odd-length counts with one zero and drops the last output', () => {
    const k0 = 12345;
    const k1 = 0xdeadbeef;
    const c = Uint32Array.of(7, 8, 9, 10, 11);
    const out = Array.from(threefryHash(k0, k1, c));
    const p0 = threefry2x32Block(k0, k1, 7, 10);
    const p1 = threefry2x32Block(k0, k1, 8, 11);
    const p2 = threefry2x32Block(k0, k1, 9, 0);
    expect(out).toEqual([p0[0], p1[0], p2[0], p0[1], p1[1]]);
    expect(threefryHash(1, 2, new Uint32Array(0)).length).toBe(0);
    expect(Array.from(threefryHash(1, 2, Uint32Array.of(5)))).toEqual([threefry2x32Block(1, 2, 5, 0)[0]]);
  });

  it('reproduces JAX split / fold_in / random_bits from the raw hash', () => {
    expect(Array.from(threefryHash(0, 0, iotaU32(4)))).toEqual([4146024105, 967050713, 2718843009, 1272950319]);
    expect(Array.from(threefryHash(0, 1701, iotaU32(3)))).toEqual([56197195, 4200222568, 961309823]);
  });
});

describe('random keys (JAX golden values)', () => {
  it('key(seed) uses both 32-bit words of a non-negative seed, as JAX threefry_seed with 64-bit seeds', () => {
    // JAX: k1 = seed >> 32, k2 = seed & 0xFFFFFFFF. Before the fix only the low word was kept,
    // so key(2**32) == key(0) and key(Date.now()) lost its high bits.
    expect(list(random.key(2 ** 32))).toEqual([1, 0]);
    expect(list(random.key(2 ** 32 + 5))).toEqual([1, 5]);
    expect(list(random.key(2 ** 53 - 1))).toEqual([2 ** 21 - 1, 2 ** 32 - 1]);
    const now = 1_717_171_717_171; // a Date.now() value: hi = floor(now / 2^32), lo = now mod 2^32
    expect(list(random.key(now))).toEqual([Math.floor(now / 2 ** 32), now % 2 ** 32]);
    expect(list(random.key(2 ** 32))).not.toEqual(list(random.key(0)));
    // the words feed Threefry: different keys give different bits
    expect(list(random.bits(random.key(2 ** 32), [4]))).not.toEqual(list(random.bits(random.key(0), [4])));
  });

  it('key() refuses non-integers, NaN, infinities and integers a JS number cannot hold exactly', () => {
    for (const bad of [0.5, NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53), '7', null]) {
      expect(() => random.key(bad as number), String(bad)).toThrow(/^random\.key: seed must be an integer within \+-\(2\^53 - 1\)/);
    }
  });

  it('key(seed) is [0, seed mod 2^32] as in JAX with 32-bit ints for seeds below 2^32 and negative seeds', () => {
    expect(list(random.key(0))).toEqual([0, 0]);
    expect(list(random.key(42))).toEqual([0, 42]);
    expect(random.key(7).dtype).toBe('u32');
    expect(random.key(7).shape).toEqual([2]);
    // jax tests/random_test.py test_prng_seeds_and_keys (x64 disabled)
    expect(list(random.key(-1))).toEqual([0, 4294967295]);
    expect(list(random.key(-2))).toEqual([0, 4294967294]);
    expect(list(random.key(2147483647 + 100))).toEqual([0, 2147483747]);
    expect(list(random.key(-2147483648 - 100))).toEqual([0, 2147483548]);
  });

  it('split matches JAX', () => {
    const s = random.split(random.key(0), 2);
    expect(s.shape).toEqual([2, 2]);
    expect(s.dtype).toBe('u32');
    expect(s.tolist()).toEqual([
      [4146024105, 967050713],
      [2718843009, 1272950319],
    ]);
    expect(random.split(random.key(0)).tolist()).toEqual(s.tolist());
    // jax testPRNGValues
    expect(random.split(random.key(0), 4).tolist()).toEqual([
      [2285895361, 1501764800],
      [1518642379, 4090693311],
      [433833334, 4221794875],
      [839183663, 3740430601],
    ]);
    expect(random.split(random.key(0), 0).shape).toEqual([0, 2]);
  });

  it('foldIn matches JAX', () => {
    expect(list(random.foldIn(random.key(0), 4))).toEqual([2285895361, 433833334]);
    expect(list(random.foldIn(random.key(0), ops.scalar(4, 'i32')))).toEqual([2285895361, 433833334]);
    expect(list(random.foldIn(random.key(0), ops.scalar(4, 'u32')))).toEqual([2285895361, 433833334]);
    // jax testFoldIn: ten folds give 20 distinct words
    const words = new Set<number>();
    for (let i = 0; i < 10; i++) for (const w of list(random.foldIn(random.key(0), i))) words.add(w);
    expect(words.size).toBe(20);
  });

  it('bits matches JAX', () => {
    expect(list(random.bits(random.key(1701), [3]))).toEqual([56197195, 4200222568, 961309823]);
    // jax testRandomDistributionValues ("bits", threefry2x32)
    const k = random.key(adler32('bitsthreefry2x32'));
    expect(list(random.bits(k, [5]))).toEqual([1978747883, 4134381225, 3628107870, 689687174, 2788938207]);
    expect(list(random._bitsOfWidth(k, 16, [5]))).toEqual([6738, 38161, 50695, 57337, 61600]);
    expect(list(random._bitsOfWidth(k, 8, [5]))).toEqual([10, 158, 82, 54, 158]);
    // jax testRngRandomBits
    expect(list(random._bitsOfWidth(random.key(1701), 16, [3]))).toEqual([41682, 1300, 55017]);
    expect(list(random._bitsOfWidth(random.key(1701), 8, [3]))).toEqual([216, 115, 43]);
    const b = random.bits(random.key(3), [2, 3]);
    expect(b.shape).toEqual([2, 3]);
    expect(b.dtype).toBe('u32');
    expect(list(b)).toEqual(Array.from(threefryHash(0, 3, iotaU32(6))));
    expect(random.bits(random.key(3)).shape).toEqual([]);
    expect(random.bits(random.key(3), [0, 4]).shape).toEqual([0, 4]);
  });

  it('uniform, normal, truncatedNormal and bernoulli match JAX', () => {
    const seed = (name: string) => random.key(adler32(name + 'threefry2x32'));
    const close = (got: number[], want: number[], atol: number) =>
      got.forEach((g, i) => expect(Math.abs(g - want[i]!), `element ${i}: ${g} vs ${want[i]}`).toBeLessThanOrEqual(atol));
    close(list(random.uniform(seed('uniform'), [5])), [0.298671, 0.073213, 0.873356, 0.260549, 0.412797], 1e-6);
    close(list(random.normal(seed('normal'), [5])), [-1.173234, -1.511662, 0.070593, -0.099764, 1.052845], 2e-6);
    close(list(random.truncatedNormal(seed('truncated_normal'), 0, 2, [5])), [0.582807, 1.709771, 0.159513, 0.861376, 0.36148], 2e-6);
    expect(list(random.bernoulli(seed('bernoulli'), 0.5, [5]))).toEqual([0, 1, 1, 1, 0]);
  });
});

describe('random distributions', () => {
  const k0 = random.key(0);

  it('uniform f32 is exactly (bits >>> 9) * 2^-23 and lies in [0, 1)', () => {
    const n = 20000;
    const u = random.uniform(k0, [n]);
    expect(u.dtype).toBe('f32');
    const raw = threefryHash(0, 0, iotaU32(n));
    const xs = list(u);
    xs.forEach((x, i) => {
      if (x !== (raw[i]! >>> 9) * 2 ** -23) throw new Error(`element ${i}`);
    });
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    const [m, s] = meanStd(xs);
    expect(Math.abs(m - 0.5)).toBeLessThan(4 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(s - Math.sqrt(1 / 12))).toBeLessThan(0.01);
  });

  it('uniform respects minval/maxval (numbers and tensors)', () => {
    const xs = list(random.uniform(random.key(5), [5000], { minval: -3, maxval: 5 }));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(-3);
    expect(Math.max(...xs)).toBeLessThan(5);
    expect(Math.abs(meanStd(xs)[0] - 1)).toBeLessThan(0.15);
    const lo = ops.tensor([0, 10, 100]);
    const t = random.uniform(random.key(5), [1000, 3], { minval: lo, maxval: ops.add(lo, 1) });
    expect(t.shape).toEqual([1000, 3]);
    const rows = t.tolist() as number[][];
    for (const r of rows) {
      expect(r[0]).toBeGreaterThanOrEqual(0);
      expect(r[0]).toBeLessThan(1);
      expect(r[1]).toBeGreaterThanOrEqual(10);
      expect(r[1]).toBeLessThan(11);
      expect(r[2]).toBeGreaterThanOrEqual(100);
      expect(r[2]).toBeLessThan(101);
    }
    // number bounds and equal tensor bounds give the same values
    const a = random.uniform(random.key(9), [64], { minval: 0.25, maxval: 0.75 });
    const b = random.uniform(random.key(9), [64], { minval: ops.scalar(0.25), maxval: ops.scalar(0.75) });
    expect(list(a)).toEqual(list(b));
  });

  it('uniform f64 uses 64 random bits exactly as JAX x64 does', () => {
    const n = 50;
    const u = random.uniform(random.key(11), [n], { dtype: 'f64' });
    expect(u.dtype).toBe('f64');
    const raw = threefryHash(0, 11, iotaU32(2 * n));
    expect(list(u)).toEqual(Array.from({ length: n }, (_, i) => (raw[2 * i]! * 2 ** 20 + (raw[2 * i + 1]! >>> 12)) * 2 ** -52));
  });

  it('uniform f16 and bf16 use 16- and 8-bit lanes', () => {
    const k = random.key(13);
    const h = random.uniform(k, [7], { dtype: 'f16' });
    expect(h.dtype).toBe('f16');
    expect(list(h)).toEqual(list(random._bitsOfWidth(k, 16, [7])).map((b) => (b >>> 6) * 2 ** -10));
    const bf = random.uniform(k, [9], { dtype: 'bf16' });
    expect(bf.dtype).toBe('bf16');
    expect(list(bf)).toEqual(list(random._bitsOfWidth(k, 8, [9])).map((b) => (b >>> 1) * 2 ** -7));
  });

  it('normal has mean 0 and std 1, and honours mean/std', () => {
    const n = 20000;
    const [m, s] = meanStd(list(random.normal(random.key(1), [n])));
    expect(Math.abs(m)).toBeLessThan(4 / Math.sqrt(n));
    expect(Math.abs(s - 1)).toBeLessThan(4 * Math.sqrt(1 / (2 * n)));
    const [m2, s2] = meanStd(list(random.normal(random.key(1), [n], { mean: 3, std: 0.5 })));
    expect(Math.abs(m2 - 3)).toBeLessThan(0.02);
    expect(Math.abs(s2 - 0.5)).toBeLessThan(0.02);
    const d = random.normal(random.key(1), [1000], { dtype: 'f64' });
    expect(d.dtype).toBe('f64');
    expect(list(d).every(Number.isFinite)).toBe(true);
    expect(random.normal(random.key(1), [3], { dtype: 'bf16' }).dtype).toBe('bf16');
  });

  it('truncatedNormal stays strictly inside (lower, upper)', () => {
    const xs = list(random.truncatedNormal(random.key(2), -0.3, 0.3, [10000]));
    expect(Math.min(...xs)).toBeGreaterThan(Math.fround(-0.3));
    expect(Math.max(...xs)).toBeLessThan(Math.fround(0.3));
    expect(Math.abs(meanStd(xs)[0])).toBeLessThan(0.01);
    const ys = list(random.truncatedNormal(random.key(2), -2, 2, [10000]));
    expect(Math.min(...ys)).toBeGreaterThan(-2);
    expect(Math.max(...ys)).toBeLessThan(2);
    // std of N(0,1) truncated to [-2, 2] is about 0.8796
    expect(Math.abs(meanStd(ys)[1] - 0.8796)).toBeLessThan(0.03);
    const far = list(random.truncatedNormal(random.key(2), 3, 3.5, [1000], { dtype: 'f64' }));
    expect(Math.min(...far)).toBeGreaterThan(3);
    expect(Math.max(...far)).toBeLessThan(3.5);
  });

  it('bernoulli has rate p and returns bool', () => {
    const n = 20000;
    const b = random.bernoulli(random.key(4), 0.3, [n]);
    expect(b.dtype).toBe('bool');
    const rate = list(b).reduce((a, x) => a + x, 0) / n;
    expect(Math.abs(rate - 0.3)).toBeLessThan(4 * Math.sqrt((0.3 * 0.7) / n));
    const pt = random.bernoulli(random.key(4), ops.tensor([0, 1, 0.5]));
    expect(pt.shape).toEqual([3]);
    expect(list(pt).slice(0, 2)).toEqual([0, 1]);
    expect(random.bernoulli(random.key(4), ops.tensor([0.2, 0.8]), [4, 2]).shape).toEqual([4, 2]);
  });

  it('permutation is a permutation (one and two sort rounds) and permutes tensors', () => {
    for (const n of [0, 1, 2, 100, 2000]) {
      const p = random.permutation(random.key(6), n);
      expect(p.dtype).toBe('i32');
      expect(p.shape).toEqual([n]);
      const xs = list(p);
      expect([...xs].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
      if (n >= 100) expect(xs).not.toEqual(Array.from({ length: n }, (_, i) => i));
    }
    // one round: the stable argsort of bits(split(key)[1])
    const sub = random.split(random.key(6))!;
    const b = list(random.bits(ops.reshape(ops.slice(sub, [1, 0], [2, 2]), [2]), [100]));
    const expected = Array.from({ length: 100 }, (_, i) => i).sort((i, j) => b[i]! - b[j]! || i - j);
    expect(list(random.permutation(random.key(6), 100))).toEqual(expected);
    // a tensor is permuted along the axis with the same indices
    const x = ops.reshape(ops.arange(12, undefined, 1, 'f32'), [3, 4]);
    const px = random.permutation(random.key(8), x, 1);
    const idx = list(random.permutation(random.key(8), 4));
    expect(px.tolist()).toEqual((x.tolist() as number[][]).map((r) => idx.map((i) => r[i])));
  });

  it('is deterministic per key and differs across keys', () => {
    const a = list(random.uniform(random.key(21), [16]));
    expect(list(random.uniform(random.key(21), [16]))).toEqual(a);
    expect(list(random.uniform(random.key(22), [16]))).not.toEqual(a);
    const [s0, s1] = [ops.slice(random.split(random.key(21)), [0, 0], [1, 2]), ops.slice(random.split(random.key(21)), [1, 0], [2, 2])];
    expect(list(random.normal(ops.reshape(s0, [2]), [8]))).not.toEqual(list(random.normal(ops.reshape(s1, [2]), [8])));
  });

  it('accepts batches of keys', () => {
    const keys = random.split(random.key(3), 3);
    const u = random.uniform(keys, [4]);
    expect(u.shape).toEqual([3, 4]);
    for (let i = 0; i < 3; i++) {
      const ki = ops.reshape(ops.slice(keys, [i, 0], [i + 1, 2]), [2]);
      expect((u.tolist() as number[][])[i]).toEqual(list(random.uniform(ki, [4])));
    }
    expect(random.split(keys, 5).shape).toEqual([3, 5, 2]);
    expect(random.foldIn(ops.reshape(random.split(random.key(3), 4), [2, 2, 2]), 1).shape).toEqual([2, 2, 2]);
    expect(random.normal(ops.zeros([0, 2], 'u32'), [3]).shape).toEqual([0, 3]);
  });
});

describe('erfinv', () => {
  const grid = (lim: number, n: number) => Array.from({ length: n }, (_, i) => -lim + (2 * lim * i) / (n - 1));

  it('f32 matches the true inverse to a few f32 ulps', () => {
    const ys = [...grid(0.999, 401), ...grid(0.999999, 101), 1e-30, -1e-8, 0.5, 0.9999, -0.99999].map(Math.fround);
    const got = list(erfinvOf(ys, 'f32'));
    ys.forEach((y, i) => {
      const ref = erfinvRef(y, got[i]!);
      const rel = Math.abs(got[i]! - ref) / Math.max(Math.abs(ref), 1e-30);
      // relative condition number of erfinv at y: y * erfinv'(y) / erfinv(y)
      const cond = Math.max(1, (Math.abs(y) * (Math.sqrt(Math.PI) / 2) * Math.exp(ref * ref)) / Math.max(Math.abs(ref), 1e-30));
      if (Math.abs(y) <= 0.999) expect(rel, `y=${y}`).toBeLessThan(1e-6);
      expect(rel, `y=${y}`).toBeLessThan(4 * 2 ** -23 * cond);
    });
  });

  it('f64 matches the true inverse to ~1e-14', () => {
    const ys = [...grid(0.999, 401), ...grid(0.9999999999, 101), 1e-300, 0.5, -0.25];
    const got = list(erfinvOf(ys, 'f64'));
    ys.forEach((y, i) => {
      const ref = erfinvRef(y, got[i]!);
      // near |y| = 1 the reference itself is limited by the spacing of doubles near y
      const tol = 1e-14 * Math.abs(ref) + 2e-16 / Math.exp(-ref * ref);
      expect(Math.abs(got[i]! - ref), `y=${y}`).toBeLessThanOrEqual(tol);
    });
  });

  it('inverts the erf op', () => {
    // erfinv is ill-conditioned near ±1: an error of one ulp in erf(x) moves x by about
    // ulp * sqrt(pi)/2 * exp(x^2).
    const slack = (x: number, eps: number) => 8 * eps * (Math.sqrt(Math.PI) / 2) * Math.exp(x * x);
    const xs = grid(3, 301);
    const back = list(random.erfinv(ops.erf(ops.tensor(xs, { dtype: 'f32' }))));
    xs.forEach((x, i) => expect(Math.abs(back[i]! - x), `x=${x}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(x)) + slack(x, 2 ** -24)));
    const xs64 = grid(5, 201);
    const back64 = list(random.erfinv(ops.erf(ops.tensor(xs64, { dtype: 'f64' }))));
    xs64.forEach((x, i) => expect(Math.abs(back64[i]! - x), `x=${x}`).toBeLessThan(1e-14 * Math.max(1, Math.abs(x)) + slack(x, 2 ** -53)));
  });

  it('handles the edges', () => {
    expect(list(erfinvOf([1, -1, 0, 1.5, -2], 'f32'))).toEqual([Infinity, -Infinity, 0, NaN, NaN]);
    expect(list(erfinvOf([1, -1, 0], 'f64'))).toEqual([Infinity, -Infinity, 0]);
    expect(() => random.erfinv(ops.tensor([1], { dtype: 'i32' }))).toThrow(OpError);
  });

  function erfinvOf(ys: number[], dtype: 'f32' | 'f64'): Tensor {
    return random.erfinv(ops.tensor(ys, { dtype }));
  }
});

describe('nextAfter', () => {
  it('steps one ulp in each dtype', () => {
    expect(random.nextAfter(-1, 0, 'f32')).toBe(-1 + 2 ** -24);
    expect(random.nextAfter(1, 2, 'f32')).toBe(1 + 2 ** -23);
    expect(random.nextAfter(1, 0, 'f64')).toBe(1 - 2 ** -53);
    expect(random.nextAfter(1, 2, 'f64')).toBe(1 + 2 ** -52);
    expect(random.nextAfter(1, 2, 'f16')).toBe(1 + 2 ** -10);
    expect(random.nextAfter(1, 0, 'bf16')).toBe(1 - 2 ** -8);
    expect(random.nextAfter(0, 1, 'f32')).toBe(2 ** -149);
    expect(random.nextAfter(0, -1, 'f64')).toBe(-(2 ** -1074));
    const x = Math.fround(0.3);
    const up = random.nextAfter(0.3, Infinity, 'f32');
    expect(up).toBeGreaterThan(x);
    expect(Math.fround(up)).toBe(up);
    expect(Math.fround((x + up) / 2) === x || Math.fround((x + up) / 2) === up).toBe(true);
    expect(random.nextAfter(-Infinity, 0, 'f32')).toBe(-3.4028234663852886e38);
  });
});

describe('tracing', () => {
  it('random functions trace into programs with random_bits', () => {
    const fn = (k: Tensor): Tensor[] => [random.normal(k, [3]), random.uniform(random.foldIn(k, 3), [2]), random.permutation(k, 5)];
    const { program } = traceFlat(fn, [{ shape: [2], dtype: 'u32' }]);
    expect(program.eqns.some((e) => e.prim === 'random_bits')).toBe(true);
    const k = random.key(77);
    const traced = evalProgram(program, [k]);
    const eager = fn(k);
    traced.forEach((t, i) => expect(list(t)).toEqual(list(eager[i]!)));
  });

  it('split inside a trace gives the same keys', () => {
    const { program } = traceFlat((k) => [random.split(k, 3)], [{ shape: [2], dtype: 'u32' }]);
    expect(evalProgram(program, [random.key(0)])[0]!.tolist()).toEqual(random.split(random.key(0), 3).tolist());
  });
});

describe('argument errors', () => {
  const expectOpError = (f: () => unknown, re: RegExp) => {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OpError);
    expect((err as Error).message).toMatch(re);
  };

  it('names the function and the problem', () => {
    expectOpError(() => random.key(1.5), /random\.key: seed must be an integer/);
    expectOpError(() => random.key('3' as unknown as number), /random\.key/);
    expectOpError(() => random.split(ops.tensor([1, 2]), 2), /random\.split: key must be u32\[2\].*f32\[2\]/);
    expectOpError(() => random.split(ops.tensor([1, 2, 3], { dtype: 'u32' })), /random\.split: key.*u32\[3\]/);
    expectOpError(() => random.split(random.key(0), -1), /random\.split: num/);
    expectOpError(() => random.uniform(random.key(0), [-1]), /random\.uniform: invalid shape/);
    expectOpError(() => random.uniform(random.key(0), [2], { dtype: 'i32' as 'f32' }), /random\.uniform: dtype/);
    expectOpError(() => random.uniform(random.key(0), [2], { minval: ops.zeros([3]) }), /random\.uniform: minval.*\[3\].*\[2\]/);
    expectOpError(() => random.normal(undefined as unknown as Tensor, [2]), /random\.normal: key/);
    expectOpError(() => random.truncatedNormal(random.key(0), 1, -1, [2]), /random\.truncatedNormal: lower/);
    expectOpError(() => random.bernoulli(random.key(0), ops.tensor([0.1, 0.2]), [3]), /random\.bernoulli: p/);
    expectOpError(() => random.permutation(random.key(0), 2.5), /random\.permutation: n/);
    expectOpError(() => random.foldIn(random.key(0), 0.5), /random\.foldIn: data/);
  });

  it('the random_bits shape rule checks the key and counter', () => {
    expectOpError(() => bind1('random_bits', [ops.tensor([1, 2], { dtype: 'i32' }), ops.zeros([3], 'u32')], {}), /random_bits: key must be u32\[2\], got i32\[2\]/);
    expectOpError(() => bind1('random_bits', [random.key(0), ops.zeros([3], 'f32')], {}), /random_bits: counter must be a u32 tensor, got f32\[3\]/);
    const r = bind1('random_bits', [random.key(0), ops.reshape(ops.iota([4], 0, 'u32'), [2, 2])], {});
    expect(r.shape).toEqual([2, 2]);
    expect(list(r)).toEqual([4146024105, 967050713, 2718843009, 1272950319]);
  });
});
