/**
 * Shapes, weak scalars and bad options (issue 8, items 10 and 14 in part).
 * Before the fix: `tensor([1,2], {shape: [-1,-2]})` had size 2 and sum 0; `zeros([1e6,1e6])`
 * and `arange(1e12)` threw a bare RangeError from the typed-array constructor; `i32 + 0.5`
 * truncated 0.5 to 0; `x.sum(null)` and `conv2d(..., {padding: 'bogus'})` threw TypeErrors;
 * misspelt options (`{stride: 2}` to ops.conv2d, `{epsilon}` to layerNorm) were ignored.
 * Expected promotions are JAX's (jnp with x64 off), written out by hand.
 */
import { describe, expect, it } from 'vitest';
import { NexgradError, OpError } from '../../src/ir/errors.js';
import * as ops from '../../src/ir/ops.js';
import * as random from '../../src/ir/random.js';
import type { Tensor } from '../../src/ir/tensor.js';
import * as layers from '../../src/nn/layers.js';

function errorOf(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

function expectOpError(f: () => unknown, re: RegExp): void {
  const e = errorOf(f);
  expect(e).toBeInstanceOf(OpError);
  expect(e).toBeInstanceOf(NexgradError);
  expect(e.message).toMatch(re);
}

const x22 = ops.tensor([[1, 2], [3, 4]]);

describe('negative and fractional shape entries are refused wherever a shape enters', () => {
  it.each<[string, () => unknown, RegExp]>([
    ['tensor', () => ops.tensor([1, 2], { shape: [-1, -2] }), /^tensor: invalid shape \[-1,-2\]: entry 0 is -1; expected non-negative integers/],
    ['zeros', () => ops.zeros([2, -1]), /^zeros: invalid shape \[2,-1\]: entry 1 is -1/],
    ['ones', () => ops.ones([-3]), /^ones: invalid shape/],
    ['full', () => ops.full([1.5], 0), /^full: invalid shape \[1\.5\]: entry 0 is 1\.5/],
    ['reshape', () => ops.reshape(x22, [-2, -2]), /^reshape: invalid target shape/],
    ['reshape two holes', () => ops.reshape(x22, [-1, -1]), /^reshape: invalid target shape/],
    ['broadcastTo', () => ops.broadcastTo(ops.scalar(1), [-1, 4]), /^broadcastTo: invalid shape \[-1,4\]/],
    ['iota', () => ops.iota([-1], 0), /^iota: invalid shape \[-1\]/],
    ['random.normal', () => random.normal(random.key(0), [-2]), /^random\.normal: invalid shape \[-2\]/],
    ['random.uniform', () => random.uniform(random.key(0), [2, NaN]), /^random\.uniform: invalid shape/],
    ['fromHost', () => ops.fromHost('f32', [-1], Float32Array.of(1)), /^fromHost: invalid shape \[-1\]/],
  ])('%s', (_, f, re) => expectOpError(f, re));

  it('valid shapes with zeros still work', () => {
    expect(ops.zeros([0, 3]).shape).toEqual([0, 3]);
    expect(ops.reshape(ops.zeros([0, 3]), [3, 0]).shape).toEqual([3, 0]);
    expect([...ops.tensor([1, 2, 3, 4], { shape: [2, 2] }).sum().dataSync()]).toEqual([10]);
  });
});

describe('shapes too large for one tensor get a named error with the op and the shape', () => {
  it.each<[string, () => unknown, RegExp]>([
    ['zeros', () => ops.zeros([1e6, 1e6]), /^zeros: invalid shape \[1000000,1000000\]: it has 1000000000000 elements, more than the 2147483647 a tensor may have/],
    ['arange', () => ops.arange(1e12), /^arange: arange\(0, 1000000000000, 1\) has 1000000000000 elements, more than the 2147483647/],
    ['full', () => ops.full([2 ** 31], 1), /^full: invalid shape \[2147483648\]: dimension 0 is 2147483648/],
    ['broadcastTo', () => ops.broadcastTo(ops.scalar(1), [1e5, 1e5]), /^broadcastTo: invalid shape \[100000,100000\]: it has 10000000000 elements/],
    ['random.normal', () => random.normal(random.key(0), [1e6, 1e6]), /^random\.normal: invalid shape/],
    ['pad', () => ops.pad(ops.zeros([2]), [[0, 2 ** 31]]), /^pad: invalid shape \[2147483650\]/],
    ['arange infinite', () => ops.arange(0, Infinity), /^arange: stop must be a finite number, got Infinity/],
  ])('%s', (_, f, re) => expectOpError(f, re));
});

describe('weak scalars promote as in JAX', () => {
  const i32 = ops.tensor([1, 2], { dtype: 'i32' });
  const dt = (t: Tensor): string => t.dtype;

  it('i32 + 0.5 is f32 [1.5, 2.5] (it was i32 [1, 2])', () => {
    const r = ops.add(i32, 0.5);
    expect(dt(r)).toBe('f32');
    expect([...r.dataSync()]).toEqual([1.5, 2.5]);
    expect(dt(i32.mul(0.5))).toBe('f32');
  });

  it('integer-valued numbers keep the integer dtype', () => {
    const r = ops.add(i32, 3);
    expect(dt(r)).toBe('i32');
    expect([...r.dataSync()]).toEqual([4, 5]);
    expect([...ops.sub(10, i32).dataSync()]).toEqual([9, 8]);
  });

  it('comparisons against non-integers compare values, not truncations', () => {
    const r = ops.less(ops.tensor([0, 1], { dtype: 'i32' }), 0.5);
    expect(dt(r)).toBe('bool');
    expect([...r.dataSync()]).toEqual([1, 0]); // truncating 0.5 to 0 gave [0, 0]
  });

  it('NaN and infinities are floats', () => {
    expect([...ops.add(i32, NaN).dataSync()]).toEqual([NaN, NaN]);
    expect([...ops.minimum(i32, Infinity).dataSync()]).toEqual([1, 2]);
    expect(dt(ops.minimum(i32, Infinity))).toBe('f32');
  });

  it('where and pow promote too', () => {
    const w = ops.where(ops.tensor([true, false]), i32, 0.5);
    expect(dt(w)).toBe('f32');
    expect([...w.dataSync()]).toEqual([1, 0.5]);
    const p = ops.pow(ops.tensor([4, 9], { dtype: 'i32' }), 0.5);
    expect(dt(p)).toBe('f32');
    expect([...p.dataSync()]).toEqual([2, 3]);
    expect(dt(ops.pow(i32, 2))).toBe('i32');
  });

  it('bool tensors: 0/1 stay bool, other integers give i32, fractions f32', () => {
    const b = ops.tensor([true, false]);
    expect(dt(ops.maximum(b, 0))).toBe('bool');
    const r = ops.add(b, 2);
    expect(dt(r)).toBe('i32');
    expect([...r.dataSync()]).toEqual([3, 2]);
    expect(dt(ops.mul(b, 0.5))).toBe('f32');
  });

  it('float tensors keep their dtype', () => {
    expect(dt(ops.add(ops.tensor([1], { dtype: 'f16' }), 0.1))).toBe('f16');
    expect(dt(ops.add(ops.tensor([1], { dtype: 'f64' }), 1))).toBe('f64');
  });

  it('integers outside the dtype are an error, as JAX OverflowError (they wrapped)', () => {
    expectOpError(() => ops.add(i32, 2 ** 31), /^add: the number 2147483648 does not fit in i32 \(range \[-2147483648, 2147483647\]\)/);
    expectOpError(() => ops.add(ops.tensor([1], { dtype: 'u32' }), -1), /^add: the number -1 does not fit in u32/);
  });

  it('two tensors of different dtypes are still an error', () => {
    expectOpError(() => ops.add(i32, ops.tensor([1, 2])), /^add: dtypes differ: i32\[2\] and f32\[2\]; cast one operand explicitly/);
  });
});

describe('bad arguments and options are named errors, not TypeErrors', () => {
  const img = ops.zeros([1, 1, 4, 4]);
  const k = ops.ones([1, 1, 3, 3]);

  it.each<[string, () => unknown, RegExp]>([
    ['x.sum(null)', () => x22.sum(null as never), /^sum: axes must be a number, an array of numbers, or undefined for all axes; got null/],
    ['x.max("0")', () => x22.max('0' as never), /^max: axes must be/],
    ['mean({})', () => ops.mean(x22, {} as never), /^mean: axes must be/],
    ['conv2d padding bogus', () => ops.conv2d(img, k, { padding: 'bogus' as never }), /^conv2d: padding must be 'VALID', 'SAME', a non-negative integer or two \(lo, hi\) integer pairs, got "bogus"/],
    ['conv2d misspelt option', () => ops.conv2d(img, k, { stride: 2 } as never), /^conv2d: unknown option "stride"; the options are strides, padding/],
    ['conv2d strides 0', () => ops.conv2d(img, k, { strides: 0 }), /^conv2d: strides must be an integer >= 1 or a pair of them, got 0/],
    ['conv2d layout', () => ops.conv2d(img, k, { layout: 'NWHC' as never }), /^conv2d: layout must be 'NCHW' or 'NHWC', got "NWHC"/],
    ['conv2d groups', () => ops.conv2d(img, k, { groups: 1.5 }), /^conv2d: groups must be a positive integer, got 1\.5/],
    ['conv2d options null', () => ops.conv2d(img, k, null as never), /^conv2d: options must be an object, got null/],
    ['tensor misspelt option', () => ops.tensor([1], { dtpye: 'f32' } as never), /^tensor: unknown option "dtpye"/],
    ['tensor(null)', () => ops.tensor(null as never), /^tensor: cannot make a tensor from null/],
    ['zeros dtype', () => ops.zeros([2], 'float32' as never), /^full: unknown dtype "float32"/],
    ['transpose perm', () => ops.transpose(x22, 1 as never), /^transpose: perm must be an array of axes, got number/],
    ['slice null', () => ops.slice(x22, null as never, [1, 1]), /^slice: starts must be an array of integers, got null/],
    ['take null', () => ops.take(x22, null as never), /^take: indices must be an i32\/u32 Tensor, got null/],
    ['pad null', () => ops.pad(x22, null as never), /^pad: widths must be an array of \(lo, hi\) integer pairs, got null/],
    ['add(x, "1")', () => ops.add(x22, '1' as never), /^add: argument 2 is string, expected a Tensor or a number/],
    ['oneHot classes', () => ops.oneHot(ops.tensor([0], { dtype: 'i32' }), -1), /^oneHot: numClasses must be a non-negative integer, got -1/],
  ])('%s', (_, f, re) => expectOpError(f, re));

  it("'same' and 'valid' are accepted in any case", () => {
    const a = ops.conv2d(img, k, { padding: 'same' as never });
    const b = ops.conv2d(img, k, { padding: 'SAME' });
    expect(a.shape).toEqual([1, 1, 4, 4]);
    expect([...a.dataSync()]).toEqual([...b.dataSync()]);
  });

  const convP = { weight: k };
  const nhwc = ops.zeros([1, 4, 4, 8]);
  const ln = layers.initLayerNorm(null, { dim: 8 });
  const g = layers.initGrn(null, { dim: 8 });
  it.each<[string, () => unknown, RegExp]>([
    ['nn.conv2d padding bogus', () => layers.conv2d(convP, img, { padding: 'bogus' as never }), /^conv2d: padding must be/],
    ['nn.conv2d strides (ops spelling)', () => layers.conv2d(convP, img, { strides: 2 } as never), /^conv2d: unknown option "strides"; the options are stride, padding, dilation, groups, layout/],
    ['nn.conv2d layout', () => layers.conv2d(convP, img, { layout: 'nchw' as never }), /^conv2d: layout must be 'NCHW' or 'NHWC', got "nchw"/],
    ['layerNorm epsilon', () => layers.layerNorm(ln, nhwc, { epsilon: 1e-5 } as never), /^layerNorm: unknown option "epsilon"; the options are eps, dataFormat/],
    ['layerNorm dataFormat', () => layers.layerNorm(ln, nhwc, { dataFormat: 'NHWC' as never }), /^layerNorm: dataFormat must be 'channels_last' or 'channels_first', got "NHWC"/],
    ['layerNorm eps', () => layers.layerNorm(ln, nhwc, { eps: -1 }), /^layerNorm: eps must be a finite non-negative number, got -1/],
    ['grn layout', () => layers.grn(g, nhwc, { layout: 'NWHC' as never }), /^grn: layout must be 'NCHW' or 'NHWC'/],
    ['maskedGrn sqrtEps', () => layers.maskedGrn(g, nhwc, ops.zeros([1, 4, 4]), { sqrtEps: NaN }), /^maskedGrn: sqrtEps must be a finite non-negative number/],
    ['dropPath null', () => layers.dropPath(nhwc, null as never), /^dropPath: options \{rate, train\?, key\?\} are required/],
    ['dropPath misspelt', () => layers.dropPath(nhwc, { rate: 0.1, training: true } as never), /^dropPath: unknown option "training"/],
    ['globalAvgPool layout', () => layers.globalAvgPool(nhwc, { layout: 'HWC' as never }), /^globalAvgPool: layout must be 'NCHW' or 'NHWC'/],
    ['gelu option', () => layers.gelu(nhwc, { approx: 'tanh' } as never), /^gelu: unknown option "approx"/],
    ['depthwiseConv2d input', () => layers.depthwiseConv2d({ weight: ops.ones([8, 1, 7, 7]) }, ops.zeros([4, 4]) as never), /^depthwiseConv2d: input must be a float tensor|^depthwiseConv2d: expected a 4-D input/],
  ])('%s', (_, f, re) => expectOpError(f, re));
});
