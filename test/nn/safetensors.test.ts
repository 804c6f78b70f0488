import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
  SafetensorsError,
  type SafeDType,
  type SafeTensor,
  type SafeData,
} from '../../src/nn/safetensors.js';
import { loadSafetensors } from '../../src/nn/io.js';

const OPS = fileURLToPath(new URL('../../../shared/refs/ops.safetensors', import.meta.url));

// ---------------------------------------------------------------------------------------------
// Helpers

/** A file with the given header (object or raw text/bytes) and data section, no padding. */
function rawFile(header: unknown, data: Uint8Array | number = 0): Uint8Array {
  const h =
    header instanceof Uint8Array
      ? header
      : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}

function headerOf(bytes: Uint8Array): { n: number; json: Record<string, any> } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { n, json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) };
}

/** The u16 words of the (single) tensor's data section. */
function halfWords(bytes: Uint8Array): number[] {
  const { n } = headerOf(bytes);
  const d = bytes.slice(8 + n);
  return [...new Uint16Array(d.buffer, 0, d.length / 2)];
}

function expectError(fn: () => unknown, re: RegExp): SafetensorsError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SafetensorsError);
  expect((err as Error).name).toBe('SafetensorsError');
  expect((err as Error).message).toMatch(re);
  return err as SafetensorsError;
}

const numel = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** Reference rounding of a double to a binary float format, round half to even. */
function roundTo(x: number, manBits: number, minExp: number, maxExp: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, minExp) - manBits);
  const q = a / ulp; // exact: division by a power of two
  const f = Math.floor(q);
  const r = q - f > 0.5 || (q - f === 0.5 && f % 2 === 1) ? f + 1 : f;
  const v = r * ulp;
  return Math.sign(x) * (v >= 2 ** (maxExp + 1) ? Infinity : v);
}
const toF16 = (x: number): number => roundTo(x, 10, -14, 15);
const toBF16 = (x: number): number => roundTo(x, 7, -126, 127);

// ---------------------------------------------------------------------------------------------
// 1. Round trips

describe('round trip', () => {
  const all: Record<string, SafeTensor> = {
    f64: { dtype: 'F64', shape: [2, 4], data: new Float64Array([0, -0, 1.5, -1e300, Infinity, -Infinity, NaN, 5e-324]) },
    f32: { dtype: 'F32', shape: [5], data: new Float32Array([1.5, -3.25, 3.4e38, 1e-45, NaN]) },
    f16: { dtype: 'F16', shape: [3], data: new Float32Array([1, -2, 65504]) },
    bf16: { dtype: 'BF16', shape: [3], data: new Float32Array([1, -2, 0.5]) },
    i64: { dtype: 'I64', shape: [6], data: new Float64Array([0, -1, 2 ** 53 - 1, -(2 ** 53 - 1), 123456789012, -4294967296]) },
    u64: { dtype: 'U64', shape: [3], data: new Float64Array([0, 2 ** 53 - 1, 2 ** 32]) },
    i32: { dtype: 'I32', shape: [3], data: new Int32Array([-(2 ** 31), 2 ** 31 - 1, 7]) },
    i16: { dtype: 'I16', shape: [3], data: new Int16Array([-32768, 32767, -1]) },
    i8: { dtype: 'I8', shape: [3], data: new Int8Array([-128, 127, 0]) },
    u32: { dtype: 'U32', shape: [2], data: new Uint32Array([0, 2 ** 32 - 1]) },
    u16: { dtype: 'U16', shape: [2], data: new Uint16Array([0, 65535]) },
    u8: { dtype: 'U8', shape: [1, 3], data: new Uint8Array([0, 128, 255]) },
    bool: { dtype: 'BOOL', shape: [4], data: new Uint8Array([1, 0, 0, 1]) },
    scalar: { dtype: 'F64', shape: [], data: new Float64Array([42]) },
    empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
  };

  it('every dtype decodes to the right typed array with the same values', () => {
    const bytes = serializeSafetensors(all);
    const { tensors, metadata } = parseSafetensors(bytes);
    expect(metadata).toEqual({});
    expect([...tensors.keys()]).toEqual(Object.keys(all));
    for (const [name, t] of Object.entries(all)) {
      const got = tensors.get(name)!;
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data.constructor).toBe(t.data.constructor);
      expect(got.data).toEqual(t.data); // Object.is per element: -0 and NaN checked too
    }
    // Byte-exact on the second pass.
    expect(serializeSafetensors(tensors)).toEqual(bytes);
  });

  it('pads the header with spaces to a multiple of 8 and lays data out in order', () => {
    const bytes = serializeSafetensors(all);
    const { n, json } = headerOf(bytes);
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text).toMatch(/^\{.*\} *$/);
    let end = 0;
    for (const name of Object.keys(all)) {
      expect(json[name].data_offsets[0]).toBe(end);
      end = json[name].data_offsets[1];
    }
    expect(bytes.length).toBe(8 + n + end);
  });

  it('keeps the order of integer-like names', () => {
    const names = ['b', '10', '2', 'a', '__proto__'];
    const m = new Map(names.map((k, i) => [k, { dtype: 'U8' as const, shape: [1], data: new Uint8Array([i]) }]));
    const { tensors } = parseSafetensors(serializeSafetensors(m));
    expect([...tensors.keys()]).toEqual(names);
    expect(tensors.get('__proto__')!.data[0]).toBe(4);
  });

  it('round-trips metadata, including odd keys', () => {
    const metadata: Record<string, string> = JSON.parse('{"format":"pt","ünï":"✓ 🎉","__proto__":"x","":""}');
    const { metadata: got } = parseSafetensors(serializeSafetensors({}, metadata));
    expect(Object.keys(got)).toEqual(Object.keys(metadata));
    expect(got['__proto__']).toBe('x');
    expect(got['ünï']).toBe('✓ 🎉');
    // A null-prototype record: a missing key reads as undefined, never as something inherited.
    expect(Object.getPrototypeOf(got)).toBe(null);
    expect(got['constructor']).toBeUndefined();
  });

  it('encodes F16 with round-to-nearest-even (hand-computed bit patterns)', () => {
    const cases: [number, number][] = [
      [1.0, 0x3c00],
      [-2.0, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff], // max finite
      [65519, 0x7bff], // just below the halfway point to 65536
      [65520, 0x7c00], // halfway: ties to even = 2^16 = inf
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [0, 0x0000],
      [-0, 0x8000],
      [2 ** -14, 0x0400], // min normal
      [2 ** -24, 0x0001], // min subnormal
      [1023 * 2 ** -24, 0x03ff], // max subnormal
      [2 ** -25, 0x0000], // halfway to the min subnormal: ties to even = 0
      [3 * 2 ** -26, 0x0001], // 0.75 ulp rounds up
      [3 * 2 ** -25, 0x0002], // 1.5 ulp: ties to even = 2
      [1 + 2 ** -11, 0x3c00], // halfway between 0x3c00 and 0x3c01: even
      [1 + 3 * 2 ** -11, 0x3c02], // halfway between 0x3c01 and 0x3c02: even
      [1 / 3, 0x3555],
      [Math.fround(0.1), 0x2e66],
      [NaN, 0x7e00],
    ];
    const bytes = serializeSafetensors({ h: { dtype: 'F16', shape: [cases.length], data: new Float32Array(cases.map((c) => c[0])) } });
    expect(halfWords(bytes).map((w) => w.toString(16))).toEqual(cases.map((c) => c[1].toString(16)));
    const back = parseSafetensors(bytes).tensors.get('h')!.data;
    expect([...back]).toEqual(cases.map((c) => toF16(Math.fround(c[0]))));
    expect(back[5]).toBe(Infinity);
    expect(back[18]).toBe(0.333251953125);
  });

  it('encodes BF16 with round-to-nearest-even (hand-computed bit patterns)', () => {
    const cases: [number, number][] = [
      [1.0, 0x3f80],
      [-2.0, 0xc000],
      [1 / 3, 0x3eab], // f32 0x3eaaaaab: low half 0xaaab > 0x8000 rounds up
      [1 + 2 ** -8, 0x3f80], // halfway: even
      [1 + 3 * 2 ** -8, 0x3f82], // halfway: even
      [3.4028234663852886e38, 0x7f80], // f32 max rounds to inf
      [2 ** -133, 0x0001], // subnormal
      [-0, 0x8000],
      [NaN, 0x7fc0],
    ];
    const bytes = serializeSafetensors({ b: { dtype: 'BF16', shape: [cases.length], data: new Float32Array(cases.map((c) => c[0])) } });
    expect(halfWords(bytes).map((w) => w.toString(16))).toEqual(cases.map((c) => c[1].toString(16)));
    const back = parseSafetensors(bytes).tensors.get('b')!.data;
    expect([...back]).toEqual(cases.map((c) => toBF16(Math.fround(c[0]))));
  });

  it('decodes all 65536 F16 and BF16 patterns exactly and re-encodes them bit for bit', () => {
    const words = new Uint16Array(65536).map((_, i) => i);
    for (const dtype of ['F16', 'BF16'] as const) {
      const file = rawFile({ t: { dtype, shape: [65536], data_offsets: [0, 131072] } }, new Uint8Array(words.buffer));
      const t = parseSafetensors(file).tensors.get('t')!;
      const bf16 = new Float32Array(new Uint32Array(65536).map((_, i) => i << 16).buffer);
      for (let h = 0; h < 65536; h++) {
        const s = h & 0x8000 ? -1 : 1;
        let want: number;
        if (dtype === 'F16') {
          const e = (h >> 10) & 0x1f, m = h & 0x3ff;
          want = e === 31 ? (m ? NaN : s * Infinity) : e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
        } else {
          want = bf16[h]!;
        }
        if (!Object.is(t.data[h], want)) throw new Error(`${dtype} 0x${h.toString(16)}: ${t.data[h]} != ${want}`);
      }
      const again = serializeSafetensors({ t });
      expect(again.slice(8 + headerOf(again).n)).toEqual(new Uint8Array(words.buffer));
    }
  });

  it('F32 -> F16/BF16 rounding matches a reference on random floats', () => {
    fc.assert(
      fc.property(fc.array(fc.float(), { minLength: 1, maxLength: 16 }), (xs) => {
        const data = new Float32Array(xs);
        const { tensors } = parseSafetensors(
          serializeSafetensors({ h: { dtype: 'F16', shape: [xs.length], data }, b: { dtype: 'BF16', shape: [xs.length], data } }),
        );
        expect([...tensors.get('h')!.data]).toEqual([...data].map(toF16));
        expect([...tensors.get('b')!.data]).toEqual([...data].map(toBF16));
      }),
      { numRuns: 300 },
    );
  });

  it('rejects data the writer cannot represent', () => {
    const w = (t: SafeTensor, name = 't') => () => serializeSafetensors({ [name]: t });
    expectError(w({ dtype: 'F32', shape: [2], data: new Float64Array(2) }), /F32 data must be a Float32Array, got Float64Array/);
    expectError(w({ dtype: 'F32', shape: [3], data: new Float32Array(2) }), /data has 2 elements but shape \[3\] needs 3/);
    expectError(w({ dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 2]) }), /BOOL element 1 is 2/);
    expectError(w({ dtype: 'I64', shape: [1], data: new Float64Array([1.5]) }), /not an integer within/);
    expectError(w({ dtype: 'I64', shape: [1], data: new Float64Array([2 ** 60]) }), /not an integer within/);
    expectError(w({ dtype: 'U64', shape: [1], data: new Float64Array([-1]) }), /non-negative integer/);
    expectError(w({ dtype: 'F8' as SafeDType, shape: [1], data: new Uint8Array(1) }), /unknown dtype "F8"/);
    expectError(w({ dtype: 'U8', shape: [-1], data: new Uint8Array(1) }), /non-negative integer/);
    expectError(w({ dtype: 'U8', shape: [1], data: new Uint8Array(1) }, '__metadata__'), /reserved/);
    expectError(w({ dtype: 'U8', shape: [1], data: new Uint8Array(1) }, 'a\ud800'), /surrogate/);
    expectError(() => serializeSafetensors({}, { k: 5 as unknown as string }), /metadata value for key "k" is not a string/);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. The reference file

describe('reference file ops.safetensors', () => {
  it('reads known tensors', () => {
    const { tensors, metadata } = readSafetensors(OPS);
    const x = tensors.get('layernorm_cf.in.x')!;
    expect(x.dtype).toBe('F64');
    expect(x.shape).toEqual([2, 8, 5, 5]);
    expect(x.data).toBeInstanceOf(Float64Array);
    expect(x.data.length).toBe(400);
    expect(x.data[0]).toBe(0.06613133742990374);
    expect(x.data[1]).toBe(-1.1390908305203373);
    const labels = tensors.get('xent.in.labels')!;
    expect(labels.dtype).toBe('I64');
    expect(labels.shape).toEqual([4]);
    expect([...labels.data]).toEqual([3, 0, 9, 9]);
    expect(metadata['dtype']).toBe('float64');
    for (const t of tensors.values()) expect(t.data.length).toBe(numel(t.shape));
  });

  it('returns aligned F64 tensors as zero-copy views into the file buffer', () => {
    const bytes = fs.readFileSync(OPS);
    const { tensors } = parseSafetensors(bytes, OPS);
    const x = tensors.get('layernorm_cf.in.x')!.data;
    expect(x.buffer).toBe(bytes.buffer);
    expect(tensors.get('down2.in.w')!.data.buffer).toBe(bytes.buffer);
    // The re-serialized file is identical apart from header formatting.
    const again = parseSafetensors(serializeSafetensors(tensors));
    expect(again.tensors.get('layernorm_cf.in.x')!.data).toEqual(x);
  });

  it('copies misaligned tensors (and still decodes them right)', () => {
    const bytes = serializeSafetensors({
      pad: { dtype: 'U8', shape: [1], data: new Uint8Array([9]) },
      x: { dtype: 'F64', shape: [2], data: new Float64Array([1.25, -7]) },
      y: { dtype: 'I64', shape: [1], data: new Float64Array([-5]) },
      z: { dtype: 'F16', shape: [1], data: new Float32Array([3]) },
    });
    // Also shift the whole file to an odd byte offset inside a bigger buffer.
    const big = new Uint8Array(bytes.length + 3);
    big.set(bytes, 3);
    for (const b of [bytes, big.subarray(3)]) {
      const { tensors } = parseSafetensors(b);
      const x = tensors.get('x')!.data;
      expect(x.buffer).not.toBe(b.buffer);
      expect([...x]).toEqual([1.25, -7]);
      expect([...tensors.get('y')!.data]).toEqual([-5]);
      expect([...tensors.get('z')!.data]).toEqual([3]);
      expect(tensors.get('pad')!.data.buffer).toBe(b.buffer); // bytes are always aligned
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Bad inputs

describe('bad inputs', () => {
  const e = (offsets: [number, number], dtype = 'F64', shape: unknown = [1]) => ({ dtype, shape, data_offsets: offsets });
  const bad = (header: unknown, re: RegExp, data: Uint8Array | number = 16) =>
    expectError(() => parseSafetensors(rawFile(header, data), 'm.safetensors'), re);

  it('names the file and the tensor', () => {
    const err = bad({ w: e([0, 4]) }, /^m\.safetensors: tensor "w": data_offsets \[0, 4\] span 4 bytes but shape \[1\] of F64 needs 8 bytes$/);
    expect(err.file).toBe('m.safetensors');
    expect(err.tensor).toBe('w');
  });

  it('short files and bad header lengths', () => {
    expectError(() => parseSafetensors(new Uint8Array(5)), /5 bytes, shorter than the 8-byte header length/);
    const f = rawFile({}, 0);
    new DataView(f.buffer).setBigUint64(0, 100n, true);
    expectError(() => parseSafetensors(f), /header length 100 runs past the end of the file \(10 bytes\)/);
    new DataView(f.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    expectError(() => parseSafetensors(f), /header length 18446744073709551615 exceeds the 100000000-byte limit/);
    new DataView(f.buffer).setBigUint64(0, 200_000_000n, true);
    expectError(() => parseSafetensors(f), /exceeds the 100000000-byte limit/);
  });

  it('headers that are not UTF-8, JSON or an object', () => {
    bad(new Uint8Array([0x7b, 0xff, 0x7d]), /header is not valid UTF-8/);
    bad('{"a": ', /header is not valid JSON/);
    bad('', /header is not valid JSON/);
    bad('[1, 2]', /header JSON is not an object/);
    bad('null', /header JSON is not an object/);
    bad('"str"', /header JSON is not an object/);
  });

  it('malformed entries', () => {
    bad({ w: 5 }, /tensor "w": header entry is not an object/);
    bad({ w: [] }, /header entry is not an object/);
    bad({ w: { shape: [1], data_offsets: [0, 8] } }, /missing "dtype"/);
    bad({ w: { dtype: 3, shape: [1], data_offsets: [0, 8] } }, /dtype is not a string/);
    bad({ w: { dtype: 'F64', data_offsets: [0, 8] } }, /missing "shape"/);
    bad({ w: e([0, 8], 'F64', '1') }, /shape is not an array/);
    bad({ w: { dtype: 'F64', shape: [1] } }, /missing "data_offsets"/);
    bad({ w: { ...e([0, 8]), extra: 1 } }, /unknown field "extra"/);
    bad({ w: e([0, 8], 'F8_E4M3') }, /unknown dtype "F8_E4M3"/);
  });

  it('bad shapes', () => {
    bad({ w: e([0, 8], 'F64', [-1]) }, /shape \[-1\] has an entry that is not a non-negative integer/);
    bad({ w: e([0, 8], 'F64', [1.5]) }, /not a non-negative integer/);
    bad({ w: e([0, 8], 'F64', ['1']) }, /not a non-negative integer/);
    bad({ w: e([0, 8], 'F64', [2 ** 60]) }, /not a non-negative integer/);
    bad({ w: e([0, 8], 'F64', [2 ** 30, 2 ** 30, 2 ** 30]) }, /more than 2\^53 elements/);
    // A zero dimension makes the tensor empty however large the others are.
    const { tensors } = parseSafetensors(rawFile({ w: e([0, 0], 'F64', [2 ** 52, 2 ** 52, 0]) }, 0));
    expect(tensors.get('w')!.data.length).toBe(0);
  });

  it('bad data_offsets', () => {
    bad({ w: e([0] as unknown as [number, number]) }, /data_offsets \[0\] is not a pair of integers/);
    bad({ w: e([0, 8.5]) }, /is not a pair of integers/);
    bad({ w: e(['0', 8] as unknown as [number, number]) }, /is not a pair of integers/);
    bad({ w: e([8, 0]) }, /data_offsets \[8, 0\] are out of range: need 0 <= begin <= end <= 16/);
    bad({ w: e([-8, 0]) }, /out of range/);
    bad({ w: e([16, 24]) }, /out of range/);
    bad({ w: e([0, 2 ** 53], 'F64', [2 ** 50]) }, /data_offsets \[0,9007199254740992\] is not a pair of integers/);
    bad({ w: e([0, 16]) }, /span 16 bytes but shape \[1\] of F64 needs 8 bytes/);
  });

  it('overlapping tensors (gaps and trailing bytes are fine)', () => {
    bad({ a: e([0, 8]), b: e([4, 12], 'F32', [2]) }, /tensor "b": data_offsets \[4, 12\] overlap tensor "a" at \[0, 8\]/);
    bad({ a: e([0, 16], 'F64', [2]), b: e([8, 16]) }, /overlap tensor "a"/);
    const { tensors } = parseSafetensors(rawFile({ b: e([8, 16]), a: e([0, 0], 'F64', [0]), c: e([0, 4], 'F32', [1]) }, 32));
    expect([...tensors.keys()]).toEqual(['a', 'c', 'b']); // data order
  });

  it('bad values', () => {
    bad({ w: e([0, 3], 'BOOL', [3]) }, /tensor "w": BOOL element 1 has byte value 2 \(must be 0 or 1\)/, new Uint8Array([1, 2, 0]));
    const big = new Uint8Array(new Float64Array([0]).buffer);
    new DataView(big.buffer).setBigInt64(0, 2n ** 60n, true);
    bad({ w: e([0, 8], 'I64') }, /tensor "w": I64 element 0 does not fit in a JS number/, big);
    new DataView(big.buffer).setBigInt64(0, -(2n ** 53n), true);
    bad({ w: e([0, 8], 'I64') }, /does not fit/, big);
    new DataView(big.buffer).setBigUint64(0, 2n ** 64n - 1n, true);
    bad({ w: e([0, 8], 'U64') }, /U64 element 0 does not fit/, big);
  });

  it('bad metadata', () => {
    bad({ __metadata__: { a: 1 } }, /__metadata__ value for key "a" is not a string/);
    bad({ __metadata__: [] }, /__metadata__ is not an object of strings/);
    expect(parseSafetensors(rawFile({ __metadata__: null })).metadata).toEqual({});
  });

  it('huge declared sizes fail before any allocation', () => {
    const before = process.memoryUsage().arrayBuffers;
    bad({ w: e([0, 8], 'F64', [2 ** 26, 2 ** 26]) }, /span 8 bytes but shape \[67108864,67108864\] of F64 needs \d+ bytes/);
    bad({ w: e([0, 2 ** 53 - 1], 'U8', [2 ** 53 - 1]) }, /out of range/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1 << 20);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Fuzz

const DTYPE_LIST: SafeDType[] = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL'];
const HOST: Record<SafeDType, new (xs: number[]) => SafeData> = {
  F64: Float64Array, F32: Float32Array, F16: Float32Array, BF16: Float32Array,
  I64: Float64Array, U64: Float64Array, I32: Int32Array, I16: Int16Array, I8: Int8Array,
  U32: Uint32Array, U16: Uint16Array, U8: Uint8Array, BOOL: Uint8Array,
};

function makeTensor(dtype: SafeDType, shape: number[], values: number[]): SafeTensor {
  const xs = Array.from({ length: numel(shape) }, (_, i) => {
    const v = values.length ? values[i % values.length]! : 0;
    if (dtype === 'BOOL') return v > 0 ? 1 : 0;
    if (dtype === 'I64') return Number.isFinite(v) ? (Math.trunc(v) % 2 ** 53) + 0 : 0; // + 0: no -0
    if (dtype === 'U64') return Number.isFinite(v) ? Math.abs(Math.trunc(v) % 2 ** 53) + 0 : 0;
    return v;
  });
  return { dtype, shape, data: new HOST[dtype](xs) };
}

const tensorsArb = fc.uniqueArray(
  fc.record({
    name: fc.string({ maxLength: 6 }),
    dtype: fc.constantFrom(...DTYPE_LIST),
    shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
    values: fc.array(fc.double(), { maxLength: 8 }),
  }),
  { selector: (t) => t.name, maxLength: 5 },
).filter((ts) => ts.every((t) => t.name !== '__metadata__' && !/\p{Cs}/u.test(t.name)));

/** A lying value for a header field. */
const lieArb = fc.oneof(
  fc.integer(),
  fc.integer({ min: -4, max: 64 }),
  fc.double(),
  fc.constantFrom(2 ** 53, 2 ** 60, 1e300, -1, null, 'x', true, [], {}),
  fc.array(fc.oneof(fc.integer({ min: -2, max: 2 ** 40 }), fc.integer({ min: 0, max: 40 })), { maxLength: 3 }),
);

/** Small limits, so the count and rank mutations cross them cheaply. */
const FUZZ_LIMITS = { maxTensors: 8, maxMetadataKeys: 4, maxRank: 6 } as const;
const FORBIDDEN_SEGMENTS = ['__proto__', 'constructor', 'prototype'];
const hostileNameArb = fc.oneof(
  fc.constantFrom('__proto__', '__proto__.polluted', 'constructor.prototype.isAdmin', 'a.prototype', 'toString', 'hasOwnProperty.x'),
  fc.array(fc.constantFrom('a', '0', 'weight', '__proto__', 'constructor', 'valueOf'), { minLength: 10, maxLength: 80 }).map((s) => s.join('.')),
);

type Mutation = (file: Uint8Array) => Uint8Array;
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  // truncate
  fc.nat().map((k) => (f: Uint8Array) => f.slice(0, k % (f.length + 1))),
  // overwrite bytes (biased to the header)
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map(
    (edits) => (f: Uint8Array) => {
      const g = f.slice();
      const n = Math.min(g.length, 8 + headerOf(f).n);
      for (const [p, b] of edits) g[p % n] = b;
      return g;
    },
  ),
  // replace the header-length field
  fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: -16, max: 16 }).map(BigInt)).map(
    (v) => (f: Uint8Array) => {
      const g = f.slice();
      const len = v >= 0n ? v : BigInt(headerOf(f).n) + v;
      new DataView(g.buffer).setBigUint64(0, len < 0n ? 0n : len, true);
      return g;
    },
  ),
  // rewrite a header field of one entry (or the metadata) to a lying value
  fc.tuple(fc.nat(), fc.constantFrom('shape', 'data_offsets', 'dtype', 'data_offsets.0', 'data_offsets.1', 'shape.0', 'extra'), lieArb).map(
    ([i, field, lie]) => (f: Uint8Array) => {
      const { n, json } = headerOf(f);
      const names = Object.keys(json);
      if (names.length === 0) {
        json['__metadata__'] = lie;
      } else {
        const entry = json[names[i % names.length]!];
        if (typeof entry !== 'object' || entry === null) return f;
        const [k, idx] = field.split('.');
        if (idx !== undefined && Array.isArray(entry[k!])) entry[k!][Number(idx)] = lie;
        else entry[k!] = lie;
      }
      return rawFile(json, f.slice(8 + n));
    },
  ),
  // rename an entry to a hostile or deep dotted name
  fc.tuple(fc.nat(), hostileNameArb).map(([i, name]) => (f: Uint8Array) => {
    const { n, json } = headerOf(f);
    const names = Object.keys(json).filter((k) => k !== '__metadata__');
    if (names.length === 0) return f;
    const old = names[i % names.length]!;
    const entries = Object.entries(json).map(([k, v]) => (k === old ? [name, v] : [k, v]));
    return rawFile(Object.fromEntries(entries), f.slice(8 + n));
  }),
  // entry count: add empty tensors (FUZZ_LIMITS.maxTensors is 8)
  fc.integer({ min: 1, max: 24 }).map((k) => (f: Uint8Array) => {
    const { n, json } = headerOf(f);
    for (let j = 0; j < k; j++) json[`extra${j}`] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] };
    return rawFile(json, f.slice(8 + n));
  }),
  // metadata key count (FUZZ_LIMITS.maxMetadataKeys is 4)
  fc.integer({ min: 1, max: 12 }).map((k) => (f: Uint8Array) => {
    const { n, json } = headerOf(f);
    json['__metadata__'] = Object.fromEntries(Array.from({ length: k }, (_, j) => [`k${j}`, 'v']));
    return rawFile(json, f.slice(8 + n));
  }),
  // rank: a shape of ones of rank r (FUZZ_LIMITS.maxRank is 6)
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 16 })).map(([i, r]) => (f: Uint8Array) => {
    const { n, json } = headerOf(f);
    const names = Object.keys(json).filter((k) => k !== '__metadata__');
    if (names.length === 0) return f;
    const entry = json[names[i % names.length]!];
    if (typeof entry !== 'object' || entry === null) return f;
    entry.shape = Array(r).fill(1);
    return rawFile(json, f.slice(8 + n));
  }),
  // header size: pad the JSON with whitespace (valid), or nest it one level deeper (invalid)
  fc.tuple(fc.integer({ min: 0, max: 4096 }), fc.boolean()).map(([pad, nest]) => (f: Uint8Array) => {
    const { n } = headerOf(f);
    const text = new TextDecoder().decode(f.subarray(8, 8 + n));
    const h = nest ? `{"x":{"y":[${text}]}}` : `${text}${' '.repeat(pad)}`;
    return rawFile(h, f.slice(8 + n));
  }),
  // append junk
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((junk) => (f: Uint8Array) => {
    const g = new Uint8Array(f.length + junk.length);
    g.set(f);
    g.set(junk, f.length);
    return g;
  }),
);

describe('fuzz', () => {
  it('mutated files parse to consistent tensors or throw SafetensorsError', () => {
    let ok = 0;
    let failed = 0;
    let hostileSeen = 0;
    const messages: string[] = [];
    const PROTO_KEYS = Object.getOwnPropertyNames(Object.prototype).sort();
    fc.assert(
      fc.property(
        tensorsArb,
        fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }),
        fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
        (specs, metadata, mutations) => {
          const tensors = new Map(specs.map((s) => [s.name, makeTensor(s.dtype, s.shape, s.values)]));
          const good = serializeSafetensors(tensors, metadata);
          let file = good;
          for (const m of mutations) {
            if (file.length < 8) break;
            try {
              file = m(file);
            } catch {
              break; // a mutation that needs a parseable header; keep what we have
            }
          }
          const before = process.memoryUsage().arrayBuffers;
          let result: ReturnType<typeof parseSafetensors> | undefined;
          try {
            result = parseSafetensors(file, 'fuzz.safetensors', FUZZ_LIMITS);
          } catch (err) {
            if (!(err instanceof SafetensorsError)) throw err;
            expect(err.message).toMatch(/^fuzz\.safetensors: /);
            messages.push(err.message);
            failed++;
          }
          const grown = process.memoryUsage().arrayBuffers - before;
          expect(grown).toBeLessThan(4 * file.length + (1 << 20));
          if (result) {
            ok++;
            for (const [name, t] of result.tensors) {
              expect(DTYPE_LIST).toContain(t.dtype);
              expect(t.data.length, name).toBe(numel(t.shape));
              expect(t.data.constructor).toBe(HOST[t.dtype]);
            }
            for (const v of Object.values(result.metadata)) expect(typeof v).toBe('string');
            expect(result.tensors.size).toBeLessThanOrEqual(FUZZ_LIMITS.maxTensors);
            expect(Object.keys(result.metadata).length).toBeLessThanOrEqual(FUZZ_LIMITS.maxMetadataKeys);
            for (const t of result.tensors.values()) expect(t.shape.length).toBeLessThanOrEqual(FUZZ_LIMITS.maxRank);
            // The Tensor loader refuses exactly the names with a polluting segment.
            const hostile = [...result.tensors.keys()].some((k) => k.split('.').some((s) => FORBIDDEN_SEGMENTS.includes(s)));
            if (hostile) hostileSeen++;
            try {
              const rec = loadSafetensors(file, { limits: FUZZ_LIMITS });
              expect(hostile).toBe(false);
              expect(Object.keys(rec).sort()).toEqual([...result.tensors.keys()].sort());
            } catch (err) {
              if (!(err instanceof SafetensorsError)) throw err;
              if (hostile) expect(err.message).toMatch(/segment, which nexgrad refuses/);
              // I64/U64 values that do not fit; dimensions beyond 2^31 - 1 (allowed by the format when empty)
              else expect(err.message).toMatch(/outside the (i32|u32) range|cannot be a nexgrad tensor/);
            }
          }
          expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTO_KEYS);
        },
      ),
      { numRuns: 1500 },
    );
    // Every outcome must actually be exercised.
    expect(ok).toBeGreaterThan(20);
    expect(failed).toBeGreaterThan(200);
    expect(hostileSeen).toBeGreaterThan(10);
    for (const m of [/maxTensors/, /maxMetadataKeys/, /at most 6 dimensions|more than the limit of 6/, /nests deeper/]) {
      expect(messages.some((x) => m.test(x)), String(m)).toBe(true);
    }
  });

  it('unmutated random files round-trip exactly', () => {
    fc.assert(
      fc.property(tensorsArb, fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }), (specs, metadata) => {
        const tensors = new Map(specs.map((s) => [s.name, makeTensor(s.dtype, s.shape, s.values)]));
        const bytes = serializeSafetensors(tensors, metadata);
        const got = parseSafetensors(bytes);
        expect(got.metadata).toEqual(metadata);
        expect(got.tensors.size).toBe(tensors.size);
        for (const [name, t] of tensors) {
          const g = got.tensors.get(name)!;
          expect(g.shape).toEqual(t.shape);
          if (t.dtype === 'F16' || t.dtype === 'BF16') {
            const round = t.dtype === 'F16' ? toF16 : toBF16;
            expect([...g.data]).toEqual([...t.data].map(round));
          } else {
            expect(g.data).toEqual(t.data);
          }
        }
        // Map order is data order; only empty tensors sharing an offset can come back
        // reordered (JSON.parse puts integer-like keys first), so compare bytes otherwise.
        const ties = specs.filter((s) => numel(s.shape) === 0).length > 1;
        if (!ties) expect(serializeSafetensors(got.tensors, got.metadata)).toEqual(bytes);
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 5, 6. Files: pickle rejection and atomic writes

describe('files', () => {
  let dir = '';
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-safetensors-'));
  });
  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const one = { w: { dtype: 'F32' as const, shape: [2], data: new Float32Array([1, 2]) } };
  const pickleRe = /pickle.*arbitrary code[\s\S]*weights_only=True[\s\S]*save_file/;

  it('rejects .pt (and friends) with conversion instructions', () => {
    for (const ext of ['pt', 'pth', 'bin', 'ckpt', 'PT']) {
      const p = path.join(dir, `x.${ext}`);
      fs.writeFileSync(p, serializeSafetensors(one)); // even a valid safetensors body is refused by name
      const err = expectError(() => readSafetensors(p), pickleRe);
      expect(err.message).toContain(p);
      expect(err.message).toContain(
        `python -c "import torch; from safetensors.torch import save_file; sd=torch.load('in.pt', map_location='cpu', weights_only=True); sd=sd.get('model', sd); save_file({k: v.contiguous() for k, v in sd.items()}, 'out.safetensors')"`,
      );
    }
  });

  it('rejects pickle and zip signatures whatever the name', () => {
    const p = path.join(dir, 'model.safetensors');
    fs.writeFileSync(p, new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8]));
    expectError(() => readSafetensors(p), pickleRe);
    fs.writeFileSync(p, new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0, 0, 0x08, 0, 0, 0]));
    expectError(() => readSafetensors(p), pickleRe);
  });

  it('still reads a real safetensors file whose first bytes are 0x80 0x02', () => {
    // Grow the metadata until the padded header is 640 = 0x280 bytes long.
    let bytes = serializeSafetensors(one);
    for (let k = 0; headerOf(bytes).n !== 640; k++) bytes = serializeSafetensors(one, { pad: 'x'.repeat(k) });
    expect([bytes[0], bytes[1]]).toEqual([0x80, 0x02]);
    const p = path.join(dir, 'ok.safetensors');
    fs.writeFileSync(p, bytes);
    expect([...readSafetensors(p).tensors.get('w')!.data]).toEqual([1, 2]);
  });

  it('reports unreadable files as SafetensorsError', () => {
    expectError(() => readSafetensors(path.join(dir, 'missing.safetensors')), /missing\.safetensors: cannot read file/);
  });

  it('writes atomically and leaves no temp files', () => {
    const p = path.join(dir, 'a.safetensors');
    writeSafetensors(p, one, { note: 'v1' });
    expect(fs.readdirSync(dir)).toEqual(['a.safetensors']);
    expect(readSafetensors(p).metadata).toEqual({ note: 'v1' });
    const old = fs.readFileSync(p);

    // Serialization failure: nothing is written, the old file stays.
    expectError(() => writeSafetensors(p, { w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }), /data has 2 elements/);
    expect(fs.readdirSync(dir)).toEqual(['a.safetensors']);
    expect(fs.readFileSync(p)).toEqual(old);

    // Rename failure (the target is a non-empty directory): the temp file is removed.
    const sub = path.join(dir, 'sub');
    fs.mkdirSync(sub);
    fs.writeFileSync(path.join(sub, 'keep'), 'x');
    expectError(() => writeSafetensors(sub, one), /sub: write failed/);
    expect(fs.readdirSync(dir).sort()).toEqual(['a.safetensors', 'sub']);
    expect(fs.readdirSync(sub)).toEqual(['keep']);

    // Overwrite succeeds and replaces the content.
    writeSafetensors(p, one, { note: 'v2' });
    expect(readSafetensors(p).metadata).toEqual({ note: 'v2' });
    expect(fs.readdirSync(dir).sort()).toEqual(['a.safetensors', 'sub']);
  });
});
