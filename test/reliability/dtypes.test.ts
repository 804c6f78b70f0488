/**
 * One dtype mapping, range-checked (issue 8, item 6). Before the fix loadSafetensors loaded U8
 * as `bool` holding 0..255, wrapped I64 beyond 2^31 to i32 without a word (io.ts claimed the
 * values were checked), and loadCheckpoint mapped U8 to u32; fromHost accepted any typed array,
 * bool values like 7, and failed on a length mismatch with a bare Error from HostArray.
 * Expected values are the files' own integers, written by the tests.
 */
import { describe, expect, it } from 'vitest';
import { CheckpointError, loadCheckpoint } from '../../src/convnextv2/checkpoint.js';
import { OpError } from '../../src/ir/errors.js';
import * as ops from '../../src/ir/ops.js';
import { loadSafetensors, SAFE_DTYPE_MAP, SafetensorsError } from '../../src/nn/io.js';
import { type SafeDType, type SafeTensor, serializeSafetensors } from '../../src/nn/safetensors.js';

const one = (dtype: SafeDType, data: SafeTensor['data']): Uint8Array => serializeSafetensors({ t: { dtype, shape: [data.length], data } });

function errorOf(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('loadSafetensors dtypes', () => {
  it('U8 loads as u32 with its values 0..255 (it was bool holding 255)', () => {
    const t = loadSafetensors(one('U8', Uint8Array.of(0, 1, 7, 255))).t!;
    expect(t.dtype).toBe('u32');
    expect([...t.dataSync()]).toEqual([0, 1, 7, 255]);
  });

  it('I64 within i32 loads exactly, including both ends of the range', () => {
    const t = loadSafetensors(one('I64', Float64Array.of(-(2 ** 31), -1, 0, 2 ** 31 - 1))).t!;
    expect(t.dtype).toBe('i32');
    expect([...t.dataSync()]).toEqual([-(2 ** 31), -1, 0, 2 ** 31 - 1]);
  });

  it('I64 beyond i32 is an error naming the tensor, element and value (it wrapped to -2^31)', () => {
    const file = serializeSafetensors({ 'step.count': { dtype: 'I64', shape: [3], data: Float64Array.of(1, 2, 2 ** 31) } });
    const e = errorOf(() => loadSafetensors(file));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.message).toBe('tensor "step.count": I64 element 2 is 2147483648, outside the i32 range [-2147483648, 2147483647] nexgrad loads I64 as');
    expect(errorOf(() => loadSafetensors(one('I64', Float64Array.of(-(2 ** 31) - 1)))).message).toMatch(/element 0 is -2147483649, outside the i32 range/);
  });

  it('U64 loads as u32 when it fits, else names the value', () => {
    expect([...loadSafetensors(one('U64', Float64Array.of(0, 2 ** 32 - 1))).t!.dataSync()]).toEqual([0, 2 ** 32 - 1]);
    expect(loadSafetensors(one('U64', Float64Array.of(5))).t!.dtype).toBe('u32');
    expect(errorOf(() => loadSafetensors(one('U64', Float64Array.of(2 ** 32)))).message).toMatch(/U64 element 0 is 4294967296, outside the u32 range/);
  });

  it('narrow integers widen exactly, keeping their sign', () => {
    const i8 = loadSafetensors(one('I8', Int8Array.of(-128, -1, 127))).t!;
    const i16 = loadSafetensors(one('I16', Int16Array.of(-32768, 32767))).t!;
    const u16 = loadSafetensors(one('U16', Uint16Array.of(0, 65535))).t!;
    expect([i8.dtype, i16.dtype, u16.dtype]).toEqual(['i32', 'i32', 'u32']);
    expect([...i8.dataSync()]).toEqual([-128, -1, 127]);
    expect([...i16.dataSync()]).toEqual([-32768, 32767]);
    expect([...u16.dataSync()]).toEqual([0, 65535]);
  });

  it('floats and bool keep their kind', () => {
    const f16 = loadSafetensors(one('F16', Float32Array.of(0.5, -2, 65504))).t!;
    expect(f16.dtype).toBe('f16');
    expect([...f16.dataSync()]).toEqual([0.5, -2, 65504]);
    expect(loadSafetensors(one('BOOL', Uint8Array.of(1, 0))).t!.dtype).toBe('bool');
  });

  it('the table maps signed integers to i32, unsigned to u32, floats to themselves', () => {
    const kind = (d: SafeDType): string => (d.startsWith('F') || d === 'BF16' ? 'float' : d.startsWith('I') ? 'signed' : d.startsWith('U') ? 'unsigned' : 'bool');
    for (const [d, rule] of Object.entries(SAFE_DTYPE_MAP) as [SafeDType, { dtype: string }][]) {
      const want = { float: d.toLowerCase(), signed: 'i32', unsigned: 'u32', bool: 'bool' }[kind(d)];
      expect(rule.dtype, d).toBe(want);
    }
  });
});

describe('loadCheckpoint uses the same range checks', () => {
  it('integer template leaves get the file values, and values the dtype cannot hold are refused by key', () => {
    const file = serializeSafetensors({ steps: { dtype: 'U8', shape: [2], data: Uint8Array.of(3, 200) }, count: { dtype: 'I64', shape: [1], data: Float64Array.of(-5) } });
    const p = loadCheckpoint<{ steps: ReturnType<typeof ops.zeros>; count: ReturnType<typeof ops.zeros> }>(file, { steps: ops.zeros([2], 'u32'), count: ops.zeros([1], 'i32') });
    expect([...p.steps.dataSync()]).toEqual([3, 200]);
    expect([...p.count.dataSync()]).toEqual([-5]);

    // U32 above 2^31 into an i32 parameter used to wrap to a negative number
    const big = serializeSafetensors({ count: { dtype: 'U32', shape: [1], data: Uint32Array.of(3e9) } });
    const e = errorOf(() => loadCheckpoint(big, { count: ops.zeros([1], 'i32') }));
    expect(e).toBeInstanceOf(CheckpointError);
    expect(e.message).toMatch(/^loadCheckpoint: "count" element 0 is 3000000000, which i32 cannot hold \(range \[-2147483648, 2147483647\]\); nothing is wrapped/);

    const neg = serializeSafetensors({ count: { dtype: 'I32', shape: [1], data: Int32Array.of(-1) } });
    expect(errorOf(() => loadCheckpoint(neg, { count: ops.zeros([1], 'u32') })).message).toMatch(/element 0 is -1, which u32 cannot hold/);
  });
});

describe('fromHost validates what it wraps', () => {
  it('accepts the right class and length without copying', () => {
    const d = Float32Array.of(1, 2, 3, 4);
    const t = ops.fromHost('f32', [2, 2], d);
    expect(t.tolist()).toEqual([[1, 2], [3, 4]]);
  });

  it.each([
    [() => ops.fromHost('float32' as never, [2], Float32Array.of(1, 2)), /^fromHost: unknown dtype "float32"/],
    [() => ops.fromHost('f32', [2], Float64Array.of(1, 2)), /^fromHost: f32 data must be a Float32Array, got Float64Array/],
    [() => ops.fromHost('i32', [2], [1, 2] as never), /^fromHost: i32 data must be a Int32Array, got an array/],
    [() => ops.fromHost('f32', [3], Float32Array.of(1, 2)), /^fromHost: data has 2 elements but shape \[3\] holds 3/],
    [() => ops.fromHost('bool', [3], Uint8Array.of(0, 1, 7)), /^fromHost: bool element 2 is 7; bool data must be 0 or 1/],
    [() => ops.fromHost('f16', [1], Float32Array.of(0.1)), /^fromHost: f16 element 0 \(0\.10000000149011612\) is not a f16 value/],
    [() => ops.fromHost('f32', [-1, -2], Float32Array.of(1, 2)), /^fromHost: invalid shape \[-1,-2\]: entry 0 is -1/],
  ])('refuses bad input %#', (f, re) => {
    const e = errorOf(f);
    expect(e).toBeInstanceOf(OpError);
    expect(e.message).toMatch(re);
  });

  it('f16/bf16 values already rounded are accepted, NaN included', () => {
    expect([...ops.fromHost('bf16', [3], Float32Array.of(1.5, -0, NaN)).dataSync()]).toEqual([1.5, -0, NaN]);
  });
});

describe('shapes the format allows but a tensor cannot have', () => {
  it('an empty tensor with a dimension beyond 2^31 - 1 is a SafetensorsError naming it', () => {
    const file = serializeSafetensors({ 'w.big': { dtype: 'F32', shape: [2 ** 31, 0], data: new Float32Array(0) } });
    const e = errorOf(() => loadSafetensors(file));
    expect(e).toBeInstanceOf(SafetensorsError);
    expect(e.message).toMatch(/^tensor "w\.big": shape \[2147483648,0\] cannot be a nexgrad tensor: dimension 0 is 2147483648/);
  });
});
