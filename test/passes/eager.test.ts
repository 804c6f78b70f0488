// Eager operations through the public entry point run on the CPU backend as cached single-op
// programs; they agree with the float64 interpreter, and NEXGRAD_EAGER=interpreter-style
// switching restores the reference path.
import { afterAll, describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';
import { interpret } from '../../src/ir/interpreter.js';
import { eagerStats } from '../../src/passes/eager.js';
import { relErr } from '../helpers/refs.js';

describe('eager execution on the default backend', () => {
  afterAll(() => ng.setEagerBackend('cpu'));

  it('runs single-op programs on the CPU backend, compiled once per signature', () => {
    ng.setEagerBackend('cpu');
    const x = ng.random.normal(ng.random.key(3), [16, 24]);
    const w = ng.random.normal(ng.random.key(4), [24, 8]);
    const f = (a: ng.Tensor, b: ng.Tensor) => ng.nn.gelu(a.matmul(b)).sum(0);
    const before = { ...eagerStats };
    const eager = f(x, w);
    const mid = { ...eagerStats };
    f(x, w);
    // every op ran compiled (matmul, the gelu region as one program, sum); the second call compiled nothing new
    expect(mid.runs - before.runs).toBe(3);
    expect(eagerStats.runs - mid.runs).toBe(mid.runs - before.runs);
    expect(eagerStats.compiled).toBe(mid.compiled);
    const ref = interpret(ng.trace(f, x, w), [x, w], { dtype: 'f64' })[0]!;
    expect(relErr(eager, ref)).toBeLessThan(1e-5);
    // the interpreter path gives the same values within f32 rounding
    ng.setEagerBackend('interpreter');
    const interp = f(x, w);
    expect(relErr(interp, ref)).toBeLessThan(1e-6);
  });

  it('is exact enough in float64 for gradient checks (1e-12 against the interpreter)', () => {
    ng.setEagerBackend('cpu');
    const x = ng.random.normal(ng.random.key(5), [4, 6], { dtype: 'f64' });
    const loss = (a: ng.Tensor) => a.tanh().mul(a.exp()).matmul(a.transpose()).sum();
    const g = ng.grad(loss)(x);
    ng.setEagerBackend('interpreter');
    const gi = ng.grad(loss)(x);
    expect(relErr(g, gi)).toBeLessThan(1e-12);
  });
});
