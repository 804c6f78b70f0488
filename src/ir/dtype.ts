/** Element types and their host (typed-array) storage. */

export type DType = 'f32' | 'f64' | 'f16' | 'bf16' | 'i32' | 'u32' | 'bool';

export type DTypeKind = 'float' | 'int' | 'uint' | 'bool';

export interface DTypeInfo {
  readonly kind: DTypeKind;
  /** Bytes per element on devices (host storage may be wider, see hostArrayFor). */
  readonly bytes: number;
}

export const DTYPES: Readonly<Record<DType, DTypeInfo>> = Object.freeze({
  f32: { kind: 'float', bytes: 4 },
  f64: { kind: 'float', bytes: 8 },
  f16: { kind: 'float', bytes: 2 },
  bf16: { kind: 'float', bytes: 2 },
  i32: { kind: 'int', bytes: 4 },
  u32: { kind: 'uint', bytes: 4 },
  bool: { kind: 'bool', bytes: 1 },
});

export type HostData = Float64Array | Float32Array | Int32Array | Uint32Array | Uint8Array;

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, x);
}

export function isFloat(d: DType): boolean {
  return DTYPES[d].kind === 'float';
}


/**
 * Allocates host storage for `size` elements of `dtype`. f16 and bf16 are held in a
 * Float32Array (values rounded to their precision); `wide` stores every float in float64
 * (the reference interpreter's float64 mode).
 */
export function allocHost(dtype: DType, size: number, wide = false): HostData {
  switch (dtype) {
    case 'f64':
      return new Float64Array(size);
    case 'f32':
    case 'f16':
    case 'bf16':
      return wide ? new Float64Array(size) : new Float32Array(size);
    case 'i32':
      return new Int32Array(size);
    case 'u32':
      return new Uint32Array(size);
    case 'bool':
      return new Uint8Array(size);
  }
}

const f32buf = new Float32Array(1);
const u32view = new Uint32Array(f32buf.buffer);

/** Rounds a float to bfloat16 precision (round to nearest even), returned as a number. */
export function roundBf16(x: number): number {
  f32buf[0] = x;
  const u = u32view[0]!;
  if ((u & 0x7f800000) === 0x7f800000) return f32buf[0]!; // inf / nan
  const rounded = (u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000;
  u32view[0] = rounded >>> 0;
  return f32buf[0]!;
}

/** Rounds a float to IEEE half precision (round to nearest even), returned as a number. */
export function roundF16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return x > 0 ? Infinity : -Infinity;
  // Spacing of representable values around a: 2^(e-10) for normals, 2^-24 for subnormals.
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  const ulp = Math.pow(2, e - 10);
  const q = a / ulp;
  let r = Math.round(q);
  if (Math.abs(q - Math.trunc(q) - 0.5) < 1e-12 && r % 2 === 1) r -= 1; // ties to even
  return Math.sign(x) * r * ulp;
}

/** Converts a JS number to the value `dtype` can hold (wrapping integers as C casts do). */
export function castScalar(x: number, dtype: DType): number {
  switch (dtype) {
    case 'f64':
      return x;
    case 'f32':
      return Math.fround(x);
    case 'f16':
      return roundF16(x);
    case 'bf16':
      return roundBf16(x);
    case 'i32':
      return Number.isFinite(x) ? Math.trunc(x) | 0 : 0;
    case 'u32':
      return Number.isFinite(x) ? Math.trunc(x) >>> 0 : 0;
    case 'bool':
      return x !== 0 ? 1 : 0;
  }
}

