/**
 * Convolution geometry and algorithm choice, for every backend: sizes and element strides of a
 * conv kernel's operands, which algorithm it gets (a GEMM over im2col or unpatchify index maps,
 * a depthwise direct loop, a depthwise weight gradient, or the generic direct convolution), the
 * GEMM specifications of the GEMM paths, and the window table of the generic one. XLA
 * ConvGeneralDilated semantics, any dimension numbers.
 */
import type { DType } from '../../ir/dtype.js';
import { stridesOf } from '../../ir/shape.js';
import { AX, type Axis } from '../kernel/axis.js';
import { delinearize, idx, type Idx, idxSubst, type Ranges } from '../kernel/index_expr.js';
import { type ConvKernel, type KernelOutput, mapIndices, type SExpr } from '../kernel/kernel_graph.js';
import type { GemmSpec } from './gemm_spec.js';

export interface ConvGeom {
  readonly nsp: number;
  readonly N: number;
  readonly C: number;
  readonly O: number;
  readonly I: number;
  readonly G: number;
  readonly BG: number;
  readonly inSp: readonly number[];
  readonly kSp: readonly number[];
  readonly outSp: readonly number[];
  /** lhs element strides of batch, feature, spatial. */
  readonly lsN: number;
  readonly lsC: number;
  readonly lsSp: readonly number[];
  /** rhs element strides of out feature, in feature, spatial. */
  readonly rsO: number;
  readonly rsI: number;
  readonly rsSp: readonly number[];
  /** Names of the output index variables for batch, feature and spatial positions. */
  readonly vN: string;
  readonly vC: string;
  readonly vSp: readonly string[];
  /** The output axes of batch, feature and spatial positions (vN etc. are their names). */
  readonly aN: Axis;
  readonly aC: Axis;
  readonly aSp: readonly Axis[];
}

export function convGeometry(k: ConvKernel): ConvGeom {
  const p = k.params;
  const { dims } = p;
  const ls = stridesOf(k.lhs.shape);
  const rs = stridesOf(k.rhs.shape);
  const nsp = k.lhs.shape.length - 2;
  const sp = Array.from({ length: nsp }, (_, d) => d);
  return {
    nsp,
    N: k.lhs.shape[dims.lhs[0]!]!,
    C: k.lhs.shape[dims.lhs[1]!]!,
    O: k.rhs.shape[dims.rhs[0]!]!,
    I: k.rhs.shape[dims.rhs[1]!]!,
    G: p.featureGroupCount,
    BG: p.batchGroupCount,
    inSp: sp.map((d) => k.lhs.shape[dims.lhs[2 + d]!]!),
    kSp: sp.map((d) => k.rhs.shape[dims.rhs[2 + d]!]!),
    outSp: sp.map((d) => k.outShape[dims.out[2 + d]!]!),
    lsN: ls[dims.lhs[0]!]!,
    lsC: ls[dims.lhs[1]!]!,
    lsSp: sp.map((d) => ls[dims.lhs[2 + d]!]!),
    rsO: rs[dims.rhs[0]!]!,
    rsI: rs[dims.rhs[1]!]!,
    rsSp: sp.map((d) => rs[dims.rhs[2 + d]!]!),
    vN: AX.outer(dims.out[0]!).name,
    vC: AX.outer(dims.out[1]!).name,
    vSp: sp.map((d) => AX.outer(dims.out[2 + d]!).name),
    aN: AX.outer(dims.out[0]!),
    aC: AX.outer(dims.out[1]!),
    aSp: sp.map((d) => AX.outer(dims.out[2 + d]!)),
  };
}

export type ConvPath = 'gemm' | 'gemm_transposed' | 'depthwise' | 'depthwise_wgrad' | 'generic';

const isFloatDt = (d: DType): boolean => d === 'f32' || d === 'f64' || d === 'f16' || d === 'bf16';

/** Which implementation a conv kernel gets. */
export function convPath(k: ConvKernel): ConvPath {
  const g = convGeometry(k);
  const p = k.params;
  if (!isFloatDt(k.dtype)) return 'generic';
  const noPad = p.padding.every(([lo, hi]) => lo === 0 && hi === 0);
  const noLhsDil = p.lhsDilation.every((d) => d === 1);
  if (g.G === 1 && g.BG === 1 && noPad && noLhsDil) return 'gemm';
  if (g.G === 1 && g.BG === 1 && isUnpatchify(k, g)) return 'gemm_transposed';
  if (g.BG === 1 && g.G > 1 && g.G === g.C && g.O === g.C && g.I === 1) return 'depthwise';
  if (g.G === 1 && g.BG > 1 && g.BG === g.O && g.N === g.BG) return 'depthwise_wgrad';
  return 'generic';
}

/**
 * The input gradient of a non-overlapping patchify conv (kernel == stride s): lhs dilation s,
 * kernel s, window stride 1, no rhs dilation, padding (s-1, s-1) and output = input * s. Each
 * output position q reads exactly one tap: input q / s with kernel index (s-1) - q % s.
 */
function isUnpatchify(k: ConvKernel, g: ConvGeom): boolean {
  const p = k.params;
  for (let d = 0; d < g.nsp; d++) {
    const s = p.lhsDilation[d]!;
    if (g.kSp[d] !== s || p.windowStrides[d] !== 1 || (p.rhsDilation[d] !== 1 && s !== 1)) return false;
    if (p.padding[d]![0] !== s - 1 || p.padding[d]![1] !== s - 1 || g.outSp[d] !== g.inSp[d]! * s) return false;
  }
  return g.nsp > 0 && p.lhsDilation.some((s) => s > 1);
}

// ---------------------------------------------------------------------------------------
// epilogue rewriting

/** Rewrites every index expression in the outputs (memoised over the DAG). */
export function mapOutputs(outs: readonly KernelOutput[], f: (x: Idx) => Idx): KernelOutput[] {
  const memo = new Map<SExpr, SExpr>();
  const go = (e: SExpr): SExpr => mapIndices(e, f, memo);
  return outs.map((o) => ({ ...o, index: f(o.index), expr: go(o.expr), ...(o.dyn ? { dyn: go(o.dyn) } : {}), ...(o.when ? { when: go(o.when) } : {}) }));
}

interface Dim {
  size: number;
  ls: number;
  rs: number;
}

/** Merges adjacent dims (outer first) that are contiguous in both operands. */
function mergeDims(ds: Dim[]): Dim[] {
  const out: Dim[] = [];
  for (const d of ds) {
    if (d.size === 1) continue;
    const prev = out[out.length - 1];
    if (prev && prev.ls === d.size * d.ls && prev.rs === d.size * d.rs) {
      out[out.length - 1] = { size: prev.size * d.size, ls: d.ls, rs: d.rs };
    } else out.push({ ...d });
  }
  return out;
}

/** sum_j index_j * stride_j over a delinearisation of v. */
function gatherIdx(v: Axis, dims: readonly Dim[], which: 'ls' | 'rs', ranges: Ranges): Idx {
  if (dims.length === 0) return idx.const(0);
  const parts = delinearize(idx.var(v), dims.map((d) => d.size), ranges);
  return idx.add(...parts.map((pi, j) => idx.scale(pi, dims[j]![which])));
}

// ---------------------------------------------------------------------------------------
// im2col GEMM

export function gemmSpecOf(k: ConvKernel, g: ConvGeom): GemmSpec {
  const p = k.params;
  const rowsShape = [g.N, ...g.outSp];
  const M = rowsShape.reduce((a, b) => a * b, 1);
  const Nn = g.O;
  // contraction dims: input feature and kernel positions, ordered by lhs stride (outer first)
  const kd: Dim[] = [{ size: g.C, ls: g.lsC, rs: g.rsI }];
  for (let d = 0; d < g.nsp; d++) kd.push({ size: g.kSp[d]!, ls: g.lsSp[d]! * p.rhsDilation[d]!, rs: g.rsSp[d]! });
  kd.sort((a, b) => b.ls - a.ls);
  const kMerged = mergeDims(kd);
  const K = kd.reduce((a, d) => a * d.size, 1);
  const ranges: Ranges = new Map([
    [AX.b, 1],
    [AX.m, Math.max(M, 1)],
    [AX.n, Math.max(Nn, 1)],
    [AX.k, Math.max(K, 1)],
  ]);
  // rows: (batch, output position) in row-major order; A strides per row dim
  const rd: Dim[] = [{ size: g.N, ls: g.lsN, rs: 0 }];
  for (let d = 0; d < g.nsp; d++) rd.push({ size: g.outSp[d]!, ls: g.lsSp[d]! * p.windowStrides[d]!, rs: 0 });
  const rMerged = mergeDims(rd);
  const aIdx = idx.add(gatherIdx(AX.m, rMerged, 'ls', ranges), gatherIdx(AX.k, kMerged, 'ls', ranges));
  const bIdx = idx.add(idx.scale(idx.var(AX.n), g.rsO), gatherIdx(AX.k, kMerged, 'rs', ranges));
  // epilogue: output variables from (m, n)
  const rowIdx = delinearize(idx.var(AX.m), rowsShape, ranges);
  const sub = new Map<Axis, Idx>([
    [g.aN, rowIdx[0]!],
    [g.aC, idx.var(AX.n)],
  ]);
  g.aSp.forEach((v, d) => sub.set(v, rowIdx[1 + d]!));
  const outputs = mapOutputs(k.outputs, (x) => idxSubst(x, sub, ranges));
  return { name: k.name, batch: 1, m: M, n: Nn, k: K, dtype: k.dtype, aBuf: k.lhs.buf, aIdx, bBuf: k.rhs.buf, bIdx, outputs };
}

/**
 * Unpatchify as a GEMM: rows (batch, input position p), columns (r..., output feature) with
 * r_d in [0, s_d), contraction over input features; out[n, co, p*s + r] = sum_ci
 * x[n, ci, p] * w[co, ci, (s-1) - r]. Every output element is written exactly once.
 */
export function gemmSpecOfTransposed(k: ConvKernel, g: ConvGeom): GemmSpec {
  const p = k.params;
  const S = p.lhsDilation;
  const rowsShape = [g.N, ...g.inSp];
  const colsShape = [...S, g.O];
  const M = rowsShape.reduce((a, b) => a * b, 1);
  const Nn = colsShape.reduce((a, b) => a * b, 1);
  const K = g.C;
  const ranges: Ranges = new Map([
    [AX.b, 1],
    [AX.m, Math.max(M, 1)],
    [AX.n, Math.max(Nn, 1)],
    [AX.k, Math.max(K, 1)],
  ]);
  const rd: Dim[] = [{ size: g.N, ls: g.lsN, rs: 0 }];
  for (let d = 0; d < g.nsp; d++) rd.push({ size: g.inSp[d]!, ls: g.lsSp[d]!, rs: 0 });
  const aIdx = idx.add(gatherIdx(AX.m, mergeDims(rd), 'ls', ranges), idx.scale(idx.var(AX.k), g.lsC));
  const col = delinearize(idx.var(AX.n), colsShape, ranges);
  const bIdx = idx.add(
    idx.scale(col[g.nsp]!, g.rsO),
    idx.scale(idx.var(AX.k), g.rsI),
    ...g.rsSp.map((st, d) => idx.add(idx.const((S[d]! - 1) * st), idx.scale(col[d]!, -st))),
  );
  const row = delinearize(idx.var(AX.m), rowsShape, ranges);
  const sub = new Map<Axis, Idx>([
    [g.aN, row[0]!],
    [g.aC, col[g.nsp]!],
  ]);
  g.aSp.forEach((v, d) => sub.set(v, idx.add(idx.scale(row[1 + d]!, S[d]!), col[d]!)));
  const outputs = mapOutputs(k.outputs, (x) => idxSubst(x, sub, ranges));
  return { name: k.name, batch: 1, m: M, n: Nn, k: K, dtype: k.dtype, aBuf: k.lhs.buf, aIdx, bBuf: k.rhs.buf, bIdx, outputs };
}

/** Flat lhs spatial offset per (kernel position, output position), or -1 (padding/holes). */
export function windowTable(k: ConvKernel, g: ConvGeom): Int32Array {
  const p = k.params;
  const Pk = g.kSp.reduce((a, b) => a * b, 1);
  const Pout = g.outSp.reduce((a, b) => a * b, 1);
  const t = new Int32Array(Pk * Pout);
  const kIdx = new Array<number>(g.nsp).fill(0);
  const yIdx = new Array<number>(g.nsp).fill(0);
  for (let pk = 0; pk < Pk; pk++) {
    let r = pk;
    for (let d = g.nsp - 1; d >= 0; d--) {
      kIdx[d] = r % g.kSp[d]!;
      r = Math.floor(r / g.kSp[d]!);
    }
    for (let q = 0; q < Pout; q++) {
      let rq = q;
      for (let d = g.nsp - 1; d >= 0; d--) {
        yIdx[d] = rq % g.outSp[d]!;
        rq = Math.floor(rq / g.outSp[d]!);
      }
      let off = 0;
      for (let d = 0; d < g.nsp && off >= 0; d++) {
        const pos = yIdx[d]! * p.windowStrides[d]! + kIdx[d]! * p.rhsDilation[d]! - p.padding[d]![0];
        const ld = p.lhsDilation[d]!;
        if (pos < 0 || pos % ld !== 0 || pos / ld >= g.inSp[d]!) off = -1;
        else off += (pos / ld) * g.lsSp[d]!;
      }
      t[pk * Pout + q] = off;
    }
  }
  return t;
}

