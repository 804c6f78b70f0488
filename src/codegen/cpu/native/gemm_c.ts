/**
 * The GEMM anchor in C: C[b, m, n] = sum_k A[b, m, k] * B[b, k, n] with generated packing (any
 * operand index expression, im2col gathers and prologue expressions evaluated while packing),
 * the hand-written micro-kernel of the prelude (runtime_c.ts: AVX-512 / AVX2 / portable, f32
 * products accumulated in f32 with FMA) and a generated epilogue reading the product tile as
 * `acc 0`. The blocking is matmul.ts's (Goto style: per chunk of rows, column blocks NC, K
 * blocks KC, row blocks MC), with the block sizes multiples of every micro-kernel's tile. The
 * range is the flattened (batch, row) space.
 */
import type { DType } from '../../../ir/dtype.js';
import { AX, type Axis } from '../../kernel/axis.js';
import { affineStrides, type Idx, idxVars } from '../../kernel/index_expr.js';
import type { SExpr } from '../../kernel/kernel_graph.js';
import { bufName } from '../../lower/dialect.js';
import { type GemmSpec, usesReducingFeatures } from '../../lower/gemm_spec.js';
import { C_LOOPS, type CpuLoopSyntax, emitReducingPrologue, emitRowStats, rangeUnitRows } from '../../lower/gemm_reducing.js';
import { CBuilder, type CKernelCode, cNestedLoops, cRangeLoops, wrapRange } from './c_common.js';
import { packAStrips, packBStrips } from './gemm_pack_c.js';

/** Multiples of every micro-kernel's MR (8, 6, 4) and NR (32, 16, 8). */
const MR_ALL = 24;
const NR_ALL = 32;

const roundUp = (x: number, m: number): number => Math.ceil(x / m) * m;

/** The extra parameters of a row-mode body: the column range [_n0, _n1) it computes. */
const COLUMN_PARAMS = ', int64_t _n0, int64_t _n1';

/**
 * C's loops for the row statistics of an A prologue: each statistic's loop over the row under
 * `#pragma omp simd reduction` (as c_common.ts cSumLoops: partial sums in vector lanes). As one
 * dependent chain of double additions, LayerNorm's two statistics of a 40-channel row took ~320
 * cycles, more than packing and multiplying the row. The order of the additions changes (in double,
 * for f32 data). emitRowStats declares each accumulator just before opening its loop: the pragma
 * names the one declared last.
 */
function rowStatsLoops(): CpuLoopSyntax {
  let last = '';
  return {
    ...C_LOOPS,
    accDecl: (name) => {
      last = name;
      return C_LOOPS.accDecl(name);
    },
    loop: (v, n) => (v === AX.row(0).name && last ? `#pragma omp simd reduction(+: ${last})\n${C_LOOPS.loop(v, n)}` : C_LOOPS.loop(v, n)),
  };
}

/** C's loops, but the reducing outputs' zeroing loop runs over the body's columns [_n0, _n1) only. */
const C_LOOPS_COLUMNS: CpuLoopSyntax = { ...C_LOOPS, loop: (v, n) => (v === AX.n.name ? `for (int64_t ${v} = _n0; ${v} < _n1; ${v}++)` : C_LOOPS.loop(v, n)) };

function strideOf(x: Idx, v: Axis): number {
  const a = affineStrides(x);
  if (!a) return Infinity;
  return Math.abs(a.strides.get(v) ?? 0);
}

export interface CGemmTiles {
  readonly mc: number;
  readonly nc: number;
  readonly kc: number;
}

export function gemmTilesC(spec: GemmSpec): CGemmTiles {
  const kc = spec.k <= 512 ? Math.max(spec.k, 1) : 384;
  const ncp = roundUp(spec.n, NR_ALL);
  // an A prologue is evaluated once per column block: one block while the packed B panel fits in L2
  const maxNc = spec.aExpr && kc * ncp * 4 <= 1 << 21 ? 4096 : 1024;
  return { mc: 96, nc: ncp <= maxNc ? ncp : 512, kc };
}

/**
 * 'rows': the range function over (batch, row). For a K-split (gemm_ksplit_c.ts): 'kpart', the
 * task computing the partial product of part `p` of K into its own slice of `<fn>_P` (no epilogue),
 * and 'kreduce', summing the partial products and running the epilogue.
 */
export type GemmMode = 'rows' | 'kpart' | 'kreduce' | 'bpack';

export interface GemmOptions {
  /** The name prefix of a cached packed B (`<prefix>_BPK`, gemm_bcache_c.ts): 'rows' reads it, 'bpack' fills it. */
  readonly cachedB?: string;
}

/**
 * The layout of a cached packed B: every (column block, K block) pair at its own offset, each
 * KC x NC elements, so the rows read any block without packing it.
 */
export function cachedBLayout(spec: GemmSpec): { kc: number; nc: number; kBlocks: number; nBlocks: number; elements: number } {
  const t = gemmTilesC(spec);
  const nc = roundUp(t.nc, NR_ALL);
  const kc = Math.max(1, Math.min(t.kc, Math.max(spec.k, 1)));
  const kBlocks = Math.max(1, Math.ceil(spec.k / kc));
  const nBlocks = Math.max(1, Math.ceil(spec.n / nc));
  return { kc, nc, kBlocks, nBlocks, elements: kBlocks * nBlocks * kc * nc };
}

export function emitGemmC(spec: GemmSpec, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string, mode: GemmMode = 'rows', opts: GemmOptions = {}): CKernelCode {
  if (spec.dtype === 'i32' || spec.dtype === 'u32' || spec.dtype === 'bool') return emitIntGemmC(spec, dtypes, bufs, fn);
  const f64 = spec.dtype === 'f64';
  const T = f64 ? 'double' : 'float';
  const micro = f64 ? 'ng_gemm_f64' : 'ng_gemm_f32';
  const { batch, m: M, n: N, k: K } = spec;
  const t = gemmTilesC(spec);
  const MC = roundUp(t.mc, MR_ALL);
  const NC = roundUp(t.nc, NR_ALL);
  const KC = Math.max(1, Math.min(t.kc, Math.max(K, 1)));
  const NCP = NC;
  const singleK = K <= KC;
  const singleN = N <= NC;
  const RCH = singleK ? MC : Math.max(MC, Math.floor(Math.max(1, (1 << 20) / NCP) / MC) * MC);
  const aDtype = dtypes.get(spec.aBuf) ?? spec.dtype;
  const bDtype = dtypes.get(spec.bBuf) ?? spec.dtype;
  const bDependsOnBatch = spec.bExpr ? true : idxVars(spec.bIdx).has(AX.b);
  const packBOnce = singleK && singleN && (!bDependsOnBatch || batch === 1);
  const cb = new CBuilder(!f64 && !process.env.NEXGRAD_CPU_NATIVE_F64_EPILOGUE);
  const aLoad: SExpr = spec.aExpr ?? { op: 'load', buf: spec.aBuf, index: spec.aIdx, dtype: aDtype };
  const bLoad: SExpr = spec.bExpr ?? { op: 'load', buf: spec.bBuf, index: spec.bIdx, dtype: bDtype };
  const esz = f64 ? 8 : 4;

  // one register strip at a time (gemm_pack_c.ts)
  const packB = (): void => packBStrips({ cb, T }, bLoad);

  const packA = (): void => {
    // (row statistics are computed per row while packing: those keep the row-at-a-time loops below)
    if (!spec.aStats) return packAStrips({ cb, T }, aLoad);
    // Ap[(i / MR) * (kc * MR) + (k - pc) * MR + i % MR] = A[b, ic + i, k]; ragged rows zeroed
    const mInner = spec.aExpr ? false : strideOf(spec.aIdx, AX.m) < strideOf(spec.aIdx, AX.k);
    if (mInner) {
      cb.open('k');
      cb.line('const int64_t _ad = (k - _pc) * NG_MR;');
      cb.open('m');
      const v = cb.value(aLoad);
      cb.line(`Ap[_ad + ((m - _ic) / NG_MR) * _kcMR + (m - _ic) % NG_MR] = (${T})(${v});`);
      cb.close('for (int64_t m = _ic; m < _ic + _mc; m++)');
      cb.close('for (int64_t k = _pc; k < _pc + _kc; k++)');
    } else {
      cb.open('m');
      cb.line('const int64_t _ad = ((m - _ic) / NG_MR) * _kcMR + (m - _ic) % NG_MR - _pc * NG_MR;');
      emitRowStats(cb, spec, rowStatsLoops());
      cb.open('k');
      const v = cb.value(aLoad);
      cb.line(`Ap[_ad + k * NG_MR] = (${T})(${v});`);
      cb.close('for (int64_t k = _pc; k < _pc + _kc; k++)');
      cb.close('for (int64_t m = _ic; m < _ic + _mc; m++)');
    }
    cb.line('for (int64_t _i = _mc; _i < _mcp; _i++) for (int64_t _k = 0; _k < _kc; _k++) Ap[(_i / NG_MR) * _kcMR + _k * NG_MR + _i % NG_MR] = 0;');
  };

  const epilogue = (withAcc: boolean): void => {
    cb.open('m');
    if (withAcc) cb.line(`const int64_t _cr = (m - _c0) * ${NCP} - _jc;`);
    cb.open('n');
    const nDepth = cb.depth;
    cb.accResolver = (id) => {
      if (id !== 0) throw new Error(`cpu-native codegen: matmul ${spec.name} epilogue reads acc ${id}`);
      return { src: withAcc ? 'Ct[_cr + n]' : '0', depth: withAcc ? nDepth : 0 };
    };
    cb.storeAll(spec.outputs, (b) => dtypes.get(b) ?? spec.dtype);
    cb.close('for (int64_t n = _jc; n < _jc + _nc; n++)');
    cb.close('for (int64_t m = _c0; m < _c1; m++)');
  };

  if (mode !== 'rows') {
    emitSplitBody(mode, fn, { cb, packA, packB, epilogue, T, esz, micro, M, N, K, MC, KC, NCP, cachedB: opts.cachedB });
    return { name: spec.name, fn, source: wrapRange(fn, bufs, dtypes, cb.finish()), total: 1, splittable: false, workPerItem: Math.max(1, 2 * M * N * K) };
  }
  // the body runs columns [_n0, _n1) (a parameter: gemm_cols_c.ts splits columns across threads)
  cb.line(`${T}* const Ap = (${T}*)ng_scratch(0, ${MC * KC * esz});`);
  // a cached packed B (gemm_bcache_c.ts) is packed by the driver before the rows run
  const cachedB = opts.cachedB !== undefined;
  if (!cachedB) cb.line(`${T}* const Bp = (${T}*)ng_scratch(1, ${KC * NCP * esz});`);
  cb.line(`${T}* const Ct = (${T}*)ng_scratch(2, ${RCH * NCP * esz});`);
  const unitRows = rangeUnitRows(spec);
  emitReducingPrologue(cb, spec, C_LOOPS_COLUMNS, (b) => dtypes.get(b) ?? spec.dtype);
  if (packBOnce && !cachedB) cb.line('int64_t _bPacked = -1;');
  cb.line('int64_t _r = start;');
  cb.open('b');
  cb.line(`const int64_t b = _r / ${M};`);
  cb.line(`const int64_t _c0 = _r - b * ${M};`);
  cb.line(`const int64_t _bEnd = end - b * ${M} < ${M} ? end - b * ${M} : ${M};`);
  cb.line(`const int64_t _c1 = _c0 + ${RCH} < _bEnd ? _c0 + ${RCH} : _bEnd;`);
  if (K === 0) {
    cb.line('const int64_t _jc = _n0, _nc = _n1 - _n0;');
    epilogue(false);
  } else {
    cb.open();
    // column chunks end at multiples of NC (a cached packed B is stored in blocks of NC columns)
    cb.line(`_jn = (_jc / ${NC} + 1) * ${NC};`);
    cb.line('const int64_t _nc = (_n1 < _jn ? _n1 : _jn) - _jc;');
    cb.line('const int64_t _ncp = (_nc + NG_NR - 1) / NG_NR * NG_NR;');
    cb.open();
    cb.line(`const int64_t _kc = ${K} - _pc < ${KC} ? ${K} - _pc : ${KC};`);
    cb.line('const int64_t _kcNR = _kc * NG_NR, _kcMR = _kc * NG_MR;');
    if (cachedB) {
      // packed by the driver (gemm_bcache_c.ts), block (jc, pc) at its own offset
      // (a column part starts at a multiple of NR_ALL: a strip boundary of every micro-kernel)
      cb.line(`${T}* const Bp = ${opts.cachedB}_BPK + ((_jc / ${NC}) * ${Math.ceil(K / KC)} + _pc / ${KC}) * ${KC * NC} + ((_jc % ${NC}) / NG_NR) * _kcNR;`);
    } else if (packBOnce) {
      const key = bDependsOnBatch ? 'b' : '0';
      cb.line(`if (_bPacked != ${key}) {`);
      packB();
      cb.line(`  _bPacked = ${key};`);
      cb.line('}');
    } else packB();
    cb.open();
    cb.line(`const int64_t _mc = _c1 - _ic < ${MC} ? _c1 - _ic : ${MC};`);
    cb.line('const int64_t _mcp = (_mc + NG_MR - 1) / NG_MR * NG_MR;');
    packA();
    cb.line(`${micro}(Ap, Bp, Ct + (_ic - _c0) * ${NCP}, (int)_kc, (int)_mcp, (int)_ncp, ${NCP}, _pc > 0);`);
    cb.close(`for (int64_t _ic = _c0; _ic < _c1; _ic += ${MC})`);
    cb.close(`for (int64_t _pc = 0; _pc < ${K}; _pc += ${KC})`);
    epilogue(true);
    cb.close('for (int64_t _jc = _n0, _jn; _jc < _n1; _jc = _jn)');
  }
  cb.line(`_r = b * ${M} + _c1;`);
  cb.close('do', ' while (_r < end);');
  // several parts per thread (ng_parallel_parts) only where rows are many: every part packs B again
  const partsPerThread = batch * M >= 8192 ? 4 : 1;
  const source = [wrapRange(`${fn}_cols`, bufs, dtypes, cb.finish(), COLUMN_PARAMS), `static void ${fn}(void* ctx_, int64_t start, int64_t end) { ${fn}_cols(ctx_, start, end, 0, ${N}); }`].join('\n');
  return { name: spec.name, fn, source, total: (batch * M) / unitRows, splittable: true, workPerItem: Math.max(1, 2 * N * K) * unitRows, partsPerThread };
}

/** Integer GEMM: exact 32-bit wrap-around like the host. */
function emitIntGemmC(spec: GemmSpec, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode {
  if (usesReducingFeatures(spec)) throw new Error(`cpu-native codegen: integer matmul ${spec.name} with row statistics or reducing outputs`);
  const cb = new CBuilder();
  const aDtype = dtypes.get(spec.aBuf) ?? spec.dtype;
  const bDtype = dtypes.get(spec.bBuf) ?? spec.dtype;
  cRangeLoops(cb, [spec.batch, spec.m], ['b', 'm'], () => {
    cNestedLoops(cb, [spec.n], ['n'], () => {
      cb.line('uint32_t _acc = 0;');
      cNestedLoops(cb, [spec.k], ['k'], () => {
        const a = cb.value(spec.aExpr ?? { op: 'load', buf: spec.aBuf, index: spec.aIdx, dtype: aDtype });
        const b = cb.value(spec.bExpr ?? { op: 'load', buf: spec.bBuf, index: spec.bIdx, dtype: bDtype });
        cb.line(`_acc += (uint32_t)(${a}) * (uint32_t)(${b});`);
      });
      const d = cb.depth;
      cb.accResolver = () => ({ src: spec.dtype === 'u32' ? '_acc' : spec.dtype === 'bool' ? '(_acc != 0)' : '((int32_t)_acc)', depth: d });
      cb.storeAll(spec.outputs, (b) => dtypes.get(b) ?? spec.dtype);
    });
  });
  void bufName;
  return { name: spec.name, fn, source: wrapRange(fn, bufs, dtypes, cb.finish()), total: spec.batch * spec.m, splittable: true, workPerItem: Math.max(1, 2 * spec.n * spec.k) };
}

interface SplitPieces {
  readonly cb: CBuilder;
  readonly packA: () => void;
  readonly packB: () => void;
  readonly epilogue: (withAcc: boolean) => void;
  readonly T: string;
  readonly esz: number;
  readonly micro: string;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly MC: number;
  readonly KC: number;
  readonly NCP: number;
  readonly cachedB: string | undefined;
}

/**
 * The bodies of the non-row modes, batch 1 and one column block. K-split (gemm_ksplit_c.ts): the
 * partial products of rows [0, M) in slices of `<fn>_P` (row stride NCP), 'kpart' computing part
 * `p` of K, 'kreduce' summing the parts and running the epilogue. 'bpack': B packed whole (one K
 * block) into the cached `<prefix>_BPK` (gemm_bcache_c.ts).
 */
function emitSplitBody(mode: Exclude<GemmMode, 'rows'>, fn: string, p: SplitPieces): void {
  const { cb, T, esz, M, N, K, MC, KC, NCP } = p;
  cb.line('const int64_t b = 0;');
  cb.defineVars('b');
  if (mode !== 'bpack') cb.line(`const int64_t _jc = 0, _nc = ${N}, _ncp = (_nc + NG_NR - 1) / NG_NR * NG_NR;`);
  if (mode === 'bpack') {
    cb.line(`for (int64_t _jc = 0; _jc < ${N}; _jc += ${NCP}) {`);
    cb.line(`  const int64_t _nc = ${N} - _jc < ${NCP} ? ${N} - _jc : ${NCP}, _ncp = (_nc + NG_NR - 1) / NG_NR * NG_NR;`);
    cb.open();
    cb.line(`const int64_t _kc = ${K} - _pc < ${KC} ? ${K} - _pc : ${KC}, _kcNR = _kc * NG_NR;`);
    cb.line(`${T}* const Bp = ${p.cachedB}_BPK + ((_jc / ${NCP}) * ${Math.ceil(K / KC)} + _pc / ${KC}) * ${KC * NCP};`);
    p.packB();
    cb.close(`for (int64_t _pc = 0; _pc < ${K}; _pc += ${KC})`);
    cb.line('}');
    return;
  }
  const P = `${fn.replace(/_(part|reduce)$/, '')}_P`;
  const slice = roundUp(Math.max(M, 1), MR_ALL) * NCP;
  if (mode === 'kreduce') {
    cb.line(`for (int64_t _p = 1; _p < ${P}_parts; _p++) for (int64_t _i = 0; _i < ${M * NCP}; _i++) ${P}[_i] += ${P}[_p * ${slice} + _i];`);
    cb.line(`${T}* const Ct = ${P};`);
    cb.line(`const int64_t _c0 = 0, _c1 = ${M};`);
    p.epilogue(true);
    return;
  }
  cb.line(`${T}* const Ap = (${T}*)ng_scratch(0, ${MC * KC * esz});`);
  cb.line(`${T}* const Bp = (${T}*)ng_scratch(1, ${KC * NCP * esz});`);
  cb.line('for (int64_t _p = start; _p < end; _p++) {');
  cb.line(`  ${T}* const Ct = ${P} + _p * ${slice};`);
  cb.line(`  const int64_t _kb = ${K} * _p / ${P}_parts, _ke = ${K} * (_p + 1) / ${P}_parts;`);
  cb.line(`  if (_ke == _kb) memset(Ct, 0, ${slice * esz});`);
  cb.open();
  cb.line(`const int64_t _kc = _ke - _pc < ${KC} ? _ke - _pc : ${KC};`);
  cb.line('const int64_t _kcNR = _kc * NG_NR, _kcMR = _kc * NG_MR;');
  p.packB();
  cb.open();
  cb.line(`const int64_t _mc = ${M} - _ic < ${MC} ? ${M} - _ic : ${MC};`);
  cb.line('const int64_t _mcp = (_mc + NG_MR - 1) / NG_MR * NG_MR;');
  p.packA();
  cb.line(`${p.micro}(Ap, Bp, Ct + _ic * ${NCP}, (int)_kc, (int)_mcp, (int)_ncp, ${NCP}, _pc > _kb);`);
  cb.close(`for (int64_t _ic = 0; _ic < ${M}; _ic += ${MC})`);
  cb.close(`for (int64_t _pc = _kb; _pc < _ke; _pc += ${KC})`);
  cb.line('}');
}
