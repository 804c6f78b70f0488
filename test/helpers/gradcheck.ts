/**
 * Gradient checking, the JAX way (DESIGN.md section 3), in float64 on the host:
 *
 *  (a) the JVP from `jvp` along a random tangent against central finite differences
 *      (f(x + eps t) - f(x - eps t)) / (2 eps);
 *  (b) the VJP from `vjp` through the identity <J t, c> = sum_i <t_i, (J^T c)_i> for a random
 *      output cotangent c.
 *
 * Plus helpers to draw data from a seeded RNG (mulberry32, seeded from fast-check) and to make
 * float64 tensors. Other test files import this; keep it free of vitest specifics.
 */
import fc from 'fast-check';
import { jvp, vjp } from '../../src/autodiff/index.js';
import { isFloat, type DType } from '../../src/ir/dtype.js';
import { trace } from '../../src/ir/functional.js';
import { interpret } from '../../src/ir/interpreter.js';
import * as ops from '../../src/ir/ops.js';
import type { AbstractValue } from '../../src/ir/program.js';
import { treeFlatten, treeLeaves, treeUnflatten } from '../../src/ir/pytree.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { mulberry32 } from './rng.js';
export { mulberry32 };

// ---------------------------------------------------------------------------------------
// random data


export class Rng {
  private readonly u: () => number;
  constructor(seed: number) {
    this.u = mulberry32(seed);
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.u();
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.u();
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u1 = 1 - this.u();
    const u2 = this.u();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  /** Integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.u() * (hi - lo + 1));
  }
  bool(p = 0.5): boolean {
    return this.u() < p;
  }
  sign(): number {
    return this.u() < 0.5 ? -1 : 1;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.u() * xs.length)]!;
  }
  shuffle<T>(xs: readonly T[]): T[] {
    const a = [...xs];
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.u() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }
  /** A random permutation of 0..n-1. */
  perm(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }
  /** A random subset of 0..n-1, ascending. */
  subset(n: number, p = 0.5): number[] {
    return Array.from({ length: n }, (_, i) => i).filter(() => this.u() < p);
  }
}

/** The seed arbitrary: fast-check shrinks it and reports it in counterexamples. */
export const seedArb = fc.integer({ min: 0, max: 0x7fffffff });

/** Shapes of rank minRank..maxRank with dims in [minDim, maxDim]. */
export function shapeArb(minRank = 0, maxRank = 4, maxDim = 4, minDim = 1): fc.Arbitrary<number[]> {
  return fc.integer({ min: minRank, max: maxRank }).chain((r) => fc.array(fc.integer({ min: minDim, max: maxDim }), { minLength: r, maxLength: r }));
}

export function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A float64 tensor of the given data and shape. */
export function f64(data: ArrayLike<number>, shape: readonly number[]): Tensor {
  return ops.tensor(Float64Array.from(data), { dtype: 'f64', shape });
}

/** A tensor of `dtype` from data (values cast to the dtype). */
export function tensorOf(data: ArrayLike<number>, shape: readonly number[], dtype: DType): Tensor {
  return ops.tensor(Float64Array.from(data), { dtype, shape });
}

/** Standard normal f64 data times scale. */
export function randn(rng: Rng, shape: readonly number[], scale = 1): Tensor {
  return f64(Array.from({ length: size(shape) }, () => scale * rng.normal()), shape);
}

/** Uniform f64 data in [lo, hi). */
export function randu(rng: Rng, shape: readonly number[], lo: number, hi: number): Tensor {
  return f64(Array.from({ length: size(shape) }, () => rng.uniform(lo, hi)), shape);
}

/** Uniform magnitudes in [lo, hi) with random signs: bounded away from zero. */
export function randAway(rng: Rng, shape: readonly number[], lo: number, hi: number): Tensor {
  return f64(Array.from({ length: size(shape) }, () => rng.sign() * rng.uniform(lo, hi)), shape);
}

/**
 * Distinct values in [lo, hi) in random order, any two at least 0.5 (hi - lo) / n apart, so
 * max/min/abs-style ops have no ties and finite differences do not cross a kink.
 */
export function randDistinct(rng: Rng, shape: readonly number[], lo = -2, hi = 2): Tensor {
  const n = size(shape);
  const step = (hi - lo) / Math.max(n, 1);
  const p = rng.perm(n);
  return f64(p.map((k) => lo + step * (k + 0.25 + 0.5 * rng.next())), shape);
}

/** Integer data in [lo, hi] as an i32 tensor. */
export function randInt(rng: Rng, shape: readonly number[], lo: number, hi: number, dtype: 'i32' | 'u32' = 'i32'): Tensor {
  return tensorOf(Array.from({ length: size(shape) }, () => rng.int(lo, hi)), shape, dtype);
}

/** Random bool tensor. */
export function randBool(rng: Rng, shape: readonly number[], p = 0.5): Tensor {
  return tensorOf(Array.from({ length: size(shape) }, () => (rng.bool(p) ? 1 : 0)), shape, 'bool');
}

/** The elements of a concrete tensor as plain numbers. */
export function values(t: Tensor): number[] {
  return Array.from(t.dataSync() as ArrayLike<number>);
}

// ---------------------------------------------------------------------------------------
// the checks

export type TensorFn = (...xs: Tensor[]) => unknown;

export interface GradCheckOptions {
  /** Draws tangents and cotangents. */
  readonly rng: Rng;
  /** Finite-difference step (default 1e-5). */
  readonly eps?: number;
  /** Relative tolerance of the JVP against finite differences (default 1e-6). */
  readonly jvpTol?: number;
  /** Relative tolerance of <J t, c> = <t, J^T c> (default 1e-10). */
  readonly vjpTol?: number;
  /**
   * Evaluate everything (f, jvp, vjp) by tracing and running the reference interpreter in
   * float64 mode, so that narrower float dtypes inside f (f32 casts) are exact.
   */
  readonly wide?: boolean;
  /**
   * Skip the `jvp` check (for functions without forward mode, e.g. customVjp); the VJP
   * identity then uses the finite-difference J t, at jvpTol.
   */
  readonly noJvp?: boolean;
  /**
   * Relative rounding error of one evaluation of f (default 4e-16, float64); finite
   * differences are allowed roundoff * |f(x)| / eps on top of jvpTol. Use ~1.2e-7 when f
   * rounds through f32.
   */
  readonly roundoff?: number;
  /** Also check that jvp's and vjp's primal outputs equal f(x) (default true). */
  readonly checkPrimal?: boolean;
}

export interface GradCheckReport {
  /** ||J t - fd|| / max(||J t||, ||fd||) (0 when both vanish). */
  readonly jvpRelErr: number;
  /** |<J t, c> - <t, J^T c>| / (sum |J t * c| + sum |t * J^T c|). */
  readonly vjpRelErr: number;
  /** ||J t|| (to let callers assert the check was not vacuous). */
  readonly jtNorm: number;
  /** ||J^T c||. */
  readonly jtcNorm: number;
}

export class GradCheckError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GradCheckError';
  }
}

function run(fn: (...a: Tensor[]) => unknown, args: readonly Tensor[], wide: boolean): Tensor[] {
  if (!wide) return treeLeaves(fn(...args));
  const program = trace(fn, ...args);
  return interpret(program, args, { dtype: 'f64' });
}

function dot(a: readonly number[], b: readonly number[]): [number, number] {
  let s = 0;
  let abs = 0;
  for (let i = 0; i < a.length; i++) {
    s += a[i]! * b[i]!;
    abs += Math.abs(a[i]! * b[i]!);
  }
  return [s, abs];
}

function norm(a: readonly number[]): number {
  let s = 0;
  for (const v of a) s += v * v;
  return Math.sqrt(s);
}

function shift(x: Tensor, t: Tensor, h: number): Tensor {
  const xd = values(x);
  const td = values(t);
  return tensorOf(xd.map((v, i) => v + h * td[i]!), x.shape, x.dtype);
}

function describeArgs(xs: readonly Tensor[]): string {
  return xs.map((x) => `${x.dtype}[${x.shape.join(',')}]`).join(', ');
}

/**
 * Runs both checks on f at xs (float tensors; close over integer or bool data) and throws a
 * GradCheckError with the numbers when either fails. Returns the measured errors.
 */
export function checkGrad(f: TensorFn, xs: readonly Tensor[], opts: GradCheckOptions): GradCheckReport {
  const { rng } = opts;
  const eps = opts.eps ?? 1e-5;
  const jvpTol = opts.jvpTol ?? 1e-6;
  const vjpTol = opts.vjpTol ?? 1e-10;
  const wide = opts.wide ?? false;
  const checkPrimal = opts.checkPrimal ?? true;
  const roundoff = opts.roundoff ?? 4e-16;
  for (const x of xs) {
    if (!isFloat(x.dtype) || x.isTracer) throw new GradCheckError(`checkGrad: inputs must be concrete float tensors, got ${describeArgs(xs)}`);
  }
  const n = xs.length;
  const where = `f(${describeArgs(xs)})`;

  // primal outputs and their abstract values
  const outAvals: AbstractValue[] = trace(f, ...xs).outputs.map((a) => a.aval);
  const ys = run(f, xs, wide);
  const yv = ys.map(values);
  const floatOut = outAvals.map((a) => isFloat(a.dtype));

  // tangents (same dtype as the inputs) and cotangents (same dtype as the outputs)
  const ts = xs.map((x) => tensorOf(Array.from({ length: x.size }, () => rng.normal()), x.shape, x.dtype));
  const cs = outAvals.map((a) =>
    tensorOf(Array.from({ length: size(a.shape) }, () => (isFloat(a.dtype) ? rng.normal() : 0)), a.shape, a.dtype),
  );

  // finite differences
  const yp = run(f, xs.map((x, i) => shift(x, ts[i]!, eps)), wide).map(values);
  const ym = run(f, xs.map((x, i) => shift(x, ts[i]!, -eps)), wide).map(values);
  const fd = yp.map((p, k) => (floatOut[k] ? p.map((v, j) => (v - ym[k]![j]!) / (2 * eps)) : p.map(() => 0)));

  let jt: number[][];
  let jvpRelErr = 0;
  if (!opts.noJvp) {
    const outs = run(
      (...a: Tensor[]) => {
        const [y, ty] = jvp(f, a.slice(0, n), a.slice(n));
        return [treeLeaves(y), treeLeaves(ty)];
      },
      [...xs, ...ts],
      wide,
    );
    const nOut = outAvals.length;
    if (outs.length !== 2 * nOut) throw new GradCheckError(`${where}: jvp returned ${outs.length / 2} outputs, f has ${nOut}`);
    if (checkPrimal) comparePrimal(where, 'jvp', yv, outs.slice(0, nOut).map(values));
    jt = outs.slice(nOut).map((t, k) => (floatOut[k] ? values(t) : values(t).map(() => 0)));
    outs.slice(nOut).forEach((t, k) => {
      if (t.shape.join() !== outAvals[k]!.shape.join()) {
        throw new GradCheckError(`${where}: jvp tangent ${k} has shape [${t.shape}], the output has [${outAvals[k]!.shape}]`);
      }
    });
    const diff = norm(jt.flatMap((a, k) => a.map((v, j) => v - fd[k]![j]!)));
    const scale = Math.max(norm(jt.flat()), norm(fd.flat()));
    // Rounding in f(x +- eps t) contributes about 1e-16 |f| / eps to each difference.
    const noise = (roundoff * norm(yv.flat())) / eps;
    jvpRelErr = scale === 0 ? diff : diff / scale;
    if (diff > jvpTol * scale + noise) {
      throw new GradCheckError(
        `${where}: jvp disagrees with finite differences: |Jt - fd| = ${diff.toExponential(3)}, |Jt| = ${norm(jt.flat()).toExponential(3)}, ` +
          `|fd| = ${norm(fd.flat()).toExponential(3)} (tol ${jvpTol}, eps ${eps})\n  Jt = ${fmt(jt)}\n  fd = ${fmt(fd)}`,
      );
    }
  } else {
    jt = fd;
  }

  // the VJP identity
  const outs = run(
    (...a: Tensor[]) => {
      const [y, back] = vjp(f, ...a.slice(0, n));
      const def = treeFlatten(y, 'gradcheck').def;
      return [treeLeaves(y), back(treeUnflatten(def, a.slice(n)))];
    },
    [...xs, ...cs],
    wide,
  );
  const nOut = outAvals.length;
  if (outs.length !== nOut + n) throw new GradCheckError(`${where}: vjp returned ${outs.length - nOut} cotangents for ${n} inputs`);
  if (checkPrimal) comparePrimal(where, 'vjp', yv, outs.slice(0, nOut).map(values));
  const jtc = outs.slice(nOut);
  jtc.forEach((c, i) => {
    if (c.shape.join() !== xs[i]!.shape.join()) {
      throw new GradCheckError(`${where}: vjp cotangent ${i} has shape [${c.shape}], the input has [${xs[i]!.shape}]`);
    }
  });
  const cv = cs.map(values);
  const jtcv = jtc.map(values);
  const [lhs, lhsAbs] = dot(jt.flat(), cv.flat());
  const [rhs, rhsAbs] = dot(ts.flatMap(values), jtcv.flat());
  const scale = lhsAbs + rhsAbs;
  const tol = opts.noJvp ? jvpTol : vjpTol;
  const vjpRelErr = scale === 0 ? Math.abs(lhs - rhs) : Math.abs(lhs - rhs) / scale;
  const noise = opts.noJvp ? (roundoff * norm(yv.flat()) * norm(cv.flat())) / eps : 0;
  if (Math.abs(lhs - rhs) > tol * scale + noise) {
    throw new GradCheckError(
      `${where}: <J t, c> = ${lhs} but <t, J^T c> = ${rhs} (relative error ${vjpRelErr.toExponential(3)}, tol ${tol})\n  J^T c = ${fmt(jtcv)}`,
    );
  }
  return { jvpRelErr, vjpRelErr, jtNorm: norm(jt.flat()), jtcNorm: norm(jtcv.flat()) };
}

function comparePrimal(where: string, what: string, want: number[][], got: number[][]): void {
  const ok =
    want.length === got.length &&
    want.every((w, k) => w.length === got[k]!.length && w.every((v, j) => Math.abs(v - got[k]![j]!) <= 1e-12 * (1 + Math.abs(v)) || (Number.isNaN(v) && Number.isNaN(got[k]![j]!))));
  if (!ok) throw new GradCheckError(`${where}: ${what}'s primal output ${fmt(got)} differs from f(x) = ${fmt(want)}`);
}

function fmt(a: number[][]): string {
  const s = JSON.stringify(a.map((r) => r.map((v) => Number(v.toPrecision(6)))));
  return s.length > 400 ? s.slice(0, 400) + '...' : s;
}
