/**
 * Bad input raises an OpError that names the operation, the shapes and dtypes involved, and
 * the caller's source location (this file's path, line and column) - DESIGN.md section 8.
 *
 * Each case is written `const [err, line] = [thrown(() => ...), lineHere()];` on ONE line, so
 * the reported site can be checked against the exact line of the call.
 */
import { describe, expect, it } from 'vitest';
import { checkpoint, customVjp, grad, jvp, valueAndGrad, vjp } from '../../src/autodiff/index.js';
import { OpError } from '../../src/ir/errors.js';
import { region, trace } from '../../src/ir/functional.js';
import * as ops from '../../src/ir/ops.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { bind1 } from '../../src/ir/trace.js';
import { f64 } from '../helpers/gradcheck.js';

/** The error fn throws (fails the test if it returns). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    if (e instanceof Error) return e;
    throw new Error(`threw a non-Error: ${String(e)}`);
  }
  throw new Error('expected an error, but the call returned');
}

/** The line number of the caller of lineHere. */
function lineHere(): number {
  const frame = (new Error().stack ?? '').split('\n')[2] ?? '';
  const m = /errors\.test\.ts:(\d+):\d+/.exec(frame);
  if (!m) throw new Error(`cannot find this file in the frame ${frame}`);
  return Number(m[1]);
}

/** err is an OpError for `op` whose message has every fragment and this file's line `line`. */
function expectOpError(err: Error, op: string, line: number, ...fragments: (string | RegExp)[]): void {
  expect(err).toBeInstanceOf(OpError);
  const e = err as OpError;
  expect(e.op).toBe(op);
  expect(e.message.startsWith(`${op}: `)).toBe(true);
  expect(e.message).toMatch(/errors\.test\.ts:\d+:\d+/);
  expect(e.message).toContain(`(called at `);
  expect(e.site).toMatch(new RegExp(`test/ir/errors\\.test\\.ts:${line}:\\d+$`));
  for (const f of fragments) {
    if (typeof f === 'string') expect(e.message).toContain(f);
    else expect(e.message).toMatch(f);
  }
}

const x23 = f64([1, 2, 3, 4, 5, 6], [2, 3]);

describe('shapes and dtypes', () => {
  it('add of [2,3] and [4]: names add, both shapes and the call site', () => {
    const [err, line] = [thrown(() => ops.add(x23, f64([1, 2, 3, 4], [4]))), lineHere()];
    expectOpError(err, 'add', line, '[2,3]', '[4]', 'cannot be broadcast');
    expect(err.message).toMatch(/^add: shapes \[2,3\] and \[4\] cannot be broadcast together \(called at .*errors\.test\.ts:\d+:\d+\)$/);
  });

  it('the same mismatch through the Tensor method and inside a traced function', () => {
    const [err, line] = [thrown(() => x23.mul(f64([1, 2], [2]))), lineHere()];
    expectOpError(err, 'mul', line, '[2,3]', '[2]');
    // inside trace, the site is the user's line inside the traced function
    let inner = 0;
    const err2 = thrown(() =>
      trace((a: Tensor) => {
        inner = lineHere() + 1;
        return ops.sub(a, f64([1, 2], [2]));
      }, x23),
    );
    expectOpError(err2, 'sub', inner, '[2,3]', '[2]');
  });

  it('a primitive applied directly checks its operands too', () => {
    const [err, line] = [thrown(() => bind1('add', [x23, f64([1, 2, 3, 4], [4])], {})), lineHere()];
    expectOpError(err, 'add', line, 'f64[2,3]', 'f64[4]');
  });

  it('add of f32 and f64: names both dtypes', () => {
    const [err, line] = [thrown(() => ops.add(ops.cast(x23, 'f32'), x23)), lineHere()];
    expectOpError(err, 'add', line, 'f32[2,3]', 'f64[2,3]', 'dtypes differ');
  });

  it('exp of i32', () => {
    const [err, line] = [thrown(() => ops.exp(ops.cast(x23, 'i32'))), lineHere()];
    expectOpError(err, 'exp', line, 'i32[2,3]', 'floating-point');
  });

  it('matmul of f32 and i32 (checked in ops.matmul, before the primitive)', () => {
    const a = ops.zeros([2, 3], 'f32');
    const b = ops.zeros([3, 4], 'i32');
    const [err, line] = [thrown(() => ops.matmul(a, b)), lineHere()];
    expectOpError(err, 'matmul', line, 'f32[2,3]', 'i32[3,4]', 'dtypes differ');
  });

  it('matmul with mismatched inner dimensions', () => {
    const [err, line] = [thrown(() => ops.matmul(ops.zeros([2, 3]), ops.zeros([4, 5]))), lineHere()];
    expectOpError(err, 'matmul', line, '[2,3]', '[4,5]');
  });

  it('sum over axis 3 of [2,3]', () => {
    const [err, line] = [thrown(() => ops.sum(x23, 3)), lineHere()];
    expectOpError(err, 'sum', line, 'axis 3', '[2,3]', 'out of range');
  });

  it('other axis / shape errors: max, transpose, reshape, concat, where, take, slice, pad, broadcastTo', () => {
    const cases: [Error, number, string, ...string[]][] = [
      [thrown(() => ops.max(x23, -3)), lineHere(), 'max', 'axis -3', '[2,3]'],
      [thrown(() => ops.transpose(x23, [0, 0])), lineHere(), 'transpose', '[0,0]', '[2,3]'],
      [thrown(() => ops.reshape(x23, [4, 2])), lineHere(), 'reshape', '[2,3]', '[4,2]'],
      [thrown(() => ops.concat([x23, f64([1, 2], [1, 2])], 0)), lineHere(), 'concat', 'f64[2,3]', 'f64[1,2]'],
      [thrown(() => ops.where(ops.greater(x23, 1), x23, f64([1, 2], [2]))), lineHere(), 'where', '[2,3]', '[2]'],
      [thrown(() => ops.take(x23, f64([0], [1]))), lineHere(), 'take', 'f64[1]', 'i32'],
      [thrown(() => ops.slice(x23, [0, 4], [2, 5])), lineHere(), 'slice', '[2,3]'],
      [thrown(() => ops.pad(x23, [[1, 1]])), lineHere(), 'pad', '[2,3]'],
      [thrown(() => ops.broadcastTo(x23, [3, 3])), lineHere(), 'broadcastTo', '[2,3]', '[3,3]'],
      [thrown(() => bind1('pad', [x23], { lo: [-2, 0], hi: [-1, 0], interior: [0, 0], value: 0 })), lineHere(), 'pad', 'f64[2,3]'],
      [thrown(() => bind1('reduce_sum', [x23], { axes: [1, 1] })), lineHere(), 'reduce_sum', '[2,3]'],
      [thrown(() => bind1('gather', [x23, ops.tensor([0], { dtype: 'i32' })], { axis: 2, batchDims: 0 })), lineHere(), 'gather', 'f64[2,3]', 'i32[1]'],
    ];
    for (const [err, line, op, ...frags] of cases) expectOpError(err, op, line, ...frags);
  });

  it('conv2d with 6 channels and groups 4: the conv_general shape rule names both shapes', () => {
    const x = ops.zeros([1, 6, 5, 5]);
    const w = ops.zeros([8, 6, 3, 3]);
    const [err, line] = [thrown(() => ops.conv2d(x, w, { groups: 4 })), lineHere()];
    expect(err.message).not.toMatch(/pending/);
    expect(err).toBeInstanceOf(OpError);
    expect((err as OpError).op).toMatch(/^conv/);
    expect(err.message).toMatch(/\b6\b/);
    expect(err.message).toMatch(/\b4\b/);
    expect(err.message).toContain('[1,6,5,5]');
    expect((err as OpError).site).toMatch(new RegExp(`errors\\.test\\.ts:${line}:\\d+$`));
  });
});

describe('pytrees', () => {
  it('trace given {w: 3} names the path argument 0.w and says number', () => {
    const [err, line] = [thrown(() => trace((p: { w: Tensor }) => p.w, { w: 3 })), lineHere()];
    expectOpError(err, 'trace', line, 'argument 0.w', 'number 3', 'Tensors');
  });

  it('grad given {w: 3} names the path, also for argnums other than 0', () => {
    const f = (a: Tensor, p: { w: Tensor }) => ops.sum(ops.mul(a, p.w));
    const [err, line] = [thrown(() => grad(f)({ w: 3 }, x23)), lineHere()];
    expectOpError(err, 'grad', line, 'argument 0.w', 'number 3');
    const [err2, line2] = [thrown(() => grad(f, { argnums: 1 })(x23, { w: 3 })), lineHere()];
    expectOpError(err2, 'grad', line2, 'argument 1.w', 'number 3');
    const [err3, line3] = [thrown(() => valueAndGrad(f, { argnums: [0, 1] })(x23, { w: 'x' })), lineHere()];
    expectOpError(err3, 'valueAndGrad', line3, 'argument 1.w', 'string "x"');
  });

  it('a nested path and other leaf kinds', () => {
    const tree = { layers: [{ w: x23 }, { w: new Float32Array(2) }] };
    const [err, line] = [thrown(() => trace((p: typeof tree) => p.layers[0]!.w, tree)), lineHere()];
    expectOpError(err, 'trace', line, 'argument 0.layers[1].w', 'Float32Array');
    const [err2, line2] = [thrown(() => vjp((a: Tensor, b: unknown) => a, x23, [true])), lineHere()];
    expectOpError(err2, 'vjp', line2, 'argument 1[0]', 'boolean');
  });

  it('a function returning a non-tensor leaf', () => {
    const [err, line] = [thrown(() => trace((a: Tensor) => ({ y: a, n: 1 }), x23)), lineHere()];
    expectOpError(err, 'trace', line, 'result.n', 'number 1');
  });
});

describe('autodiff misuse', () => {
  it('grad of a non-scalar function', () => {
    const [err, line] = [thrown(() => grad((a: Tensor) => ops.exp(a))(x23)), lineHere()];
    expectOpError(err, 'grad', line, 'scalar', 'f64[2,3]');
  });

  it('grad of a function returning several tensors', () => {
    const [err, line] = [thrown(() => grad((a: Tensor) => [ops.sum(a), ops.sum(a)])(x23)), lineHere()];
    expectOpError(err, 'grad', line, 'single scalar');
  });

  it('grad with respect to an integer input', () => {
    const i = ops.cast(x23, 'i32');
    const [err, line] = [thrown(() => grad((a: Tensor) => ops.sum(ops.cast(a, 'f64')))(i)), lineHere()];
    expectOpError(err, 'grad', line, 'i32', '[2,3]', 'float');
  });

  it('grad with argnums out of range', () => {
    const [err, line] = [thrown(() => grad((a: Tensor) => ops.sum(a), { argnums: 2 })(x23)), lineHere()];
    expectOpError(err, 'grad', line, 'argnums 2', '1 arguments');
  });

  it('grad with a repeated argnum', () => {
    const [err, line] = [thrown(() => grad((a: Tensor, b: Tensor) => ops.sum(ops.mul(a, b)), { argnums: [0, 0] })(x23, x23)), lineHere()];
    expectOpError(err, 'grad', line, 'argnums [0,0]', 'repeats');
  });

  it('customVjp whose bwd returns a cotangent of the wrong shape (it would broadcast silently)', () => {
    const bad = customVjp(
      (a: Tensor) => ops.sin(a),
      (a: Tensor) => [ops.sin(a), a],
      (_a: Tensor, ct: Tensor) => [ops.sum(ct, 0, true)],
    );
    const [err, line] = [thrown(() => grad((a: Tensor) => ops.sum(bad(a)))(f64([1, 2, 3], [3]))), lineHere()];
    expectOpError(err, 'customVjp', line, 'f64[1]', 'f64[3]', 'cotangent 0');
  });

  it('jvp with a tangent of the wrong dtype, vjp with a cotangent of the wrong shape', () => {
    const [err, line] = [thrown(() => jvp((a: Tensor) => a, [x23], [ops.cast(x23, 'f32')])), lineHere()];
    expectOpError(err, 'jvp', line, 'f32[2,3]', 'f64[2,3]');
    const back = vjp((a: Tensor) => ops.exp(a), x23)[1];
    const [err2, line2] = [thrown(() => back(f64([1], [1]))), lineHere()];
    expectOpError(err2, 'vjp', line2, 'f64[1]', 'f64[2,3]');
  });

  it('an error inside a function under grad, checkpoint or region points at the user\'s line in it', () => {
    let inner = 0;
    const bad = (a: Tensor) => {
      inner = lineHere() + 1;
      return ops.sum(ops.add(a, f64([1, 2, 3, 4], [4])));
    };
    expectOpError(thrown(() => grad(bad)(x23)), 'add', inner, '[2,3]', '[4]');
    expectOpError(thrown(() => grad(checkpoint(bad))(x23)), 'add', inner, '[2,3]', '[4]');
    expectOpError(thrown(() => grad(region('bad', bad))(x23)), 'add', inner, '[2,3]', '[4]');
    expectOpError(thrown(() => grad((a: Tensor) => grad(bad)(a).sum())(x23)), 'add', inner, '[2,3]', '[4]');
  });
});

describe('escaped tracers', () => {
  let leaked: Tensor | undefined;
  trace((a: Tensor) => {
    leaked = ops.exp(a);
    return a;
  }, x23);

  it('used eagerly outside its trace: names the op, the tensor and the call site', () => {
    const [err, line] = [thrown(() => leaked!.add(1)), lineHere()];
    expectOpError(err, 'add', line, 'escaped', 'f64[2,3]');
    const [err2, line2] = [thrown(() => ops.sum(leaked!)), lineHere()];
    expectOpError(err2, 'reduce_sum', line2, 'escaped', 'f64[2,3]');
  });

  it('used inside another trace or grad', () => {
    const [err, line] = [thrown(() => trace((a: Tensor) => ops.mul(a, leaked!), x23)), lineHere()];
    expectOpError(err, 'mul', line, 'escaped', 'f64[2,3]');
    const [err2, line2] = [thrown(() => grad((a: Tensor) => ops.sum(ops.mul(a, leaked!)))(x23)), lineHere()];
    expectOpError(err2, 'mul', line2, 'escaped', 'f64[2,3]');
  });

  it('its value cannot be read', () => {
    expect(() => leaked!.dataSync()).toThrow(/dataSync: this tensor f64\[2,3\] is being traced/);
    expect(() => leaked!.item()).toThrow(/item/);
  });
});
