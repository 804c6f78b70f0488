// Parameter folding (src/passes/const_fold.ts): a jitted function that closes over its
// parameters computes parameter-only work once; GRN's beta moves into the second pointwise
// matmul's bias. Checked against the same function with the parameters as arguments (nothing
// folded) and against the float64 interpreter.
import { describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';
import { foldConstants } from '../../src/passes/const_fold.js';
import { inlineRegions } from '../../src/passes/inline.js';
import { lower } from '../../src/passes/pipeline.js';
import { simplify } from '../../src/passes/simplify.js';

const vals = (t: ng.Tensor): number[] => Array.from(t.dataSync());

function expectClose(got: number[], want: number[], tol: number): void {
  expect(got.length).toBe(want.length);
  got.forEach((v, i) => expect(Math.abs(v - want[i]!), `at ${i}: ${v} vs ${want[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i]!))));
}

describe('parameter folding', () => {
  it('folds parameter-only work: a transposed, scaled weight becomes one constant', () => {
    const w = ng.random.normal(ng.random.key(1), [8, 4]);
    const x = ng.random.normal(ng.random.key(2), [3, 4]);
    const f = (a: ng.Tensor) => a.matmul(w.transpose([1, 0]).mul(2));
    const p = simplify(inlineRegions(ng.trace(f, x)));
    const q = foldConstants(p);
    expect(p.eqns.some((e) => e.prim === 'transpose')).toBe(true);
    expect(q.eqns.map((e) => e.prim)).toEqual(['dot_general']);
    expect(q.consts.length).toBe(1);
    const ref = ng.interpret(ng.trace(f, x), [x], { dtype: 'f64' })[0]!;
    expectClose(vals(ng.jit(f, { cacheDir: false })(x)), vals(ref), 1e-5);
  });

  it('GRN beta before a matmul becomes part of its bias; values unchanged within f32 rounding', () => {
    const C = 16;
    const D = 6;
    const key = ng.random.split(ng.random.key(3), 5);
    const grnP = { gamma: ng.random.normal(key.slice([0, 0], [1, 2]).reshape([2]), [1, 1, 1, C]), beta: ng.random.normal(key.slice([1, 0], [2, 2]).reshape([2]), [1, 1, 1, C]) };
    const lin = { weight: ng.random.normal(key.slice([2, 0], [3, 2]).reshape([2]), [D, C]), bias: ng.random.normal(key.slice([3, 0], [4, 2]).reshape([2]), [D]) };
    const x = ng.random.normal(key.slice([4, 0], [5, 2]).reshape([2]), [2, 5, 5, C]);
    const closed = (a: ng.Tensor) => ng.nn.linear(lin, ng.nn.grn(grnP, a));
    const open = (a: ng.Tensor, g: typeof grnP, l: typeof lin) => ng.nn.linear(l, ng.nn.grn(g, a));
    const folded = lower(ng.trace(closed, x)).graph;
    const plain = lower(ng.trace(open, x, grnP, lin)).graph;
    const mm = (g: typeof folded) => g.kernels.find((k) => k.kind === 'matmul')!;
    const opsIn = (s: string) => (s.match(/"fn":"add"/g) ?? []).length;
    const print = (k: ReturnType<typeof mm>) => JSON.stringify(k.kind === 'matmul' ? k.a : null);
    // the operand prologue loses beta's addition
    expect(opsIn(print(mm(folded)))).toBe(opsIn(print(mm(plain))) - 1);
    const want = ng.interpret(ng.trace(open, x, grnP, lin), [x, grnP.gamma, grnP.beta, lin.weight, lin.bias])[0]!;
    expectClose(vals(ng.jit(closed, { cacheDir: false })(x)), vals(want), 2e-5);
    expectClose(vals(ng.jit(open, { cacheDir: false })(x, grnP, lin)), vals(want), 2e-5);
  });

  it('a big broadcast of a constant stays a view, not a folded constant', () => {
    const c = ng.random.normal(ng.random.key(5), [4]);
    const f = (a: ng.Tensor) => a.add(c.reshape([1, 4]).broadcastTo([1000, 4]).exp());
    const q = foldConstants(simplify(inlineRegions(ng.trace(f, ng.zeros([1000, 4])))));
    for (const k of q.consts) expect(k.value.data.length).toBeLessThanOrEqual(4);
  });
});
