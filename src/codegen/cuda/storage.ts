/**
 * Host arrays <-> the bytes of CUDA buffers. Every dtype but f16 and bf16 is stored as its host
 * typed array is (bool as one byte); f16 and bf16, held on the host in float arrays, are stored
 * as their 16 bits (IEEE binary16, and the high half of the f32 bits), rounded to nearest even.
 */
import { type DType, roundBf16 } from '../../ir/dtype.js';
import { HostArray } from '../../ir/host.js';
import type { Shape } from '../../ir/shape.js';
import { CUDA_ELEMENT_BYTES } from './dialect.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds a non-negative number to an integer, ties to even. */
function roundEven(v: number): number {
  const r = Math.floor(v);
  const frac = v - r;
  return frac > 0.5 || (frac === 0.5 && r % 2 === 1) ? r + 1 : r;
}

/** The binary16 bits of a number, rounded from its f32 value to nearest even (as the device's cvt.rn). */
export function f16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  if (exp === 0xff) return sign | 0x7c00 | ((u & 0x7fffff) !== 0 ? 0x200 : 0);
  const a = Math.abs(f32[0]!);
  if (exp - 127 < -14) return sign | roundEven(a * 2 ** 24); // subnormal (reaching 0x400 is the smallest normal)
  let e = exp - 127;
  let m = roundEven(a * 2 ** (10 - e)); // in [1024, 2048]
  if (m === 2048) {
    m = 1024;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | (m - 1024);
}

/** The number a binary16 bit pattern holds. */
export function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** The bf16 bits of a number (its f32 rounded to nearest even; NaN stays NaN). */
export function bf16Bits(x: number): number {
  f32[0] = roundBf16(x);
  return u32[0]! >>> 16;
}

export function bf16Value(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

/** Bytes of `size` elements of `dtype` in a CUDA buffer. */
export const storageBytes = (dtype: DType, size: number): number => size * CUDA_ELEMENT_BYTES[dtype];

/** The bytes to upload for a host array (a view of its data where the layouts agree). */
export function toStorage(a: HostArray): ArrayBufferView {
  const d = a.data;
  switch (a.dtype) {
    case 'f16':
    case 'bf16': {
      const out = new Uint16Array(d.length);
      const bits = a.dtype === 'f16' ? f16Bits : bf16Bits;
      for (let i = 0; i < d.length; i++) out[i] = bits(d[i]!);
      return out;
    }
    case 'f32':
      return d instanceof Float32Array ? d : Float32Array.from(d);
    case 'f64':
      return d instanceof Float64Array ? d : Float64Array.from(d);
    case 'i32':
      return d instanceof Int32Array ? d : Int32Array.from(d);
    case 'u32':
      return d instanceof Uint32Array ? d : Uint32Array.from(d);
    case 'bool':
      return d instanceof Uint8Array ? d : Uint8Array.from(d, (v) => (v ? 1 : 0));
  }
}

/** A host staging array for reading a buffer of `dtype` (16-bit kinds as raw bits). */
export function stagingFor(dtype: DType, size: number): ArrayBufferView {
  switch (dtype) {
    case 'f16':
    case 'bf16':
      return new Uint16Array(size);
    case 'f32':
      return new Float32Array(size);
    case 'f64':
      return new Float64Array(size);
    case 'i32':
      return new Int32Array(size);
    case 'u32':
      return new Uint32Array(size);
    case 'bool':
      return new Uint8Array(size);
  }
}

/** The host array of a read-back staging array. */
export function fromStorage(dtype: DType, shape: Shape, staged: ArrayBufferView): HostArray {
  if (dtype === 'f16' || dtype === 'bf16') {
    const bits = staged as Uint16Array;
    const out = new Float32Array(bits.length);
    const value = dtype === 'f16' ? f16Value : bf16Value;
    for (let i = 0; i < bits.length; i++) out[i] = value(bits[i]!);
    return new HostArray(dtype, [...shape], out);
  }
  return new HostArray(dtype, [...shape], staged as HostArray['data']);
}
