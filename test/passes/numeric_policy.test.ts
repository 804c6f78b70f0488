// One numeric policy for eager and jit (issue 8, item 8): each f32 primitive is computed and
// rounded to f32 (the reference interpreter's rule), reductions accumulate wider and are
// rounded once, so an eager computation and its jitted, fused form agree bit for bit -- also
// where the f32 rounding of intermediates matters (LayerNorm of large values) and for the
// PRNG's transforms. Before, jit kept fused intermediates in float64.
import { describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';

const bits = (t: ng.Tensor): number[] => Array.from(t.dataSync());

/** jit equals eager bit for bit; both equal the f32 interpreter (within `interpTol` where erf's f32 approximation is involved). */
function expectSame(fn: (...xs: ng.Tensor[]) => ng.Tensor, args: ng.Tensor[], what: string, interpTol = 0): void {
  const eager = bits(fn(...args));
  const jitted = bits(ng.jit(fn, { cacheDir: false })(...args));
  const interp = bits(ng.interpret(ng.trace(fn, ...args), args)[0]!);
  expect(jitted, `${what}: jit vs eager`).toEqual(eager);
  if (interpTol === 0) expect(interp, `${what}: interpreter (f32) vs eager`).toEqual(eager);
  else interp.forEach((v, i) => expect(Math.abs(v - eager[i]!), `${what}: interpreter vs eager at ${i}`).toBeLessThanOrEqual(interpTol * Math.max(1, Math.abs(v))));
}

describe('eager and jit agree bit for bit', () => {
  it('LayerNorm of large-magnitude f32 values', () => {
    const x = ng.tensor([[1e7 + 1, 1e7 + 2, 1e7 + 3, 1e7 + 4], [1, 2, 3, 4.5]]);
    const w = ng.tensor([1, 0.5, 2, 1]);
    expectSame((a: ng.Tensor, g: ng.Tensor) => ng.nn.layerNorm({ weight: g, bias: g.mul(0.1) }, a), [x, w], 'layerNorm');
  });

  it('GRN of large-magnitude f32 values', () => {
    const x = ng.random.normal(ng.random.key(3), [2, 3, 3, 8]).mul(1e4).add(3e6);
    const gamma = ng.random.normal(ng.random.key(4), [1, 1, 1, 8]);
    const beta = ng.random.normal(ng.random.key(5), [1, 1, 1, 8]);
    expectSame((a: ng.Tensor, g: ng.Tensor, b: ng.Tensor) => ng.nn.grn({ gamma: g, beta: b }, a), [x, gamma, beta], 'grn');
  });

  it('random.normal, uniform and truncatedNormal draws', () => {
    for (const seed of [0, 1, 42]) {
      const key = ng.random.key(seed);
      expectSame((k: ng.Tensor) => ng.random.normal(k, [1000]), [key], `normal ${seed}`);
      expectSame((k: ng.Tensor) => ng.random.uniform(k, [257]), [key], `uniform ${seed}`);
      expectSame((k: ng.Tensor) => ng.random.truncatedNormal(k, -2, 2, [300]), [key], `truncatedNormal ${seed}`);
    }
  });

  it('an element-wise chain with transcendentals', () => {
    const x = ng.random.normal(ng.random.key(9), [64]).mul(3);
    // erf is the f32 rational approximation on the CPU (7.3e-7), the exact erf in the interpreter
    expectSame((a: ng.Tensor) => ng.nn.gelu(a).mul(a.exp().add(1).log()).sub(a.tanh().div(a.abs().add(0.5))), [x], 'chain', 4e-6);
  });
});
