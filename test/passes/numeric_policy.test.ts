// The numeric policy (issue 8, item 8; README "Numerics"). A fused kernel evaluates f32
// element-wise expressions in the backend's widest cheap precision (float64 in JavaScript) and
// rounds when it stores; reductions accumulate wider and round once. Named composites (regions:
// layerNorm, GRN, GELU, losses, every random draw) run eagerly as one fused program, so eager and
// jit agree bit for bit on them -- also where rounding matters (LayerNorm of large values) and
// for the PRNG's transforms. A chain of separate eager ops rounds after each op, so it may
// differ from its jitted (fused) form by f32 rounding; both stay within a few ulp of the
// interpreter (float64 for a well-conditioned chain, f32 for LayerNorm of large values).
import { describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';

const values = (t: ng.Tensor): number[] => Array.from(t.dataSync());

/** The float64 result of fn (inputs cast to f64, traced and interpreted). */
function f64Reference(fn: (...xs: ng.Tensor[]) => ng.Tensor, args: ng.Tensor[]): number[] {
  const wide = args.map((a) => (a.dtype === 'f32' ? a.cast('f64') : a));
  return values(ng.interpret(ng.trace(fn, ...wide), wide)[0]!);
}

function expectClose(got: number[], want: number[], tol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  got.forEach((v, i) => expect(Math.abs(v - want[i]!), `${what} at ${i}: ${v} vs ${want[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i]!))));
}

/**
 * jit equals eager bit for bit; both are within `tol` of the f32 interpreter, which rounds after
 * every primitive (large-magnitude inputs are ill-conditioned in f32: the mean itself is rounded,
 * so float64 is not the reference there).
 */
function expectSame(fn: (...xs: ng.Tensor[]) => ng.Tensor, args: ng.Tensor[], what: string, tol: number): void {
  const eager = values(fn(...args));
  const jitted = values(ng.jit(fn, { cacheDir: false })(...args));
  expect(jitted, `${what}: jit vs eager`).toEqual(eager);
  expectClose(eager, values(ng.interpret(ng.trace(fn, ...args), args)[0]!), tol, `${what}: eager vs the f32 interpreter`);
}

describe('eager and jit agree bit for bit on named composites', () => {
  it('LayerNorm of large-magnitude f32 values', () => {
    const x = ng.tensor([[1e7 + 1, 1e7 + 2, 1e7 + 3, 1e7 + 4], [1, 2, 3, 4.5]]);
    const w = ng.tensor([1, 0.5, 2, 1]);
    expectSame((a: ng.Tensor, g: ng.Tensor) => ng.nn.layerNorm({ weight: g, bias: g.mul(0.1) }, a), [x, w], 'layerNorm', 1e-6);
  });

  it('GRN of large-magnitude f32 values', () => {
    const x = ng.random.normal(ng.random.key(3), [2, 3, 3, 8]).mul(1e4).add(3e6);
    const gamma = ng.random.normal(ng.random.key(4), [1, 1, 1, 8]);
    const beta = ng.random.normal(ng.random.key(5), [1, 1, 1, 8]);
    expectSame((a: ng.Tensor, g: ng.Tensor, b: ng.Tensor) => ng.nn.grn({ gamma: g, beta: b }, a), [x, gamma, beta], 'grn', 1e-6);
  });

  it('random.normal, uniform, truncatedNormal and bernoulli draws', () => {
    for (const seed of [0, 1, 42]) {
      const key = ng.random.key(seed);
      for (const [what, fn] of [
        ['normal', (k: ng.Tensor) => ng.random.normal(k, [1000])],
        ['uniform', (k: ng.Tensor) => ng.random.uniform(k, [257], { minval: -3, maxval: 5 })],
        ['truncatedNormal', (k: ng.Tensor) => ng.random.truncatedNormal(k, -2, 2, [300])],
        ['bernoulli', (k: ng.Tensor) => ng.random.bernoulli(k, 0.3, [100]).cast('f32')],
      ] as const) {
        const eager = values(fn(key));
        expect(values(ng.jit(fn, { cacheDir: false })(key)), `${what} ${seed}: jit vs eager`).toEqual(eager);
      }
    }
  });

  it('a batch of keys draws as one region, the same as each key alone', () => {
    const keys = ng.random.split(ng.random.key(7), 3);
    const batch = values(ng.random.normal(keys, [5]));
    for (let i = 0; i < 3; i++) {
      const one = values(ng.random.normal(keys.slice([i, 0], [i + 1, 2]).reshape([2]), [5]));
      expect(batch.slice(i * 5, i * 5 + 5)).toEqual(one);
    }
  });

  it('an element-wise chain of separate ops: eager rounds each op, jit rounds once, both near float64', () => {
    const x = ng.random.normal(ng.random.key(9), [64]).mul(3);
    const fn = (a: ng.Tensor): ng.Tensor => ng.nn.gelu(a).mul(a.exp().add(1).log()).sub(a.tanh().div(a.abs().add(0.5)));
    const want = f64Reference(fn, [x]);
    // erf is the f32 rational approximation on the CPU (7.3e-7 absolute), the exact erf in float64
    expectClose(values(fn(x)), want, 4e-6, 'eager vs float64');
    expectClose(values(ng.jit(fn, { cacheDir: false })(x)), want, 4e-6, 'jit vs float64');
  });
});
