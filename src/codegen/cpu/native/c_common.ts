/**
 * Shared pieces of the native CPU (C) emitters: the kernel record, the scope builder speaking C,
 * the kernel function wrapper (a range function over [start, end) that ng_parallel splits
 * across the thread pool), buffer bindings and loop builders.
 */
import { nestedLoops } from '../../lower/scope_builder.js';
import type { DType } from '../../../ir/dtype.js';
import type { ReduceOp } from '../../kernel/kernel_graph.js';
import { bufName } from '../../lower/dialect.js';
import { ScopeBuilder } from '../../lower/scope_builder.js';
import { C_DIALECT, C_DIALECT_F32, cElemType } from './c_dialect.js';

export class CBuilder extends ScopeBuilder {
  constructor(f32Regs = false) {
    super(f32Regs ? C_DIALECT_F32 : C_DIALECT);
  }
}

/** One kernel's C: its range function and how the driver calls it. */
export interface CKernelCode {
  readonly name: string;
  /** The C definitions (the range function `<fn>_range` and helpers). */
  readonly source: string;
  /** The range function's name. */
  readonly fn: string;
  /** Size of the splittable range ([0, total)). */
  readonly total: number;
  /** Whether disjoint parts of the range may run on different threads. */
  readonly splittable: boolean;
  /** Rough work per range element (flops-ish), for deciding whether to split. */
  readonly workPerItem: number;
  /** Parts per thread when split (ng_parallel_parts; default 4). */
  readonly partsPerThread?: number;
  /** Whether the function splits itself across the threads (called once over [0, total); gemm_cols_c.ts). */
  readonly selfSplit?: boolean;
}

export function cName(name: string, index: number): string {
  return `k${index}_${name.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 40)}`;
}

/** `T* const bN = (T*)B[N];` for each buffer a kernel touches. */
export function bindBuffers(bufs: readonly number[], dtypes: ReadonlyMap<number, DType>): string[] {
  return bufs.map((b) => {
    const d = dtypes.get(b);
    if (!d) throw new Error(`cpu-native codegen: unknown buffer ${b}`);
    const t = cElemType(d);
    return `${t}* const ${bufName(b)} = (${t}*)B[${b}];`;
  });
}

/** A range function over [start, end) with the buffers bound (`extraParams`: more C parameters, ', T name, ...'). */
export function wrapRange(fn: string, bufs: readonly number[], dtypes: ReadonlyMap<number, DType>, body: string, extraParams = ''): string {
  return [`static void ${fn}(void* ctx_, int64_t start, int64_t end${extraParams}) {`, '  void** const B = (void**)ctx_;', ...bindBuffers(bufs, dtypes).map((l) => `  ${l}`), ...body.split('\n').map((l) => `  ${l}`), '}'].join('\n');
}

/** Initial accumulator values (argmax: index -1, nothing seen yet; its value lives in `<acc>v`). */
export const C_REDUCE_INIT: Readonly<Record<ReduceOp, string>> = { sum: '0.0', max: '(-INFINITY)', min: 'INFINITY', argmax: '-1' };

/** Folds `v` into accumulator `a` with the host's NaN rules (see common.ts reduceUpdate). */
export function cReduceUpdate(op: ReduceOp, a: string, v: string, i = ''): string {
  switch (op) {
    case 'sum':
      return `${a} += ${v};`;
    case 'max':
      return `if (${v} > ${a} || ${v} != ${v}) ${a} = ${v};`;
    case 'min':
      return `if (${v} < ${a} || ${v} != ${v}) ${a} = ${v};`;
    case 'argmax':
      return `if (${a} < 0 || ${v} > ${a}v || (${v} != ${v} && ${a}v == ${a}v)) { ${a}v = ${v}; ${a} = ${i}; }`;
  }
}

/** The accumulated double as a value of the reduction's dtype (the host wraps and rounds when storing a reduction). */
export function cFinishAcc(a: string, dtype: DType): string {
  switch (dtype) {
    case 'i32':
      return `ng_toi32(${a})`;
    case 'u32':
      return `((uint32_t)ng_toi32(${a}))`;
    case 'f16':
      return `ng_round_f16(${a})`;
    case 'bf16':
      return `ng_round_bf16(${a})`;
    case 'bool':
      return `(${a} != 0)`;
    default:
      return a;
  }
}

/**
 * Loops over the flattened index space of `dims` restricted to [start, end) (see the JavaScript
 * emitRangeLoopsPrefix): an odometer over the leading dims, `body` fills the per-prefix scope and
 * must loop the last variable over [_lo, _hi).
 */
export function cRangeLoopsPrefix(cb: CBuilder, dims: readonly number[], vars: readonly string[], body: () => void): void {
  const L = dims.length - 1;
  const NL = dims[L]!;
  cb.line('int64_t _f = start, _q = start;');
  cb.line(`int64_t _lo = _q % ${NL}; _q = (_q - _lo) / ${NL};`);
  for (let d = L - 1; d >= 1; d--) cb.line(`int64_t ${vars[d]} = _q % ${dims[d]}; _q = (_q - ${vars[d]}) / ${dims[d]};`);
  if (L >= 1) cb.line(`int64_t ${vars[0]} = _q;`);
  cb.open(...vars.slice(0, L));
  cb.line(`const int64_t _hi = _lo + (end - _f) < ${NL} ? _lo + (end - _f) : ${NL};`);
  body();
  cb.line('_f += _hi - _lo;');
  cb.line('_lo = 0;');
  if (L >= 1) {
    const chain = (d: number): string => (d === 0 ? `${vars[0]}++;` : `if (++${vars[d]} == ${dims[d]}) { ${vars[d]} = 0; ${chain(d - 1)} }`);
    cb.line(chain(L - 1));
  }
  cb.close('do', ' while (_f < end);');
}

export function cRangeLoops(cb: CBuilder, dims: readonly number[], vars: readonly string[], body: () => void): void {
  const vL = vars[vars.length - 1]!;
  cRangeLoopsPrefix(cb, dims, vars, () => {
    cb.open(vL);
    body();
    cb.close(`for (int64_t ${vL} = _lo; ${vL} < _hi; ${vL}++)`);
  });
}

/** Nested full loops over `dims` (an empty list is one block). */
export function cNestedLoops(cb: CBuilder, dims: readonly number[], vars: readonly string[], body: () => void): void {
  nestedLoops(cb, dims, vars, 'int64_t', body);
}

/**
 * Nested full loops over `dims` for a sum into `acc`: the innermost loop under
 * `#pragma omp simd reduction(+: acc)` (the objects compile with -fopenmp-simd, no OpenMP runtime),
 * which lets the compiler keep several partial sums in vector lanes. Without it the sum is one
 * dependent chain of double additions, four cycles each: a LayerNorm row of 40 channels took
 * 160 cycles per statistic. The order of the additions changes; they are in double, for f32 data.
 */
export function cSumLoops(cb: CBuilder, dims: readonly number[], vars: readonly string[], acc: string, body: () => void): void {
  if (dims.length === 0) return cNestedLoops(cb, dims, vars, body);
  const rec = (d: number): void => {
    cb.open(vars[d]!);
    if (d === dims.length - 1) body();
    else rec(d + 1);
    const loop = `for (int64_t ${vars[d]} = 0; ${vars[d]} < ${dims[d]}; ${vars[d]}++)`;
    cb.close(d === dims.length - 1 ? `#pragma omp simd reduction(+: ${acc})\n${loop}` : loop);
  };
  rec(0);
}
