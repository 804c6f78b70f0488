/**
 * Host-side randomness for the data pipeline, from the same Threefry-2x32 as `ng.random`: keys
 * are [hi, lo] u32 pairs, `hostKey(seed)` and `hostFoldIn` are bit-exact with `random.key` and
 * `random.foldIn`, and `hostPermutation` is bit-exact with `random.permutation` (JAX's sort-based
 * shuffle). Everything is a pure function of the key, so a loader can recompute any batch's
 * draws from (seed, epoch, batch, position) without replaying a stream.
 */
import { threefry2x32Block, threefryHash } from '../../ir/threefry.js';

export type HostKey = readonly [number, number];

const TWO_32 = 4294967296;

/** random.key(seed): [floor(seed / 2^32), seed mod 2^32] for seeds >= 0; [0, seed mod 2^32] for negative ones (JAX's). */
export function hostKey(seed: number): HostKey {
  return [seed >= 0 ? Math.floor(seed / TWO_32) : 0, ((seed % TWO_32) + TWO_32) % TWO_32];
}

/** random.foldIn(key, data): Threefry of the counter pair (0, data). */
export function hostFoldIn(key: HostKey, data: number): HostKey {
  return threefry2x32Block(key[0], key[1], 0, ((data % TWO_32) + TWO_32) % TWO_32);
}

/** Folds several integers in turn. */
export function hostFoldPath(key: HostKey, ...path: number[]): HostKey {
  let k = key;
  for (const d of path) k = hostFoldIn(k, d);
  return k;
}

function iota(n: number): Uint32Array {
  const c = new Uint32Array(n);
  for (let i = 0; i < n; i++) c[i] = i;
  return c;
}

/** random.bits(key, [n]): Threefry of the counters 0..n-1. */
export function hostBits(key: HostKey, n: number): Uint32Array {
  return threefryHash(key[0], key[1], iota(n));
}

/** Indices 0..n-1 stably sorted by `keys`. */
function stableArgsort(keys: Uint32Array): Uint32Array {
  const idx = iota(keys.length);
  idx.sort((a, b) => keys[a]! - keys[b]! || a - b);
  return idx;
}

/**
 * random.permutation(key, n): ceil(3 ln n / ln(2^32 - 1)) rounds, each splitting the key into
 * (next key, subkey), drawing n sort keys from the subkey and stably sorting by them.
 */
export function hostPermutation(key: HostKey, n: number): Int32Array {
  const rounds = Math.ceil((3 * Math.log(Math.max(1, n))) / Math.log(TWO_32 - 1));
  let k: HostKey = key;
  let x: Int32Array | null = null;
  for (let r = 0; r < rounds; r++) {
    const words = hostBits(k, 4); // split(k, 2): rows [w0, w1] and [w2, w3]
    k = [words[0]!, words[1]!];
    const order = stableArgsort(hostBits([words[2]!, words[3]!], n));
    const prev: Int32Array | null = x;
    x = prev === null ? Int32Array.from(order) : Int32Array.from(order, (o) => prev[o]!);
  }
  return x ?? Int32Array.from(iota(n));
}

/**
 * A stream of uniform draws under one key: draw j is Threefry of the counter pair (1, j) (the
 * high word 1 keeps it apart from foldIn's (0, data)), its two words making 53 random bits.
 */
export class HostStream {
  private counter = 0;
  constructor(private readonly key: HostKey) {}

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const [a, b] = threefry2x32Block(this.key[0], this.key[1], 1, this.counter++);
    return (a >>> 5) * 67108864 * 2 ** -53 + (b >>> 6) * 2 ** -53;
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** An integer in [lo, hi) (hi > lo). */
  int(lo: number, hi: number): number {
    return Math.min(hi - 1, lo + Math.floor((hi - lo) * this.uniform()));
  }

  /** Standard normal (Box-Muller; 1 - u keeps the log finite). */
  normal(): number {
    const u1 = 1 - this.uniform();
    const u2 = this.uniform();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Gamma(shape, 1) by Marsaglia and Tsang; shape < 1 via Gamma(shape + 1) * U^(1/shape). */
  gamma(shape: number): number {
    if (shape < 1) {
      const g = this.gamma(shape + 1);
      return g * Math.pow(1 - this.uniform(), 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const z = this.normal();
      const v0 = 1 + c * z;
      if (v0 <= 0) continue;
      const v = v0 * v0 * v0;
      const u = 1 - this.uniform();
      if (Math.log(u) < 0.5 * z * z + d - d * v + d * Math.log(v)) return d * v;
    }
  }

  /** Beta(a, b) as G_a / (G_a + G_b). */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const y = this.gamma(b);
    return x + y > 0 ? x / (x + y) : 0.5;
  }
}
