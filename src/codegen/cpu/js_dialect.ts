/**
 * The JavaScript dialect of the CPU backend: how JavaScript spells each scalar operation, type,
 * declaration, load and store over typed arrays (f16/bf16 live in Float32Arrays, rounded on
 * every store; integers wrap at 32 bits; bools are 0/1 in Uint8Arrays).
 */
import type { DType } from '../../ir/dtype.js';
import { bufName, type Dialect } from '../lower/dialect.js';


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
      // the host stores into a Uint8Array (NaN and infinities become 0), then casts to bool
      return `(((${src}) & 255) !== 0 ? 1 : 0)`;
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

const isIntDtype = (d: DType): boolean => d === 'i32' || d === 'u32';
const isFloatDtype = (d: DType): boolean => d === 'f32' || d === 'f64' || d === 'f16' || d === 'bf16';

/** Source of an unary op on operand `a` (already a name or literal). */
function unarySrc(fn: string, a: string, dtype: DType): string {
  if (fn === 'not') {
    if (dtype === 'bool') return `(${a} ? 0 : 1)`;
    return dtype === 'u32' ? `(~${a} >>> 0)` : `(~${a})`;
  }
  let s: string;
  switch (fn) {
    case 'neg':
      s = `(-${a})`;
      break;
    case 'exp':
      s = `Math.exp(${a})`;
      break;
    case 'log':
      s = `Math.log(${a})`;
      break;
    case 'log1p':
      s = `Math.log1p(${a})`;
      break;
    case 'expm1':
      s = `Math.expm1(${a})`;
      break;
    case 'sin':
      s = `Math.sin(${a})`;
      break;
    case 'cos':
      s = `Math.cos(${a})`;
      break;
    case 'tanh':
      s = `Math.tanh(${a})`;
      break;
    case 'logistic':
      s = `(1 / (1 + Math.exp(-${a})))`;
      break;
    case 'sqrt':
      s = `Math.sqrt(${a})`;
      break;
    case 'rsqrt':
      s = `(1 / Math.sqrt(${a}))`;
      break;
    case 'erf':
      s = dtype === 'f64' ? `erf(${a})` : `erf32(${a})`;
      break;
    case 'abs':
      s = `Math.abs(${a})`;
      break;
    case 'sign':
      s = `(${a} > 0 ? 1 : ${a} < 0 ? -1 : ${a})`;
      break;
    case 'floor':
      s = `Math.floor(${a})`;
      break;
    case 'ceil':
      s = `Math.ceil(${a})`;
      break;
    case 'round':
      s = `roundEven(${a})`;
      break;
    default:
      throw new Error(`cpu codegen: unknown unary op ${fn}`);
  }
  return isFloatDtype(dtype) ? s : wrapInt(s, dtype);
}

function binarySrc(fn: string, a: string, b: string, dtype: DType): string {
  // bool ops follow the host: the float formula, then cast to bool (and/or/xor stay 0/1)
  if (dtype === 'bool' && fn !== 'and' && fn !== 'or' && fn !== 'xor') return wrapInt(binarySrc(fn, a, b, 'f64'), 'bool');
  const int = isIntDtype(dtype);
  switch (fn) {
    case 'add':
      return int ? wrapInt(`${a} + ${b}`, dtype) : `(${a} + ${b})`;
    case 'sub':
      return int ? wrapInt(`${a} - ${b}`, dtype) : `(${a} - ${b})`;
    case 'mul':
      if (dtype === 'i32') return `Math.imul(${a}, ${b})`;
      if (dtype === 'u32') return `(Math.imul(${a}, ${b}) >>> 0)`;
      return `(${a} * ${b})`;
    case 'div':
      if (dtype === 'i32') return `(${b} === 0 ? 0 : (${a} / ${b}) | 0)`;
      if (dtype === 'u32') return `(${b} === 0 ? 0 : (${a} / ${b}) >>> 0)`;
      return `(${a} / ${b})`;
    case 'max':
      return int ? `(${a} > ${b} ? ${a} : ${b})` : `(${a} > ${b} || ${a} !== ${a} ? ${a} : ${b})`;
    case 'min':
      return int ? `(${a} < ${b} ? ${a} : ${b})` : `(${a} < ${b} || ${a} !== ${a} ? ${a} : ${b})`;
    case 'pow':
      return int ? wrapInt(`Math.pow(${a}, ${b})`, dtype) : `Math.pow(${a}, ${b})`;
    case 'rem':
      return int ? wrapInt(`${b} === 0 ? 0 : ${a} % ${b}`, dtype) : `(${a} % ${b})`;
    case 'and':
      return dtype === 'u32' ? `((${a} & ${b}) >>> 0)` : `(${a} & ${b})`;
    case 'or':
      return dtype === 'u32' ? `((${a} | ${b}) >>> 0)` : `(${a} | ${b})`;
    case 'xor':
      return dtype === 'u32' ? `((${a} ^ ${b}) >>> 0)` : `(${a} ^ ${b})`;
    case 'shift_left':
      return `(${b} >= 32 ? 0 : ${wrapInt(`${a} << ${b}`, dtype)})`;
    case 'shift_right_logical':
      return `(${b} >= 32 ? 0 : ${wrapInt(`${a} >>> ${b}`, dtype)})`;
    default:
      throw new Error(`cpu codegen: unknown binary op ${fn}`);
  }
}

const CMP: Readonly<Record<string, string>> = { eq: '===', ne: '!==', lt: '<', le: '<=', gt: '>', ge: '>=' };

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
  unary: (fn, a, dtype) => unarySrc(fn, a, dtype),
  binary: (fn, a, b, dtype) => binarySrc(fn, a, b, dtype),
  compare: (fn, a, b) => `(${a} ${CMP[fn]} ${b} ? 1 : 0)`,
  select: (c, a, b) => `(${c} ? ${a} : ${b})`,
  cast: (a, from, to) => castSrc(a, from, to),
  load: (buf, index) => `${bufName(buf)}[${index}]`,
  store: (buf, index, value, dtype, accumulate) => {
    const at = `${bufName(buf)}[${index}]`;
    return `${at} = ${storeValue(accumulate ? `${at} + ${value}` : value, dtype)};`;
  },
  guard: (c, stmt) => `if (${c}) ${stmt}`,
};
