/**
 * The `random` API: counter-based Threefry-2x32 keys, bit-exact with JAX's default PRNG
 * (`jax.random` with `jax_threefry_partitionable=False` and `jax_enable_x64=False`).
 *
 * A key is a u32[2] tensor; functions also accept a batch of keys u32[..., 2] and then return one
 * result per key, stacked in front of the requested shape. Everything here is built from the
 * `random_bits` primitive (Threefry of a counter) and ordinary ops, so it traces into programs
 * and runs identically on every backend.
 *
 * Matches JAX bit for bit: key, split, foldIn, bits, uniform (f32, f64, f16, bf16), bernoulli and
 * permutation. normal and truncatedNormal follow JAX's recipe and XLA's erf_inv polynomial
 * exactly; their values agree with JAX to within an ulp or two (they depend on the backend's log1p,
 * sqrt and erf, which are not correctly rounded anywhere).
 */
import { castScalar } from './dtype.js';
import { OpError } from './errors.js';
import * as ops from './ops.js';
import { broadcastShapes, fmtShape, type Shape, shapeProblem, sizeOf } from './shape.js';
import { Tensor } from './tensor.js';
import { bind1 } from './trace.js';
import { region } from './functional.js';

export type FloatDType = 'f32' | 'f64' | 'f16' | 'bf16';

interface FloatFormat {
  /** Explicit mantissa bits. */
  readonly mant: number;
  /** Smallest normal exponent. */
  readonly emin: number;
  readonly emax: number;
}

const FORMATS: Readonly<Record<FloatDType, FloatFormat>> = {
  f32: { mant: 23, emin: -126, emax: 127 },
  f64: { mant: 52, emin: -1022, emax: 1023 },
  f16: { mant: 10, emin: -14, emax: 15 },
  bf16: { mant: 7, emin: -126, emax: 127 },
};

// ---------------------------------------------------------------------------------------
// argument checks

function describe(x: unknown): string {
  if (x instanceof Tensor) return `${x.dtype}${fmtShape(x.shape)}`;
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  return typeof x === 'number' ? String(x) : typeof x;
}

function requireKey(op: string, key: unknown): Tensor {
  if (!(key instanceof Tensor)) {
    throw new OpError(op, `key must be a u32[2] tensor (from random.key or random.split), got ${describe(key)}`);
  }
  if (key.dtype !== 'u32' || key.ndim < 1 || key.shape[key.ndim - 1] !== 2) {
    throw new OpError(op, `key must be u32[2] or a batch of keys u32[...,2], got ${key.dtype}${fmtShape(key.shape)}`);
  }
  return key;
}

function requireShape(op: string, shape: unknown): number[] {
  const why = shapeProblem(shape);
  if (why !== undefined) throw new OpError(op, `invalid shape ${JSON.stringify(shape) ?? typeof shape}: ${why}`);
  return [...(shape as number[])];
}

function requireCount(op: string, what: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new OpError(op, `${what} must be a non-negative integer, got ${describe(n)}`);
  }
  return n;
}

function requireFloatDType(op: string, dtype: unknown): FloatDType {
  if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(FORMATS, dtype)) {
    throw new OpError(op, `dtype must be one of f32, f64, f16, bf16, got ${JSON.stringify(dtype)}`);
  }
  return dtype as FloatDType;
}

function requireNumber(op: string, what: string, x: unknown): number {
  if (typeof x !== 'number' || Number.isNaN(x)) throw new OpError(op, `${what} must be a number, got ${describe(x)}`);
  return x;
}

/** A number or a float tensor, as a value of `dtype` (JAX's convert_element_type). */
type Bound = number | Tensor;

function requireBound(op: string, what: string, x: unknown): Bound {
  if (x instanceof Tensor) {
    if (x.dtype === 'bool' || x.dtype === 'i32' || x.dtype === 'u32') {
      throw new OpError(op, `${what} must be a number or a float tensor, got ${describe(x)}`);
    }
    return x;
  }
  return requireNumber(op, what, x);
}

/**
 * Applies `f` to each key of a key batch u32[..., 2] and stacks the results in front; a single key
 * u32[2] is passed straight through.
 */
function mapKeys(key: Tensor, f: (k: Tensor) => Tensor): Tensor {
  if (key.ndim === 1) return f(key);
  const batch = key.shape.slice(0, -1);
  const nb = sizeOf(batch);
  if (nb === 0) {
    const probe = f(ops.zeros([2], 'u32'));
    return ops.zeros([...batch, ...probe.shape], probe.dtype);
  }
  const flat = ops.reshape(key, [nb, 2]);
  const outs: Tensor[] = [];
  for (let i = 0; i < nb; i++) outs.push(f(keyRow(flat, i)));
  const r = ops.stack(outs, 0);
  return ops.reshape(r, [...batch, ...outs[0]!.shape]);
}

/**
 * A random draw as one named region (`random.uniform`, ...): eager execution runs it as one fused
 * program, exactly as jit computes it, so a draw has the same bits inside and outside jit.
 */
function draw(op: string, key: Tensor, f: (k: Tensor) => Tensor): Tensor {
  return region(op, (k: Tensor) => mapKeys(k, f))(key);
}

function keyRow(keys: Tensor, i: number): Tensor {
  return ops.reshape(ops.slice(keys, [i, 0], [i + 1, 2]), [2]);
}

// ---------------------------------------------------------------------------------------
// host helpers

/**
 * The next value of `dtype` after x in the direction of `toward` (numpy.nextafter in that dtype).
 * x is first rounded to `dtype`.
 */
export function nextAfter(x: number, toward: number, dtype: FloatDType = 'f32'): number {
  const f = FORMATS[dtype];
  x = castScalar(x, dtype);
  if (Number.isNaN(x) || Number.isNaN(toward)) return NaN;
  if (x === toward) return castScalar(toward, dtype);
  const up = toward > x;
  if (x === 0) return (up ? 1 : -1) * 2 ** (f.emin - f.mant);
  const maxFinite = (2 - 2 ** -f.mant) * 2 ** f.emax;
  if (!Number.isFinite(x)) return Math.sign(x) * maxFinite; // toward is finite-side here
  const a = Math.abs(x);
  const away = x > 0 === up;
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, f.emin) - f.mant);
  let r: number;
  if (away) r = a >= maxFinite ? Infinity : a + ulp;
  else r = a === 2 ** e && e > f.emin ? a - ulp / 2 : a - ulp;
  return Math.sign(x) * r;
}

// ---------------------------------------------------------------------------------------
// keys

/**
 * A key from an integer seed, as jax.random.PRNGKey(seed) / key_data(jax.random.key(seed)).
 * JAX's threefry_seed makes [seed >> 32, seed & 0xFFFFFFFF] from the seed's integer bits, so:
 * - a non-negative seed (any safe JS integer, up to 2^53 - 1) gives [floor(seed / 2^32),
 *   seed mod 2^32], JAX's value with 64-bit seeds (jax_enable_x64): key(2**32) is [1, 0], not
 *   key(0), and key(Date.now()) keeps every bit;
 * - a negative seed gives [0, seed mod 2^32], JAX's value with its default 32-bit integers
 *   (key(-1) is [0, 4294967295]), unchanged from earlier nexgrad versions.
 * Non-integers, NaN, infinities and integers beyond +-(2^53 - 1) (which a JS number cannot hold
 * exactly) are refused.
 */
export function key(seed: number): Tensor {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new OpError('random.key', `seed must be an integer within +-(2^53 - 1), got ${describe(seed)}`);
  }
  const TWO_32 = 4294967296;
  const lo = ((seed % TWO_32) + TWO_32) % TWO_32;
  const hi = seed >= 0 ? Math.floor(seed / TWO_32) : 0;
  return ops.tensor([hi, lo], { dtype: 'u32' });
}

/** Threefry of the counters 0..n-1 under one key: u32[n]. */
function hashIota(k: Tensor, n: number): Tensor {
  return bind1('random_bits', [k, ops.iota([n], 0, 'u32')], {});
}

function split1(k: Tensor, num: number): Tensor {
  return ops.reshape(hashIota(k, 2 * num), [num, 2]);
}

/** `num` new keys u32[num, 2] from a key (jax.random.split, non-partitionable Threefry). */
export function split(key: Tensor, num = 2): Tensor {
  const k = requireKey('random.split', key);
  const n = requireCount('random.split', 'num', num);
  return mapKeys(k, (k1) => split1(k1, n));
}

/**
 * A new key from a key and an integer (jax.random.fold_in): Threefry of the counter pair
 * (0, data). `data` is a number (taken modulo 2^32) or an integer scalar tensor (i32 values are
 * reinterpreted as u32).
 */
export function foldIn(key: Tensor, data: number | Tensor): Tensor {
  const k = requireKey('random.foldIn', key);
  let counter: Tensor;
  if (data instanceof Tensor) {
    if ((data.dtype !== 'i32' && data.dtype !== 'u32') || data.size !== 1) {
      throw new OpError('random.foldIn', `data must be an integer or an i32/u32 scalar tensor, got ${describe(data)}`);
    }
    counter = ops.concat([ops.zeros([1], 'u32'), ops.reshape(ops.cast(data, 'u32'), [1])], 0);
  } else {
    if (typeof data !== 'number' || !Number.isSafeInteger(data)) {
      throw new OpError('random.foldIn', `data must be an integer, got ${describe(data)}`);
    }
    counter = ops.tensor([0, ((data % 4294967296) + 4294967296) % 4294967296], { dtype: 'u32' });
  }
  return mapKeys(k, (k1) => bind1('random_bits', [k1, counter], {}));
}

// ---------------------------------------------------------------------------------------
// bits

/**
 * JAX's `_random_bits(key, width, shape)` for width 8, 16 or 32, each value held in a u32: the
 * 32-bit words Threefry(key, 0..ceil(width*size/32)-1), viewed as little-endian `width`-bit
 * lanes, first `size` lanes.
 */
function bitsOfWidth(k: Tensor, width: 8 | 16 | 32, shape: Shape): Tensor {
  const n = sizeOf(shape);
  if (n === 0) return ops.zeros(shape, 'u32');
  if (width === 32) return ops.reshape(hashIota(k, n), shape);
  const lanes = 32 / width;
  const words = hashIota(k, Math.ceil(n / lanes));
  const mask = width === 16 ? 0xffff : 0xff;
  const parts: Tensor[] = [];
  for (let j = 0; j < lanes; j++) parts.push(ops.logicalAnd(j === 0 ? words : ops.shiftRightLogical(words, width * j), mask));
  const flat = ops.reshape(ops.stack(parts, 1), [-1]);
  return ops.reshape(ops.slice(flat, [0], [n]), shape);
}

/** @internal JAX's random bits of width 8, 16 or 32 for one key u32[2], values held in u32. */
export function _bitsOfWidth(key: Tensor, width: 8 | 16 | 32, shape: readonly number[]): Tensor {
  const k = requireKey('random.bits', key);
  if (width !== 8 && width !== 16 && width !== 32) throw new OpError('random.bits', `width must be 8, 16 or 32, got ${String(width)}`);
  const s = requireShape('random.bits', shape);
  return mapKeys(k, (k1) => bitsOfWidth(k1, width, s));
}

/** Uniformly random u32 words of the given shape (jax.random.bits with dtype uint32). */
export function bits(key: Tensor, shape: readonly number[] = []): Tensor {
  const k = requireKey('random.bits', key);
  const s = requireShape('random.bits', shape);
  return mapKeys(k, (k1) => bitsOfWidth(k1, 32, s));
}

// ---------------------------------------------------------------------------------------
// uniform

/**
 * Floats uniform in [0, 1) on the grid of the dtype's mantissa: JAX builds them as
 * bitcast((bits >> (nbits - nmant)) | bits(1.0)) - 1, which is exactly (bits >> shift) * 2^-nmant;
 * we compute the latter, which needs no bitcast.
 */
function unitFloats(k: Tensor, shape: Shape, dtype: FloatDType): Tensor {
  switch (dtype) {
    case 'f32':
      return ops.mul(ops.cast(ops.shiftRightLogical(bitsOfWidth(k, 32, shape), 9), 'f32'), 2 ** -23);
    case 'f16':
      return ops.mul(ops.cast(ops.shiftRightLogical(bitsOfWidth(k, 16, shape), 6), 'f16'), 2 ** -10);
    case 'bf16':
      // JAX draws 8 bits when the mantissa has fewer than 8 (bf16: 7).
      return ops.mul(ops.cast(ops.shiftRightLogical(bitsOfWidth(k, 8, shape), 1), 'bf16'), 2 ** -7);
    case 'f64': {
      // 64-bit words (hi = even word, lo = odd word); (hi:lo >> 12) * 2^-52 is
      // hi * 2^-32 + (lo >> 12) * 2^-52, exact in f64.
      const n = sizeOf(shape);
      if (n === 0) return ops.zeros(shape, 'f64');
      const w = ops.reshape(hashIota(k, 2 * n), [n, 2]);
      const hi = ops.reshape(ops.slice(w, [0, 0], [n, 1]), shape);
      const lo = ops.reshape(ops.slice(w, [0, 1], [n, 2]), shape);
      return ops.add(
        ops.mul(ops.cast(hi, 'f64'), 2 ** -32),
        ops.mul(ops.cast(ops.shiftRightLogical(lo, 12), 'f64'), 2 ** -52),
      );
    }
  }
}

function boundTensor(b: Bound, dtype: FloatDType): Tensor {
  return b instanceof Tensor ? ops.cast(b, dtype) : ops.scalar(b, dtype);
}

function uniform1(op: string, k: Tensor, shape: number[], dtype: FloatDType, minval: Bound, maxval: Bound): Tensor {
  const floats = unitFloats(k, shape, dtype);
  if (typeof minval === 'number' && typeof maxval === 'number') {
    // floats * (maxval - minval) + minval, then max(minval, .), all in `dtype`; the constants are
    // folded on the host, rounded to `dtype` as the device would round them. Multiplying by 1,
    // adding 0 and max(0, .) of a non-negative value are identities, so they are skipped.
    const lo = castScalar(minval, dtype);
    const range = castScalar(castScalar(maxval, dtype) - lo, dtype);
    let r = floats;
    if (range !== 1) r = ops.mul(r, range);
    if (lo !== 0) r = ops.add(r, lo);
    if (lo !== 0 || !(range >= 0)) r = ops.maximum(lo, r);
    return r;
  }
  const lo = boundTensor(minval, dtype);
  const hi = boundTensor(maxval, dtype);
  for (const [what, b] of [['minval', lo], ['maxval', hi]] as const) {
    const s = broadcastShapes(b.shape, shape);
    if (!s || s.length !== shape.length || s.some((d, i) => d !== shape[i])) {
      throw new OpError(op, `${what} of shape ${fmtShape(b.shape)} does not broadcast to the sample shape ${fmtShape(shape)}`);
    }
  }
  return ops.maximum(lo, ops.add(ops.mul(floats, ops.sub(hi, lo)), lo));
}

export interface UniformOptions {
  dtype?: FloatDType;
  /** Inclusive lower bound (default 0): a number or a tensor broadcastable to the shape. */
  minval?: number | Tensor;
  /** Exclusive upper bound (default 1). */
  maxval?: number | Tensor;
}

/**
 * Uniform floats in [minval, maxval) (jax.random.uniform). Bit-exact with JAX for f32, f16 and
 * bf16, and for f64 with JAX's x64 mode (64 random bits per value).
 */
export function uniform(key: Tensor, shape: readonly number[] = [], opts: UniformOptions = {}): Tensor {
  const op = 'random.uniform';
  const k = requireKey(op, key);
  const s = requireShape(op, shape);
  const dtype = requireFloatDType(op, opts.dtype ?? 'f32');
  const minval = requireBound(op, 'minval', opts.minval ?? 0);
  const maxval = requireBound(op, 'maxval', opts.maxval ?? 1);
  return draw(op, k, (k1) => uniform1(op, k1, s, dtype, minval, maxval));
}

// ---------------------------------------------------------------------------------------
// erfinv

// Giles, "Approximating the erfinv function" (GPU Computing Gems), as in XLA's ErfInv32/ErfInv64.
const ERFINV32_W_LT_5 = [
  2.81022636e-8, 3.43273939e-7, -3.5233877e-6, -4.39150654e-6, 0.00021858087, -0.00125372503, -0.00417768164, 0.246640727,
  1.50140941,
];
const ERFINV32_W_GE_5 = [
  -0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613, 0.00943887047, 1.00167406,
  2.83297682,
];
const ERFINV64_W_LT_6_25 = [
  -3.6444120640178196996e-21, -1.685059138182016589e-19, 1.2858480715256400167e-18, 1.115787767802518096e-17,
  -1.333171662854620906e-16, 2.0972767875968561637e-17, 6.6376381343583238325e-15, -4.0545662729752068639e-14,
  -8.1519341976054721522e-14, 2.6335093153082322977e-12, -1.2975133253453532498e-11, -5.4154120542946279317e-11,
  1.051212273321532285e-9, -4.1126339803469836976e-9, -2.9070369957882005086e-8, 4.2347877827932403518e-7,
  -1.3654692000834678645e-6, -1.3882523362786468719e-5, 0.0001867342080340571352, -0.00074070253416626697512,
  -0.0060336708714301490533, 0.24015818242558961693, 1.6536545626831027356,
];
const ERFINV64_W_LT_16 = [
  2.2137376921775787049e-9, 9.0756561938885390979e-8, -2.7517406297064545428e-7, 1.8239629214389227755e-8,
  1.5027403968909827627e-6, -4.013867526981545969e-6, 2.9234449089955446044e-6, 1.2475304481671778723e-5,
  -4.7318229009055733981e-5, 6.8284851459573175448e-5, 2.4031110387097893999e-5, -0.0003550375203628474796,
  0.00095328937973738049703, -0.0016882755560235047313, 0.0024914420961078508066, -0.0037512085075692412107,
  0.005370914553590063617, 1.0052589676941592334, 3.0838856104922207635,
];
const ERFINV64_W_GE_16 = [
  -2.7109920616438573243e-11, -2.5556418169965252055e-10, 1.5076572693500548083e-9, -3.7894654401267369937e-9,
  7.6157012080783393804e-9, -1.4960026627149240478e-8, 2.9147953450901080826e-8, -6.7711997758452339498e-8,
  2.2900482228026654717e-7, -9.9298272942317002539e-7, 4.5260625972231537039e-6, -1.9681778105531670567e-5,
  7.5995277030017761139e-5, -0.00021503011930044477347, -0.00013871931833623122026, 1.0103004648645343977,
  4.8499064014085844221,
];

/** c[0] w^(n-1) + ... + c[n-1] by Horner's rule, as p = c[i] + p * w. */
function horner(c: readonly number[], w: Tensor): Tensor {
  let p = ops.add(ops.mul(w, c[0]!), c[1]!);
  for (let i = 2; i < c.length; i++) p = ops.add(ops.mul(p, w), c[i]!);
  return p;
}

/** result, except ±inf where |x| == 1. */
function erfinvEdges(x: Tensor, result: Tensor): Tensor {
  return ops.where(ops.equal(ops.abs(x), 1), ops.mul(x, Infinity), result);
}

function erfinv32(x: Tensor): Tensor {
  const w = ops.neg(ops.log1p(ops.neg(ops.mul(x, x))));
  const p = ops.where(
    ops.less(w, 5),
    horner(ERFINV32_W_LT_5, ops.sub(w, 2.5)),
    horner(ERFINV32_W_GE_5, ops.sub(ops.sqrt(w), 3)),
  );
  return erfinvEdges(x, ops.mul(p, x));
}

function erfinv64(x: Tensor): Tensor {
  const w = ops.neg(ops.log1p(ops.neg(ops.mul(x, x))));
  const sw = ops.sqrt(w);
  const p = ops.where(
    ops.less(w, 6.25),
    horner(ERFINV64_W_LT_6_25, ops.sub(w, 3.125)),
    ops.where(ops.less(w, 16), horner(ERFINV64_W_LT_16, ops.sub(sw, 3.25)), horner(ERFINV64_W_GE_16, ops.sub(sw, 5))),
  );
  return erfinvEdges(x, ops.mul(p, x));
}

/**
 * The inverse error function, elementwise, as a composite of ops: XLA's ErfInv (Giles' single-
 * precision polynomial for f32, computed in f32 for f16/bf16; his double-precision one for f64).
 * erfinv(±1) = ±inf; NaN outside [-1, 1].
 */
export function erfinv(x: Tensor): Tensor {
  if (!(x instanceof Tensor)) throw new OpError('erfinv', `expected a float tensor, got ${describe(x)}`);
  switch (x.dtype) {
    case 'f32':
      return erfinv32(x);
    case 'f64':
      return erfinv64(x);
    case 'f16':
    case 'bf16':
      return ops.cast(erfinv32(ops.cast(x, 'f32')), x.dtype);
    default:
      throw new OpError('erfinv', `expected a floating-point tensor, got ${describe(x)}`);
  }
}

// ---------------------------------------------------------------------------------------
// normal, truncated normal

export interface NormalOptions {
  dtype?: FloatDType;
  mean?: number;
  std?: number;
}

/**
 * Standard normal samples (jax.random.normal): sqrt(2) * erfinv(u) with u uniform in
 * [nextafter(-1, 0), 1); then * std + mean when those are given.
 */
export function normal(key: Tensor, shape: readonly number[] = [], opts: NormalOptions = {}): Tensor {
  const op = 'random.normal';
  const k = requireKey(op, key);
  const s = requireShape(op, shape);
  const dtype = requireFloatDType(op, opts.dtype ?? 'f32');
  const mean = requireNumber(op, 'mean', opts.mean ?? 0);
  const std = requireNumber(op, 'std', opts.std ?? 1);
  const lo = nextAfter(-1, 0, dtype);
  return draw(op, k, (k1) => {
    let r = ops.mul(erfinv(uniform1(op, k1, s, dtype, lo, 1)), castScalar(Math.SQRT2, dtype));
    if (std !== 1) r = ops.mul(r, std);
    if (mean !== 0) r = ops.add(r, mean);
    return r;
  });
}

export interface TruncatedNormalOptions {
  dtype?: FloatDType;
}

/**
 * Standard normal samples truncated to the open interval (lower, upper)
 * (jax.random.truncated_normal): sqrt(2) * erfinv(u) with u uniform between erf(lower/sqrt2) and
 * erf(upper/sqrt2), clamped to [nextafter(lower, +inf), nextafter(upper, -inf)]. `shape` defaults
 * to [].
 */
export function truncatedNormal(
  key: Tensor,
  lower: number,
  upper: number,
  shape: readonly number[] = [],
  opts: TruncatedNormalOptions = {},
): Tensor {
  const op = 'random.truncatedNormal';
  const k = requireKey(op, key);
  const lowerN = requireNumber(op, 'lower', lower);
  const upperN = requireNumber(op, 'upper', upper);
  const s = requireShape(op, shape);
  const dtype = requireFloatDType(op, opts.dtype ?? 'f32');
  const lo = castScalar(lowerN, dtype);
  const hi = castScalar(upperN, dtype);
  if (!(lo < hi)) throw new OpError(op, `lower (${lowerN}) must be less than upper (${upperN}) in ${dtype}`);
  const sqrt2 = castScalar(Math.SQRT2, dtype);
  const clampLo = nextAfter(lo, Infinity, dtype);
  const clampHi = nextAfter(hi, -Infinity, dtype);
  return draw(op, k, (k1) => {
    const a = ops.erf(ops.div(ops.scalar(lo, dtype), sqrt2));
    const b = ops.erf(ops.div(ops.scalar(hi, dtype), sqrt2));
    const out = ops.mul(erfinv(uniform1(op, k1, s, dtype, a, b)), sqrt2);
    return ops.minimum(ops.maximum(out, clampLo), clampHi);
  });
}

// ---------------------------------------------------------------------------------------
// bernoulli, permutation

/**
 * Booleans that are true with probability p (jax.random.bernoulli): uniform(key, shape, p's
 * dtype) < p. p is a number (f32) or a float tensor; `shape` defaults to p's shape.
 */
export function bernoulli(key: Tensor, p: number | Tensor = 0.5, shape?: readonly number[]): Tensor {
  const op = 'random.bernoulli';
  const k = requireKey(op, key);
  const prob = requireBound(op, 'p', p);
  const dtype: FloatDType = prob instanceof Tensor ? requireFloatDType(op, prob.dtype) : 'f32';
  const pShape = prob instanceof Tensor ? prob.shape : [];
  const s = shape === undefined ? [...pShape] : requireShape(op, shape);
  const b = broadcastShapes(pShape, s);
  if (!b || b.length !== s.length || b.some((d, i) => d !== s[i])) {
    throw new OpError(op, `p of shape ${fmtShape(pShape)} does not broadcast to the sample shape ${fmtShape(s)}`);
  }
  return draw(op, k, (k1) => ops.less(uniform1(op, k1, s, dtype, 0, 1), prob));
}

/**
 * JAX's `_shuffle` of arange(n): ceil(3 ln(n) / ln(2^32 - 1)) rounds, each splitting the key,
 * drawing 32-bit sort keys from the second half and stably sorting by them.
 */
function permutationIndices(k: Tensor, n: number): Tensor {
  const rounds = Math.ceil((3 * Math.log(Math.max(1, n))) / Math.log(4294967295));
  let x: Tensor | null = null;
  for (let r = 0; r < rounds; r++) {
    const keys = split1(k, 2);
    k = keyRow(keys, 0);
    const order = ops.argsort(bitsOfWidth(keyRow(keys, 1), 32, [n]), 0);
    x = x === null ? order : ops.take(x, order, 0);
  }
  return x ?? ops.iota([n], 0, 'i32');
}

/**
 * A random permutation (jax.random.permutation): of arange(n) as i32[n] when given a number, or
 * of a tensor's slices along `axis`. Bit-exact with JAX: the same rounds of stable sorts by
 * Threefry bits (via argsort) that JAX's sort-based shuffle performs.
 */
export function permutation(key: Tensor, x: number | Tensor, axis = 0): Tensor {
  const op = 'random.permutation';
  const k = requireKey(op, key);
  if (x instanceof Tensor) {
    if (x.ndim === 0) throw new OpError(op, `x must be an integer or a tensor with at least one axis, got ${describe(x)}`);
    const a = ops.normAxis(op, axis, x.ndim, x.shape);
    return mapKeys(k, (k1) => ops.take(x, permutationIndices(k1, x.shape[a]!), a));
  }
  const n = requireCount(op, 'n', x);
  if (n > 0x7fffffff) throw new OpError(op, `n = ${n} does not fit in i32 indices`);
  return mapKeys(k, (k1) => permutationIndices(k1, n));
}
