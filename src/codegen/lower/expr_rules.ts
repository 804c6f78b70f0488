/**
 * The dtype edge cases, written once as rewrites of scalar expressions so that every dialect
 * prints operations with their plain meaning (see dialect.ts) and still agrees with the
 * reference interpreter: integer division and remainder by zero (and INT_MIN / -1), shifts by
 * 32 or more, NaN in max/min, arithmetic on bools, round half to even, sign, logistic, rsqrt,
 * the f32 erf approximation, casts to bool, narrow floats computed wider and rounded once per
 * primitive, and
 * threefry as u32 operations. Rules are a table keyed by operation; one bottom-up pass applies
 * them (what a rule builds is not rewritten again).
 */
import { type DType, isFloat } from '../../ir/dtype.js';
import type { Kernel } from '../kernel/kernel_graph.js';
import type { BinaryFn, CmpFn, SExpr, UnaryFn } from '../kernel/sexpr.js';
import { rewriteKernel } from './kernel_rewrite.js';
import { expandThreefry } from './threefry.js';

/** Operations a dialect prints itself (so their rule is skipped), e.g. JavaScript's Math.log1p. */
export type NativeOp = 'log1p' | 'expm1' | 'erf_f64' | 'rsqrt' | 'pow';

// ---------------------------------------------------------------------------------------
// builders

const k = (value: number, dtype: DType): SExpr => ({ op: 'const', value, dtype });
const un = (fn: UnaryFn, a: SExpr, dtype = a.dtype): SExpr => ({ op: 'unary', fn, a, dtype });
const bin = (fn: BinaryFn, a: SExpr, b: SExpr, dtype = a.dtype): SExpr => ({ op: 'binary', fn, a, b, dtype });
const cmp = (fn: CmpFn, a: SExpr, b: SExpr): SExpr => ({ op: 'cmp', fn, a, b, dtype: 'bool' });
const sel = (c: SExpr, a: SExpr, b: SExpr): SExpr => ({ op: 'select', c, a, b, dtype: a.dtype });
const or = (a: SExpr, b: SExpr): SExpr => bin('or', a, b, 'bool');
const and = (a: SExpr, b: SExpr): SExpr => bin('and', a, b, 'bool');
const not = (a: SExpr): SExpr => un('not', a, 'bool');

const isInt = (d: DType): boolean => d === 'i32' || d === 'u32';

type Rule = (e: SExpr, native: ReadonlySet<NativeOp>) => SExpr | undefined;

// ---------------------------------------------------------------------------------------
// integer division, remainder, shifts

/** a / b with the host's meaning: 0 for b = 0, wrapping for INT_MIN / -1; the divisor printed is never 0 or -1. */
const intDiv: Rule = (e) => {
  if (e.op !== 'binary' || !isInt(e.dtype)) return undefined;
  const { a, b, dtype } = e;
  const zero = cmp('eq', b, k(0, dtype));
  if (dtype === 'u32') return sel(zero, k(0, dtype), bin('div', a, sel(zero, k(1, dtype), b)));
  const minus1 = cmp('eq', b, k(-1, dtype));
  const safe = sel(or(zero, minus1), k(1, dtype), b);
  return sel(zero, k(0, dtype), sel(minus1, un('neg', a), bin('div', a, safe)));
};

/** a % b: 0 for b = 0 (and b = -1, where C would trap on INT_MIN). */
const intRem: Rule = (e) => {
  if (e.op !== 'binary' || !isInt(e.dtype)) return undefined;
  const { a, b, dtype } = e;
  const bad = dtype === 'u32' ? cmp('eq', b, k(0, dtype)) : or(cmp('eq', b, k(0, dtype)), cmp('eq', b, k(-1, dtype)));
  return sel(bad, k(0, dtype), bin('rem', a, sel(bad, k(1, dtype), b)));
};

/** Shifts by 32 or more give 0 (a negative i32 amount shifts by its low five bits, as the host's). */
const shift: Rule = (e) => {
  if (e.op !== 'binary' || !isInt(e.dtype)) return undefined;
  const { a, b, dtype } = e;
  return sel(cmp('ge', b, k(32, dtype)), k(0, dtype), bin(e.fn, a, bin('and', b, k(31, dtype))));
};

// ---------------------------------------------------------------------------------------
// floats

/** max/min propagate NaN (from either side) like the host's `a > b || a !== a ? a : b`. */
const extremum: Rule = (e) => {
  if (e.op !== 'binary' || !isFloat(e.dtype)) return undefined;
  const { a, b } = e;
  return sel(or(cmp(e.fn === 'max' ? 'gt' : 'lt', a, b), cmp('ne', a, a)), a, b);
};

/** Round half to even, exactly (no x + 0.5, which rounds for large odd x); -0 for small negative x. */
const roundHalfEven: Rule = (e) => {
  if (e.op !== 'unary' || !isFloat(e.dtype)) return undefined;
  const d = e.dtype;
  const f = un('floor', e.a);
  const frac = bin('sub', e.a, f);
  const up = bin('add', f, k(1, d));
  const even = cmp('eq', bin('rem', f, k(2, d)), k(0, d));
  const r = sel(cmp('lt', frac, k(0.5, d)), f, sel(cmp('gt', frac, k(0.5, d)), up, sel(even, f, up)));
  // a zero result keeps x's sign (-0.4 rounds to -0)
  return sel(cmp('eq', r, k(0, d)), bin('mul', e.a, k(0, d)), r);
};

/** sign(x): 1, -1, or x itself (0, -0, NaN). */
const sign: Rule = (e) => {
  if (e.op !== 'unary') return undefined;
  const d = e.dtype;
  return sel(cmp('gt', e.a, k(0, d)), k(1, d), sel(cmp('lt', e.a, k(0, d)), k(-1, d), e.a));
};

const logistic: Rule = (e) => (e.op === 'unary' ? bin('div', k(1, e.dtype), bin('add', k(1, e.dtype), un('exp', un('neg', e.a)))) : undefined);

const rsqrt: Rule = (e, native) => (e.op === 'unary' && !native.has('rsqrt') ? bin('div', k(1, e.dtype), un('sqrt', e.a)) : undefined);

/** log1p(x) = x for tiny x, else log(u) * x / (u - 1) with u = 1 + x (Kahan): a few ulp. */
const log1p: Rule = (e, native) => {
  if (e.op !== 'unary' || native.has('log1p')) return undefined;
  const d = e.dtype;
  const u = bin('add', k(1, d), e.a);
  const um1 = bin('sub', u, k(1, d));
  return sel(cmp('eq', um1, k(0, d)), e.a, bin('div', bin('mul', un('log', u), e.a), um1));
};

/** expm1(x) = x for tiny x, else (u - 1) * x / log(u) with u = exp(x) (Kahan). */
const expm1: Rule = (e, native) => {
  if (e.op !== 'unary' || native.has('expm1')) return undefined;
  const d = e.dtype;
  const u = un('exp', e.a);
  const um1 = bin('sub', u, k(1, d));
  const lu = un('log', u);
  const body = sel(cmp('eq', um1, k(-1, d)), k(-1, d), bin('div', bin('mul', um1, e.a), lu));
  return sel(cmp('eq', um1, k(0, d)), e.a, sel(cmp('eq', u, k(Infinity, d)), u, body));
};

/**
 * pow for dialects whose pow is exp2(y * log2(x)) (undefined for x < 0): the host's meaning,
 * x^0 = 1 (even for NaN), a negative base only with an integer exponent (odd ones keep the sign).
 */
const pow: Rule = (e, native) => {
  if (e.op !== 'binary' || !isFloat(e.dtype) || native.has('pow')) return undefined;
  const d = e.dtype;
  const { a: x, b: y } = e;
  const p = bin('pow', un('abs', x), y);
  const yInt = cmp('eq', un('floor', y), y);
  const odd = and(yInt, cmp('ne', bin('rem', y, k(2, d)), k(0, d)));
  const negative = sel(yInt, sel(odd, un('neg', p), p), k(NaN, d));
  return sel(cmp('eq', y, k(0, d)), k(1, d), sel(cmp('lt', x, k(0, d)), negative, p));
};

/**
 * erf for f32/f16/bf16: a rational approximation in x^2 on [-4, 4] (the form XLA uses; at most
 * 7.3e-7 absolute), clamped to [-1, 1], +-1 outside. f64 keeps the dialect's float64-accurate erf.
 */
export const ERF_P: readonly number[] = [0.00022905065861350646, 0.0034082910107109506, 0.050955695062380861, 0.18520832239976145, 1.128379143519084];
export const ERF_Q: readonly number[] = [-1.1791602954361697e-7, 0.000023547966471313185, 0.0010179625278914885, 0.014070470171167667, 0.11098505178285362, 0.49746925110067538, 1];
/** The rational approximation, evaluated in the node's own type (its coefficients rounded to it). */
function erfPolynomial(e: SExpr): SExpr {
  if (e.op !== 'unary') return e;
  const d = e.dtype;
  const x = e.a;
  const u = bin('mul', x, x);
  const horner = (cs: readonly number[]): SExpr => cs.slice(1).reduce((acc, c) => bin('add', bin('mul', acc, u), k(c, d)), k(cs[0]!, d));
  const q = bin('div', bin('mul', x, horner(ERF_P)), horner(ERF_Q));
  // with rounded coefficients the ratio can pass +-1 by an ulp near |x| = 4; erf never does
  const r = sel(cmp('gt', q, k(1, d)), k(1, d), sel(cmp('lt', q, k(-1, d)), k(-1, d), q));
  return sel(cmp('ge', x, k(4, d)), k(1, d), sel(cmp('le', x, k(-4, d)), k(-1, d), r));
}

// ---------------------------------------------------------------------------------------
// bools and casts

/** Arithmetic on bools, as the host computes it (the number, then != 0 modulo 256): bitwise forms. */
const BOOL_BINARY: Readonly<Partial<Record<BinaryFn, (a: SExpr, b: SExpr) => SExpr>>> = {
  add: or,
  sub: (a, b) => bin('xor', a, b, 'bool'),
  mul: and,
  div: and,
  max: or,
  min: and,
  pow: (a, b) => or(a, not(b)),
  rem: () => k(0, 'bool'),
  shift_left: (a) => a,
  shift_right_logical: (a, b) => and(a, not(b)),
};

const boolBinary: Rule = (e) => (e.op === 'binary' && e.dtype === 'bool' ? BOOL_BINARY[e.fn]?.(e.a, e.b) : undefined);

/** A cast to bool is `x != 0` (NaN is true, as the host's). */
const castToBool: Rule = (e) => (e.op === 'cast' && e.dtype === 'bool' && e.a.dtype !== 'bool' ? cmp('ne', e.a, k(0, e.a.dtype)) : undefined);

// ---------------------------------------------------------------------------------------
// the table

const UNARY_RULES: Readonly<Partial<Record<UnaryFn, Rule>>> = { round: roundHalfEven, sign, logistic, rsqrt, log1p, expm1 };
const BINARY_RULES: Readonly<Partial<Record<BinaryFn, Rule>>> = { div: intDiv, rem: intRem, shift_left: shift, shift_right_logical: shift, max: extremum, min: extremum, pow };

/** The rewrite of a node, or undefined when the dialect computes it as it is. */
function ruleFor(e: SExpr, native: ReadonlySet<NativeOp>): SExpr | undefined {
  switch (e.op) {
    case 'unary':
      if (e.fn === 'erf') return e.dtype === 'f64' && native.has('erf_f64') ? undefined : erfPolynomial(e);
      return UNARY_RULES[e.fn]?.(e, native);
    case 'binary':
      return boolBinary(e, native) ?? BINARY_RULES[e.fn]?.(e, native);
    case 'cast':
      return castToBool(e, native);
    default:
      return undefined;
  }
}

/** The operations a dialect computes natively (the others are expanded by the rules above). */
export interface LoweringOptions {
  readonly native: ReadonlySet<NativeOp>;
}

/**
 * f16/bf16 primitives are computed on f32 operands and rounded back once (the host rounds after
 * each primitive); f32 and f64 nodes are expanded in their own type, with constants of that type
 * (a dialect that holds f32 intermediates wider, as JavaScript's numbers do, evaluates the same
 * expansion with the same f32 constants, only without intermediate rounding).
 */
function lowerNode(e: SExpr, o: LoweringOptions): SExpr {
  const half = e.dtype === 'f16' || e.dtype === 'bf16';
  if ((e.op !== 'unary' && e.op !== 'binary') || !half) return ruleFor(e, o.native) ?? e;
  const widen = (x: SExpr): SExpr => ({ op: 'cast', a: x, dtype: 'f32' });
  const wide: SExpr = e.op === 'unary' ? { ...e, a: widen(e.a), dtype: 'f32' } : ({ ...e, a: widen(e.a), b: widen((e as { b: SExpr }).b), dtype: 'f32' } as SExpr);
  return { op: 'cast', a: ruleFor(wide, o.native) ?? wide, dtype: e.dtype };
}

/** The kernel with every edge case rewritten for a dialect (see LoweringOptions). */
export function lowerExprs(kernel: Kernel, o: LoweringOptions): Kernel {
  const threefry = expandThreefry();
  return rewriteKernel(kernel, (e) => (e.op === 'threefry' ? threefry(e) : lowerNode(e, o)));
}
