/** Golden tests of the IR printer: trace(fn, ...).toString() for small programs. */
import { describe, expect, it } from 'vitest';
import { grad, jvp } from '../../src/autodiff/index.js';
import { region, trace } from '../../src/ir/functional.js';
import * as ops from '../../src/ir/ops.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { bind1 } from '../../src/ir/trace.js';

const golden = (...lines: string[]): string => lines.join('\n');

describe('printer', () => {
  it('broadcasting and a scalar literal', () => {
    const p = trace((a: Tensor, b: Tensor) => ops.add(ops.mul(a, b), 1), ops.zeros([2, 3]), ops.zeros([3]));
    expect(p.toString()).toBe(
      golden(
        '{ lambda (a:f32[2,3], b:f32[3]) .',
        '  c:f32[2,3] = broadcast_in_dim[shape=(2,3) dims=(1)] b',
        '  d:f32[2,3] = mul a c',
        '  e:f32[2,3] = broadcast_in_dim[shape=(2,3) dims=()] 1.0',
        '  f:f32[2,3] = add d e',
        '  in (f) }',
      ),
    );
  });

  it('reduction, keepdims reshape and transpose params', () => {
    const p = trace((a: Tensor) => ops.transpose(ops.reshape(ops.sum(a, 1, true), [1, 2]), [1, 0]), ops.zeros([2, 3]));
    expect(p.toString()).toBe(
      golden(
        '{ lambda (a:f32[2,3]) .',
        '  b:f32[2] = reduce_sum[axes=(1)] a',
        '  c:f32[2,1] = reshape[shape=(2,1)] b',
        '  d:f32[1,2] = reshape[shape=(1,2)] c',
        '  e:f32[2,1] = transpose[perm=(1,0)] d',
        '  in (e) }',
      ),
    );
  });

  it('captured constants, pytree outputs and a literal output', () => {
    const k = ops.tensor([1, 2, 3]);
    const p = trace((a: Tensor) => ({ s: ops.mul(a, k), m: [ops.max(a, [0, 1]), ops.scalar(2)] }), ops.zeros([2, 3]));
    expect(p.toString()).toBe(
      golden(
        '{ lambda (a:f32[2,3]) consts(b:f32[3]) .',
        '  c:f32[2,3] = broadcast_in_dim[shape=(2,3) dims=(1)] b',
        '  d:f32[2,3] = mul a c',
        '  e:f32[] = reduce_max[axes=(0,1)] a',
        '  in (d, e, 2.0) }',
      ),
    );
    expect(p.consts.length).toBe(1);
    expect(p.outputs.length).toBe(3);
  });

  it('integer and bool types, comparison, select and cast', () => {
    const p = trace(
      (a: Tensor, b: Tensor) => ops.where(ops.greater(a, 0), ops.add(a, 2), ops.cast(b, 'i32')),
      ops.zeros([4], 'i32'),
      ops.zeros([4]),
    );
    expect(p.toString()).toBe(
      golden(
        '{ lambda (a:i32[4], b:f32[4]) .',
        '  c:i32[4] = broadcast_in_dim[shape=(4) dims=()] 0',
        '  d:bool[4] = gt a c',
        '  e:i32[4] = broadcast_in_dim[shape=(4) dims=()] 2',
        '  f:i32[4] = add a e',
        '  g:i32[4] = cast[dtype=i32] b',
        '  h:i32[4] = select d f g',
        '  in (h) }',
      ),
    );
  });

  it('slice, pad (negative and fractional params), gather with a constant index tensor', () => {
    const x = ops.zeros([2, 3], 'f64');
    const p = trace((a: Tensor) => ops.pad(ops.slice(a, [0, 1], [2, 3], [1, 2]), [[1, 0], [0, -1]], 0.25), x);
    expect(p.toString()).toBe(
      golden(
        '{ lambda (a:f64[2,3]) .',
        '  b:f64[2,1] = slice[start=(0,1) limit=(2,3) strides=(1,2)] a',
        '  c:f64[3,0] = pad[lo=(1,0) hi=(0,-1) interior=(0,0) value=0.25] b',
        '  in (c) }',
      ),
    );
    const q = trace((a: Tensor) => ops.take(a, ops.tensor([1, 0], { dtype: 'i32' }), 1), x);
    expect(q.toString()).toBe(
      golden('{ lambda (a:f64[2,3]) consts(b:i32[2]) .', '  c:f64[2,2] = gather[axis=1 batchDims=0] a b', '  in (c) }'),
    );
  });

  it('a region with attrs prints its body indented', () => {
    const sq = region('square_plus', (a: Tensor) => ops.add(ops.mul(a, a), 0.5), { eps: 0.5 });
    const p = trace((a: Tensor) => ops.sum(sq(a)), ops.zeros([3]));
    expect(p.toString()).toBe(
      golden(
        '{ lambda (a:f32[3]) .',
        '  b:f32[3] = region[name=square_plus attrs={eps=0.5} body={',
        '    { lambda (b:f32[3]) .',
        '      c:f32[3] = mul b b',
        '      d:f32[3] = broadcast_in_dim[shape=(3) dims=()] 0.5',
        '      e:f32[3] = add c d',
        '      in (e) }',
        '  }] a',
        '  c:f32[] = reduce_sum[axes=(0)] b',
        '  in (c) }',
      ),
    );
  });

  it('names past z continue ba, bb, ...', () => {
    const p = trace((a: Tensor) => {
      let r = a;
      for (let j = 0; j < 28; j++) r = ops.neg(r);
      return r;
    }, ops.zeros([]));
    const lines = p.toString().split('\n');
    expect(lines.length).toBe(30);
    expect(lines[0]).toBe('{ lambda (a:f32[]) .');
    expect(lines.slice(25)).toEqual(['  z:f32[] = neg y', '  ba:f32[] = neg z', '  bb:f32[] = neg ba', '  bc:f32[] = neg bb', '  in (bc) }']);
  });

  it('grad of sum(sin(x) * x)', () => {
    const p = trace(grad((a: Tensor) => ops.sum(ops.mul(ops.sin(a), a))), ops.zeros([3], 'f64'));
    expect(p.toString()).toBe(
      golden(
        '{ lambda (a:f64[3]) .',
        '  b:f64[3] = sin a',
        '  c:f64[3] = mul b a',
        '  d:f64[] = reduce_sum[axes=(0)] c',
        '  e:f64[3] = broadcast_in_dim[shape=(3) dims=()] 1.0',
        '  f:f64[3] = mul e a',
        '  g:f64[3] = mul e b',
        '  h:f64[3] = cos a',
        '  i:f64[3] = mul f h',
        '  j:f64[3] = add g i',
        '  in (j) }',
      ),
    );
  });

  it('jvp of a region is one <name>.jvp region computing outputs and tangents', () => {
    const r = region('scaled_exp', (a: Tensor) => ops.mul(ops.exp(a), 2));
    const x = ops.zeros([3], 'f64');
    const p = trace((a: Tensor, t: Tensor) => jvp(r, [a], [t]), x, x);
    expect(p.toString()).toBe(
      golden(
        '{ lambda (a:f64[3], b:f64[3]) .',
        '  c:f64[3] d:f64[3] = region[name=scaled_exp.jvp attrs={} body={',
        '    { lambda (c:f64[3], d:f64[3]) .',
        '      e:f64[3] = exp c',
        '      f:f64[3] = mul d e',
        '      g:f64[3] = broadcast_in_dim[shape=(3) dims=()] 2.0',
        '      h:f64[3] = mul e g',
        '      i:f64[3] = mul f g',
        '      in (h, i) }',
        '  }] a b',
        '  in (c, d) }',
      ),
    );
  });

  it('a primitive with several params, and printing is deterministic', () => {
    const f = (a: Tensor) => bind1('broadcast_in_dim', [a], { shape: [2, 1, 3], dims: [0, 2] });
    const x = ops.zeros([2, 3], 'bf16');
    const s = trace(f, x).toString();
    expect(s).toBe(golden('{ lambda (a:bf16[2,3]) .', '  b:bf16[2,1,3] = broadcast_in_dim[shape=(2,1,3) dims=(0,2)] a', '  in (b) }'));
    expect(trace(f, x).toString()).toBe(s);
    const p = trace(f, x);
    expect(p.toString()).toBe(p.toString());
  });
});
