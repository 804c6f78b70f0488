/**
 * The C dialect of the native CPU backend: a table over the C-style base (lower/c_style.ts).
 *
 * Numerics follow the JavaScript dialect so that both CPU paths agree closely: float element
 * values of a fused kernel are held in `double` (f32 intermediates wider, rounded when stored:
 * the project's numeric policy), f32 reductions accumulate in double and are rounded when read
 * (accValue), f16/bf16 are rounded after each primitive (expr_rules casts) with the host's
 * rounding. Integers are int32_t/uint32_t and wrap through unsigned arithmetic (C's signed
 * overflow is undefined); float -> integer casts use ToInt32 semantics (ng_toi32) since a C
 * cast of an out-of-range value is undefined. The GEMM and depthwise micro-kernels (runtime_c.ts)
 * accumulate f32 products in f32 with FMA, as the WebAssembly path does.
 */
import type { DType } from '../../../ir/dtype.js';
import { cStyleDialect } from '../../lower/c_style.js';
import type { Dialect } from '../../lower/dialect.js';
import type { NativeOp } from '../../lower/expr_rules.js';
import type { UnaryFn } from '../../kernel/sexpr.js';

/** Operations C prints itself (their expr_rules rewrite is skipped): libm's log1p/expm1/erf, pow with the host's edge cases (ng_pow). */
export const C_NATIVE: ReadonlySet<NativeOp> = new Set<NativeOp>(['log1p', 'expm1', 'erf_f64', 'pow']);

/** The C type of a buffer element (f16/bf16 live in float arrays, as on the JavaScript path). */
export function cElemType(d: DType): string {
  switch (d) {
    case 'f32':
    case 'f16':
    case 'bf16':
      return 'float';
    case 'f64':
      return 'double';
    case 'i32':
      return 'int32_t';
    case 'u32':
      return 'uint32_t';
    case 'bool':
      return 'uint8_t';
  }
}

/** The register type of a value. */
export function cRegType(d: DType): string {
  switch (d) {
    case 'i32':
      return 'int32_t';
    case 'u32':
      return 'uint32_t';
    case 'bool':
      return 'int';
    default:
      return 'double';
  }
}

const isIntDt = (d: DType): boolean => d === 'i32' || d === 'u32';

/** A C literal of a value of `dtype` (NaN, infinities, -0 and INT_MIN included). */
export function cLiteral(v: number, d: DType): string {
  if (d === 'bool') return v ? '1' : '0';
  if (d === 'i32') return v === -2147483648 ? '((int32_t)(-2147483647 - 1))' : v < 0 ? `((int32_t)(${v}))` : `((int32_t)${v})`;
  if (d === 'u32') return `${v >>> 0}u`;
  if (Number.isNaN(v)) return 'NAN';
  if (v === Infinity) return 'INFINITY';
  if (v === -Infinity) return '(-INFINITY)';
  if (Object.is(v, -0)) return '(-0.0)';
  const s = String(v);
  const lit = /[.eE]/.test(s) ? s : `${s}.0`;
  return v < 0 ? `(${lit})` : lit;
}

const MATH: Readonly<Partial<Record<UnaryFn, string>>> = {
  // inline and branch-free (runtime_c.ts), so that loops calling it vectorise; within 1 ulp of libm
  exp: 'ng_exp',
  log: 'log',
  log1p: 'log1p',
  expm1: 'expm1',
  sin: 'sin',
  cos: 'cos',
  tanh: 'tanh',
  sqrt: 'sqrt',
  abs: 'fabs',
  floor: 'floor',
  ceil: 'ceil',
  erf: 'erf',
};

function castC(a: string, from: DType, to: DType): string {
  switch (to) {
    case 'f64':
      return isIntDt(from) || from === 'bool' ? `((double)${a})` : a;
    case 'f32':
      return from === 'f16' || from === 'bf16' || from === 'bool' || from === 'f32' ? `((double)${a})` : `((double)(float)${a})`;
    case 'f16':
      return from === 'bool' ? `((double)${a})` : `ng_round_f16((double)${a})`;
    case 'bf16':
      return from === 'bool' ? `((double)${a})` : `ng_round_bf16((double)${a})`;
    case 'i32':
      if (from === 'bool' || from === 'i32') return `((int32_t)${a})`;
      return from === 'u32' ? `((int32_t)${a})` : `ng_toi32(${a})`;
    case 'u32':
      if (from === 'bool' || from === 'u32' || from === 'i32') return `((uint32_t)${a})`;
      return `((uint32_t)ng_toi32(${a}))`;
    case 'bool':
      return `(${a} != 0)`;
  }
}

function cDialect(f32Regs: boolean): Dialect {
  const reg = (d: DType): string => (f32Regs && d === 'f32' ? 'float' : cRegType(d));
  const lit = (v: number, d: DType): string => {
    const l = cLiteral(v, d);
    return f32Regs && d === 'f32' && /^\(?-?[0-9]/.test(l) ? l.replace(/^(\(?)(-?[0-9.eE+-]+)(\)?)$/, '$1$2f$3') : l;
  };
  return {
  ...cStyleDialect({
    name: 'cpu-native',
    type: reg,
    indexType: 'const int64_t',
    literal: lit,
    declare: (name, type, src) => `${type.startsWith('const') ? type : `const ${type}`} ${name} = ${src};`,
    mathUnary: (fn, a, dtype) => {
      const f = MATH[fn];
      if (!f) throw new Error(`cpu-native codegen: unary ${fn} must be rewritten by expr_rules`);
      return f32Regs && dtype === 'f32' ? `${f}f(${a})` : `${f}(${a})`;
    },
    pow: (a, b) => `ng_pow(${a}, ${b})`,
    frem: (a, b) => `fmod(${a}, ${b})`,
    intOp: (fn, a, b, dtype) => {
      const u = (x: string): string => `(uint32_t)(${x})`;
      const wrap = (x: string): string => (dtype === 'i32' ? `((int32_t)(${x}))` : `((uint32_t)(${x}))`);
      switch (fn) {
        case 'add':
          return wrap(`${u(a)} + ${u(b)}`);
        case 'sub':
          return wrap(`${u(a)} - ${u(b)}`);
        case 'mul':
          return wrap(`${u(a)} * ${u(b)}`);
        case 'neg':
          return wrap(`0u - ${u(a)}`);
        case 'abs':
          return dtype === 'u32' ? a : `(${a} < 0 ? ${wrap(`0u - ${u(a)}`)} : ${a})`;
        case 'not':
          return wrap(`~${u(a)}`);
        case 'shift_left':
          return wrap(`${u(a)} << ${b}`);
        case 'shift_right_logical':
          return wrap(`${u(a)} >> ${b}`);
        case 'pow':
          return dtype === 'i32' ? `ng_toi32(ng_pow((double)${a}, (double)${b}))` : `((uint32_t)ng_toi32(ng_pow((double)${a}, (double)${b})))`;
      }
    },
    select: (c, a, b) => `(${c} ? ${a} : ${b})`,
    cast: (a, from, to) => (f32Regs && to === 'f32' && from !== 'f32' ? `((float)${a})` : f32Regs && from === 'f32' && to === 'f64' ? `((double)${a})` : castC(a, from, to)),
    indexValue: (src, dtype) => (dtype === 'bool' ? `((${src}) != 0)` : `((${reg(dtype)})(${src}))`),
    load: (buf, index) => `${buf}[${index}]`,
    store: (buf, index, value, dtype) => `${buf}[${index}] = ${storeC(value, dtype)};`,
    atomicAdd: (buf, index, value, dtype) => `${buf}[${index}] = ${storeC(`${buf}[${index}] + ${value}`, dtype)};`,
  }),
  indexDiv: (a, d) => `((${a}) / ${d})`,
  indexMod: (a, d) => `((${a}) % ${d})`,
  accValue: (src, dtype) => (dtype === 'f32' ? (f32Regs ? `((float)(${src}))` : `((double)(float)(${src}))`) : src),
  };
}

/** Float values in double (the JavaScript path's numerics). */
export const C_DIALECT: Dialect = cDialect(false);
/**
 * f32 values in float registers (twice the SIMD width, single-precision division and math):
 * for f32 GEMM prologues and epilogues, as the WebAssembly path's f32x4 epilogue computes them.
 */
export const C_DIALECT_F32: Dialect = cDialect(true);

/** The value stored into a buffer of `dtype` (f16/bf16 rounded; float arrays round to f32). */
export function storeC(src: string, dtype: DType): string {
  switch (dtype) {
    case 'f32':
      return `(float)(${src})`;
    case 'f16':
      return `(float)ng_round_f16(${src})`;
    case 'bf16':
      return `(float)ng_round_bf16(${src})`;
    case 'f64':
      return `(double)(${src})`;
    case 'bool':
      return `(uint8_t)((${src}) != 0)`;
    default:
      return `(${cRegType(dtype)})(${src})`;
  }
}
