// The WGSL dialect's own arithmetic, compiled and run on the device, against the host's meaning
// (the reference interpreter): float -> integer casts that wrap modulo 2^32 (WGSL's builtin
// saturates), f16/bf16 rounding on the bits (ties to even, overflow to infinity, subnormals),
// sin/cos by range reduction (SwiftShader's builtins are off by ~1e-4), tanh at large |x|,
// integer pow, shifts and division edge cases; and the printed forms the language requires.
import { expect, it } from 'vitest';
import { createWgslDialect } from '../../../src/codegen/wgsl/dialect.js';
import * as ng from '../../../src/index.js';
import { bind1 } from '../../../src/ir/trace.js';
import { describeWgslBackend, wgslBackend } from './env.js';

const env = await wgslBackend();

const same = (a: number, b: number): boolean => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

async function bitwise(fn: (...xs: ng.Tensor[]) => ng.Tensor, args: ng.Tensor[], what: string): Promise<void> {
  const got = await ng.jit(fn, { backend: 'wgsl', cacheDir: false })(...args).data();
  const want = ng.interpret(ng.trace(fn, ...args), args)[0]!.dataSync();
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) if (!same(got[i]!, want[i]!)) throw new Error(`${what}: element ${i} (input ${args[0]!.dataSync()[i]}) is ${got[i]}, the host's ${want[i]}`);
}

const SPECIAL = [NaN, Infinity, -Infinity, 0, -0, 0.5, -0.5, 1.5, -1.5, 2.5, 2147483520, 2147483648, -2147483648, -2147483904, 3e9, -3e9, 4294967296, 5e9, -5e9, 1e20, -1e20, 3.4e38, 16777217, 123456.789];

describeWgslBackend('the WGSL dialect on the device, against the host', env, () => {
  it('float -> i32/u32 casts wrap modulo 2^32 and send NaN and infinities to 0', async () => {
    const x = ng.tensor(SPECIAL);
    await bitwise((a) => a.cast('i32'), [x], 'f32 -> i32');
    await bitwise((a) => a.cast('u32'), [x], 'f32 -> u32');
    const i = ng.tensor([0, 1, -1, 2147483647, -2147483648, 16777217, -16777219], { dtype: 'i32' });
    await bitwise((a) => a.cast('u32'), [i], 'i32 -> u32');
    await bitwise((a) => a.cast('f32'), [i], 'i32 -> f32');
    await bitwise((a) => a.cast('bool').cast('i32'), [i], 'i32 -> bool');
    await bitwise((a) => a.cast('bool').cast('f32'), [x], 'f32 -> bool (NaN is true)');
  });

  it('f16 and bf16 rounding: ties to even, overflow to infinity, half subnormals, NaN kept', async () => {
    const ulp = 2 ** -10;
    const values = [
      ...SPECIAL, 1 + ulp / 2, 1 + (3 * ulp) / 2, 1 + ulp / 4, 65504, 65519, 65520, 70000, -65520, 2 ** -24, 1.5 * 2 ** -24, 2 ** -25, 1.01 * 2 ** -25, 2 ** -26, 3 * 2 ** -16,
      -(2 ** -14) * 1.0004, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -9, 0.1, -0.3, 1e-5, 6.1e-5,
    ];
    const x = ng.tensor(values);
    await bitwise((a) => a.cast('f16').cast('f32'), [x], 'f32 -> f16');
    await bitwise((a) => a.cast('bf16').cast('f32'), [x], 'f32 -> bf16');
    await bitwise((a) => a.cast('f16').cast('bf16').cast('f32'), [x], 'f16 -> bf16');
    // f16 arithmetic: computed in f32, rounded after every operation
    const h = x.cast('f16');
    await bitwise((a) => a.mul(a).add(a).cast('f32'), [h], 'f16 a * a + a');
  });

  it('sin and cos within a few f32 ulps of the float64 values on [-300, 300]', async () => {
    const n = 4001;
    const x = ng.tensor(Float32Array.from({ length: n }, (_, i) => -300 + (600 * i) / (n - 1) + 1e-3 * Math.sin(i)));
    for (const op of ['sin', 'cos'] as const) {
      const got = await ng.jit((a: ng.Tensor) => a[op](), { backend: 'wgsl', cacheDir: false })(x).data();
      const xs = x.dataSync();
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(got[i]! - Math[op](xs[i]!)));
      expect(worst, op).toBeLessThan(6e-7); // SwiftShader's builtin sin is off by ~1.4e-4 here
    }
  });

  it('tanh saturates to +-1 without overflow and is accurate near 0', async () => {
    const x = ng.tensor([0, 1e-6, -1e-6, 0.3, -2, 9, 20, 88, 100, -100, 1e30, -1e30]);
    const got = await ng.jit((a: ng.Tensor) => a.tanh(), { backend: 'wgsl', cacheDir: false })(x).data();
    x.dataSync().forEach((v, i) => expect(Math.abs(got[i]! - Math.tanh(v)), `tanh(${v})`).toBeLessThan(2e-7 + 1e-6 * Math.abs(Math.tanh(v))));
  });

  it('integer division and remainder by 0 and -1, shifts by 32 and more, integer pow', async () => {
    const a = ng.tensor([7, -7, -2147483648, 5, 0, 13, -9, 3], { dtype: 'i32' });
    const b = ng.tensor([0, -1, -1, 2, 0, 32, 33, -1], { dtype: 'i32' });
    await bitwise((p, q) => p.div(q), [a, b], 'i32 div');
    await bitwise((p, q) => bind1('rem', [p, q], {}), [a, b], 'i32 rem');
    await bitwise((p, q) => bind1('shift_left', [p, q], {}), [a, b], 'i32 <<');
    await bitwise((p, q) => bind1('shift_right_logical', [p, q], {}), [a, b], 'i32 >>>');
    const base = ng.tensor([2, -3, 1, -1, 0, 7, 2, -1], { dtype: 'i32' });
    const exp = ng.tensor([10, 3, -5, -3, -1, 0, 31, 4], { dtype: 'i32' });
    await bitwise((p, q) => bind1('pow', [p, q], {}), [base, exp], 'i32 pow');
    const ua = ng.tensor([7, 4294967295, 5, 0], { dtype: 'u32' });
    const ub = ng.tensor([0, 2, 31, 40], { dtype: 'u32' });
    await bitwise((p, q) => p.div(q), [ua, ub], 'u32 div');
    await bitwise((p, q) => bind1('shift_left', [p, q], {}), [ua, ub], 'u32 <<');
  });

  it('max/min propagate NaN from either side; comparisons with NaN are false', async () => {
    const a = ng.tensor([NaN, 1, NaN, -0, 0, Infinity]);
    const b = ng.tensor([1, NaN, NaN, 0, -0, NaN]);
    await bitwise((p, q) => p.maximum(q), [a, b], 'max');
    await bitwise((p, q) => p.minimum(q), [a, b], 'min');
    await bitwise((p, q) => p.lt(q).cast('f32').add(p.ge(q).cast('f32').mul(2)), [a, b], 'compare');
    await bitwise((p, q) => bind1('ne', [p, q], {}).cast('f32').add(bind1('eq', [p, q], {}).cast('f32').mul(2)), [a, b], 'ne and eq (NaN != anything)');
  });
});

it('prints what WGSL requires: non-finite literals from bits, select(false, true, c), u32 shift amounts, typed integer literals', () => {
  const D = createWgslDialect({ f16: false });
  expect(D.literal(NaN, 'f32')).toBe('ng_f32_bits(0x7fc00000u)');
  expect(D.literal(-Infinity, 'f32')).toBe('ng_f32_bits(0xff800000u)');
  expect(D.literal(-0, 'f32')).toBe('ng_f32_bits(0x80000000u)');
  expect(D.literal(-2147483648, 'i32')).toBe('(-2147483647i - 1i)');
  expect(D.literal(3, 'u32')).toBe('3u');
  expect(D.literal(0.1, 'f32')).toBe(`${Math.fround(0.1)}f`);
  expect(D.select('c', 'a', 'b', 'f32')).toBe('select(b, a, c)');
  expect(D.binary('shift_left', 'a', 'b', 'i32')).toBe('(a << bitcast<u32>(b))');
  expect(D.compare('ne', 'x', 'x', 'f32')).toBe('ng_is_nan(x)');
  expect(D.type('f16')).toBe('f32');
  expect(() => D.type('f64')).toThrow(/f64, which WGSL does not have/);
  // f16 storage where the adapter has shader-f16: loads widen, stores narrow, the module enables f16
  const H = createWgslDialect({ f16: true }).forKernel([{ kind: 'buffer', bufs: [3], dtype: 'f16', access: 'read_write', atomic: false }]);
  expect(H.load(3, 'i', 'f16')).toBe('f32(b3[i])');
  expect(H.store(3, 'i', 'v', 'f16', false)).toBe('b3[i] = f16(v);');
  const src = H.module({ name: 'k', workgroupSize: 64, bindings: [{ kind: 'buffer', bufs: [3], dtype: 'f16', access: 'read_write', atomic: false }], shared: [], paramCount: 0, entries: [{ name: 'ng_main', body: '' }] });
  expect(src.startsWith('enable f16;')).toBe(true);
  expect(src).toContain('var<storage, read_write> b3: array<f16>;');
});
