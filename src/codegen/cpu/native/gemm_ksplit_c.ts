/**
 * GEMMs with few rows and a long reduction (the weight gradients of pointwise convolutions:
 * (channels x positions) @ (positions x channels), M = 40..640, K = 1568..25088) split K across
 * the thread pool instead of rows: split by rows, every thread packed the whole of B (as large as
 * the work itself at these shapes) for a few rows each. Each part packs and multiplies its slice
 * of K into its own partial product (`<fn>_P`, row stride NCP), then the driver sums the parts
 * and runs the epilogue once. The parts' number and the partial buffer are statics of the object,
 * set by the driver before it starts the parts (calls into one object never overlap).
 */
import type { DType } from '../../../ir/dtype.js';
import { type GemmSpec, usesReducingFeatures } from '../../lower/gemm_spec.js';
import type { CKernelCode } from './c_common.js';
import { emitGemmC, gemmTilesC } from './gemm_c.js';

const MR_ALL = 24;
const NR_ALL = 32;
const roundUp = (x: number, m: number): number => Math.ceil(x / m) * m;

/** Whether a GEMM takes the K-split: float, one batch, one column block, K several blocks long, few rows. */
export function kSplitApplies(spec: GemmSpec): boolean {
  // row statistics of A and reducing outputs assume whole rows of K and of the range per call
  if ((spec.dtype !== 'f32' && spec.dtype !== 'f64') || usesReducingFeatures(spec)) return false;
  const t = gemmTilesC(spec);
  const ncp = roundUp(spec.n, NR_ALL);
  return spec.batch === 1 && ncp <= roundUp(t.nc, NR_ALL) && spec.k >= 4 * t.kc && spec.m <= 4 * 96 && spec.m * spec.n <= 1 << 20;
}

export function emitGemmKSplitC(spec: GemmSpec, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode {
  const T = spec.dtype === 'f64' ? 'double' : 'float';
  const t = gemmTilesC(spec);
  const slice = roundUp(Math.max(spec.m, 1), MR_ALL) * roundUp(t.nc, NR_ALL);
  const maxParts = Math.max(1, Math.floor(spec.k / t.kc));
  const part = emitGemmC(spec, dtypes, bufs, `${fn}_part`, 'kpart');
  const reduce = emitGemmC(spec, dtypes, bufs, `${fn}_reduce`, 'kreduce');
  const P = `${fn}_P`;
  const driver = [
    `static ${T}* ${P};`,
    `static int64_t ${P}_parts;`,
    part.source,
    reduce.source,
    `static void ${fn}(void* ctx_, int64_t start, int64_t end) {`,
    '  (void)start; (void)end;',
    `  const int64_t parts = NG_RT->threads < ${maxParts} ? NG_RT->threads : ${maxParts};`,
    `  ${P} = (${T}*)ng_scratch(3, (size_t)parts * ${slice * (T === 'double' ? 8 : 4)});`,
    `  ${P}_parts = parts;`,
    `  if (parts > 1) NG_RT->par(NG_RT->pool, parts, (int)parts, ${fn}_part, ctx_);`,
    `  else ${fn}_part(ctx_, 0, 1);`,
    `  ${fn}_reduce(ctx_, 0, 1);`,
    '}',
  ].join('\n');
  return { name: spec.name, fn, source: driver, total: 1, splittable: false, workPerItem: Math.max(1, 2 * spec.m * spec.n * spec.k) };
}
