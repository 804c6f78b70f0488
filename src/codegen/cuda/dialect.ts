/**
 * The CUDA C++ dialect: the C-style base (../lower/c_style.ts) with CUDA's table, the prelude
 * of helper functions every kernel source starts with, and the storage types of buffers.
 *
 * Registers: f32 `float`, f64 `double`, i32 `int`, u32 `unsigned`, bool `bool`. f16 and bf16
 * values live in `float` registers, already rounded to their precision (expr_rules computes
 * half arithmetic in f32 and rounds after every operation); their buffers hold the raw 16 bits
 * (`unsigned short`), converted on load and store. No header is included: NVRTC finds no
 * toolkit headers unless told where they are, and cuda_fp16.h/cuda_bf16.h add a few hundred ms
 * to every compile, so the conversions are written here (f16 by PTX `cvt`, bf16 by integer
 * rounding, which also works below sm_80).
 *
 * Semantics match the reference interpreter: signed integer arithmetic wraps through unsigned
 * casts (no undefined behaviour); a float cast to an integer is truncated and wrapped modulo 2^32
 * (0 for NaN and infinities), as JavaScript's `| 0` does; NaN and infinities are spelled with
 * __int_as_float/__longlong_as_double.
 */
import type { DType } from '../../ir/dtype.js';
import { type CStyleTable, cStyleDialect } from '../lower/c_style.js';
import type { Dialect } from '../lower/dialect.js';
import type { NativeOp } from '../lower/expr_rules.js';
import type { UnaryFn } from '../kernel/sexpr.js';

/** Operations CUDA's math library has (their expr_rules rewrite is skipped). */
export const CUDA_NATIVE: ReadonlySet<NativeOp> = new Set<NativeOp>(['log1p', 'expm1', 'erf_f64', 'rsqrt', 'pow']);

/** The register type of a dtype. */
export const REGISTER_TYPE: Readonly<Record<DType, string>> = Object.freeze({
  f32: 'float',
  f64: 'double',
  f16: 'float',
  bf16: 'float',
  i32: 'int',
  u32: 'unsigned',
  bool: 'bool',
});

/** The element type of a buffer of a dtype (kernel parameters are pointers to it). */
export const STORAGE_TYPE: Readonly<Record<DType, string>> = Object.freeze({
  f32: 'float',
  f64: 'double',
  f16: 'unsigned short',
  bf16: 'unsigned short',
  i32: 'int',
  u32: 'unsigned',
  bool: 'unsigned char',
});

/** Bytes per element in CUDA buffers (the Device's caps). */
export const CUDA_ELEMENT_BYTES: Readonly<Record<DType, number>> = Object.freeze({ f32: 4, f64: 8, f16: 2, bf16: 2, i32: 4, u32: 4, bool: 1 });

/**
 * Helper functions every kernel source starts with. Each is a static inline device function,
 * so an unused one costs nothing. Names start with `ng_`. The few written in PTX are left out
 * under NG_EMULATION, where the tests' host emulation (test/codegen/cuda/emulator) defines them.
 */
export const CUDA_PRELUDE = String.raw`// nexgrad CUDA prelude
#define NG_INF_F __int_as_float(0x7f800000)
#ifndef NG_EMULATION
static __device__ __forceinline__ float ng_h2f(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
static __device__ __forceinline__ unsigned short ng_f2h(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
static __device__ __forceinline__ unsigned short ng_d2h(double d) { unsigned short h; asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h) : "d"(d)); return h; }
#endif
static __device__ __forceinline__ float ng_bf2f(unsigned short h) { return __uint_as_float(((unsigned)h) << 16); }
// round to nearest even; a NaN stays a (quiet) NaN
static __device__ __forceinline__ unsigned short ng_f2bf(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static __device__ __forceinline__ float ng_round_h(float f) { return ng_h2f(ng_f2h(f)); }
static __device__ __forceinline__ float ng_round_hd(double d) { return ng_h2f(ng_d2h(d)); }
static __device__ __forceinline__ float ng_round_bf(float f) { return ng_bf2f(ng_f2bf(f)); }
// a float truncated and wrapped to 32 bits, as JavaScript's (x | 0); 0 for NaN and infinities
static __device__ __forceinline__ int ng_f2i(double x) {
  if (!(fabs(x) < __longlong_as_double(0x7ff0000000000000LL))) return 0;
  double t = trunc(x);
  if (fabs(t) < 2147483648.0) return (int)t;
  double r = fmod(t, 4294967296.0);
  if (r < 0.0) r += 4294967296.0;
  return (int)(unsigned)r;
}
// f16/bf16 scatter-add: a compare-and-swap loop on the aligned 32-bit word holding the element
static __device__ __forceinline__ void ng_atomic_add_16(unsigned short* p, float v, bool bf) {
  unsigned* word = (unsigned*)((unsigned long long)p & ~3ull);
  unsigned shift = ((unsigned long long)p & 2ull) ? 16u : 0u;
  unsigned old = *word, assumed;
  do {
    assumed = old;
    unsigned short h = (unsigned short)(assumed >> shift);
    float sum = (bf ? ng_bf2f(h) : ng_h2f(h)) + v;
    unsigned short r = bf ? ng_f2bf(sum) : ng_f2h(sum);
    unsigned next = (assumed & ~(0xffffu << shift)) | ((unsigned)r << shift);
    old = atomicCAS(word, assumed, next);
  } while (old != assumed);
}
`;

const isInt = (d: DType): d is 'i32' | 'u32' => d === 'i32' || d === 'u32';
const isHalf = (d: DType): boolean => d === 'f16' || d === 'bf16';

/** A decimal float literal with a point or an exponent (C reads `3f` as an error). */
function decimal(v: number): string {
  const s = String(v);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** A literal of `dtype` (NaN, infinities and -0 included; negative values parenthesised). */
export function cudaLiteral(value: number, dtype: DType): string {
  switch (dtype) {
    case 'bool':
      return value !== 0 ? 'true' : 'false';
    case 'i32':
      // -2147483648 is not an int literal in C (it is the negation of a long)
      return value === -2147483648 ? '(-2147483647 - 1)' : value < 0 ? `(${value})` : String(value);
    case 'u32':
      return `${value >>> 0}u`;
    case 'f64':
      if (Number.isNaN(value)) return '__longlong_as_double(0x7ff8000000000000LL)';
      if (value === Infinity) return '__longlong_as_double(0x7ff0000000000000LL)';
      if (value === -Infinity) return '__longlong_as_double((long long)0xfff0000000000000ULL)';
      if (Object.is(value, -0)) return '(-0.0)';
      return value < 0 ? `(${decimal(value)})` : decimal(value);
    default: {
      // f32, and f16/bf16 values (already rounded) in float registers
      const f = Math.fround(value);
      if (Number.isNaN(f)) return '__int_as_float(0x7fc00000)';
      if (f === Infinity) return 'NG_INF_F';
      if (f === -Infinity) return '(-NG_INF_F)';
      if (Object.is(f, -0)) return '(-0.0f)';
      return f < 0 ? `(${decimal(f)}f)` : `${decimal(f)}f`;
    }
  }
}

/** Float math functions by op: the f32 name, then the f64 one. */
const MATH: Readonly<Partial<Record<UnaryFn, readonly [string, string]>>> = {
  exp: ['expf', 'exp'],
  log: ['logf', 'log'],
  log1p: ['log1pf', 'log1p'],
  expm1: ['expm1f', 'expm1'],
  sin: ['sinf', 'sin'],
  cos: ['cosf', 'cos'],
  tanh: ['tanhf', 'tanh'],
  sqrt: ['sqrtf', 'sqrt'],
  rsqrt: ['rsqrtf', 'rsqrt'],
  abs: ['fabsf', 'fabs'],
  floor: ['floorf', 'floor'],
  ceil: ['ceilf', 'ceil'],
  erf: ['', 'erf'],
};

function mathUnary(fn: UnaryFn, a: string, dtype: DType): string {
  const names = MATH[fn];
  const name = names?.[dtype === 'f64' ? 1 : 0];
  if (!name) throw new Error(`cuda codegen: ${dtype} ${fn} must be rewritten by expr_rules`);
  return `${name}(${a})`;
}

/** Integer ops with 32-bit wrapping: i32 goes through unsigned (signed overflow is undefined in C). */
function intOp(fn: 'add' | 'sub' | 'mul' | 'neg' | 'abs' | 'shift_left' | 'shift_right_logical' | 'not' | 'pow', a: string, b: string, dtype: 'i32' | 'u32'): string {
  const signed = dtype === 'i32';
  const u = (x: string): string => (signed ? `(unsigned)(${x})` : x);
  const back = (x: string): string => (signed ? `(int)(${x})` : `(${x})`);
  switch (fn) {
    case 'add':
      return back(`${u(a)} + ${u(b)}`);
    case 'sub':
      return back(`${u(a)} - ${u(b)}`);
    case 'mul':
      return back(`${u(a)} * ${u(b)}`);
    case 'neg':
      return back(`0u - ${u(a)}`);
    case 'abs':
      return signed ? `((${a}) < 0 ? (int)(0u - (unsigned)(${a})) : (${a}))` : a;
    case 'not':
      return `(~${a})`;
    case 'shift_left':
      return back(`${u(a)} << (${b})`);
    case 'shift_right_logical':
      return back(`${u(a)} >> (${b})`);
    case 'pow': {
      const p = `ng_f2i(pow((double)(${a}), (double)(${b})))`;
      return signed ? p : `(unsigned)${p}`;
    }
  }
}

/** A value of `from` as `to` (the host's castScalar on registers). */
export function cudaCast(a: string, from: DType, to: DType): string {
  if (from === to) return a;
  if (from === 'bool') {
    const one = to === 'f64' ? '1.0' : isInt(to) ? (to === 'u32' ? '1u' : '1') : '1.0f';
    const zero = to === 'f64' ? '0.0' : isInt(to) ? (to === 'u32' ? '0u' : '0') : '0.0f';
    return `((${a}) ? ${one} : ${zero})`;
  }
  switch (to) {
    case 'bool':
      return `((${a}) != 0)`;
    case 'f32':
      return isHalf(from) ? a : `(float)(${a})`;
    case 'f64':
      return `(double)(${a})`;
    case 'f16':
      // f32/bf16 registers round once; f64 and integers round from the exact double
      return from === 'f32' || from === 'bf16' ? `ng_round_h(${a})` : `ng_round_hd((double)(${a}))`;
    case 'bf16':
      // the host rounds to f32 first, then to bf16 (dtype.ts roundBf16)
      return from === 'f32' || from === 'f16' ? `ng_round_bf(${a})` : `ng_round_bf((float)(${a}))`;
    case 'i32':
      return isInt(from) ? `(int)(${a})` : `ng_f2i((double)(${a}))`;
    case 'u32':
      return isInt(from) ? `(unsigned)(${a})` : `(unsigned)ng_f2i((double)(${a}))`;
  }
}

function load(buf: string, index: string, dtype: DType): string {
  const at = `${buf}[${index}]`;
  switch (dtype) {
    case 'f16':
      return `ng_h2f(${at})`;
    case 'bf16':
      return `ng_bf2f(${at})`;
    case 'bool':
      return `(${at} != 0)`;
    default:
      return at;
  }
}

/** The stored form of a register value (f16/bf16 values are already rounded, so exact). */
function storeValue(value: string, dtype: DType): string {
  switch (dtype) {
    case 'f16':
      return `ng_f2h(${value})`;
    case 'bf16':
      return `ng_f2bf(${value})`;
    case 'bool':
      return `(unsigned char)(${value})`;
    default:
      return value;
  }
}

function atomicAdd(buf: string, index: string, value: string, dtype: DType): string {
  const at = `&${buf}[${index}]`;
  switch (dtype) {
    case 'f16':
    case 'bf16':
      return `ng_atomic_add_16(${at}, ${value}, ${dtype === 'bf16'});`;
    case 'bool':
      // a bool sum is an or: every writer stores the same 1
      return `if (${value}) ${buf}[${index}] = 1;`;
    default:
      // f32, i32, u32, and f64 (sm_60 and later)
      return `atomicAdd(${at}, ${value});`;
  }
}

export const CUDA_TABLE: CStyleTable = {
  name: 'cuda',
  type: (d) => REGISTER_TYPE[d],
  indexType: 'int',
  literal: cudaLiteral,
  declare: (name, type, src) => `const ${type} ${name} = ${src};`,
  mathUnary,
  pow: (a, b, d) => (d === 'f64' ? `pow(${a}, ${b})` : `powf(${a}, ${b})`),
  frem: (a, b, d) => (d === 'f64' ? `fmod(${a}, ${b})` : `fmodf(${a}, ${b})`),
  intOp,
  select: (c, a, b) => `((${c}) ? ${a} : ${b})`,
  cast: cudaCast,
  indexValue: (src, dtype) => (dtype === 'i32' ? src : cudaCast(src, 'i32', dtype)),
  load,
  store: (buf, index, value, dtype) => `${buf}[${index}] = ${storeValue(value, dtype)};`,
  atomicAdd,
};

/** The scalar part of the CUDA dialect (expressions, loads, stores). */
export const CUDA_DIALECT: Dialect = cStyleDialect(CUDA_TABLE);

/** A kernel parameter for buffer `name` of `dtype` (const when the kernel only reads it). */
export function bufferParam(name: string, dtype: DType, readOnly: boolean): string {
  return `${readOnly ? 'const ' : ''}${STORAGE_TYPE[dtype]}* __restrict__ ${name}`;
}
