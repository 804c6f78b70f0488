/**
 * A dialect: how one language prints the kernel IR's scalar operations, types, declarations,
 * loads and stores. Everything else (which loop a value belongs to, index caching, the
 * semantics of edge cases) is decided once, in this folder, for every language. After the
 * rewrites of expr_rules.ts every operation a dialect prints has its plain meaning:
 *   - integer add/sub/mul/neg wrap at 32 bits; div/rem never see a zero (or, signed, a -1)
 *     divisor; shift amounts are in [0, 31]; shift_right_logical shifts the unsigned bits;
 *   - float max/min, round and erf do not occur (rewritten to compare/select/floor/polynomials);
 *   - bool values are 0/1 and only and/or/xor/not/select/compare produce them;
 *   - f16/bf16 values are rounded where the dialect's storage type requires it (its choice).
 */
import type { DType } from '../../ir/dtype.js';
import type { BinaryFn, CmpFn, UnaryFn } from '../kernel/sexpr.js';

export interface Dialect {
  readonly name: string;
  /** A literal of `dtype` (NaN, infinities and -0 included). */
  literal(value: number, dtype: DType): string;
  /** A local scalar: `const t = src;` / `let t: f32 = src;` / `const float t = src;`. */
  declare(name: string, dtype: DType, src: string): string;
  /** A local index (a non-negative integer expression). */
  declareIndex(name: string, src: string): string;
  /** Index arithmetic on non-negative integers: floor division and remainder by a constant. */
  indexDiv(a: string, d: number): string;
  indexMod(a: string, d: number): string;
  /** An index (integer) as a value of `dtype` (iota, bounds tests). */
  indexValue(src: string, dtype: DType): string;
  unary(fn: UnaryFn, a: string, dtype: DType): string;
  binary(fn: BinaryFn, a: string, b: string, dtype: DType): string;
  /** A comparison of two values of `dtype`, as a bool value. */
  compare(fn: CmpFn, a: string, b: string, dtype: DType): string;
  select(c: string, a: string, b: string, dtype: DType): string;
  cast(a: string, from: DType, to: DType): string;
  /** Element `index` (an index expression) of buffer `buf`. */
  load(buf: number, index: string, dtype: DType): string;
  /** The statement storing `value` into element `index` of `buf` (adding it, atomically where needed, if `accumulate`). */
  store(buf: number, index: string, value: string, dtype: DType, accumulate: boolean): string;
  /** `if (c) stmt` */
  guard(c: string, stmt: string): string;
  /**
   * An accumulator read as a value of its dtype (JavaScript accumulates f32 reductions and some
   * GEMMs in float64 and rounds the result here); identity where registers have the dtype.
   */
  accValue?(src: string, dtype: DType): string;
}

/** Buffer argument name for a buffer id (every dialect binds buffers under these names). */
export const bufName = (id: number): string => `b${id}`;
