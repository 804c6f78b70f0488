/**
 * How each reduction folds on a GPU, as a table: the register it accumulates in, its identity,
 * the per-element update, the combine of two partials (tree reductions) and the final value.
 * The host's meaning (src/ir/primitives/reduce.ts): max/min propagate NaN; argmax is the first
 * index of the largest value, a NaN counting as largest (the first NaN wins); sums of f16/bf16
 * accumulate in f32 and round once; bool sums are `or`.
 */
import type { DType } from '../../../ir/dtype.js';
import type { ReduceOp } from '../../kernel/sexpr.js';
import type { GpuDialect } from './dialect.js';

export type AccType = 'f32' | 'i32' | 'u32';

/** The register a value of `dtype` accumulates in. */
export function accType(dtype: DType): AccType {
  if (dtype === 'i32') return 'i32';
  if (dtype === 'u32' || dtype === 'bool') return 'u32';
  return 'f32';
}

const isFloatAcc = (t: AccType): boolean => t === 'f32';

/** The identity of `op` in register type `t`. */
export function identity(D: GpuDialect, op: ReduceOp, t: AccType): string {
  switch (op) {
    case 'sum':
    case 'argmax':
      return D.literal(0, t);
    case 'max':
      return t === 'f32' ? D.literal(-Infinity, t) : t === 'i32' ? D.literal(-2147483648, t) : D.literal(0, t);
    case 'min':
      return t === 'f32' ? D.literal(Infinity, t) : t === 'i32' ? D.literal(2147483647, t) : D.literal(0xffffffff, t);
  }
}

/** A value of `dtype` in its accumulator register type. */
export function toAcc(D: GpuDialect, v: string, dtype: DType): string {
  return dtype === 'bool' ? D.cast(v, 'bool', 'u32') : v;
}

/** Whether `b` replaces `a` in a max (NaN propagates) or min. */
function beats(D: GpuDialect, op: 'max' | 'min', b: string, a: string, t: AccType): string {
  const cmp = `(${b} ${op === 'max' ? '>' : '<'} ${a})`;
  return isFloatAcc(t) ? `(${cmp} || ${D.isNan(b)})` : cmp;
}

/**
 * Whether the candidate (bv, bi) replaces (av, ai) in an argmax: an empty candidate (index < 0)
 * never does; an empty holder always does; then larger, or NaN over a number, or the smaller
 * index among equals (two NaNs are equal here).
 */
function argmaxBeats(D: GpuDialect, bv: string, bi: string, av: string, ai: string, t: AccType, ordered: boolean): string {
  const nanB = isFloatAcc(t) ? D.isNan(bv) : 'false';
  const nanA = isFloatAcc(t) ? D.isNan(av) : 'false';
  const larger = isFloatAcc(t) ? `(${bv} > ${av} || (${nanB} && !${nanA}))` : `(${bv} > ${av})`;
  const equal = isFloatAcc(t) ? `(${bv} == ${av} || (${nanA} && ${nanB}))` : `(${bv} == ${av})`;
  // a thread visits its indices in increasing order: a later one never wins a tie
  const tie = ordered ? '' : ` || (${bi} < ${ai} && ${equal})`;
  return `(${bi} >= 0 && (${ai} < 0 || ${larger}${tie}))`;
}

/**
 * The statement folding value `v` (register type `t`) at flat row index `i` into the
 * accumulator `acc` (argmax: value in `<acc>v`, index in `acc`).
 */
export function update(D: GpuDialect, op: ReduceOp, acc: string, v: string, t: AccType, i: string): string {
  switch (op) {
    case 'sum':
      return D.assign(acc, D.binary('add', acc, v, t)); // bool as 0/1 words: the final != 0 makes it `or`
    case 'max':
    case 'min':
      return `if ${beats(D, op, v, acc, t)} { ${D.assign(acc, v)} }`;
    case 'argmax':
      return `if ${argmaxBeats(D, v, i, `${acc}v`, acc, t, true)} { ${D.assign(`${acc}v`, v)} ${D.assign(acc, i)} }`;
  }
}

/**
 * Statements combining partial `b` (shared arrays at index `bi`) into partial `a` (index `ai`):
 * `val` is the value array, `idx` the index array (argmax only).
 */
export function combine(D: GpuDialect, op: ReduceOp, val: string, idx: string, a: string, b: string, t: AccType): string {
  const A = `${val}[${a}]`;
  const B = `${val}[${b}]`;
  switch (op) {
    case 'sum':
      return `${A} = ${D.binary('add', A, B, t)};`;
    case 'max':
    case 'min':
      return `if ${beats(D, op, B, A, t)} { ${A} = ${B}; }`;
    case 'argmax': {
      const IA = `${idx}[${a}]`;
      const IB = `${idx}[${b}]`;
      return `if ${argmaxBeats(D, B, IB, A, IA, t, false)} { ${A} = ${B}; ${IA} = ${IB}; }`;
    }
  }
}

/** The reduction's result (of `dtype`) from its accumulator register. */
export function finish(D: GpuDialect, op: ReduceOp, acc: string, t: AccType, dtype: DType): string {
  if (op === 'argmax') return dtype === 'i32' ? acc : D.cast(acc, 'i32', dtype);
  if (dtype === 'bool') return D.cast(acc, 'u32', 'bool');
  return dtype === 'f16' || dtype === 'bf16' ? D.cast(acc, 'f32', dtype) : acc;
}
