/**
 * The C-style base of the C, CUDA and WGSL dialects: languages whose integer arithmetic,
 * comparisons, conditionals and index expressions are spelled alike. A dialect built on it
 * supplies a small table (type names, literals, math function names, casts, loads and stores)
 * and gets a whole Dialect; what differs between the languages lives in the table, not in
 * algorithms.
 */
import type { DType } from '../../ir/dtype.js';
import type { BinaryFn, CmpFn, UnaryFn } from '../kernel/sexpr.js';
import { bufName, type Dialect } from './dialect.js';

export interface CStyleTable {
  readonly name: string;
  /** The register type of a dtype (`float`, `f32`, `unsigned int`, `bool` ...). */
  readonly type: (dtype: DType) => string;
  /** The index type (a signed 32-bit integer). */
  readonly indexType: string;
  readonly literal: (value: number, dtype: DType) => string;
  /** A local declaration: C `const float t = v;`, WGSL `let t: f32 = v;`. */
  readonly declare: (name: string, type: string, src: string) => string;
  /** A float math function applied to a value of `dtype` (`expf(a)`, `exp(a)`), for the unary ops left after expr_rules. */
  readonly mathUnary: (fn: UnaryFn, a: string, dtype: DType) => string;
  readonly pow: (a: string, b: string, dtype: DType) => string;
  /** Float remainder (C fmodf, WGSL's `%`). */
  readonly frem: (a: string, b: string, dtype: DType) => string;
  /** Integer ops whose wrapping or shifting needs the language's care (C: through unsigned). */
  readonly intOp: (fn: 'add' | 'sub' | 'mul' | 'neg' | 'abs' | 'shift_left' | 'shift_right_logical' | 'not' | 'pow', a: string, b: string, dtype: 'i32' | 'u32') => string;
  readonly select: (c: string, a: string, b: string, dtype: DType) => string;
  readonly cast: (a: string, from: DType, to: DType) => string;
  /** An index expression's value as `dtype` (iota, bounds tests). */
  readonly indexValue: (src: string, dtype: DType) => string;
  readonly load: (buf: string, index: string, dtype: DType) => string;
  readonly store: (buf: string, index: string, value: string, dtype: DType) => string;
  /** buf[index] += value where several threads may add to one element (an atomic). */
  readonly atomicAdd: (buf: string, index: string, value: string, dtype: DType) => string;
}

const CMP: Readonly<Record<CmpFn, string>> = { eq: '==', ne: '!=', lt: '<', le: '<=', gt: '>', ge: '>=' };
const FLOAT_OP: Readonly<Partial<Record<BinaryFn, string>>> = { add: '+', sub: '-', mul: '*', div: '/' };
const BIT_OP: Readonly<Partial<Record<BinaryFn, string>>> = { and: '&', or: '|', xor: '^' };

const isInt = (d: DType): d is 'i32' | 'u32' => d === 'i32' || d === 'u32';

export function cStyleDialect(t: CStyleTable): Dialect {
  const unary = (fn: UnaryFn, a: string, dtype: DType): string => {
    if (dtype === 'bool') {
      if (fn !== 'not') throw new Error(`${t.name} codegen: bool ${fn}`);
      return `(!${a})`;
    }
    if (isInt(dtype)) {
      if (fn === 'neg' || fn === 'abs' || fn === 'not') return t.intOp(fn, a, '', dtype);
      throw new Error(`${t.name} codegen: integer ${fn} must be rewritten by expr_rules`);
    }
    if (fn === 'neg') return `(-${a})`;
    return t.mathUnary(fn, a, dtype);
  };
  const binary = (fn: BinaryFn, a: string, b: string, dtype: DType): string => {
    const bit = BIT_OP[fn];
    if (dtype === 'bool') {
      if (!bit) throw new Error(`${t.name} codegen: bool ${fn} must be rewritten by expr_rules`);
      return fn === 'xor' ? `(${a} != ${b})` : `(${a} ${bit}${bit} ${b})`;
    }
    if (isInt(dtype)) {
      if (bit) return `(${a} ${bit} ${b})`;
      switch (fn) {
        case 'div':
          return `(${a} / ${b})`;
        case 'rem':
          return `(${a} % ${b})`;
        case 'max':
          return t.select(`${a} > ${b}`, a, b, dtype);
        case 'min':
          return t.select(`${a} < ${b}`, a, b, dtype);
        case 'add':
        case 'sub':
        case 'mul':
        case 'shift_left':
        case 'shift_right_logical':
        case 'pow':
          return t.intOp(fn, a, b, dtype);
      }
      throw new Error(`${t.name} codegen: integer ${fn}`);
    }
    const op = FLOAT_OP[fn];
    if (op) return `(${a} ${op} ${b})`;
    if (fn === 'pow') return t.pow(a, b, dtype);
    if (fn === 'rem') return t.frem(a, b, dtype);
    throw new Error(`${t.name} codegen: float ${fn} must be rewritten by expr_rules`);
  };
  return {
    name: t.name,
    literal: t.literal,
    declare: (name, dtype, src) => t.declare(name, t.type(dtype), src),
    declareIndex: (name, src) => t.declare(name, t.indexType, src),
    indexDiv: (a, d) => `((${a}) / ${d})`,
    indexMod: (a, d) => `((${a}) % ${d})`,
    indexValue: t.indexValue,
    unary,
    binary,
    compare: (fn, a, b) => `(${a} ${CMP[fn]} ${b})`,
    select: t.select,
    cast: (a, from, to) => (from === to ? a : t.cast(a, from, to)),
    load: (buf, index, dtype) => t.load(bufName(buf), index, dtype),
    store: (buf, index, value, dtype, accumulate) =>
      accumulate ? t.atomicAdd(bufName(buf), index, value, dtype) : t.store(bufName(buf), index, value, dtype),
    guard: (c, stmt) => `if (${c}) { ${stmt} }`,
  };
}
