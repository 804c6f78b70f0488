/**
 * Host arrays <-> the bytes of WGSL storage buffers: f32 and bf16 as f32, f16 as IEEE half
 * where the device has shader-f16 (else as f32), i32, u32, bool as a u32 word (0/1). f64 has no
 * WGSL storage and is refused naming the array.
 */
import { castScalar, type DType, roundF16 } from '../../ir/dtype.js';
import { HostArray } from '../../ir/host.js';
import type { Shape } from '../../ir/shape.js';
import { f64Error } from './dialect.js';

/** Bytes per element in a storage buffer. */
export function storageBytes(dtype: DType, f16: boolean): number {
  if (dtype === 'f64') throw f64Error('an array');
  return dtype === 'f16' && f16 ? 2 : 4;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of a number (rounded to nearest even, overflow to infinity, NaN kept). */
export function halfBits(x: number): number {
  const r = roundF16(x);
  f32[0] = r;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  if (r === 0) return sign;
  const e = exp - 127;
  if (e < -14) return sign | Math.round(Math.abs(r) * 2 ** 24); // subnormal: r is a multiple of 2^-24
  return sign | ((e + 15) << 10) | (mant >>> 13);
}

/** The number IEEE half bits stand for. */
export function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** The storage bytes of a host array. */
export function toStorage(a: HostArray, f16: boolean): ArrayBufferView {
  const d = a.data;
  switch (a.dtype) {
    case 'f32':
    case 'bf16':
      return d instanceof Float32Array ? d : Float32Array.from(d, (v) => castScalar(v, a.dtype));
    case 'f16':
      if (f16) return Uint16Array.from(d, halfBits);
      return d instanceof Float32Array ? d : Float32Array.from(d, (v) => castScalar(v, 'f16'));
    case 'i32':
      return d instanceof Int32Array ? d : Int32Array.from(d);
    case 'u32':
      return d instanceof Uint32Array ? d : Uint32Array.from(d);
    case 'bool':
      return Uint32Array.from(d, (v) => (v !== 0 ? 1 : 0));
    case 'f64':
      throw f64Error('an array');
  }
}

/** A host array from storage bytes (copied into fresh host storage). */
export function fromStorage(bytes: ArrayBuffer, dtype: DType, shape: Shape, f16: boolean): HostArray {
  const n = shape.reduce((p, s) => p * s, 1);
  switch (dtype) {
    case 'f32':
    case 'bf16':
      return new HostArray(dtype, [...shape], new Float32Array(bytes, 0, n).slice());
    case 'f16':
      return new HostArray(dtype, [...shape], f16 ? Float32Array.from(new Uint16Array(bytes, 0, n), halfValue) : new Float32Array(bytes, 0, n).slice());
    case 'i32':
      return new HostArray(dtype, [...shape], new Int32Array(bytes, 0, n).slice());
    case 'u32':
      return new HostArray(dtype, [...shape], new Uint32Array(bytes, 0, n).slice());
    case 'bool':
      return new HostArray(dtype, [...shape], Uint8Array.from(new Uint32Array(bytes, 0, n), (v) => (v !== 0 ? 1 : 0)));
    case 'f64':
      throw f64Error('an array');
  }
}
