/**
 * Contractions: dot_general and conv_general (XLA's DotGeneral and ConvGeneralDilated).
 *
 * Both host implementations accumulate in float64 (integers: exact 32-bit wrap-around) after
 * copying the operands into a canonical contiguous layout. The VJP of conv_general is written
 * with conv_general itself (plus rev / reshape / transpose), so it is differentiable again.
 */
import { type DType, isFloat } from '../dtype.js';
import { OpError } from '../errors.js';
import type { HostArray } from '../host.js';
import * as ops from '../ops.js';
import type { ConvDims, ConvParams, DotParams, ImplContext, MaybeTensor, PrimDef } from '../primitive.js';
import type { AbstractValue } from '../program.js';
import { sizeOf, stridesOf } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { bind1 } from '../trace.js';
import { alloc, avalStr, expectArity, finish, forEachStrided } from './util.js';

// ---------------------------------------------------------------------------------------
// shared helpers

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

function invPerm(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

function isPermutation(p: unknown, n: number): boolean {
  if (!Array.isArray(p) || p.length !== n) return false;
  const seen = new Set<number>();
  for (const a of p) {
    if (!isInt(a) || a < 0 || a >= n || seen.has(a)) return false;
    seen.add(a);
  }
  return true;
}

/** A float64 copy of x transposed by perm (out axis i = x axis perm[i]), row-major. */
function canonical(x: HostArray, perm: readonly number[]): Float64Array {
  const shape = perm.map((p) => x.shape[p]!);
  const st = stridesOf(x.shape);
  const out = new Float64Array(sizeOf(shape));
  const xd = x.data;
  if (perm.every((p, i) => p === i)) {
    for (let i = 0; i < out.length; i++) out[i] = xd[i]!;
    return out;
  }
  forEachStrided(shape, perm.map((p) => st[p]!), 0, (i, off) => {
    out[i] = xd[off]!;
  });
  return out;
}

/** Converts accumulated values to the storage of `dtype` (integers wrap as 32-bit). */
function storeValue(dtype: DType): (v: number) => number {
  if (dtype === 'i32') return (v) => v | 0;
  if (dtype === 'u32') return (v) => v >>> 0;
  return (v) => v;
}

const isIntegerDtype = (d: DType): boolean => d === 'i32' || d === 'u32';

// ---------------------------------------------------------------------------------------
// dot_general

interface DotGeom {
  lb: number[];
  lc: number[];
  lf: number[];
  rb: number[];
  rc: number[];
  rf: number[];
  B: number;
  M: number;
  K: number;
  N: number;
  outShape: number[];
}

function axisList(v: unknown): number[] | null {
  return Array.isArray(v) && v.every(isInt) ? [...(v as number[])] : null;
}

function dotGeom(lhs: AbstractValue, rhs: AbstractValue, p: DotParams): DotGeom {
  const both = `(lhs ${avalStr(lhs)}, rhs ${avalStr(rhs)})`;
  const fail = (msg: string): never => {
    throw new OpError('dot_general', msg);
  };
  if (lhs.dtype !== rhs.dtype) fail(`dtypes differ: lhs ${avalStr(lhs)} vs rhs ${avalStr(rhs)}`);
  if (lhs.dtype === 'bool') fail(`bool operands are not supported ${both}; cast them first`);
  const pair = (v: unknown, what: string): [number[], number[]] => {
    const a = Array.isArray(v) && v.length === 2 ? [axisList(v[0]), axisList(v[1])] : [null, null];
    if (!a[0] || !a[1]) fail(`${what} must be a pair [lhs axes, rhs axes] of integer arrays, got ${JSON.stringify(v)} ${both}`);
    if (a[0]!.length !== a[1]!.length) {
      fail(`${what} dimensions ${JSON.stringify(a[0])} and ${JSON.stringify(a[1])} have different lengths ${both}`);
    }
    return [a[0]!, a[1]!];
  };
  const [lc, rc] = pair(p?.contracting, 'contracting');
  const [lb, rb] = pair(p?.batch, 'batch');
  const checkAxes = (side: 'lhs' | 'rhs', aval: AbstractValue, batch: number[], contr: number[]): number[] => {
    const rank = aval.shape.length;
    const seen = new Set<number>();
    for (const [what, axes] of [['batch', batch], ['contracting', contr]] as const) {
      for (const a of axes) {
        if (a < 0 || a >= rank) fail(`${side} ${what} axis ${a} is out of range for ${side} ${avalStr(aval)} (rank ${rank}) ${both}`);
        if (seen.has(a)) fail(`${side} axis ${a} is used more than once in batch ${JSON.stringify(batch)} / contracting ${JSON.stringify(contr)} ${both}`);
        seen.add(a);
      }
    }
    return aval.shape.map((_, i) => i).filter((i) => !seen.has(i));
  };
  const lf = checkAxes('lhs', lhs, lb, lc);
  const rf = checkAxes('rhs', rhs, rb, rc);
  const sizeCheck = (what: string, la: number[], ra: number[]): void => {
    la.forEach((a, i) => {
      const b = ra[i]!;
      if (lhs.shape[a] !== rhs.shape[b]) {
        fail(`${what} dimensions differ: lhs ${avalStr(lhs)} axis ${a} (${lhs.shape[a]}) vs rhs ${avalStr(rhs)} axis ${b} (${rhs.shape[b]})`);
      }
    });
  };
  sizeCheck('contracting', lc, rc);
  sizeCheck('batch', lb, rb);
  const dimsOf = (s: readonly number[], axes: number[]): number[] => axes.map((a) => s[a]!);
  const batchShape = dimsOf(lhs.shape, lb);
  const lfShape = dimsOf(lhs.shape, lf);
  const rfShape = dimsOf(rhs.shape, rf);
  return {
    lb, lc, lf, rb, rc, rf,
    B: sizeOf(batchShape),
    M: sizeOf(lfShape),
    K: sizeOf(dimsOf(lhs.shape, lc)),
    N: sizeOf(rfShape),
    outShape: [...batchShape, ...lfShape, ...rfShape],
  };
}

function dotImpl(x: HostArray, y: HostArray, p: DotParams, ctx: ImplContext): HostArray {
  const g = dotGeom(x, y, p);
  const { B, M, K, N } = g;
  // (B, M, K) and (B, K, N), contiguous
  const A = canonical(x, [...g.lb, ...g.lf, ...g.lc]);
  const Bm = canonical(y, [...g.rb, ...g.rc, ...g.rf]);
  const acc = new Float64Array(B * M * N);
  const integer = isIntegerDtype(x.dtype);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < M; i++) {
      const rowOut = (b * M + i) * N;
      const rowA = (b * M + i) * K;
      for (let k = 0; k < K; k++) {
        const a = A[rowA + k]!;
        const rowB = (b * K + k) * N;
        if (integer) {
          for (let j = 0; j < N; j++) acc[rowOut + j] = (acc[rowOut + j]! + Math.imul(a, Bm[rowB + j]!)) | 0;
        } else {
          for (let j = 0; j < N; j++) acc[rowOut + j] = acc[rowOut + j]! + a * Bm[rowB + j]!;
        }
      }
    }
  }
  const out = alloc(x.dtype, g.outShape, ctx);
  const od = out.data;
  const store = storeValue(x.dtype);
  for (let i = 0; i < od.length; i++) od[i] = store(acc[i]!);
  return finish(out);
}

/** Transposes t, whose axes are the axes `src` of some operand, back into that operand's order. */
function toOperandOrder(t: Tensor, src: readonly number[]): Tensor {
  return ops.transpose(t, invPerm(src));
}

const dot_general: PrimDef<DotParams> = {
  lowering: 'contraction',
  shape: (inputs, p) => {
    expectArity('dot_general', inputs, 2);
    return [{ shape: dotGeom(inputs[0]!, inputs[1]!, p).outShape, dtype: inputs[0]!.dtype }];
  },
  impl: ([x, y], p, ctx) => [dotImpl(x!, y!, p, ctx)],
  jvp: ([a, b], [ta, tb], p) => {
    if (!isFloat(a!.dtype)) return [null];
    const t1 = ta ? bind1('dot_general', [ta, b!], p) : null;
    const t2 = tb ? bind1('dot_general', [a!, tb], p) : null;
    return [t1 && t2 ? ops.add(t1, t2) : (t1 ?? t2)];
  },
  vjp: ([a, b], _y, [ct], p) => {
    if (!ct || !isFloat(a!.dtype)) return [null, null];
    const g = dotGeom(a!, b!, p);
    const nb = g.lb.length;
    const nlf = g.lf.length;
    const ctBatch = g.lb.map((_, i) => i);
    const ctLf = g.lf.map((_, i) => nb + i);
    const ctRf = g.rf.map((_, i) => nb + nlf + i);
    // lhs: ct (batch, lf, rf) . rhs over rf -> (batch, lf, rhs's contracting axes ascending)
    const rcSorted = [...g.rc].sort((u, v) => u - v);
    const da = bind1('dot_general', [ct, b!], { contracting: [ctRf, g.rf], batch: [ctBatch, g.rb] });
    const daSrc = [...g.lb, ...g.lf, ...rcSorted.map((r) => g.lc[g.rc.indexOf(r)]!)];
    // rhs: lhs . ct over lf -> (batch, lhs's contracting axes ascending, rf)
    const lcSorted = [...g.lc].sort((u, v) => u - v);
    const db = bind1('dot_general', [a!, ct], { contracting: [g.lf, ctLf], batch: [g.lb, ctBatch] });
    const dbSrc = [...g.rb, ...lcSorted.map((l) => g.rc[g.lc.indexOf(l)]!), ...g.rf];
    return [toOperandOrder(da, daSrc), toOperandOrder(db, dbSrc)];
  },
};

// ---------------------------------------------------------------------------------------
// conv_general

/** Size of n elements with (d - 1) zeros inserted between neighbours. */
const dilated = (n: number, d: number): number => (n === 0 ? 0 : (n - 1) * d + 1);

interface ConvGeom {
  nsp: number;
  /** lhs batch, lhs features, rhs out features, rhs in features. */
  N: number;
  C: number;
  O: number;
  I: number;
  G: number;
  BG: number;
  inSp: number[];
  kSp: number[];
  outSp: number[];
  outShape: number[];
}

function convGeom(lhs: AbstractValue, rhs: AbstractValue, p: ConvParams): ConvGeom {
  const both = `(lhs ${avalStr(lhs)}, rhs ${avalStr(rhs)})`;
  const fail = (msg: string): never => {
    throw new OpError('conv_general', `${msg} ${both}`);
  };
  if (lhs.dtype !== rhs.dtype) fail('dtypes differ');
  if (lhs.dtype === 'bool') fail('bool operands are not supported; cast them first');
  const r = lhs.shape.length;
  if (r < 2) fail(`lhs must have rank >= 2 ([batch, feature, ...spatial]), got rank ${r}`);
  if (rhs.shape.length !== r) fail(`lhs and rhs ranks differ (${r} vs ${rhs.shape.length})`);
  const nsp = r - 2;
  const dims = p?.dims as ConvDims | undefined;
  for (const k of ['lhs', 'rhs', 'out'] as const) {
    if (!dims || !isPermutation(dims[k], r)) fail(`dims.${k} ${JSON.stringify(dims?.[k])} is not a permutation of the ${r} axes`);
  }
  const perSpatial = (name: string, v: unknown): number[] => {
    if (!Array.isArray(v) || v.length !== nsp || !v.every((s) => isInt(s) && s >= 1)) {
      fail(`${name} ${JSON.stringify(v)} must be ${nsp} positive integers (one per spatial dimension)`);
    }
    return v as number[];
  };
  const strides = perSpatial('windowStrides', p.windowStrides);
  const ldil = perSpatial('lhsDilation', p.lhsDilation);
  const rdil = perSpatial('rhsDilation', p.rhsDilation);
  const padding = p.padding;
  if (!Array.isArray(padding) || padding.length !== nsp || !padding.every((q) => Array.isArray(q) && q.length === 2 && isInt(q[0]) && isInt(q[1]))) {
    fail(`padding ${JSON.stringify(padding)} must be ${nsp} integer (lo, hi) pairs`);
  }
  const G = p.featureGroupCount;
  const BG = p.batchGroupCount;
  if (!isInt(G) || G < 1) fail(`feature_group_count must be a positive integer, got ${G}`);
  if (!isInt(BG) || BG < 1) fail(`batch_group_count must be a positive integer, got ${BG}`);
  if (G > 1 && BG > 1) fail(`feature_group_count ${G} and batch_group_count ${BG} cannot both exceed 1`);
  const N = lhs.shape[dims!.lhs[0]!]!;
  const C = lhs.shape[dims!.lhs[1]!]!;
  const O = rhs.shape[dims!.rhs[0]!]!;
  const I = rhs.shape[dims!.rhs[1]!]!;
  if (C % G !== 0) fail(`input features ${C} are not divisible by feature_group_count ${G}`);
  if (I * G !== C) fail(G > 1 ? `rhs input features ${I} != lhs features ${C} / groups ${G}` : `rhs input features ${I} != lhs features ${C}`);
  if (O % G !== 0) fail(`rhs output features ${O} are not divisible by feature_group_count ${G}`);
  if (N % BG !== 0) fail(`lhs batch ${N} is not divisible by batch_group_count ${BG}`);
  if (O % BG !== 0) fail(`rhs output features ${O} are not divisible by batch_group_count ${BG}`);
  const inSp: number[] = [];
  const kSp: number[] = [];
  const outSp: number[] = [];
  for (let d = 0; d < nsp; d++) {
    const n = lhs.shape[dims!.lhs[2 + d]!]!;
    const k = rhs.shape[dims!.rhs[2 + d]!]!;
    const [lo, hi] = padding[d]!;
    const padded = dilated(n, ldil[d]!) + lo + hi;
    if (padded < 0) fail(`padding (${lo}, ${hi}) crops spatial dimension ${d} (size ${n}, dilated ${dilated(n, ldil[d]!)}) below zero`);
    const kd = dilated(k, rdil[d]!);
    inSp.push(n);
    kSp.push(k);
    outSp.push(Math.max(0, Math.floor((padded - kd) / strides[d]!) + 1));
  }
  const outShape = new Array<number>(r);
  outShape[dims!.out[0]!] = N / BG;
  outShape[dims!.out[1]!] = O;
  for (let d = 0; d < nsp; d++) outShape[dims!.out[2 + d]!] = outSp[d]!;
  return { nsp, N, C, O, I, G, BG, inSp, kSp, outSp, outShape };
}

/**
 * For each flat kernel position pk and flat output position q, the flat (row-major) offset of
 * the lhs element it reads, or -1 when it falls in padding or a dilation hole. Layout [pk][q].
 */
function windowTable(g: ConvGeom, p: ConvParams): Int32Array {
  const { nsp, inSp, kSp, outSp } = g;
  const inStr = stridesOf(inSp);
  // per spatial dim: [k][y] -> offset contribution or -1
  const maps = inSp.map((n, d) => {
    const K = kSp[d]!;
    const Y = outSp[d]!;
    const m = new Int32Array(K * Y);
    const s = p.windowStrides[d]!;
    const ld = p.lhsDilation[d]!;
    const rd = p.rhsDilation[d]!;
    const lo = p.padding[d]![0];
    for (let k = 0; k < K; k++) {
      for (let y = 0; y < Y; y++) {
        const q = y * s + k * rd - lo; // position in the dilated, unpadded lhs
        let v = -1;
        if (q >= 0 && q % ld === 0 && q / ld < n) v = (q / ld) * inStr[d]!;
        m[k * Y + y] = v;
      }
    }
    return m;
  });
  const Pk = sizeOf(kSp);
  const Pout = sizeOf(outSp);
  const table = new Int32Array(Pk * Pout);
  const kIdx = new Array<number>(nsp).fill(0);
  let cur = new Int32Array(Pout);
  let next = new Int32Array(Pout);
  for (let pk = 0; pk < Pk; pk++) {
    let rem = pk;
    for (let d = nsp - 1; d >= 0; d--) {
      kIdx[d] = rem % kSp[d]!;
      rem = Math.floor(rem / kSp[d]!);
    }
    // expand the row dimension by dimension: row over (y_0..y_d)
    cur[0] = 0;
    let len = 1;
    for (let d = 0; d < nsp; d++) {
      const Y = outSp[d]!;
      const base = kIdx[d]! * Y;
      const m = maps[d]!;
      for (let j = 0; j < len; j++) {
        const c = cur[j]!;
        for (let y = 0; y < Y; y++) {
          const v = m[base + y]!;
          next[j * Y + y] = c < 0 || v < 0 ? -1 : c + v;
        }
      }
      len *= Y;
      [cur, next] = [next, cur];
    }
    table.set(cur.subarray(0, Pout), pk * Pout);
  }
  return table;
}

interface ConvSizes {
  Nb: number;
  C: number;
  O: number;
  I: number;
  Og: number;
  Ob: number;
  U: number;
  Pin: number;
  Pk: number;
  Pout: number;
}

/**
 * Float convolution as GEMMs: for each output batch and block of U output features that read
 * the same lhs slice, gather the (I*Pk, Pout) patch matrix once and multiply by the kernels.
 */
function im2colConv(X: Float64Array, W: Float64Array, acc: Float64Array, table: Int32Array, z: ConvSizes): void {
  const { Nb, C, O, I, Og, Ob, U, Pin, Pk, Pout } = z;
  const R = I * Pk;
  const rowMajor = Pout >= 16; // patches [r][q] (long output rows) or [q][r] (dot products)
  const patches = new Float64Array(R * Pout);
  for (let n = 0; n < Nb; n++) {
    for (let o0 = 0; o0 < O; o0 += U) {
      const fg = Math.floor(o0 / Og);
      const nIn = Math.floor(o0 / Ob) * Nb + n;
      for (let c = 0; c < I; c++) {
        const xOff = (nIn * C + fg * I + c) * Pin;
        for (let pk = 0; pk < Pk; pk++) {
          const r = c * Pk + pk;
          const tOff = pk * Pout;
          if (rowMajor) {
            const pOff = r * Pout;
            for (let q = 0; q < Pout; q++) {
              const t = table[tOff + q]!;
              patches[pOff + q] = t >= 0 ? X[xOff + t]! : 0;
            }
          } else {
            for (let q = 0; q < Pout; q++) {
              const t = table[tOff + q]!;
              patches[q * R + r] = t >= 0 ? X[xOff + t]! : 0;
            }
          }
        }
      }
      for (let o = o0; o < o0 + U; o++) {
        const accOff = (n * O + o) * Pout;
        const wOff = o * R;
        if (rowMajor) {
          for (let r = 0; r < R; r++) {
            const wv = W[wOff + r]!;
            const pOff = r * Pout;
            for (let q = 0; q < Pout; q++) acc[accOff + q] = acc[accOff + q]! + wv * patches[pOff + q]!;
          }
        } else {
          for (let q = 0; q < Pout; q++) {
            const pOff = q * R;
            let sum = 0;
            for (let r = 0; r < R; r++) sum += W[wOff + r]! * patches[pOff + r]!;
            acc[accOff + q] = sum;
          }
        }
      }
    }
  }
}

/**
 * Direct float or integer convolution over the sparse form of the window table (padding and
 * dilation holes dropped). For each row (a kernel tap when output rows are long, else an
 * output position) it lists the valid (column, lhs offset) pairs.
 */
function directConv(X: Float64Array, W: Float64Array, acc: Float64Array, table: Int32Array, nnz: number, integer: boolean, z: ConvSizes): void {
  const { Nb, C, O, I, Og, Ob, Pin, Pk, Pout } = z;
  const byTap = Pout >= Pk;
  const rows = byTap ? Pk : Pout;
  const cols = byTap ? Pout : Pk;
  const rowStart = new Int32Array(rows + 1);
  const colIdx = new Int32Array(nnz);
  const off = new Int32Array(nnz);
  let e = 0;
  for (let r = 0; r < rows; r++) {
    rowStart[r] = e;
    for (let c = 0; c < cols; c++) {
      const t = byTap ? table[r * Pout + c]! : table[c * Pout + r]!;
      if (t >= 0) {
        colIdx[e] = c;
        off[e++] = t;
      }
    }
  }
  rowStart[rows] = e;
  for (let n = 0; n < Nb; n++) {
    for (let o = 0; o < O; o++) {
      const fg = Math.floor(o / Og);
      const nIn = Math.floor(o / Ob) * Nb + n;
      const accOff = (n * O + o) * Pout;
      for (let c = 0; c < I; c++) {
        const xOff = (nIn * C + fg * I + c) * Pin;
        const wOff = (o * I + c) * Pk;
        if (byTap) {
          // scatter each kernel tap over the output row
          for (let pk = 0; pk < Pk; pk++) {
            const wv = W[wOff + pk]!;
            const end = rowStart[pk + 1]!;
            if (integer) {
              for (let j = rowStart[pk]!; j < end; j++) {
                const q = accOff + colIdx[j]!;
                acc[q] = (acc[q]! + Math.imul(wv, X[xOff + off[j]!]!)) | 0;
              }
            } else {
              for (let j = rowStart[pk]!; j < end; j++) {
                const q = accOff + colIdx[j]!;
                acc[q] = acc[q]! + wv * X[xOff + off[j]!]!;
              }
            }
          }
        } else {
          // one dot product per output position (large kernels, small outputs)
          for (let q = 0; q < Pout; q++) {
            const end = rowStart[q + 1]!;
            let sum = acc[accOff + q]!;
            if (integer) {
              for (let j = rowStart[q]!; j < end; j++) sum = (sum + Math.imul(W[wOff + colIdx[j]!]!, X[xOff + off[j]!]!)) | 0;
            } else {
              for (let j = rowStart[q]!; j < end; j++) sum += W[wOff + colIdx[j]!]! * X[xOff + off[j]!]!;
            }
            acc[accOff + q] = sum;
          }
        }
      }
    }
  }
}

function convImpl(x: HostArray, w: HostArray, p: ConvParams, ctx: ImplContext): HostArray {
  const g = convGeom(x, w, p);
  const { N, C, O, I, G, BG, inSp, kSp, outSp } = g;
  const Nb = N / BG;
  const sizes: ConvSizes = { Nb, C, O, I, Og: O / G, Ob: O / BG, U: O / (G * BG), Pin: sizeOf(inSp), Pk: sizeOf(kSp), Pout: sizeOf(outSp) };
  const acc = new Float64Array(Nb * O * sizes.Pout);
  const integer = isIntegerDtype(x.dtype);
  if (acc.length > 0 && sizes.Pk > 0 && I > 0) {
    const X = canonical(x, p.dims.lhs); // [N][C][in...]
    const W = canonical(w, p.dims.rhs); // [O][I][k...]
    const table = windowTable(g, p); // [pk][q]
    let nnz = 0;
    for (let i = 0; i < table.length; i++) if (table[i]! >= 0) nnz++;
    // GEMM when several output features share each patch matrix and it is mostly dense
    if (sizes.U >= 4 && !integer && 2 * nnz >= table.length) im2colConv(X, W, acc, table, sizes);
    else directConv(X, W, acc, table, nnz, integer, sizes);
  }
  const out = alloc(x.dtype, g.outShape, ctx);
  const os = stridesOf(g.outShape);
  const od = out.data;
  const store = storeValue(x.dtype);
  forEachStrided([Nb, O, ...outSp], p.dims.out.map((d) => os[d]!), 0, (i, off) => {
    od[off] = store(acc[i]!);
  });
  return finish(out);
}

const iotaN = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
/** [batch, feature, ...spatial] positions with the first two roles swapped. */
const swap01 = (d: readonly number[]): number[] => [d[1]!, d[0]!, ...d.slice(2)];

/**
 * The kernel regrouped for the lhs cotangent: canonical (O, I, k...) with O = groups * Og
 * becomes (groups * I, Og, k...), output feature g*I + i reading input feature g*Og + j.
 */
function regroupKernel(wc: Tensor, groups: number): Tensor {
  const [O, I, ...ks] = wc.shape as number[];
  const sp = ks.map((_, i) => 3 + i);
  let t = ops.reshape(wc, [groups, O! / groups, I!, ...ks]);
  t = ops.transpose(t, [0, 2, 1, ...sp]);
  return ops.reshape(t, [groups * I!, O! / groups, ...ks]);
}

/** d(out)/d(lhs)^T ct: a conv of ct with the spatially reversed kernel. */
function convLhsCotangent(ct: Tensor, w: Tensor, p: ConvParams, g: ConvGeom): Tensor {
  const { dims } = p;
  const nsp = g.nsp;
  const groups = g.G * g.BG;
  const spatialAxes = dims.rhs.slice(2);
  const wr = spatialAxes.length ? bind1('rev', [w], { axes: [...spatialAxes].sort((a, b) => a - b) }) : w;
  let rhs: Tensor;
  let rhsDims: number[];
  if (groups === 1) {
    rhs = wr;
    rhsDims = swap01(dims.rhs);
  } else {
    rhs = regroupKernel(ops.transpose(wr, dims.rhs), groups);
    rhsDims = iotaN(nsp + 2);
  }
  const padding = g.inSp.map((n, d): [number, number] => {
    const kd = dilated(g.kSp[d]!, p.rhsDilation[d]!);
    const lo = p.padding[d]![0];
    return [kd - 1 - lo, dilated(n, p.lhsDilation[d]!) + lo - dilated(g.outSp[d]!, p.windowStrides[d]!)];
  });
  const params: ConvParams = {
    windowStrides: [...p.lhsDilation],
    padding,
    lhsDilation: [...p.windowStrides],
    rhsDilation: [...p.rhsDilation],
    featureGroupCount: groups,
    batchGroupCount: 1,
    dims: { lhs: [...dims.out], rhs: rhsDims, out: g.BG > 1 ? iotaN(nsp + 2) : [...dims.lhs] },
  };
  let dx = bind1('conv_general', [ct, rhs], params);
  if (g.BG > 1) {
    // (Nb, BG*C, sp...) -> (BG*Nb, C, sp...): feature block b holds lhs batch block b
    const sp = g.inSp;
    const Nb = g.N / g.BG;
    dx = ops.reshape(dx, [Nb, g.BG, g.C, ...sp]);
    dx = ops.transpose(dx, [1, 0, 2, ...sp.map((_, i) => 3 + i)]);
    dx = ops.reshape(dx, [g.N, g.C, ...sp]);
    dx = ops.transpose(dx, invPerm(dims.lhs));
  }
  return dx;
}

/** d(out)/d(rhs)^T ct: a conv of lhs with ct, batch and feature roles swapped. */
function convRhsCotangent(ct: Tensor, x: Tensor, p: ConvParams, g: ConvGeom): Tensor {
  const { dims } = p;
  const padding = g.inSp.map((n, d): [number, number] => {
    const lo = p.padding[d]![0];
    const kd = dilated(g.kSp[d]!, p.rhsDilation[d]!);
    return [lo, kd - 1 + dilated(g.outSp[d]!, p.windowStrides[d]!) - dilated(n, p.lhsDilation[d]!) - lo];
  });
  const params: ConvParams = {
    windowStrides: [...p.rhsDilation],
    padding,
    lhsDilation: [...p.lhsDilation],
    rhsDilation: [...p.windowStrides],
    featureGroupCount: g.BG,
    batchGroupCount: g.G,
    dims: { lhs: swap01(dims.lhs), rhs: swap01(dims.out), out: swap01(dims.rhs) },
  };
  return bind1('conv_general', [x, ct], params);
}

const conv_general: PrimDef<ConvParams> = {
  lowering: 'contraction',
  shape: (inputs, p) => {
    expectArity('conv_general', inputs, 2);
    return [{ shape: convGeom(inputs[0]!, inputs[1]!, p).outShape, dtype: inputs[0]!.dtype }];
  },
  impl: ([x, w], p, ctx) => [convImpl(x!, w!, p, ctx)],
  jvp: ([x, w], [tx, tw], p) => {
    if (!isFloat(x!.dtype)) return [null];
    const t1 = tx ? bind1('conv_general', [tx, w!], p) : null;
    const t2 = tw ? bind1('conv_general', [x!, tw], p) : null;
    return [t1 && t2 ? ops.add(t1, t2) : (t1 ?? t2)];
  },
  vjp: ([x, w], _y, [ct], p): MaybeTensor[] => {
    if (!ct || !isFloat(x!.dtype)) return [null, null];
    const g = convGeom(x!, w!, p);
    return [convLhsCotangent(ct, w!, p, g), convRhsCotangent(ct, x!, p, g)];
  },
};

export const contractionPrims = { dot_general, conv_general };
