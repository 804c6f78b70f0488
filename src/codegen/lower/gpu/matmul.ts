/**
 * The tiled GEMM on a GPU, for a GemmSpec (matmul kernels, and the GEMM paths of convolutions):
 * C[b, m, n] = sum_k A[b, m, k] * B[b, k, n], each operand an index expression (strided views,
 * transposes, im2col gathers) or a prologue expression, the epilogue outputs over b, m, n
 * reading the product as `acc 0`.
 *
 * One workgroup computes a tileM x tileN block of C for one batch entry; per step of tileK it
 * stages an A tile (k-major) and a B tile in shared memory, each element computed by the
 * ScopeBuilder from the operand's expression (so a prologue costs one evaluation per element
 * per workgroup), then every thread accumulates a threadM x threadN block in registers from
 * threadM values of A and threadN of B per k (an outer product). Elements outside [M, N, K]
 * stage as zero and their stores are skipped, so edge tiles need no padding; operand
 * expressions are evaluated only inside the bounds test, so a prologue never reads outside.
 */
import type { DType } from '../../../ir/dtype.js';
import { affineStrides, type Idx } from '../../kernel/index_expr.js';
import { AX, type Axis } from '../../kernel/axis.js';
import type { KernelOutput, SExpr } from '../../kernel/kernel_graph.js';
import { NexgradError } from '../../../ir/errors.js';
import { type GemmSpec, hasReducingOutputs } from '../gemm_spec.js';
import { GpuCode, nextPow2 } from './code.js';
import type { EmitContext } from './emit_context.js';
import type { GpuKernelCode } from './kernel_code.js';
import { accType, finish, toAcc, update } from './reduce_ops.js';

export interface GemmTiling {
  readonly tileM: number;
  readonly tileN: number;
  readonly tileK: number;
  readonly threadM: number;
  readonly threadN: number;
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

/** Tiles of up to 64x64 (power-of-two sides fitted to M and N), threads x blocks = the tile. */
export function gemmTiling(M: number, N: number, K: number, maxThreads: number): GemmTiling {
  const threads = Math.min(256, maxThreads);
  const tileM = clamp(nextPow2(M), 16, 64);
  const tileN = clamp(nextPow2(N), 16, 64);
  const tileK = clamp(nextPow2(K), 4, 16);
  let threadM = 1;
  let threadN = 1;
  while ((tileM / threadM) * (tileN / threadN) > threads) {
    if (tileM / threadM >= tileN / threadN) threadM *= 2;
    else threadN *= 2;
  }
  return { tileM, tileN, tileK, threadM, threadN };
}

/** |stride| of axis v in an affine index (Infinity when not affine or absent). */
function strideOf(x: Idx, v: Axis): number {
  const a = affineStrides(x);
  const s = a?.strides.get(v);
  return s === undefined || s === 0 ? Infinity : Math.abs(s);
}

interface Stage {
  /** Shared array, [tileK][tile] with the k-row of each outer dimension contiguous. */
  readonly array: string;
  /** The operand: expression over b, (m | n), k. */
  readonly value: SExpr;
  /** The free axis (m or n), its tile origin, extent and tile size. */
  readonly free: Axis;
  readonly origin: string;
  /** The bound of the free axis: a number, or an index expression (a reduction group's end). */
  readonly extent: number | string;
  readonly tile: number;
  /** Whether consecutive threads take consecutive free-axis elements (else consecutive k). */
  readonly freeFast: boolean;
  /** Shared arrays holding the tile rows' statistics, read by the value as `acc id` (A only). */
  readonly stats?: readonly { readonly array: string; readonly dtype: DType }[];
}

/** Statements staging one operand tile: `threads` threads, element l -> (free, k). */
function stageTile(cb: GpuCode, s: Stage, t: GemmTiling, K: number, threads: number, acc: 'f32' | 'i32' | 'u32'): void {
  const D = cb.gpu;
  const count = t.tileK * s.tile;
  for (let r = 0; r * threads < count; r++) {
    const body = (): void => {
      const l = `ng_l${s.array}`;
      cb.line(D.declareIndex(l, `${D.localIndex} + ${cb.int(r * threads)}`));
      const [fi, ki] = s.freeFast ? [D.indexMod(l, s.tile), D.indexDiv(l, s.tile)] : [D.indexDiv(l, t.tileK), D.indexMod(l, t.tileK)];
      cb.line(D.declareIndex('ng_fi', fi));
      cb.line(D.declareIndex('ng_ki', ki));
      cb.line(D.declareIndex('ng_gf', `${s.origin} + ng_fi`));
      cb.line(D.declareIndex('ng_gk', `ng_k0 + ng_ki`));
      cb.line(D.declareMutable('ng_v', acc, D.literal(0, acc)));
      cb.when(`ng_gf < ${typeof s.extent === 'number' ? cb.int(s.extent) : s.extent} && ng_gk < ${cb.int(K)}`, () => {
        cb.line(D.declareIndex(s.free.name, 'ng_gf'));
        cb.line(D.declareIndex(AX.k.name, 'ng_gk'));
        cb.defineVars(s.free.name, AX.k.name);
        const stats = s.stats;
        if (stats) {
          const depth = cb.depth;
          cb.accResolver = (id) => ({ src: finish(D, 'sum', `${stats[id]!.array}[ng_fi]`, 'f32', stats[id]!.dtype), depth });
        }
        cb.line(D.assign('ng_v', toAcc(D, cb.value(s.value), s.value.dtype)));
      });
      cb.line(`${s.array}[ng_ki * ${cb.int(s.tile)} + ng_fi] = ng_v;`);
    };
    cb.open();
    if ((r + 1) * threads <= count) body();
    else cb.when(`${D.localIndex} + ${cb.int(r * threads)} < ${cb.int(count)}`, body);
    cb.close('');
  }
}

/**
 * The row statistics of the tile's rows (spec.aStats: LayerNorm's mean and variance before the
 * first pointwise matmul): one thread per row runs the reductions in order over r0 = 0..k-1 and
 * leaves each in a shared array the A staging reads; then a barrier. A row is k values, read
 * twice (from cache) and again when staged.
 */
function emitRowStats(cb: GpuCode, spec: GemmSpec, t: GemmTiling, threads: number): { array: string; dtype: DType }[] {
  const D = cb.gpu;
  const st = spec.aStats!;
  if (st.row.length !== 1 || st.row[0] !== spec.k) throw new NexgradError(`${D.name}: matmul ${spec.name}: row statistics must run over one axis of extent k`);
  const arrays = st.reductions.map((r, j) => {
    if (r.op !== 'sum' || r.id !== j) throw new NexgradError(`${D.name}: matmul ${spec.name}: row statistic ${j} must be a sum with id ${j}`);
    return { array: `ng_St${j}`, dtype: r.dtype };
  });
  for (let r = 0; r * threads < t.tileM; r++) {
    cb.open();
    cb.line(D.declareIndex('ng_sl', `${D.localIndex} + ${cb.int(r * threads)}`));
    cb.when(`ng_sl < ${cb.int(t.tileM)} && ng_m0 + ng_sl < ${cb.int(spec.m)}`, () => {
      cb.line(D.declareIndex(AX.m.name, 'ng_m0 + ng_sl'));
      cb.defineVars(AX.m.name);
      const depth = cb.depth;
      const regs = arrays.map((_, j) => `ng_s${j}`);
      cb.accResolver = (id) => {
        if (regs[id] === undefined) throw new NexgradError(`${D.name}: matmul ${spec.name} reads row statistic ${id}, which it lacks`);
        return { src: finish(D, 'sum', regs[id]!, 'f32', arrays[id]!.dtype), depth };
      };
      st.reductions.forEach((red, j) => {
        cb.line(D.declareMutable(regs[j]!, 'f32', D.literal(0, 'f32')));
        cb.loop(AX.row(0).name, cb.int(0), spec.k, 1, () => {
          cb.line(update(D, 'sum', regs[j]!, toAcc(D, cb.value(red.expr), red.expr.dtype), accType(red.expr.dtype), ''));
        });
        cb.line(`${arrays[j]!.array}[ng_sl] = ${regs[j]};`);
      });
    });
    cb.close('');
  }
  cb.line(D.barrier());
  return arrays;
}

export function emitGemm(spec: GemmSpec, ctx: EmitContext, tiling?: GemmTiling): GpuKernelCode {
  const D = ctx.dialect;
  const cb = new GpuCode(D);
  const { batch, m: M, n: N, k: K } = spec;
  const t = tiling ?? gemmTiling(M, N, K, ctx.target.maxWorkgroupSize);
  const threads = (t.tileM / t.threadM) * (t.tileN / t.threadN);
  const acc = accType(spec.dtype);
  const tilesN = Math.ceil(N / t.tileN);
  // reducing outputs: one workgroup per (batch, group, column tile) walks the group's row tiles
  const G = reducingGroupRows(spec);
  const rowBlocks = G ? M / G : Math.ceil(M / t.tileM);
  const total = batch * rowBlocks * tilesN;
  const aValue: SExpr = spec.aExpr ?? { op: 'load', buf: spec.aBuf, index: spec.aIdx, dtype: ctx.dtypeOf(spec.aBuf) };
  const bValue: SExpr = spec.bExpr ?? { op: 'load', buf: spec.bBuf, index: spec.bIdx, dtype: ctx.dtypeOf(spec.bBuf) };
  if (total > 0) {
    cb.line(D.declareIndex('ng_t', D.groupIndex));
    cb.line(`if (ng_t >= ${cb.int(total)}) { ${D.exit} }`);
    cb.line(D.declareIndex(AX.b.name, D.indexDiv('ng_t', rowBlocks * tilesN)));
    cb.defineVars(AX.b.name);
    cb.line(D.declareIndex('ng_rb', D.indexMod(D.indexDiv('ng_t', tilesN), rowBlocks)));
    cb.line(D.declareIndex('ng_n0', `${D.indexMod('ng_t', tilesN)} * ${cb.int(t.tileN)}`));
    const cols = t.tileN / t.threadN;
    cb.line(D.declareIndex('ng_row0', `${D.indexDiv(D.localIndex, cols)} * ${cb.int(t.threadM)}`));
    cb.line(D.declareIndex('ng_col0', `${D.indexMod(D.localIndex, cols)} * ${cb.int(t.threadN)}`));
    for (let i = 0; i < t.threadM; i++) for (let j = 0; j < t.threadN; j++) cb.line(D.declareMutable(`ng_acc${i}_${j}`, acc, D.literal(0, acc)));
    const tile = (mExtent: number | string, partials?: ReducingPartials): void => {
      if (K > 0) {
        const stats = spec.aStats ? emitRowStats(cb, spec, t, threads) : undefined;
        const stageA: Stage = { array: 'ng_As', value: aValue, free: AX.m, origin: 'ng_m0', extent: mExtent, tile: t.tileM, freeFast: !spec.aExpr && strideOf(spec.aIdx, AX.m) < strideOf(spec.aIdx, AX.k), ...(stats ? { stats } : {}) };
        const stageB: Stage = { array: 'ng_Bs', value: bValue, free: AX.n, origin: 'ng_n0', extent: N, tile: t.tileN, freeFast: spec.bExpr !== undefined || strideOf(spec.bIdx, AX.n) <= strideOf(spec.bIdx, AX.k) };
        cb.loop('ng_k0', cb.int(0), K, t.tileK, () => {
          stageTile(cb, stageA, t, K, threads, acc);
          stageTile(cb, stageB, t, K, threads, acc);
          cb.line(D.barrier());
          cb.loop('ng_kk', cb.int(0), t.tileK, 1, () => {
            for (let i = 0; i < t.threadM; i++) cb.line(D.declare(`ng_a${i}`, acc, `ng_As[ng_kk * ${cb.int(t.tileM)} + ng_row0 + ${cb.int(i)}]`));
            for (let j = 0; j < t.threadN; j++) cb.line(D.declare(`ng_b${j}`, acc, `ng_Bs[ng_kk * ${cb.int(t.tileN)} + ng_col0 + ${cb.int(j)}]`));
            for (let i = 0; i < t.threadM; i++) for (let j = 0; j < t.threadN; j++) cb.line(D.assign(`ng_acc${i}_${j}`, D.mulAdd(`ng_a${i}`, `ng_b${j}`, `ng_acc${i}_${j}`, acc)));
          });
          cb.line(D.barrier());
        });
      }
      emitEpilogue(cb, spec, ctx, t, acc, mExtent, partials);
    };
    if (G) emitReducingTiles(cb, spec, ctx, t, acc, G, tile);
    else {
      cb.line(D.declareIndex('ng_m0', `ng_rb * ${cb.int(t.tileM)}`));
      tile(M);
    }
  }
  const statsShared = (spec.aStats?.reductions ?? []).map((_, j) => ({ name: `ng_St${j}`, dtype: 'f32' as const, size: t.tileM }));
  const reduceShared = G ? [{ name: 'ng_Rs', dtype: 'f32' as const, size: t.tileN }] : [];
  const shared = total > 0 ? [...(K > 0 ? [{ name: 'ng_As', dtype: acc, size: t.tileK * t.tileM }, { name: 'ng_Bs', dtype: acc, size: t.tileK * t.tileN }, ...statsShared] : []), ...reduceShared] : [];
  return ctx.finish(cb, { workgroupSize: threads, shared, groups: total });
}

/** Per reducing output, the registers (one per thread column j) its group sum gathers in. */
type ReducingPartials = ReadonlyMap<KernelOutput, readonly string[]>;

/** Rows per reduction group when the spec has reducing outputs (validated), else 0. */
function reducingGroupRows(spec: GemmSpec): number {
  if (!hasReducingOutputs(spec)) return 0;
  const G = spec.reduceRows ?? 0;
  if (!(G >= 1) || spec.m % G !== 0) throw new NexgradError(`gpu: matmul ${spec.name}: reducing outputs need reduceRows dividing m = ${spec.m}`);
  for (const o of spec.outputs) {
    if (o.init === 'zero' && (o.dyn || o.when || accType(o.expr.dtype) !== 'f32')) throw new NexgradError(`gpu: matmul ${spec.name}: a reducing output is a float sum with no offset or guard`);
  }
  return G;
}

/**
 * Reducing outputs (GRN's sum of squares in pwconv1's epilogue): the workgroup owns every row of
 * its group, so no other workgroup adds into its elements and no zeroing is needed. It walks
 * the group's row tiles (`tile` computes one and adds each reducing value into per-thread
 * registers), then sums the registers of its row threads in a fixed order through shared
 * memory and stores each element once (deterministic, no atomics).
 */
function emitReducingTiles(cb: GpuCode, spec: GemmSpec, ctx: EmitContext, t: GemmTiling, acc: 'f32' | 'i32' | 'u32', G: number, tile: (mExtent: string, partials: ReducingPartials) => void): void {
  const D = cb.gpu;
  const outs = spec.outputs.filter((o) => o.init === 'zero');
  const partials = new Map(outs.map((o, q) => [o, Array.from({ length: t.threadN }, (_, j) => `ng_red${q}_${j}`)] as const));
  for (const regs of partials.values()) for (const r of regs) cb.line(D.declareMutable(r, 'f32', D.literal(0, 'f32')));
  cb.line(D.declareIndex('ng_g0', `ng_rb * ${cb.int(G)}`));
  cb.line(D.declareIndex('ng_gEnd', `ng_g0 + ${cb.int(G)}`));
  cb.loop('ng_mt', cb.int(0), Math.ceil(G / t.tileM), 1, () => {
    cb.line(D.declareIndex('ng_m0', `ng_g0 + ng_mt * ${cb.int(t.tileM)}`));
    for (let i = 0; i < t.threadM; i++) for (let j = 0; j < t.threadN; j++) cb.line(D.assign(`ng_acc${i}_${j}`, D.literal(0, acc)));
    tile('ng_gEnd', partials);
  });
  // the row threads' partials, added in row order: thread row r adds its columns, then a barrier
  const rowThreads = t.tileM / t.threadM;
  const threads = rowThreads * (t.tileN / t.threadN);
  /** body(c) for each column c of the tile, c = local index + r * threads. */
  const perColumn = (body: (c: string) => void): void => {
    for (let r = 0; r * threads < t.tileN; r++) {
      cb.open();
      cb.line(D.declareIndex('ng_c', `${D.localIndex} + ${cb.int(r * threads)}`));
      cb.when(`ng_c < ${cb.int(t.tileN)}`, () => body('ng_c'));
      cb.close('');
    }
  };
  for (const o of outs) {
    const regs = partials.get(o)!;
    cb.line(D.barrier());
    perColumn((c) => cb.line(`ng_Rs[${c}] = ${D.literal(0, 'f32')};`));
    cb.line(D.barrier());
    cb.loop('ng_rr', cb.int(0), rowThreads, 1, () => {
      cb.when(`ng_row0 == ng_rr * ${cb.int(t.threadM)}`, () => {
        regs.forEach((r, j) => cb.line(`ng_Rs[ng_col0 + ${cb.int(j)}] = ${D.binary('add', `ng_Rs[ng_col0 + ${cb.int(j)}]`, r, 'f32')};`));
      });
      cb.line(D.barrier());
    });
    perColumn((c) => {
      cb.when(`ng_n0 + ${c} < ${cb.int(spec.n)}`, () => {
        cb.line(D.declareIndex(AX.n.name, `ng_n0 + ${c}`));
        cb.line(D.declareIndex(AX.m.name, 'ng_g0'));
        cb.defineVars(AX.n.name, AX.m.name);
        cb.line(D.store(o.buf, cb.index(o.index), `ng_Rs[${c}]`, ctx.dtypeOf(o.buf), false));
      });
    });
  }
}

/** Stores each accumulator through the epilogue, n outside m (so loads over n are read once per column). */
function emitEpilogue(cb: GpuCode, spec: GemmSpec, ctx: EmitContext, t: GemmTiling, acc: 'f32' | 'i32' | 'u32', mExtent: number | string, partials?: ReducingPartials): void {
  const stored = partials ? spec.outputs.filter((o) => !partials.has(o)) : spec.outputs;
  const D = cb.gpu;
  for (let j = 0; j < t.threadN; j++) {
    cb.open();
    cb.line(D.declareIndex('ng_gn', `ng_n0 + ng_col0 + ${cb.int(j)}`));
    cb.when(`ng_gn < ${cb.int(spec.n)}`, () => {
      cb.line(D.declareIndex(AX.n.name, 'ng_gn'));
      cb.defineVars(AX.n.name);
      for (let i = 0; i < t.threadM; i++) {
        cb.open();
        cb.line(D.declareIndex('ng_gm', `ng_m0 + ng_row0 + ${cb.int(i)}`));
        cb.when(`ng_gm < ${typeof mExtent === 'number' ? cb.int(mExtent) : mExtent}`, () => {
          cb.line(D.declareIndex(AX.m.name, 'ng_gm'));
          cb.defineVars(AX.m.name);
          const depth = cb.depth;
          cb.accResolver = () => ({ src: finish(D, 'sum', `ng_acc${i}_${j}`, acc, spec.dtype), depth });
          cb.storeAll(stored, ctx.dtypeOf);
          for (const [o, regs] of partials ?? []) cb.line(D.assign(regs[j]!, D.binary('add', regs[j]!, cb.value(o.expr), 'f32')));
        });
        cb.close('');
      }
    });
    cb.close('');
  }
}
