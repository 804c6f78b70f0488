/**
 * GEMMs whose row units cannot keep the threads evenly busy split their columns instead. The
 * range of a GEMM with reducing outputs (GRN's per-image sums of squares after the GELU GEMM of a
 * ConvNeXt block) counts whole images, one writer per image: at batch 1 it is one unit and ran on
 * one thread. Splitting its columns keeps one writer per output element and each element's sum in
 * row order, so the result is the one-thread result bit for bit; each part packs only its own B
 * columns and repacks the A rows (the A prologue runs once per part: the price, small beside the
 * product and the epilogue at these shapes). The decision is the prelude's ng_column_parts, at run
 * time (the thread count is the pool's, not the object's).
 */
import type { DType } from '../../../ir/dtype.js';
import type { GemmSpec } from '../../lower/gemm_spec.js';
import type { CKernelCode } from './c_common.js';
import { emitGemmC } from './gemm_c.js';

/** Whether a GEMM gets the column-capable driver: a float GEMM at least two column parts wide. */
export function columnSplitApplies(spec: GemmSpec): boolean {
  return (spec.dtype === 'f32' || spec.dtype === 'f64') && spec.n >= 2 * COLUMN_PART_MIN;
}

/** The narrowest column part (one AVX-512 register strip): narrower parts waste the strip's padding. */
export const COLUMN_PART_MIN = 32;

export function emitGemmColumnsC(spec: GemmSpec, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode {
  // rows.fn(ctx, start, end) runs all columns; `${rows.fn}_cols(ctx, start, end, n0, n1)` a column range
  const rows = emitGemmC(spec, dtypes, bufs, `${fn}_r`);
  const N = spec.n;
  const W = rows.workPerItem;
  const lineBuf = (spec.outputs.find((o) => o.init === 'zero') ?? spec.outputs[0])?.buf ?? spec.aBuf;
  const esz = spec.dtype === 'f64' ? 8 : 4;
  const source = [
    rows.source,
    `static int64_t ${fn}_cp, ${fn}_u0;`,
    // task t: unit u0 + t / cp, column part t % cp
    `static void ${fn}_t(void* ctx_, int64_t start, int64_t end) {`,
    // the parts' boundaries start cache lines of the output written most (a reducing output: every row)
    `  const int64_t skew = (int64_t)((uintptr_t)((void**)ctx_)[${lineBuf}] % 64) / ${esz};`,
    '  for (int64_t t = start; t < end; t++) {',
    `    const int64_t u = ${fn}_u0 + t / ${fn}_cp, c = t % ${fn}_cp;`,
    `    const int64_t n0 = ng_column_start(c, ${fn}_cp, ${N}, skew), n1 = ng_column_start(c + 1, ${fn}_cp, ${N}, skew);`,
    `    if (n1 > n0) ${rows.fn}_cols(ctx_, u, u + 1, n0, n1);`,
    '  }',
    '}',
    `static void ${fn}(void* ctx_, int64_t start, int64_t end) {`,
    `  const int64_t units = end - start, cp = ng_column_parts(NG_RT, units, ${N}, ${W});`,
    '  if (cp > 1) {',
    `    ${fn}_cp = cp;`,
    `    ${fn}_u0 = start;`,
    `    NG_RT->par(NG_RT->pool, units * cp, (int)(units * cp), ${fn}_t, ctx_);`,
    `  } else ng_parallel_parts(NG_RT, units, ${W}, ${rows.fn}, ctx_, ${rows.partsPerThread ?? 4});`,
    '}',
  ].join('\n');
  return { ...rows, fn, source, splittable: false, selfSplit: true };
}
