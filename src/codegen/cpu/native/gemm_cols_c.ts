/**
 * GEMMs split by columns across threads where a row split serves them badly, decided at run time
 * (the thread count is the pool's, not the object's) by the prelude's ng_gemm_split:
 *   - few row units: the range of a GEMM with reducing outputs (GRN's per-image sums of squares
 *     after the GELU GEMM of a ConvNeXt block) counts whole images, one writer per image: at
 *     batch 1 it is one unit and ran on one thread. Each unit's columns are split instead;
 *   - fewer rows than columns (the 7x7 stage at batch 1: 49 x 1280 x 320): split by rows, every
 *     thread reads all of B (1.6 MB there) for a few rows; split by columns, each reads its share
 *     of B and all of A, the smaller operand.
 * A column split keeps one writer per output element and each element's sums in row order: the
 * result is the one-thread result bit for bit. Each part packs (or reads, when cached) only its
 * own B columns and repacks the A rows (the A prologue runs once per part).
 */
import type { DType } from '../../../ir/dtype.js';
import type { GemmSpec } from '../../lower/gemm_spec.js';
import type { CKernelCode } from './c_common.js';
import { emitGemmC } from './gemm_c.js';

/** The narrowest column part (one AVX-512 register strip): narrower parts waste the strip's padding. */
export const COLUMN_PART_MIN = 32;

/** Whether a GEMM gets the column-capable driver: a float GEMM at least two column parts wide. */
export function columnSplitApplies(spec: GemmSpec): boolean {
  return (spec.dtype === 'f32' || spec.dtype === 'f64') && spec.n >= 2 * COLUMN_PART_MIN;
}

export interface ColumnDriver {
  /** The driver's name: `fn(ctx, start, end)` runs units [start, end), splitting them itself. */
  readonly fn: string;
  /** The row-range function over units, all columns. */
  readonly rowsFn: string;
  /** `<rowsFn>_cols(ctx, start, end, n0, n1)`: units [start, end), columns [n0, n1). */
  readonly colsFn: string;
  readonly workPerUnit: number;
  readonly rowsPerUnit: number;
  readonly partsPerThread: number;
  /** Column parts start at multiples of 32 (a cached packed B: strips of every micro-kernel), else of 16 on output cache lines. */
  readonly cachedB: boolean;
}

/** The C of a column-capable driver (ng_gemm_split in the prelude decides; gemm_c.ts's body runs the parts). */
export function columnDriverC(spec: GemmSpec, d: ColumnDriver): string {
  const { fn } = d;
  const N = spec.n;
  const esz = spec.dtype === 'f64' ? 8 : 4;
  // the parts' boundaries start cache lines of the output written most (a reducing output: on every row)
  const lineBuf = (spec.outputs.find((o) => o.init === 'zero') ?? spec.outputs[0])?.buf;
  const skew = d.cachedB || lineBuf === undefined ? '0' : `(int64_t)((uintptr_t)((void**)ctx_)[${lineBuf}] % 64) / ${esz}`;
  const quantum = d.cachedB ? 32 : 16;
  return [
    `static int64_t ${fn}_cp, ${fn}_u0, ${fn}_u1;`,
    // task t: column part t % cp of unit u0 + t / cp, or of units [u0, u1) when u1 > u0
    `static void ${fn}_t(void* ctx_, int64_t start, int64_t end) {`,
    `  const int64_t skew = ${skew};`,
    '  for (int64_t t = start; t < end; t++) {',
    `    const int64_t c = t % ${fn}_cp, u = ${fn}_u0 + t / ${fn}_cp;`,
    `    const int64_t n0 = ng_column_start(c, ${fn}_cp, ${N}, ${quantum}, skew), n1 = ng_column_start(c + 1, ${fn}_cp, ${N}, ${quantum}, skew);`,
    `    if (n1 > n0) ${d.colsFn}(ctx_, u, ${fn}_u1 > ${fn}_u0 ? ${fn}_u1 : u + 1, n0, n1);`,
    '  }',
    '}',
    `static void ${fn}(void* ctx_, int64_t start, int64_t end) {`,
    '  int whole = 0;',
    `  const int64_t units = end - start, cp = ng_gemm_split(NG_RT, units, ${d.rowsPerUnit}, ${N}, ${d.workPerUnit}, &whole);`,
    '  if (cp > 1) {',
    `    ${fn}_cp = cp;`,
    `    ${fn}_u0 = start;`,
    `    ${fn}_u1 = whole ? end : start;`,
    '    const int64_t tasks = whole ? cp : units * cp;',
    `    NG_RT->par(NG_RT->pool, tasks, (int)tasks, ${fn}_t, ctx_);`,
    `  } else ng_parallel_parts(NG_RT, units, ${d.workPerUnit}, ${d.rowsFn}, ctx_, ${d.partsPerThread});`,
    '}',
  ].join('\n');
}

export function emitGemmColumnsC(spec: GemmSpec, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode {
  const rows = emitGemmC(spec, dtypes, bufs, `${fn}_r`);
  const driver = columnDriverC(spec, {
    fn,
    rowsFn: rows.fn,
    colsFn: `${rows.fn}_cols`,
    workPerUnit: rows.workPerItem,
    rowsPerUnit: (spec.batch * spec.m) / rows.total,
    partsPerThread: rows.partsPerThread ?? 4,
    cachedB: false,
  });
  return { ...rows, fn, source: `${rows.source}\n${driver}`, splittable: false, selfSplit: true };
}
