/**
 * Threefry-2x32 (20 rounds), the counter-based hash behind JAX's default PRNG, as pure host
 * functions on 32-bit words. Bit-exact with jax._src.prng.threefry_2x32 (the original,
 * non-partitionable scheme, `jax_threefry_partitionable=False`).
 *
 * All arithmetic is on int32 values (`| 0`, `Math.imul`-free since Threefry only adds, rotates and
 * xors); results are stored in Uint32Arrays, which reinterpret the bits as unsigned.
 *
 * Reference: Salmon, Moraes, Dror, Shaw, "Parallel Random Numbers: As Easy as 1, 2, 3" (SC'11).
 */

/** The Skein key-schedule parity constant. */
const KS_PARITY = 0x1bd11bda;

/**
 * Hashes the pairs (x0[i], x1[i]) for i < n in place: afterwards x0[i], x1[i] hold the two output
 * words of threefry2x32((k0, k1), (x0[i], x1[i])).
 */
function hashInPlace(k0: number, k1: number, x0: Uint32Array, x1: Uint32Array, n: number): void {
  const ks0 = k0 | 0;
  const ks1 = k1 | 0;
  const ks2 = (ks0 ^ ks1 ^ KS_PARITY) | 0;
  for (let i = 0; i < n; i++) {
    let a = (x0[i]! + ks0) | 0;
    let b = (x1[i]! + ks1) | 0;
    // rounds 1-4: rotations 13, 15, 26, 6
    a = (a + b) | 0; b = (b << 13) | (b >>> 19); b ^= a;
    a = (a + b) | 0; b = (b << 15) | (b >>> 17); b ^= a;
    a = (a + b) | 0; b = (b << 26) | (b >>> 6); b ^= a;
    a = (a + b) | 0; b = (b << 6) | (b >>> 26); b ^= a;
    a = (a + ks1) | 0;
    b = (b + ks2 + 1) | 0;
    // rounds 5-8: rotations 17, 29, 16, 24
    a = (a + b) | 0; b = (b << 17) | (b >>> 15); b ^= a;
    a = (a + b) | 0; b = (b << 29) | (b >>> 3); b ^= a;
    a = (a + b) | 0; b = (b << 16) | (b >>> 16); b ^= a;
    a = (a + b) | 0; b = (b << 24) | (b >>> 8); b ^= a;
    a = (a + ks2) | 0;
    b = (b + ks0 + 2) | 0;
    // rounds 9-12
    a = (a + b) | 0; b = (b << 13) | (b >>> 19); b ^= a;
    a = (a + b) | 0; b = (b << 15) | (b >>> 17); b ^= a;
    a = (a + b) | 0; b = (b << 26) | (b >>> 6); b ^= a;
    a = (a + b) | 0; b = (b << 6) | (b >>> 26); b ^= a;
    a = (a + ks0) | 0;
    b = (b + ks1 + 3) | 0;
    // rounds 13-16
    a = (a + b) | 0; b = (b << 17) | (b >>> 15); b ^= a;
    a = (a + b) | 0; b = (b << 29) | (b >>> 3); b ^= a;
    a = (a + b) | 0; b = (b << 16) | (b >>> 16); b ^= a;
    a = (a + b) | 0; b = (b << 24) | (b >>> 8); b ^= a;
    a = (a + ks1) | 0;
    b = (b + ks2 + 4) | 0;
    // rounds 17-20
    a = (a + b) | 0; b = (b << 13) | (b >>> 19); b ^= a;
    a = (a + b) | 0; b = (b << 15) | (b >>> 17); b ^= a;
    a = (a + b) | 0; b = (b << 26) | (b >>> 6); b ^= a;
    a = (a + b) | 0; b = (b << 6) | (b >>> 26); b ^= a;
    a = (a + ks2) | 0;
    b = (b + ks0 + 5) | 0;
    x0[i] = a;
    x1[i] = b;
  }
}

/** One Threefry-2x32 block: the key (k0, k1) applied to the counter pair (x0, x1). */
export function threefry2x32Block(k0: number, k1: number, x0: number, x1: number): [number, number] {
  const a = Uint32Array.of(x0 >>> 0);
  const b = Uint32Array.of(x1 >>> 0);
  hashInPlace(k0, k1, a, b, 1);
  return [a[0]!, b[0]!];
}

/**
 * JAX's `threefry_2x32(keypair, count)` on a flat array of counters: an odd-length input is padded
 * with one zero, the words are split into a first half x0 and a second half x1, the pairs
 * (x0[i], x1[i]) are hashed, and the result is concat(out0, out1) truncated to the input length.
 */
export function threefryHash(k0: number, k1: number, counts: Uint32Array): Uint32Array {
  const n = counts.length;
  const half = (n + 1) >>> 1;
  const x0 = counts.slice(0, half);
  const x1 = new Uint32Array(half); // the padding word (odd n) stays 0
  x1.set(counts.subarray(half));
  hashInPlace(k0, k1, x0, x1, half);
  const out = new Uint32Array(n);
  out.set(x0);
  out.set(x1.subarray(0, n - half), half);
  return out;
}
