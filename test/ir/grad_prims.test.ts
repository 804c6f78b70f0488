/**
 * Property-based gradient checks of every differentiable primitive (except dot_general and
 * conv_general, tested with the contractions): fast-check draws shapes and params, the data
 * comes from a seeded RNG, and test/helpers/gradcheck.ts checks the JVP against finite
 * differences and the VJP through <J t, c> = <t, J^T c>, in float64 on the host.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkpoint, customVjp, grad, jvp, vjp } from '../../src/autodiff/index.js';
import { region } from '../../src/ir/functional.js';
import * as ops from '../../src/ir/ops.js';
import type { PrimName } from '../../src/ir/primitive.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { bind, bind1 } from '../../src/ir/trace.js';
import {
  checkGrad,
  f64,
  GradCheckError,
  type GradCheckOptions,
  randAway,
  randBool,
  randDistinct,
  randInt,
  randn,
  randu,
  Rng,
  seedArb,
  shapeArb,
  size,
  type TensorFn,
  values,
} from '../helpers/gradcheck.js';

const RUNS = { numRuns: 100 };

interface Case {
  readonly f: TensorFn;
  readonly xs: readonly Tensor[];
  readonly opts?: Omit<GradCheckOptions, 'rng'>;
}

/** fc.assert over (params, seed): builds a case and runs both gradient checks on it. */
function gradProperty<T>(arb: fc.Arbitrary<T>, make: (v: T, rng: Rng) => Case, runs = RUNS): void {
  fc.assert(
    fc.property(arb, seedArb, (v, seed) => {
      const rng = new Rng(seed);
      const c = make(v, rng);
      checkGrad(c.f, c.xs, { rng, ...c.opts });
    }),
    runs,
  );
}

// ---------------------------------------------------------------------------------------
// the harness catches wrong derivatives (so the properties below can fail)

describe('gradcheck harness', () => {
  it('passes a correct function and reports small errors', () => {
    const rng = new Rng(7);
    const x = randn(rng, [3, 2]);
    const r = checkGrad((a) => ops.mul(ops.tanh(a), a), [x], { rng });
    expect(r.jvpRelErr).toBeLessThan(1e-8);
    expect(r.vjpRelErr).toBeLessThan(1e-12);
    expect(r.jtNorm).toBeGreaterThan(0.1);
    expect(r.jtcNorm).toBeGreaterThan(0.1);
  });

  it('catches a JVP that disagrees with finite differences', () => {
    const rng = new Rng(3);
    // floor(1e6 x) / 1e6 has derivative 0 by the rules but ~1 by finite differences
    const f = (a: Tensor) => ops.div(ops.floor(ops.mul(a, 1e6)), 1e6);
    expect(() => checkGrad(f, [randn(rng, [4])], { rng })).toThrow(/jvp disagrees with finite differences/);
  });

  it('catches a VJP that is not the transpose of the JVP', () => {
    const rng = new Rng(5);
    const bad = customVjp(
      (a: Tensor) => ops.sin(a),
      (a: Tensor) => [ops.sin(a), a],
      (a: Tensor, ct: Tensor) => [ops.mul(ct, ops.mul(ops.cos(a), 1.5))],
    );
    expect(() => checkGrad(bad, [randn(rng, [5])], { rng, noJvp: true })).toThrow(/<J t, c> = .* but <t, J\^T c> = /);
  });
});

// ---------------------------------------------------------------------------------------
// unary elementwise

type Gen = (rng: Rng, shape: readonly number[]) => Tensor;

const UNARY: readonly [PrimName, Gen][] = [
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

describe('unary elementwise', () => {
  for (const [name, gen] of UNARY) {
    it(name, () => {
      gradProperty(shapeArb(0, 4, 4), (shape, rng) => ({ f: (x) => bind1(name, [x], {}), xs: [gen(rng, shape)] }));
    });
  }

  it('piecewise-constant ops (sign, floor, ceil, round) have zero derivative', () => {
    gradProperty(shapeArb(0, 3, 4), (shape, rng) => {
      // keep x away from the jumps: k + [0.1, 0.4] never crosses an integer or a half
      const x = f64(Array.from({ length: size(shape) }, () => rng.int(-3, 3) + rng.uniform(0.1, 0.4)), shape);
      const f = (a: Tensor) => ops.add(ops.add(ops.mul(ops.sign(a), ops.floor(a)), ops.mul(ops.ceil(a), ops.round(a))), ops.mul(a, 0.5));
      return { f, xs: [x] };
    });
  });
});

// ---------------------------------------------------------------------------------------
// binary elementwise, select, cast

/** Draws (a, b) of one shape for a binary primitive. */
const BINARY: readonly [PrimName, (rng: Rng, shape: readonly number[]) => [Tensor, Tensor]][] = [
  ['add', (r, s) => [randn(r, s), randn(r, s)]],
  ['sub', (r, s) => [randn(r, s), randn(r, s)]],
  ['mul', (r, s) => [randn(r, s), randn(r, s)]],
  ['div', (r, s) => [randn(r, s), randAway(r, s, 0.5, 2)]],
  ['max', (r, s) => distinctPair(r, s)],
  ['min', (r, s) => distinctPair(r, s)],
  ['pow', (r, s) => [randu(r, s, 0.5, 2), randu(r, s, -2, 2)]],
  ['rem', (r, s) => remPair(r, s)],
];

/** a and b with |a - b| >= 0.1 everywhere (no ties for max/min). */
function distinctPair(rng: Rng, shape: readonly number[]): [Tensor, Tensor] {
  const a = values(randn(rng, shape));
  const b = a.map((v) => v + rng.sign() * rng.uniform(0.1, 1));
  return [f64(a, shape), f64(b, shape)];
}

/** a = b (k + frac) with frac in [0.1, 0.9]: a / b stays away from the integers where rem jumps. */
function remPair(rng: Rng, shape: readonly number[]): [Tensor, Tensor] {
  const b = values(randAway(rng, shape, 0.5, 2));
  const a = b.map((v) => v * (rng.int(-3, 3) + rng.sign() * rng.uniform(0.1, 0.9)));
  return [f64(a, shape), f64(b, shape)];
}

describe('binary elementwise', () => {
  for (const [name, gen] of BINARY) {
    it(name, () => {
      gradProperty(shapeArb(0, 4, 4), (shape, rng) => ({ f: (a, b) => bind1(name, [a!, b!], {}), xs: gen(rng, shape) }));
    });
  }

  it('the same operand on both sides (mul x x, div x x, pow x x)', () => {
    gradProperty(shapeArb(0, 3, 4), (shape, rng) => ({
      f: (x) => ops.add(ops.add(bind1('mul', [x, x], {}), bind1('div', [x, x], {})), bind1('pow', [x, x], {})),
      xs: [randu(rng, shape, 0.5, 2)],
    }));
  });

  it('ops-level broadcasting (add, sub, mul, div, maximum, pow, where) with scalars and size-1 axes', () => {
    gradProperty(shapeArb(1, 4, 3), (shape, rng) => {
      // b's shape: a suffix of a's shape with some axes set to 1
      const k = rng.int(0, shape.length);
      const bShape = shape.slice(shape.length - k).map((d) => (rng.bool(0.4) ? 1 : d));
      const a = randu(rng, shape, 0.5, 2);
      const b = randu(rng, bShape, 0.5, 2);
      const cond = randBool(rng, shape);
      const f = (x: Tensor, y: Tensor) => {
        const s = ops.add(ops.sub(ops.mul(x, y), ops.div(y, x)), ops.maximum(ops.mul(x, 10), y));
        return ops.add(ops.where(cond, ops.pow(x, y), ops.mul(y, 3)), ops.add(s, ops.mul(ops.pow(y, 2.5), 2)));
      };
      return { f, xs: [a, b] };
    });
  });
});

describe('select and cast', () => {
  it('select', () => {
    gradProperty(shapeArb(0, 4, 4), (shape, rng) => {
      const p = randBool(rng, shape);
      return { f: (a, b) => bind1('select', [p, a!, b!], {}), xs: [randn(rng, shape), randn(rng, shape)] };
    });
  });

  it('cast f64 -> f64 (identity)', () => {
    gradProperty(shapeArb(0, 4, 4), (shape, rng) => ({ f: (x) => bind1('cast', [x], { dtype: 'f64' }), xs: [randn(rng, shape)] }));
  });

  it('cast f64 -> f32 -> f64, exact in the interpreter\'s float64 mode', () => {
    gradProperty(shapeArb(0, 4, 4), (shape, rng) => {
      const f = (x: Tensor) => bind1('cast', [ops.exp(bind1('cast', [x], { dtype: 'f32' }))], { dtype: 'f64' });
      return { f, xs: [randu(rng, shape, -2, 2)], opts: { wide: true } };
    });
  });

  it('cast f64 -> f32 -> f64 with f32 rounding, at a looser tolerance', () => {
    gradProperty(shapeArb(0, 3, 4), (shape, rng) => {
      const f = (x: Tensor) => bind1('cast', [bind1('cast', [x], { dtype: 'f32' })], { dtype: 'f64' });
      return { f, xs: [randu(rng, shape, -2, 2)], opts: { eps: 1e-2, jvpTol: 1e-4, vjpTol: 1e-6, roundoff: 1.2e-7 } };
    });
  });

  it('cast f64 -> f32 keeps the tangent and cotangent dtypes', () => {
    const x = f64([0.5, -1.25, 2], [3]);
    const [y, ty] = jvp((a: Tensor) => ops.cast(a, 'f32'), [x], [f64([1, 2, 3], [3])]);
    expect(y.dtype).toBe('f32');
    expect(ty.dtype).toBe('f32');
    expect(ty.tolist()).toEqual([1, 2, 3]);
    const g = grad((a: Tensor) => ops.sum(ops.mul(ops.cast(a, 'f32'), ops.tensor([1, 2, 4], { dtype: 'f32' }))))(x);
    expect(g.dtype).toBe('f64');
    expect(g.tolist()).toEqual([1, 2, 4]);
  });

  it('cast to an integer type cuts the gradient: d/dx [int(x) * x] = int(x)', () => {
    gradProperty(shapeArb(0, 3, 4), (shape, rng) => {
      const x = f64(Array.from({ length: size(shape) }, () => rng.int(-3, 3) + rng.uniform(0.1, 0.9)), shape);
      return { f: (a) => ops.mul(ops.cast(ops.cast(a, 'i32'), 'f64'), a), xs: [x] };
    });
  });
});

// ---------------------------------------------------------------------------------------
// reductions

/** A shape and a random subset of its axes, in random order. */
const shapeAxesArb = fc.tuple(shapeArb(0, 4, 4), seedArb).map(([shape, s]) => {
  const rng = new Rng(s);
  return { shape, axes: rng.shuffle(rng.subset(shape.length, 0.5)) };
});

describe('reductions', () => {
  it('reduce_sum (axes in any order, including none and all)', () => {
    gradProperty(shapeAxesArb, ({ shape, axes }, rng) => ({ f: (x) => bind1('reduce_sum', [x], { axes }), xs: [randn(rng, shape)] }));
  });

  for (const name of ['reduce_max', 'reduce_min'] as const) {
    it(`${name} (distinct values)`, () => {
      gradProperty(shapeAxesArb, ({ shape, axes }, rng) => ({ f: (x) => bind1(name, [x], { axes }), xs: [randDistinct(rng, shape)] }));
    });
  }

  it('reduce_max splits the gradient evenly between tied maxima', () => {
    const x = f64([1, 3, 3, 2, 3, 0], [2, 3]);
    const g = grad((a: Tensor) => ops.sum(ops.mul(ops.max(a, 1), f64([1, 10], [2]))))(x);
    expect(g.tolist()).toEqual([
      [0, 0.5, 0.5],
      [0, 10, 0],
    ]);
    const [, t] = jvp((a: Tensor) => ops.min(a, 0), [x], [f64([1, 2, 3, 4, 5, 6], [2, 3])]);
    expect(t.tolist()).toEqual([1, 3.5, 6]);
  });

  it('ops-level reductions: sum/mean/max/min with keepdims, variance, logSumExp', () => {
    gradProperty(shapeAxesArb, ({ shape, axes }, rng) => {
      const f = (x: Tensor) => {
        const a = ops.mean(x, axes, true);
        const b = ops.add(ops.max(x, axes, true), ops.min(x, axes, true));
        const c = ops.variance(x, axes, true);
        const d = ops.logSumExp(x, axes, true);
        return ops.add(ops.add(ops.mul(a, b), c), ops.add(d, ops.sum(x, axes, true)));
      };
      return { f, xs: [randDistinct(rng, shape)] };
    });
  });
});

// ---------------------------------------------------------------------------------------
// shape ops

/** Splits n into a random shape of rank 0..4 (n's prime factors, plus ones). */
function randomShapeOfSize(rng: Rng, n: number): number[] {
  const factors: number[] = [];
  let m = n;
  for (let p = 2; m > 1; p++) {
    while (m % p === 0) {
      factors.push(p);
      m /= p;
    }
  }
  const rank = Math.max(rng.int(0, 4), n === 1 ? 0 : 1);
  const shape = new Array<number>(rank).fill(1);
  for (const p of factors) shape[rng.int(0, rank - 1)]! *= p;
  return shape;
}

describe('shape ops', () => {
  it('reshape', () => {
    gradProperty(shapeArb(0, 4, 4), (shape, rng) => {
      const target = randomShapeOfSize(rng, size(shape));
      return { f: (x) => bind1('reshape', [x], { shape: target }), xs: [randn(rng, shape)] };
    });
  });

  it('transpose', () => {
    gradProperty(shapeArb(0, 4, 4), (shape, rng) => {
      const perm = rng.perm(shape.length);
      return { f: (x) => bind1('transpose', [x], { perm }), xs: [randn(rng, shape)] };
    });
  });

  it('broadcast_in_dim (new axes, size-1 axes expanded or kept)', () => {
    gradProperty(shapeArb(0, 3, 3), (shape, rng) => {
      const xShape = shape.map((d) => (rng.bool(0.4) ? 1 : d));
      const outRank = shape.length + rng.int(0, 2);
      const dims = rng.perm(outRank).slice(0, shape.length).sort((a, b) => a - b);
      const out = Array.from({ length: outRank }, () => rng.int(1, 3));
      dims.forEach((d, i) => (out[d] = xShape[i] === 1 && rng.bool() ? rng.int(1, 3) : shape[i]!));
      return { f: (x) => bind1('broadcast_in_dim', [x], { shape: out, dims }), xs: [randn(rng, xShape)] };
    });
  });

  it('slice (with strides, empty results)', () => {
    gradProperty(shapeArb(0, 4, 5), (shape, rng) => {
      const start: number[] = [];
      const limit: number[] = [];
      const strides: number[] = [];
      for (const d of shape) {
        const s = rng.int(0, d);
        start.push(s);
        limit.push(rng.int(s, d));
        strides.push(rng.int(1, 3));
      }
      return { f: (x) => bind1('slice', [x], { start, limit, strides }), xs: [randn(rng, shape)] };
    });
  });

  it('pad (negative lo/hi, interior, non-zero value)', () => {
    gradProperty(shapeArb(0, 4, 4), (shape, rng) => {
      const interior = shape.map(() => rng.int(0, 2));
      const lo: number[] = [];
      const hi: number[] = [];
      shape.forEach((n, i) => {
        const full = n + Math.max(0, n - 1) * interior[i]!;
        // crop at most the whole padded axis
        const l = rng.int(-Math.min(2, full), 2);
        lo.push(l);
        hi.push(rng.int(-Math.min(2, full + Math.min(l, 0)), 2));
      });
      const value = rng.normal();
      return { f: (x) => bind1('pad', [x], { lo, hi, interior, value }), xs: [randn(rng, shape)] };
    });
  });

  it('concatenate (1-4 operands, some empty along the axis)', () => {
    gradProperty(shapeArb(1, 4, 3), (shape, rng) => {
      const axis = rng.int(0, shape.length - 1);
      const n = rng.int(1, 4);
      const xs = Array.from({ length: n }, () => randn(rng, shape.map((d, i) => (i === axis ? rng.int(0, 3) : d))));
      return { f: (...a) => bind1('concatenate', a, { axis }), xs };
    });
  });

  it('rev', () => {
    gradProperty(shapeArb(0, 4, 4), (shape, rng) => {
      const axes = rng.shuffle(rng.subset(shape.length));
      return { f: (x) => bind1('rev', [x], { axes }), xs: [randn(rng, shape)] };
    });
  });

  it('ops-level shape functions: expandDims, squeeze, moveAxis, stack, flip, slice with negative bounds, pad', () => {
    gradProperty(shapeArb(1, 3, 4), (shape, rng) => {
      const axis = rng.int(0, shape.length - 1);
      const f = (x: Tensor, y: Tensor) => {
        const s = ops.stack([x, ops.flip(y, axis)], -1);
        const m = ops.moveAxis(s, -1, 0);
        const e = ops.squeeze(ops.expandDims(m, 1), 1);
        const sl = ops.slice(e, e.shape.map(() => 0), e.shape.map((d) => (d > 1 ? -1 : d)));
        return ops.pad(sl, sl.shape.map((_, i) => [i % 2, 1] as [number, number]), 0.5);
      };
      return { f, xs: [randn(rng, shape), randn(rng, shape)] };
    });
  });
});

// ---------------------------------------------------------------------------------------
// gather / scatter_add

interface GatherDraw {
  xShape: number[];
  idxShape: number[];
  axis: number;
  batchDims: number;
  outShape: number[];
}

function drawGather(rng: Rng, shape: number[]): GatherDraw {
  const r = shape.length;
  const axis = rng.int(0, r - 1);
  const batchDims = rng.int(0, axis);
  const extra = Array.from({ length: rng.int(0, 2) }, () => rng.int(1, 3));
  const idxShape = [...shape.slice(0, batchDims), ...extra];
  const outShape = [...shape.slice(0, axis), ...extra, ...shape.slice(axis + 1)];
  return { xShape: shape, idxShape, axis, batchDims, outShape };
}

describe('gather and scatter_add', () => {
  it('gather (in-range indices, repeats, batch dims)', () => {
    gradProperty(shapeArb(1, 4, 3), (shape, rng) => {
      const g = drawGather(rng, shape);
      const idx = randInt(rng, g.idxShape, 0, shape[g.axis]! - 1, rng.bool() ? 'i32' : 'u32');
      return { f: (x) => bind1('gather', [x, idx], { axis: g.axis, batchDims: g.batchDims }), xs: [randn(rng, shape)] };
    });
  });

  it('gather with out-of-range indices (clamped)', () => {
    gradProperty(shapeArb(1, 4, 3), (shape, rng) => {
      const g = drawGather(rng, shape);
      const idx = randInt(rng, g.idxShape, -2, shape[g.axis]! + 1);
      return { f: (x) => bind1('gather', [x, idx], { axis: g.axis, batchDims: g.batchDims }), xs: [randn(rng, shape)] };
    });
  });

  it('gather with out-of-range indices takes the clamped element, and its gradient goes there', () => {
    const x = f64([10, 20, 30], [3]);
    const idx = ops.tensor([-1, 5, 1], { dtype: 'i32' });
    expect(ops.take(x, idx).tolist()).toEqual([10, 30, 20]);
    const g = grad((a: Tensor) => ops.sum(ops.mul(ops.take(a, idx), f64([1, 2, 4], [3]))))(x);
    expect(g.tolist()).toEqual([1, 4, 2]);
  });

  it('scatter_add (repeated and out-of-range indices)', () => {
    gradProperty(shapeArb(1, 4, 3), (shape, rng) => {
      const g = drawGather(rng, shape);
      const idx = randInt(rng, g.idxShape, -1, shape[g.axis]!);
      const f = (x: Tensor, u: Tensor) => bind1('scatter_add', [x, idx, u], { axis: g.axis, batchDims: g.batchDims });
      return { f, xs: [randn(rng, shape), randn(rng, g.outShape)] };
    });
  });

  it('scatter_add drops out-of-range updates, and their gradient is zero', () => {
    const x = f64([1, 2, 3], [3]);
    const idx = ops.tensor([-1, 2, 3, 2], { dtype: 'i32' });
    const u = f64([100, 10, 1000, 20], [4]);
    expect(ops.scatterAdd(x, idx, u).tolist()).toEqual([1, 2, 33]);
    const gu = grad((a: Tensor, b: Tensor) => ops.sum(ops.mul(ops.scatterAdd(a, idx, b), f64([1, 2, 4], [3]))), { argnums: 1 })(x, u);
    expect(gu.tolist()).toEqual([0, 4, 0, 4]);
  });

  it('ops-level take / takeAlongAxis / oneHot', () => {
    gradProperty(shapeArb(1, 3, 4), (shape, rng) => {
      const axis = rng.int(0, shape.length - 1);
      const idxT = randInt(rng, [rng.int(1, 3)], 0, shape[axis]! - 1);
      const idxA = randInt(rng, shape.map((d, i) => (i === axis ? rng.int(1, 3) : d)), 0, shape[axis]! - 1);
      const f = (x: Tensor) => {
        const a = ops.sum(ops.take(x, idxT, axis));
        const b = ops.sum(ops.mul(ops.takeAlongAxis(x, idxA, axis), 2));
        return ops.add(a, b);
      };
      return { f, xs: [randn(rng, shape)] };
    });
  });
});

// ---------------------------------------------------------------------------------------
// structural: region, checkpoint, custom_vjp

describe('structural primitives', () => {
  it('region (one output, constants and literals in the body)', () => {
    const k = f64([0.5, -1, 2], [3]);
    gradProperty(shapeArb(0, 3, 3), (shape, rng) => {
      const r = region('softplus_scaled', (x: Tensor) => ops.mul(ops.log1p(ops.exp(x)), 3));
      const w = region('weighted', (x: Tensor) => ops.sum(ops.mul(ops.broadcastTo(ops.reshape(x, [-1, 1]), [size(shape), 3]), k)));
      return { f: (x) => ops.add(ops.sum(r(x)), w(x)), xs: [randn(rng, shape)] };
    });
  });

  it('region with several inputs and outputs, some unused, nested regions, an integer input', () => {
    gradProperty(shapeArb(0, 3, 3), (shape, rng) => {
      const inner = region('inner', (a: Tensor) => ops.tanh(a));
      const shape1 = shape.length === 0 ? [1] : shape;
      const idx = randInt(rng, [2], 0, size(shape1) - 1);
      const r = region('multi', (a: Tensor, b: Tensor, i: Tensor) => [
        ops.mul(inner(a), b),
        ops.sub(a, b),
        ops.exp(b),
        ops.mul(ops.take(ops.reshape(a, [-1]), i), 2),
      ]);
      const f = (a: Tensor, b: Tensor) => {
        const [p, q, , s] = r(a, b, idx) as Tensor[];
        return [p!, ops.mul(q!, q!), s!];
      };
      return { f, xs: [randn(rng, shape1), randn(rng, shape1)] };
    });
  });

  it('region closing over a tensor of an enclosing trace', () => {
    gradProperty(shapeArb(0, 3, 3), (shape, rng) => {
      const f = (a: Tensor, b: Tensor) => {
        const r = region('closure', (x: Tensor) => ops.mul(ops.sin(x), b)); // b is a tracer here
        return ops.add(r(a), ops.mul(b, b));
      };
      return { f, xs: [randn(rng, shape), randn(rng, shape)] };
    });
  });

  it('stop_gradient blocks the derivative', () => {
    gradProperty(shapeArb(0, 3, 3), (shape, rng) => ({
      f: (x) => ops.mul(ops.stopGradient(ops.cast(ops.cast(ops.mul(x, 0), 'i32'), 'f64')), x),
      xs: [randn(rng, shape)],
    }));
    const x = f64([1, 2], [2]);
    expect(grad((a: Tensor) => ops.sum(ops.mul(ops.stopGradient(a), a)))(x).tolist()).toEqual([1, 2]);
    const [, t] = jvp((a: Tensor) => ops.mul(ops.stopGradient(a), a), [x], [f64([1, 1], [2])]);
    expect(t.tolist()).toEqual([1, 2]);
  });

  it('checkpoint (several inputs, pytree output)', () => {
    gradProperty(shapeArb(0, 3, 3), (shape, rng) => {
      const c = checkpoint((a: Tensor, b: Tensor) => ({ u: ops.mul(ops.sin(a), ops.exp(b)), v: [ops.tanh(ops.mul(a, b))] }));
      return { f: (a, b) => c(a, b), xs: [randn(rng, shape), randu(rng, shape, -1, 1)] };
    });
  });

  it('custom_vjp with a correct bwd (VJP identity against finite differences; no forward mode)', () => {
    const mulSin = customVjp(
      (a: Tensor, b: Tensor) => ops.mul(ops.sin(a), b),
      (a: Tensor, b: Tensor) => [ops.mul(ops.sin(a), b), { a, b }],
      (res: { a: Tensor; b: Tensor }, ct: Tensor) => [ops.mul(ct, ops.mul(ops.cos(res.a), res.b)), ops.mul(ct, ops.sin(res.a))],
    );
    gradProperty(shapeArb(0, 3, 3), (shape, rng) => ({
      f: (a, b) => ops.add(mulSin(a, b), ops.mul(a, 0.25)),
      xs: [randn(rng, shape), randn(rng, shape)],
      opts: { noJvp: true },
    }));
    const x = f64([1, 2], [2]);
    expect(() => jvp((a: Tensor) => mulSin(a, a), [x], [x])).toThrow(/forward-mode differentiation of a customVjp function is not supported/);
  });

  it('custom_vjp: bwd decides the gradient, and null cotangents mean zero', () => {
    const clip = customVjp(
      (a: Tensor, b: Tensor) => ops.add(a, b),
      (a: Tensor, b: Tensor) => [ops.add(a, b), null],
      (_res: null, ct: Tensor) => [ops.minimum(ops.maximum(ct, -1), 1), null],
    );
    const x = f64([1, 2, 3], [3]);
    const g = grad((a: Tensor, b: Tensor) => ops.sum(ops.mul(clip(a, b), f64([-5, 0.5, 5], [3]))), { argnums: [0, 1] })(x, x);
    expect(g[0].tolist()).toEqual([-1, 0.5, 1]);
    expect(g[1].tolist()).toEqual([0, 0, 0]);
  });

  it('multi-output primitives through bind (region outputs unpacked by bind)', () => {
    // a region's outputs as returned by bind directly
    const rng = new Rng(11);
    const r = region('two', (a: Tensor) => [ops.exp(a), ops.neg(a)]);
    const x = randn(rng, [2, 2]);
    const outs = r(x) as Tensor[];
    expect(outs.length).toBe(2);
    expect(values(outs[1]!)).toEqual(values(x).map((v) => -v));
    expect(bind('reduce_sum', [x], { axes: [0, 1] }).length).toBe(1);
    checkGrad((a) => r(a), [x], { rng });
  });
});

// ---------------------------------------------------------------------------------------
// program-structure edge cases

describe('program structure edge cases', () => {
  it('identity, repeated outputs, constant outputs, unused inputs, captured constants', () => {
    const k = f64([0.5, -2, 3], [3]);
    const cases: TensorFn[] = [
      (x) => x,
      (x) => [x, ops.exp(x), x],
      (x) => [ops.scalar(2, 'f64'), ops.mul(x, 2), ops.cast(ops.greater(x, 0), 'i32')],
      (x, y) => ops.sin(x!),
      (x) => ({ a: ops.add(ops.mul(x, k), k), b: k }),
    ];
    const rng = new Rng(17);
    for (const f of cases) checkGrad(f, [randn(rng, [3]), randn(rng, [3])].slice(0, f.length), { rng });
  });

  it('jvp, vjp and checkpoint closing over the tracers of an enclosing transformation', () => {
    gradProperty(shapeArb(0, 3, 3), (shape, rng) => {
      const x = randn(rng, shape);
      const t = randn(rng, shape);
      const f = (a: Tensor) => {
        const viaJvp = jvp((b: Tensor) => ops.mul(ops.mul(b, a), ops.sin(b)), [x], [t])[1] as Tensor;
        const viaVjp = vjp((b: Tensor) => ops.mul(ops.exp(ops.mul(b, a)), a), x)[1](t)[0] as Tensor;
        const viaCkpt = checkpoint((b: Tensor) => ops.tanh(ops.mul(b, a)))(x);
        return [viaJvp, viaVjp, viaCkpt];
      };
      return { f, xs: [randu(rng, shape, -1, 1)] };
    });
  });

  it('empty tensors flow through every kind of rule with gradients of the right shape', () => {
    gradProperty(shapeArb(1, 3, 2, 0), (shape, rng) => {
      const r = shape.length;
      const axes = rng.subset(r);
      const perm = rng.perm(r);
      const f = (a: Tensor, b: Tensor) => {
        const u = ops.mul(ops.exp(a), ops.sin(b));
        const s = bind1('reduce_sum', [u], { axes });
        const t = bind1('transpose', [ops.div(a, ops.add(ops.mul(b, b), 1))], { perm });
        const p = bind1('pad', [a], { lo: shape.map(() => 1), hi: shape.map(() => 0), interior: shape.map(() => 1), value: 1 });
        const c = bind1('concatenate', [a, b], { axis: r - 1 });
        return [s, t, p, c, ops.reshape(u, [-1])];
      };
      return { f, xs: [randn(rng, shape), randn(rng, shape)] };
    }, { numRuns: 50 });
  });
});
