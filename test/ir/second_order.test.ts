/**
 * Second-order autodiff: grad(grad(f)), forward-over-reverse Hessian-vector products and
 * reverse-over-forward, on composite functions and through region / checkpoint / customVjp.
 * "Checked against finite differences of the first derivative": checkGrad applied to the
 * gradient function compares jvp(grad f) with finite differences of grad f, and vjp(grad f)
 * with jvp(grad f) through <H u, c> = <u, H^T c>.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkpoint, customVjp, grad, jvp, valueAndGrad, vjp } from '../../src/autodiff/index.js';
import { region, trace } from '../../src/ir/functional.js';
import * as ops from '../../src/ir/ops.js';
import type { PrimName } from '../../src/ir/primitive.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { bind1 } from '../../src/ir/trace.js';
import { checkGrad, f64, randAway, randDistinct, randInt, randn, randu, Rng, seedArb, shapeArb, type TensorFn, values } from '../helpers/gradcheck.js';

function close(got: number[], want: number[], tol = 1e-12): void {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    if (Math.abs(g - want[i]!) > tol * (1 + Math.abs(want[i]!))) {
      throw new Error(`element ${i}: got ${g}, want ${want[i]} (tol ${tol})\n  got  ${JSON.stringify(got)}\n  want ${JSON.stringify(want)}`);
    }
  });
}

/** sum(tanh(x) * exp(y)) */
const tanhExp = (x: Tensor, y: Tensor): Tensor => ops.sum(ops.mul(ops.tanh(x), ops.exp(y)));

describe('composite functions', () => {
  it('grad(grad(f)) of a separable function matches the analytic second and third derivatives', () => {
    const x = f64([-1.3, -0.2, 0.4, 1.1, 2.5], [5]);
    const f = (a: Tensor) => ops.sum(ops.pow(ops.sin(a), 3));
    const g2 = grad((a: Tensor) => ops.sum(grad(f)(a)))(x);
    const xs = values(x);
    close(values(g2), xs.map((v) => 6 * Math.sin(v) * Math.cos(v) ** 2 - 3 * Math.sin(v) ** 3));
    const g3 = grad((a: Tensor) => ops.sum(grad((b: Tensor) => ops.sum(grad((c: Tensor) => ops.sum(ops.sin(c)))(b)))(a)))(x);
    close(values(g3), xs.map((v) => -Math.cos(v)));
  });

  it('forward-over-reverse HVP of sum(tanh(x) * exp(y)) matches the analytic Hessian', () => {
    fc.assert(
      fc.property(shapeArb(0, 3, 4), seedArb, (shape, seed) => {
        const rng = new Rng(seed);
        const [x, y, u, v] = [randn(rng, shape), randu(rng, shape, -1, 1), randn(rng, shape), randn(rng, shape)];
        const g = (a: Tensor, b: Tensor) => grad(tanhExp, { argnums: [0, 1] })(a, b);
        const [[gx, gy], [hx, hy]] = jvp(g, [x, y], [u, v]);
        const X = values(x);
        const Y = values(y);
        const U = values(u);
        const V = values(v);
        const th = X.map(Math.tanh);
        const s2 = th.map((t) => 1 - t * t);
        const ey = Y.map(Math.exp);
        close(values(gx), s2.map((s, i) => s * ey[i]!));
        close(values(gy), th.map((t, i) => t * ey[i]!));
        const fxx = th.map((t, i) => -2 * t * s2[i]! * ey[i]!);
        const fxy = s2.map((s, i) => s * ey[i]!);
        const fyy = th.map((t, i) => t * ey[i]!);
        close(values(hx), fxx.map((h, i) => h * U[i]! + fxy[i]! * V[i]!));
        close(values(hy), fxy.map((h, i) => h * U[i]! + fyy[i]! * V[i]!));
      }),
      { numRuns: 50 },
    );
  });

  it('grad of sum(tanh(x) * exp(y)): JVP and VJP of the gradient against finite differences', () => {
    fc.assert(
      fc.property(shapeArb(0, 3, 4), seedArb, (shape, seed) => {
        const rng = new Rng(seed);
        const g: TensorFn = (a, b) => grad(tanhExp, { argnums: [0, 1] })(a, b);
        checkGrad(g, [randn(rng, shape), randu(rng, shape, -1, 1)], { rng });
      }),
      { numRuns: 50 },
    );
  });

  it('a coupled function (softmax cross-entropy-like, reductions and broadcasting): Hessian is symmetric and matches finite differences', () => {
    const loss = (x: Tensor, w: Tensor) => {
      const z = ops.mul(x, w); // [n, k] * [k]
      const lse = ops.logSumExp(z, 1);
      return ops.add(ops.mean(ops.sub(lse, ops.sum(ops.mul(z, 0.3), 1))), ops.mul(ops.sum(ops.mul(w, w)), 0.1));
    };
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), seedArb, (n, k, seed) => {
        const rng = new Rng(seed);
        const x = randn(rng, [n, k]);
        const w = randn(rng, [k]);
        const g: TensorFn = (a, b) => grad(loss, { argnums: [0, 1] })(a, b);
        checkGrad(g, [x, w], { rng });
        // symmetry: <u, H v> = <v, H u>
        const u = [randn(rng, [n, k]), randn(rng, [k])];
        const v = [randn(rng, [n, k]), randn(rng, [k])];
        const hv = jvp(g, [x, w], v)[1] as Tensor[];
        const hu = jvp(g, [x, w], u)[1] as Tensor[];
        const dotp = (a: Tensor[], b: Tensor[]) => a.reduce((s, t, i) => s + values(t).reduce((q, e, j) => q + e * values(b[i]!)[j]!, 0), 0);
        const uhv = dotp(u, hv);
        const vhu = dotp(v, hu);
        expect(Math.abs(uhv - vhu)).toBeLessThan(1e-12 * (1 + Math.abs(uhv)));
      }),
      { numRuns: 40 },
    );
  });

  it('a small MLP loss with matmul: gradient and Hessian-vector products against finite differences', () => {
    type P = { w1: Tensor; b1: Tensor; w2: Tensor; b2: Tensor };
    const mlp = (p: P, x: Tensor, y: Tensor) => {
      const h = ops.tanh(ops.add(ops.matmul(x, p.w1), p.b1));
      const o = ops.add(ops.matmul(h, p.w2), p.b2);
      const d = ops.sub(o, y);
      return ops.mean(ops.mul(d, d));
    };
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 2 }), seedArb, (n, d, h, o, seed) => {
        const rng = new Rng(seed);
        const x = randn(rng, [n, d]);
        const y = randn(rng, [n, o]);
        const ps = [randn(rng, [d, h], 0.7), randn(rng, [h], 0.3), randn(rng, [h, o], 0.7), randn(rng, [o], 0.3)];
        const loss: TensorFn = (w1, b1, w2, b2) => mlp({ w1: w1!, b1: b1!, w2: w2!, b2: b2! }, x, y);
        checkGrad(loss, ps, { rng });
        const g: TensorFn = (w1, b1, w2, b2) => grad(mlp)({ w1, b1, w2, b2 }, x, y);
        checkGrad(g, ps, { rng });
      }),
      { numRuns: 30 },
    );
  });

  it('reverse-over-forward: grad of a JVP equals the HVP', () => {
    const rng = new Rng(21);
    const x = randn(rng, [2, 3]);
    const y = randu(rng, [2, 3], -1, 1);
    const u = randn(rng, [2, 3]);
    const v = randn(rng, [2, 3]);
    // d/d(x,y) <grad f, (u, v)> = H (u, v)
    const dir = (a: Tensor, b: Tensor) => jvp(tanhExp, [a, b], [u, v])[1] as Tensor;
    const rof = grad(dir, { argnums: [0, 1] })(x, y) as Tensor[];
    const g = (a: Tensor, b: Tensor) => grad(tanhExp, { argnums: [0, 1] })(a, b);
    const hvp = jvp(g, [x, y], [u, v])[1] as Tensor[];
    close(values(rof[0]!), values(hvp[0]!));
    close(values(rof[1]!), values(hvp[1]!));
    // and its own derivatives are right
    checkGrad(dir, [x, y], { rng });
  });

  it('valueAndGrad inside grad (hasAux)', () => {
    const rng = new Rng(4);
    const x = randu(rng, [3], 0.5, 1.5);
    const inner = (a: Tensor) => [ops.sum(ops.log(a)), { sq: ops.mul(a, a) }] as const;
    const outer = (a: Tensor) => {
      const [[v, aux], g] = valueAndGrad(inner, { hasAux: true })(a);
      return ops.add(ops.add(v, ops.sum(g)), ops.sum(aux.sq));
    };
    // d/dx [sum log x + sum 1/x + sum x^2] = 1/x - 1/x^2 + 2x
    close(values(grad(outer)(x)), values(x).map((a) => 1 / a - 1 / (a * a) + 2 * a));
  });
});

describe('second order through every primitive rule', () => {
  // F(x, w) = grad_x sum(prim(x) * w): its derivative in w transposes the VJP rule, its
  // derivative in x differentiates the rule's own expression.
  const UNARY: readonly [PrimName, (r: Rng, s: readonly number[]) => Tensor][] = [
    ['neg', (r, s) => randn(r, s)],
    ['exp', (r, s) => randu(r, s, -2, 2)],
    ['log', (r, s) => randu(r, s, 0.5, 3)],
    ['log1p', (r, s) => randu(r, s, -0.5, 2)],
    ['expm1', (r, s) => randu(r, s, -2, 2)],
    ['sin', (r, s) => randu(r, s, -3, 3)],
    ['cos', (r, s) => randu(r, s, -3, 3)],
    ['tanh', (r, s) => randu(r, s, -2, 2)],
    ['logistic', (r, s) => randu(r, s, -4, 4)],
    ['sqrt', (r, s) => randu(r, s, 0.3, 3)],
    ['rsqrt', (r, s) => randu(r, s, 0.3, 3)],
    ['erf', (r, s) => randu(r, s, -2, 2)],
    ['abs', (r, s) => randAway(r, s, 0.1, 2)],
  ];
  const runs = { numRuns: 15 };

  for (const [name, gen] of UNARY) {
    it(name, () => {
      fc.assert(
        fc.property(shapeArb(0, 3, 3), seedArb, (shape, seed) => {
          const rng = new Rng(seed);
          const F: TensorFn = (x, w) => grad((a: Tensor) => ops.sum(ops.mul(bind1(name, [a], {}), w!)))(x);
          checkGrad(F, [gen(rng, shape), randn(rng, shape)], { rng });
        }),
        runs,
      );
    });
  }

  const BINARY: readonly [PrimName, (r: Rng, s: readonly number[]) => [Tensor, Tensor]][] = [
    ['add', (r, s) => [randn(r, s), randn(r, s)]],
    ['sub', (r, s) => [randn(r, s), randn(r, s)]],
    ['mul', (r, s) => [randn(r, s), randn(r, s)]],
    ['div', (r, s) => [randn(r, s), randAway(r, s, 0.5, 2)]],
    ['max', (r, s) => { const a = randDistinct(r, s); return [a, ops.add(a, ops.mul(randAway(r, s, 0.1, 1), 1))]; }],
    ['min', (r, s) => { const a = randDistinct(r, s); return [a, ops.add(a, ops.mul(randAway(r, s, 0.1, 1), 1))]; }],
    ['pow', (r, s) => [randu(r, s, 0.5, 2), randu(r, s, -2, 2)]],
    ['rem', (r, s) => { const b = values(randAway(r, s, 0.5, 2)); return [f64(b.map((v) => v * (r.int(-2, 2) + r.sign() * r.uniform(0.1, 0.9))), s), f64(b, s)]; }],
  ];
  for (const [name, gen] of BINARY) {
    it(name, () => {
      fc.assert(
        fc.property(shapeArb(0, 3, 3), seedArb, (shape, seed) => {
          const rng = new Rng(seed);
          const F: TensorFn = (a, b, w) => grad((p: Tensor, q: Tensor) => ops.sum(ops.mul(bind1(name, [p, q], {}), w!)), { argnums: [0, 1] })(a, b);
          checkGrad(F, [...gen(rng, shape), randn(rng, shape)], { rng });
        }),
        runs,
      );
    });
  }

  it('select, reductions and shape ops (their VJPs transposed again)', () => {
    fc.assert(
      fc.property(shapeArb(1, 3, 3), seedArb, (shape, seed) => {
        const rng = new Rng(seed);
        const r = shape.length;
        const axes = rng.subset(r);
        const perm = rng.perm(r);
        const start = shape.map((d) => rng.int(0, d - 1));
        const limit = shape.map((d, i) => rng.int(start[i]! + 1, d));
        const strides = shape.map(() => rng.int(1, 2));
        const lo = shape.map(() => rng.int(-1, 2));
        const hi = shape.map(() => rng.int(0, 2));
        const interior = shape.map(() => rng.int(0, 1));
        const pred = ops.greater(randn(rng, shape), 0);
        const axis = rng.int(0, r - 1);
        const idx = randInt(rng, [3], -1, shape[axis]!);
        const x = randDistinct(rng, shape);
        const y = randn(rng, shape);
        const prog = (a: Tensor, b: Tensor) => {
          const terms = [
            ops.sum(bind1('reduce_sum', [ops.mul(a, b)], { axes })),
            ops.sum(bind1('reduce_max', [ops.mul(a, ops.exp(b))], { axes })),
            ops.sum(ops.mul(bind1('transpose', [a], { perm }), bind1('transpose', [b], { perm }))),
            ops.sum(ops.mul(bind1('slice', [a], { start, limit, strides }), bind1('slice', [ops.sin(b)], { start, limit, strides }))),
            ops.sum(ops.mul(bind1('pad', [a], { lo, hi, interior, value: 0.5 }), bind1('pad', [b], { lo, hi, interior, value: -1 }))),
            ops.sum(ops.mul(bind1('rev', [a], { axes }), b)),
            ops.sum(ops.mul(bind1('select', [pred, a, b], {}), a)),
            ops.sum(ops.mul(bind1('gather', [a, idx], { axis, batchDims: 0 }), bind1('gather', [b, idx], { axis, batchDims: 0 }))),
            ops.sum(ops.mul(bind1('scatter_add', [a, idx, bind1('gather', [ops.mul(b, b), idx], { axis, batchDims: 0 })], { axis, batchDims: 0 }), b)),
            ops.sum(ops.mul(bind1('concatenate', [a, b], { axis }), bind1('concatenate', [b, ops.tanh(a)], { axis }))),
            ops.sum(ops.mul(bind1('reshape', [a], { shape: [a.size] }), bind1('reshape', [b], { shape: [b.size] }))),
          ];
          return terms.reduce((s, t) => ops.add(s, t));
        };
        const F: TensorFn = (a, b) => grad(prog, { argnums: [0, 1] })(a, b);
        checkGrad(F, [x, y], { rng });
      }),
      { numRuns: 30 },
    );
  });
});

describe('through region, checkpoint and customVjp', () => {
  it('grad(grad) through a region, and the region stays whole in the first-order program', () => {
    const softplus = region('softplus', (x: Tensor) => ops.log1p(ops.exp(x)));
    const f = (x: Tensor) => ops.sum(ops.mul(softplus(x), x));
    fc.assert(
      fc.property(shapeArb(0, 3, 3), seedArb, (shape, seed) => {
        const rng = new Rng(seed);
        checkGrad((x) => grad(f)(x), [randn(rng, shape)], { rng });
      }),
      { numRuns: 30 },
    );
    const x = f64([-1, 0.5, 2], [3]);
    // d2/dx2 [x softplus(x)] = 2 sigmoid(x) + x sigmoid(x) (1 - sigmoid(x))
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    close(values(grad((a: Tensor) => ops.sum(grad(f)(a)))(x)), values(x).map((v) => 2 * sig(v) + v * sig(v) * (1 - sig(v))));
    const printed = trace(grad(f), x).toString();
    expect(printed).toContain('region[name=softplus attrs={} body={');
    expect(printed).toContain('region[name=softplus.vjp attrs={} body={');
  });

  it('grad(grad) through a checkpoint', () => {
    const c = checkpoint((a: Tensor, b: Tensor) => ops.mul(ops.sin(ops.mul(a, b)), ops.exp(a)));
    fc.assert(
      fc.property(shapeArb(0, 3, 3), seedArb, (shape, seed) => {
        const rng = new Rng(seed);
        const g: TensorFn = (a, b) => grad((p: Tensor, q: Tensor) => ops.sum(c(p, q)), { argnums: [0, 1] })(a, b);
        checkGrad(g, [randu(rng, shape, -1, 1), randn(rng, shape)], { rng });
      }),
      { numRuns: 30 },
    );
  });

  it('grad(grad) and jvp(grad) through customVjp differentiate its bwd', () => {
    const cube = customVjp(
      (a: Tensor) => ops.mul(ops.mul(a, a), a),
      (a: Tensor) => [ops.mul(ops.mul(a, a), a), ops.mul(a, a)],
      (a2: Tensor, ct: Tensor) => [ops.mul(ct, ops.mul(a2, 3))],
    );
    const f = (a: Tensor) => ops.sum(ops.mul(cube(a), ops.sin(a)));
    fc.assert(
      fc.property(shapeArb(0, 3, 3), seedArb, (shape, seed) => {
        const rng = new Rng(seed);
        checkGrad((a) => grad(f)(a), [randn(rng, shape)], { rng });
      }),
      { numRuns: 30 },
    );
    const x = f64([-0.5, 1.5], [2]);
    // d2/dx2 [x^3 sin x] = 6x sin x + 6x^2 cos x - x^3 sin x
    close(values(grad((a: Tensor) => ops.sum(grad(f)(a)))(x)), values(x).map((v) => 6 * v * Math.sin(v) + 6 * v * v * Math.cos(v) - v ** 3 * Math.sin(v)));
  });

  it('vjp of a function returning a pytree, then grad of its cotangent map', () => {
    const rng = new Rng(13);
    const x = randn(rng, [2, 2]);
    const c1 = randn(rng, [2, 2]);
    const c2 = randn(rng, [2]);
    const f = (a: Tensor) => ({ p: ops.exp(a), q: [ops.sum(ops.mul(a, a), 1)] });
    const F: TensorFn = (a) => vjp(f, a)[1]({ p: c1, q: [c2] })[0];
    checkGrad(F, [x], { rng });
  });

  it('trace(grad(f)) of a checkpointed function holds a checkpoint.vjp region that recomputes the body', () => {
    const c = checkpoint((a: Tensor) => ops.sin(ops.sin(a)));
    const f = (a: Tensor) => ops.sum(c(a));
    const printed = trace(grad(f), f64([1, 2, 3], [3])).toString();
    expect(printed).toBe(
      [
        '{ lambda (a:f64[3]) .',
        '  b:f64[3] = checkpoint[body={',
        '    { lambda (b:f64[3]) .',
        '      c:f64[3] = sin b',
        '      d:f64[3] = sin c',
        '      in (d) }',
        '  }] a',
        '  c:f64[] = reduce_sum[axes=(0)] b',
        '  d:f64[3] = broadcast_in_dim[shape=(3) dims=()] 1.0',
        '  e:f64[3] = region[name=checkpoint.vjp attrs={} body={',
        '    { lambda (e:f64[3], f:f64[3]) .',
        '      g:f64[3] = sin e',
        '      h:f64[3] = sin g',
        '      i:f64[3] = cos g',
        '      j:f64[3] = mul f i',
        '      k:f64[3] = cos e',
        '      l:f64[3] = mul j k',
        '      in (l) }',
        '  }] a d',
        '  in (e) }',
      ].join('\n'),
    );
    const lines = printed.split('\n');
    // the backward region takes the checkpoint's input (not its intermediates) and the cotangent
    expect(lines).toContain('  }] a d');
    expect(lines.filter((l) => l.includes('= sin')).length).toBe(4);
  });
});
