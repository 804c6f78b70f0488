/**
 * Packed weights kept across calls. A GEMM whose B is read straight from a buffer that the graph
 * does not write (an input that is not donated, or a constant: inference weights) packs B once
 * into storage of its own and reuses it while B's elements are unchanged. "Unchanged" is checked,
 * not assumed: a tensor made by `fromHost` shares the caller's array, which the caller may still
 * write, so the driver compares B's elements with a copy taken when it packed (memcmp: reading B
 * once, against packing it once per thread on every call; split across the threads, ng_differs:
 * ~1 ms of a 11 ms batch-1 inference on one) and repacks on any difference. Donated
 * inputs (parameters in a training step, rewritten every step) and temporaries are left alone.
 * The storage is static to the object, like the K-split's (calls into one object never overlap).
 */
import type { DType } from '../../../ir/dtype.js';
import { AX } from '../../kernel/axis.js';
import { affineStrides } from '../../kernel/index_expr.js';
import { bufName } from '../../lower/dialect.js';
import { type GemmSpec, usesReducingFeatures } from '../../lower/gemm_spec.js';
import type { CKernelCode } from './c_common.js';
import { cachedBLayout, emitGemmC } from './gemm_c.js';
import { columnDriverC } from './gemm_cols_c.js';

const roundUp = (x: number, m: number): number => Math.ceil(x / m) * m;

/** The element range [lo, hi) of B's buffer that B reads, or null when B is not a plain strided read. */
function bRegion(spec: GemmSpec): { lo: number; hi: number } | null {
  if (spec.bExpr || spec.k === 0 || spec.n === 0) return null;
  const a = affineStrides(spec.bIdx);
  if (!a) return null;
  for (const [ax, s] of a.strides) if (s < 0 || (ax !== AX.k && ax !== AX.n && ax !== AX.b)) return null;
  const hi = a.offset + (spec.k - 1) * (a.strides.get(AX.k) ?? 0) + (spec.n - 1) * (a.strides.get(AX.n) ?? 0) + 1;
  return { lo: a.offset, hi };
}

/** Whether the GEMM caches its packed B: one batch, B a plain read of a buffer in `stable`, at most 64 MiB packed. */
export function bCacheApplies(spec: GemmSpec, stable: ReadonlySet<number>): boolean {
  // (row statistics of A and reducing outputs keep the plain path: its range is in units of rows)
  if ((spec.dtype !== 'f32' && spec.dtype !== 'f64') || usesReducingFeatures(spec)) return false;
  return spec.batch === 1 && stable.has(spec.bBuf) && bRegion(spec) !== null && cachedBLayout(spec).elements * 8 <= 1 << 26;
}

export function emitGemmBCacheC(spec: GemmSpec, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode {
  const T = spec.dtype === 'f64' ? 'double' : 'float';
  const esz = T === 'double' ? 8 : 4;
  const region = bRegion(spec)!;
  const bytes = (region.hi - region.lo) * esz;
  const packed = cachedBLayout(spec).elements * esz;
  const rows = emitGemmC(spec, dtypes, bufs, `${fn}_rows`, 'rows', { cachedB: fn });
  const pack = emitGemmC(spec, dtypes, bufs, `${fn}_pack`, 'bpack', { cachedB: fn });
  const src = `((const ${T}*)B[${spec.bBuf}] + ${region.lo})`;
  const source = [
    `static ${T}* ${fn}_BPK;`,
    `static ${T}* ${fn}_BSRC;`,
    rows.source,
    pack.source,
    // split by rows, or by columns when the rows are fewer (each thread then reads its share of the packed B)
    columnDriverC(spec, { fn: `${fn}_run`, rowsFn: rows.fn, colsFn: `${rows.fn}_cols`, workPerUnit: rows.workPerItem, rowsPerUnit: 1, partsPerThread: 4, cachedB: true }),
    `static void ${fn}(void* ctx_, int64_t start, int64_t end) {`,
    '  void** const B = (void**)ctx_;',
    `  if (!${fn}_BPK) {`,
    `    ${fn}_BPK = (${T}*)aligned_alloc(64, ${roundUp(packed, 64)});`,
    `    ${fn}_BSRC = (${T}*)malloc(${bytes});`,
    `    if (!${fn}_BPK || !${fn}_BSRC) abort();`,
    `    memcpy(${fn}_BSRC, ${src}, ${bytes});`,
    `    ${fn}_pack(ctx_, 0, 1);`,
    `  } else if (ng_differs(NG_RT, ${fn}_BSRC, ${src}, ${bytes})) {`,
    `    memcpy(${fn}_BSRC, ${src}, ${bytes});`,
    `    ${fn}_pack(ctx_, 0, 1);`,
    '  }',
    `  ${fn}_run(ctx_, start, end);`,
    '}',
  ].join('\n');
  void bufName;
  return { ...rows, fn, source, splittable: false, selfSplit: true };
}
