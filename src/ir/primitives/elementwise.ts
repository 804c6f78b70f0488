/** Elementwise primitives: unary, binary, comparisons, select and cast. */
import { castScalar, type DType, isFloat } from '../dtype.js';
import { OpError } from '../errors.js';
import { erf as erfScalar } from '../hostmath.js';
import * as ops from '../ops.js';
import type { ImplContext, PrimDef, PrimParams } from '../primitive.js';
import type { AbstractValue } from '../program.js';
import type { Tensor } from '../tensor.js';
import { alloc, avalStr, expectArity, expectSame, finish } from './util.js';

type None = Record<string, never>;

// ---------------------------------------------------------------------------------------
// unary

export type UnaryName = 'neg' | 'exp' | 'log' | 'log1p' | 'expm1' | 'sin' | 'cos' | 'tanh' | 'logistic' | 'sqrt' | 'rsqrt' | 'erf' | 'abs' | 'sign' | 'floor' | 'ceil' | 'round' | 'not';

interface UnarySpec {
  /** Which dtypes the op accepts. */
  readonly accepts: 'float' | 'numeric' | 'intbool';
  readonly f: (x: number, dtype: DType) => number;
  /** dy/dx as a tensor expression; null for a piecewise-constant op (zero derivative). */
  readonly deriv: ((x: Tensor, y: Tensor) => Tensor) | null;
}

const SQRT_PI_2 = 2 / Math.sqrt(Math.PI);

const UNARY: Readonly<Record<UnaryName, UnarySpec>> = {
  neg: { accepts: 'numeric', f: (x) => -x, deriv: (x) => ops.full(x.shape, -1, x.dtype) },
  exp: { accepts: 'float', f: Math.exp, deriv: (_x, y) => y },
  log: { accepts: 'float', f: Math.log, deriv: (x) => ops.reciprocal(x) },
  log1p: { accepts: 'float', f: Math.log1p, deriv: (x) => ops.reciprocal(ops.add(x, 1)) },
  expm1: { accepts: 'float', f: Math.expm1, deriv: (_x, y) => ops.add(y, 1) },
  sin: { accepts: 'float', f: Math.sin, deriv: (x) => ops.cos(x) },
  cos: { accepts: 'float', f: Math.cos, deriv: (x) => ops.neg(ops.sin(x)) },
  tanh: { accepts: 'float', f: Math.tanh, deriv: (_x, y) => ops.sub(1, ops.mul(y, y)) },
  logistic: { accepts: 'float', f: (x) => 1 / (1 + Math.exp(-x)), deriv: (_x, y) => ops.mul(y, ops.sub(1, y)) },
  sqrt: { accepts: 'float', f: Math.sqrt, deriv: (_x, y) => ops.div(0.5, y) },
  rsqrt: { accepts: 'float', f: (x) => 1 / Math.sqrt(x), deriv: (x, y) => ops.mul(ops.div(y, x), -0.5) },
  erf: { accepts: 'float', f: erfScalar, deriv: (x) => ops.mul(ops.exp(ops.neg(ops.mul(x, x))), SQRT_PI_2) },
  abs: { accepts: 'numeric', f: Math.abs, deriv: (x) => ops.sign(x) },
  sign: { accepts: 'numeric', f: (x) => (x > 0 ? 1 : x < 0 ? -1 : x), deriv: null },
  floor: { accepts: 'float', f: Math.floor, deriv: null },
  ceil: { accepts: 'float', f: Math.ceil, deriv: null },
  // round half to even, as XLA/numpy do
  round: {
    accepts: 'float',
    f: (x) => {
      const r = Math.round(x);
      return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
    },
    deriv: null,
  },
  not: { accepts: 'intbool', f: (x, d) => (d === 'bool' ? (x ? 0 : 1) : ~x), deriv: null },
};

function acceptsDtype(kind: UnarySpec['accepts'], d: DType): boolean {
  if (kind === 'float') return isFloat(d);
  if (kind === 'intbool') return !isFloat(d);
  return d !== 'bool';
}

function unaryDef(name: UnaryName): PrimDef<None> {
  const spec = UNARY[name];
  return {
    lowering: 'unary',
    shape: (inputs) => {
      expectArity(name, inputs, 1);
      const a = inputs[0]!;
      if (!acceptsDtype(spec.accepts, a.dtype)) throw new OpError(name, `unsupported dtype ${avalStr(a)}`);
      return [{ shape: a.shape, dtype: a.dtype }];
    },
    impl: ([x], _p, ctx) => {
      const out = alloc(x!.dtype, x!.shape, ctx);
      const xd = x!.data;
      const od = out.data;
      const f = spec.f;
      const dt = x!.dtype;
      for (let i = 0; i < xd.length; i++) od[i] = f(xd[i]!, dt);
      if (!isFloat(dt)) for (let i = 0; i < od.length; i++) od[i] = castScalar(od[i]!, dt);
      return [finish(out)];
    },
    jvp: ([x], [t], _p, [y]) => (spec.deriv && t ? [ops.mul(t, spec.deriv(x!, y!))] : [null]),
    vjp: ([x], [y], [ct]) => (spec.deriv && ct ? [ops.mul(ct, spec.deriv(x!, y!))] : [null]),
  };
}

// ---------------------------------------------------------------------------------------
// binary

export type BinaryName = 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min' | 'pow' | 'rem' | 'and' | 'or' | 'xor' | 'shift_left' | 'shift_right_logical';

function intDiv(a: number, b: number): number {
  return b === 0 ? 0 : Math.trunc(a / b);
}

/** The scalar function of a binary op for a dtype. */
function binaryScalar(name: BinaryName, dt: DType): (a: number, b: number) => number {
  const isInt = dt === 'i32' || dt === 'u32';
  switch (name) {
    case 'add':
      return (a, b) => a + b;
    case 'sub':
      return (a, b) => a - b;
    case 'mul':
      return isInt ? (a, b) => Math.imul(a, b) : (a, b) => a * b;
    case 'div':
      return isInt ? intDiv : (a, b) => a / b;
    case 'max':
      return (a, b) => (a > b || Number.isNaN(a) ? a : b);
    case 'min':
      return (a, b) => (a < b || Number.isNaN(a) ? a : b);
    case 'pow':
      return Math.pow;
    case 'rem':
      return isInt ? (a, b) => (b === 0 ? 0 : a % b) : (a, b) => a % b;
    case 'and':
      return (a, b) => a & b;
    case 'or':
      return (a, b) => a | b;
    case 'xor':
      return (a, b) => a ^ b;
    case 'shift_left':
      return (a, b) => (b >= 32 ? 0 : a << b);
    case 'shift_right_logical':
      return (a, b) => (b >= 32 ? 0 : a >>> b);
  }
}

type BinaryRule = (a: Tensor, b: Tensor, y: Tensor) => readonly [Tensor | null, Tensor | null];

/** Partial derivatives (dy/da, dy/db) as tensors, or null where the op has none. */
const BINARY_DERIVS: Readonly<Record<BinaryName, BinaryRule | null>> = {
  add: (a) => [ops.onesLike(a), ops.onesLike(a)],
  sub: (a) => [ops.onesLike(a), ops.full(a.shape, -1, a.dtype)],
  mul: (a, b) => [b, a],
  div: (_a, b, y) => [ops.reciprocal(b), ops.neg(ops.div(y, b))],
  max: (a, b) => {
    const wa = ops.add(ops.cast(ops.greater(a, b), a.dtype), ops.mul(ops.cast(ops.equal(a, b), a.dtype), 0.5));
    return [wa, ops.sub(1, wa)];
  },
  min: (a, b) => {
    const wa = ops.add(ops.cast(ops.less(a, b), a.dtype), ops.mul(ops.cast(ops.equal(a, b), a.dtype), 0.5));
    return [wa, ops.sub(1, wa)];
  },
  pow: (a, b, y) => {
    // d/da = b * a^(b-1); d/db = log(a) * y, taken as 0 where a == 0 (as JAX does).
    const da = ops.mul(b, ops.pow(a, ops.sub(b, 1)));
    const safeA = ops.where(ops.equal(a, 0), ops.onesLike(a), a);
    const db = ops.where(ops.equal(a, 0), ops.zerosLike(a), ops.mul(ops.log(safeA), y));
    return [da, db];
  },
  rem: (a, b) => {
    const q = ops.div(a, b);
    const trunc = ops.where(ops.less(q, 0), ops.ceil(q), ops.floor(q));
    return [ops.onesLike(a), ops.neg(trunc)];
  },
  and: null,
  or: null,
  xor: null,
  shift_left: null,
  shift_right_logical: null,
};

function binaryDef(name: BinaryName): PrimDef<None> {
  const deriv = BINARY_DERIVS[name];
  return {
    lowering: 'binary',
    shape: (inputs) => {
      expectArity(name, inputs, 2);
      expectSame(name, inputs);
      const a = inputs[0]!;
      const bitwise = name === 'and' || name === 'or' || name === 'xor' || name.startsWith('shift');
      if (bitwise && isFloat(a.dtype)) throw new OpError(name, `expected integer or bool operands, got ${avalStr(a)}`);
      return [{ shape: a.shape, dtype: a.dtype }];
    },
    impl: ([x, y], _p, ctx) => {
      const out = alloc(x!.dtype, x!.shape, ctx);
      const f = binaryScalar(name, x!.dtype);
      const xd = x!.data;
      const yd = y!.data;
      const od = out.data;
      for (let i = 0; i < od.length; i++) od[i] = f(xd[i]!, yd[i]!);
      if (!isFloat(x!.dtype)) for (let i = 0; i < od.length; i++) od[i] = castScalar(od[i]!, x!.dtype);
      return [finish(out)];
    },
    jvp: ([a, b], [ta, tb], _p, [y]) => {
      if (!deriv || !isFloat(a!.dtype) || (!ta && !tb)) return [null];
      const [da, db] = deriv(a!, b!, y!);
      const terms = [ta && da ? ops.mul(ta, da) : null, tb && db ? ops.mul(tb, db) : null].filter((t): t is Tensor => t !== null);
      return [terms.length === 2 ? ops.add(terms[0]!, terms[1]!) : (terms[0] ?? null)];
    },
    vjp: ([a, b], [y], [ct]) => {
      if (!deriv || !ct || !isFloat(a!.dtype)) return [null, null];
      const [da, db] = deriv(a!, b!, y!);
      return [da ? ops.mul(ct, da) : null, db ? ops.mul(ct, db) : null];
    },
  };
}

// ---------------------------------------------------------------------------------------
// comparisons

export type CompareName = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';
const COMPARE: Readonly<Record<CompareName, (a: number, b: number) => boolean>> = {
  eq: (a, b) => a === b,
  ne: (a, b) => a !== b,
  lt: (a, b) => a < b,
  le: (a, b) => a <= b,
  gt: (a, b) => a > b,
  ge: (a, b) => a >= b,
};

function compareDef(name: CompareName): PrimDef<None> {
  const f = COMPARE[name];
  return {
    lowering: 'compare',
    shape: (inputs) => {
      expectArity(name, inputs, 2);
      expectSame(name, inputs);
      return [{ shape: inputs[0]!.shape, dtype: 'bool' }];
    },
    impl: ([x, y], _p, ctx) => {
      const out = alloc('bool', x!.shape, ctx);
      const xd = x!.data;
      const yd = y!.data;
      const od = out.data;
      for (let i = 0; i < od.length; i++) od[i] = f(xd[i]!, yd[i]!) ? 1 : 0;
      return [out];
    },
    jvp: () => [null],
    vjp: () => [null, null],
  };
}

// ---------------------------------------------------------------------------------------
// select, cast

const select: PrimDef<None> = {
  lowering: 'select',
  shape: (inputs) => {
    expectArity('select', inputs, 3);
    const [p, a, b] = inputs as [AbstractValue, AbstractValue, AbstractValue];
    if (p.dtype !== 'bool') throw new OpError('select', `predicate must be bool, got ${avalStr(p)}`);
    expectSame('select', [a, b]);
    expectSame('select', [{ shape: p.shape, dtype: a.dtype }, a]);
    return [{ shape: a.shape, dtype: a.dtype }];
  },
  impl: ([p, a, b], _p, ctx) => {
    const out = alloc(a!.dtype, a!.shape, ctx);
    const pd = p!.data;
    const ad = a!.data;
    const bd = b!.data;
    const od = out.data;
    for (let i = 0; i < od.length; i++) od[i] = pd[i] ? ad[i]! : bd[i]!;
    return [out];
  },
  jvp: ([p, a], [, ta, tb]) => {
    if (!ta && !tb) return [null];
    const z = ops.zerosLike(a!);
    return [ops.where(p!, ta ?? z, tb ?? z)];
  },
  vjp: ([p, a], _y, [ct]) => {
    if (!ct || !isFloat(a!.dtype)) return [null, null, null];
    const z = ops.zerosLike(ct);
    return [null, ops.where(p!, ct, z), ops.where(p!, z, ct)];
  },
};

const cast: PrimDef<PrimParams['cast']> = {
  lowering: 'cast',
  shape: (inputs, { dtype }) => {
    expectArity('cast', inputs, 1);
    return [{ shape: inputs[0]!.shape, dtype }];
  },
  impl: ([x], { dtype }, ctx: ImplContext) => {
    const out = alloc(dtype, x!.shape, ctx);
    const xd = x!.data;
    const od = out.data;
    const wideFloat = isFloat(dtype) && ctx.wide;
    for (let i = 0; i < od.length; i++) od[i] = wideFloat ? xd[i]! : castScalar(xd[i]!, dtype);
    return [out];
  },
  jvp: ([x], [t], { dtype }) => (t && isFloat(x!.dtype) && isFloat(dtype) ? [ops.cast(t, dtype)] : [null]),
  vjp: ([x], _y, [ct], { dtype }) => (ct && isFloat(x!.dtype) && isFloat(dtype) ? [ops.cast(ct, x!.dtype)] : [null]),
};

/** One definition per name of each table above. */
function defsOf<N extends string>(table: Readonly<Record<N, unknown>>, def: (name: N) => PrimDef<None>): Record<N, PrimDef<None>> {
  return Object.fromEntries((Object.keys(table) as N[]).map((n) => [n, def(n)])) as Record<N, PrimDef<None>>;
}

export const elementwisePrims = {
  ...defsOf(UNARY, unaryDef),
  ...defsOf(BINARY_DERIVS, binaryDef),
  ...defsOf(COMPARE, compareDef),
  select,
  cast,
};
