/**
 * The JavaScript dialect of the CPU backend: how JavaScript spells each scalar operation, type,
 * declaration, load and store over typed arrays. Values are JS numbers: f32 element-wise
 * intermediates of a fused kernel stay in float64 and are rounded to f32 when stored (a
 * reduction's f32 result is rounded where it is read, so a fused phase and a stored reduction
 * give the same value); integers wrap at 32 bits (`| 0`, `>>> 0`, Math.imul); bools are 0/1;
 * f16/bf16 live in Float32Arrays, rounded after each operation (expr_rules). The edge cases
 * (division by zero, NaN in max/min, ...) arrive already rewritten by
 * src/codegen/lower/expr_rules.ts.
 */
import type { DType } from '../../ir/dtype.js';
import { bufName, type Dialect } from '../lower/dialect.js';
import type { NativeOp } from '../lower/expr_rules.js';
import type { BinaryFn, CmpFn, UnaryFn } from '../kernel/sexpr.js';

/** Operations JavaScript has built in (their expr_rules rewrite is skipped). */
export const JS_NATIVE: ReadonlySet<NativeOp> = new Set<NativeOp>(['log1p', 'expm1', 'erf_f64', 'pow']);

/** A JS literal for a number (keeps -0, NaN and infinities). */
export function numLit(v: number): string {
  if (Object.is(v, -0)) return '(-0)';
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '(-Infinity)';
  return v < 0 ? `(${String(v)})` : String(v);
}

/** How a value of `dtype` becomes the dtype's value set (integers wrap as 32-bit). */
export function wrapInt(src: string, dtype: DType): string {
  switch (dtype) {
    case 'i32':
      return `((${src}) | 0)`;
    case 'u32':
      return `((${src}) >>> 0)`;
    case 'bool':
      return `((${src}) !== 0 ? 1 : 0)`;
    default:
      return src;
  }
}

/** The expression stored into a buffer of `dtype` (f16/bf16 round; typed arrays do the rest). */
export function storeValue(src: string, dtype: DType): string {
  if (dtype === 'f16') return `roundF16(${src})`;
  if (dtype === 'bf16') return `roundBf16(${src})`;
  return src;
}

const isInt = (d: DType): boolean => d === 'i32' || d === 'u32';

/** Float unary ops: Math functions (f64 erf is the runtime's float64-accurate helper). */
const FLOAT_UNARY: Readonly<Partial<Record<UnaryFn, (a: string, d: DType) => string>>> = {
  neg: (a) => `(-${a})`,
  exp: (a) => `Math.exp(${a})`,
  log: (a) => `Math.log(${a})`,
  log1p: (a) => `Math.log1p(${a})`,
  expm1: (a) => `Math.expm1(${a})`,
  sin: (a) => `Math.sin(${a})`,
  cos: (a) => `Math.cos(${a})`,
  tanh: (a) => `Math.tanh(${a})`,
  sqrt: (a) => `Math.sqrt(${a})`,
  abs: (a) => `Math.abs(${a})`,
  floor: (a) => `Math.floor(${a})`,
  ceil: (a) => `Math.ceil(${a})`,
  erf: (a, d) => {
    if (d !== 'f64') throw new Error('cpu codegen: f32 erf must be rewritten by expr_rules');
    return `erf(${a})`;
  },
};

/** An f32 accumulator rounded to f32 where it is read. */
const f32 = (src: string, dtype: DType): string => (dtype === 'f32' ? `Math.fround(${src})` : src);

function unarySrc(fn: UnaryFn, a: string, dtype: DType): string {
  if (fn === 'not') return dtype === 'bool' ? `(${a} ? 0 : 1)` : dtype === 'u32' ? `(~${a} >>> 0)` : `(~${a})`;
  const f = FLOAT_UNARY[fn];
  if (!f) throw new Error(`cpu codegen: unary ${fn} must be rewritten by expr_rules`);
  return isInt(dtype) ? wrapInt(f(a, dtype), dtype) : f(a, dtype);
}

/** Integer binary ops (i32 results; u32 goes through `>>> 0`). */
const INT_BINARY: Readonly<Partial<Record<BinaryFn, (a: string, b: string) => string>>> = {
  add: (a, b) => `${a} + ${b}`,
  sub: (a, b) => `${a} - ${b}`,
  mul: (a, b) => `Math.imul(${a}, ${b})`,
  div: (a, b) => `${a} / ${b}`,
  rem: (a, b) => `${a} % ${b}`,
  pow: (a, b) => `Math.pow(${a}, ${b})`,
  and: (a, b) => `${a} & ${b}`,
  or: (a, b) => `${a} | ${b}`,
  xor: (a, b) => `${a} ^ ${b}`,
  shift_left: (a, b) => `${a} << ${b}`,
  shift_right_logical: (a, b) => `${a} >>> ${b}`,
};

const FLOAT_BINARY: Readonly<Partial<Record<BinaryFn, (a: string, b: string) => string>>> = {
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b) => `(${a} / ${b})`,
  rem: (a, b) => `(${a} % ${b})`,
  pow: (a, b) => `Math.pow(${a}, ${b})`,
};

function binarySrc(fn: BinaryFn, a: string, b: string, dtype: DType): string {
  if (dtype === 'bool') {
    if (fn === 'and' || fn === 'or' || fn === 'xor') return `(${a} ${fn === 'and' ? '&' : fn === 'or' ? '|' : '^'} ${b})`;
    throw new Error(`cpu codegen: bool ${fn} must be rewritten by expr_rules`);
  }
  if (isInt(dtype)) {
    if (fn === 'max') return `(${a} > ${b} ? ${a} : ${b})`;
    if (fn === 'min') return `(${a} < ${b} ? ${a} : ${b})`;
    const f = INT_BINARY[fn];
    if (!f) throw new Error(`cpu codegen: unknown integer op ${fn}`);
    return wrapInt(f(a, b), dtype);
  }
  const f = FLOAT_BINARY[fn];
  if (!f) throw new Error(`cpu codegen: float ${fn} must be rewritten by expr_rules`);
  return f(a, b);
}

const CMP: Readonly<Record<CmpFn, string>> = { eq: '===', ne: '!==', lt: '<', le: '<=', gt: '>', ge: '>=' };

function castSrc(a: string, from: DType, to: DType): string {
  if (from === to) return a;
  switch (to) {
    case 'f64':
      return a;
    case 'f32':
      return from === 'f16' || from === 'bf16' || from === 'bool' ? a : `Math.fround(${a})`;
    case 'f16':
      return from === 'bool' ? a : `roundF16(${a})`;
    case 'bf16':
      return from === 'bool' ? a : `roundBf16(${a})`;
    case 'i32':
      return from === 'bool' ? a : `(${a} | 0)`;
    case 'u32':
      return from === 'bool' ? a : `(${a} >>> 0)`;
    case 'bool':
      return `(${a} !== 0 ? 1 : 0)`;
  }
}

export const JS_DIALECT: Dialect = {
  name: 'cpu',
  literal: (v) => numLit(v),
  declare: (name, _dtype, src) => `const ${name} = ${src};`,
  declareIndex: (name, src) => `const ${name} = ${src};`,
  indexDiv: (a, d) => `((${a}) / ${d} | 0)`,
  indexMod: (a, d) => `((${a}) % ${d})`,
  indexValue: (s, dtype) => (dtype === 'bool' ? `(${s} !== 0 ? 1 : 0)` : s),
  unary: unarySrc,
  binary: binarySrc,
  compare: (fn, a, b) => `(${a} ${CMP[fn]} ${b} ? 1 : 0)`,
  select: (c, a, b) => `(${c} ? ${a} : ${b})`,
  cast: castSrc,
  load: (buf, index) => `${bufName(buf)}[${index}]`,
  store: (buf, index, value, dtype, accumulate) => {
    const at = `${bufName(buf)}[${index}]`;
    return `${at} = ${storeValue(accumulate ? `${at} + ${value}` : value, dtype)};`;
  },
  guard: (c, stmt) => `if (${c}) ${stmt}`,
  accValue: (src, dtype) => f32(src, dtype),
};
