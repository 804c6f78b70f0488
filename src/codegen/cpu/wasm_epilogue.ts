/**
 * Matmul epilogues compiled to WebAssembly SIMD (the JavaScript epilogue in matmul.ts is the
 * fallback). After the K loop the product tile Ct (rows [_c0, _c1) of one batch entry, columns
 * [_jc, _jc + _nc), row stride NCP) lives in the executable's WebAssembly memory; one generated
 * function `epi(rows, nc)` evaluates every output expression over the tile and writes the
 * results back into wasm memory, and the JavaScript around it moves data in and out:
 *
 *   1. outputs that are just `acc 0` are copied out of Ct first;
 *   2. the other buffers the expressions load (bias, residual, per-row scalars) are staged
 *      into the scratch area S behind Ct: a run of consecutive n per row (stride 1 in n) or
 *      one element per row (stride 0), once per tile, with a single `set` when the rows are
 *      contiguous in the source;
 *   3. G(1, rows, nc) runs the epilogue (G is the GEMM micro-kernel and the epilogue in one
 *      module, wasm.ts gemmEpilogueModuleBytes), in place over Ct for the first output;
 *   4. the computed outputs are copied to their buffers (one `set` per tile when contiguous).
 *
 * Expressible: f32 kernels and f32 buffers whose output expressions are built from acc 0,
 * constants, loads whose index is (anything in b, m) + s * n with s in {0, 1}, neg, abs,
 * sqrt, rsqrt, erf (the erf32 rational approximation of common.ts, same coefficients and
 * clamping), add, sub, mul, div, max, min, cmp + select and f32 -> f32 casts, stored at an
 * index (anything in b, m) + n, or added into a reducing output at (anything in b) + n (GRN's
 * sum of squares over the rows: staged like a bias vector, summed row by row in the tile).
 *
 * Lanes. The JavaScript epilogue evaluates f32 expressions in double precision and rounds once,
 * at the store. 'f64x2' does the same (f32 loads promoted to f64, every operation in f64 in the
 * same order, one demotion at the store) and matches it bit for bit, at about half the speed.
 * 'f32x4' (the default) rounds every operation to f32 instead (XLA's f32 semantics; erf's
 * polynomial in f32): a few ulp from the JavaScript results, and more in relative terms where
 * 1 + erf(x) cancels (GELU at x < -3, where the values are tiny: the absolute difference stays
 * under ~2e-6 * max(1, |result|)). max, min and select are
 * bitselects that keep the JavaScript comparisons' NaN and signed-zero behavior:
 * max(a, b) = (a > b || a !== a) ? a : b.
 */
import { AX } from '../kernel/axis.js';
import type { DType } from '../../ir/dtype.js';
import { affineStrides, type Idx, idxKey, idxVars } from '../kernel/index_expr.js';
import type { KernelOutput, SExpr } from '../kernel/kernel_graph.js';
import type { CodeBuilder } from './scope.js';
import { bufName } from './scope.js';
import { ADD, BLOCK, br, brIf, END, I32, i32c, lget, LOOP, lset, simd, type WasmFunc, V128, validGemmEpilogue, wasmBody } from './wasm.js';
import { DEMOTE, type EpilogueLanes, exprCompiler, exprSupported, LANES, memarg, PROMOTE } from './wasm_expr.js';

export type { EpilogueLanes };

/** The GEMM's tile geometry (elements unless named bytes). */
export interface EpilogueGeometry {
  /** Columns of C. */
  readonly N: number;
  /** Column block. */
  readonly NC: number;
  /** Row stride of Ct. */
  readonly NCP: number;
  /** Most rows in a Ct chunk. */
  readonly RCH: number;
  /** Whether one column block covers N (then _jc = 0 and _nc = N). */
  readonly singleN: boolean;
  /** Byte offset of Ct in the wasm memory. */
  readonly ctOff: number;
  /** Byte offset of the staging area S (after Ct). */
  readonly sOff: number;
  /** Rows per reduction group when row chunks end at group boundaries (MatmulKernel.reduceRows). */
  readonly groupRows?: number;
}

/** A buffer the epilogue reads, staged into S. */
interface LoadStream {
  readonly key: string;
  readonly buf: number;
  /** The load index without its n term (variables b, m). */
  readonly row: Idx;
  /** tile: per row, nc elements; rowscalar: one element per row; vector: nc elements shared by all rows; scalar: one element. */
  readonly mode: 'tile' | 'rowscalar' | 'vector' | 'scalar';
  /** tile: rows are consecutive in the source (one copy per chunk). */
  readonly contiguous: boolean;
  /** Element offset in S and row stride (elements) there. */
  readonly area: number;
  readonly ld: number;
}

interface OutStream {
  readonly buf: number;
  readonly row: Idx;
  readonly expr: SExpr;
  /** false: the output is `acc 0`, copied straight from Ct. */
  readonly computed: boolean;
  /**
   * A reducing output (accumulate + init zero, index (b only) + n): its nc running sums are
   * staged into S before the tile, the epilogue adds each row's values in row order, and they
   * are copied back after it (the same order of additions as the JavaScript epilogue, so the
   * sums do not depend on how rows are split across threads).
   */
  readonly reduce: boolean;
  /** Where the values are: Ct (in place) or S, at an element offset, with a row stride. */
  readonly src: 'Ct' | 'S';
  readonly area: number;
  readonly ld: number;
  readonly contiguous: boolean;
}

export interface EpiloguePlan {
  readonly loads: readonly LoadStream[];
  readonly outputs: readonly OutStream[];
  /** Elements of the staging area S. */
  readonly sElems: number;
  /** The epilogue function (null when every output is `acc 0`). */
  readonly func: WasmFunc | null;
  readonly lanes: EpilogueLanes;
}

/** An index as (row part in b, m) + stride * n; null when n appears otherwise or other variables do. */
function splitN(x: Idx): { row: Idx; stride: number } | null {
  let stride = 0;
  const rest: Idx['terms'][number][] = [];
  for (const t of x.terms) {
    if (t.atom.k === 'var') {
      if (t.atom.axis === AX.n) {
        stride += t.coef;
        continue;
      }
      if (t.atom.axis !== AX.b && t.atom.axis !== AX.m) return null;
    } else {
      for (const v of idxVars(t.atom.a)) if (v !== AX.b && v !== AX.m) return null;
    }
    rest.push(t);
  }
  return { row: { c: x.c, terms: rest }, stride };
}

/** Rows of `row` are N apart (so a chunk of rows x N is one contiguous run). */
function rowsContiguous(row: Idx, g: EpilogueGeometry): boolean {
  if (!g.singleN) return false;
  const a = affineStrides(row);
  return a !== null && (a.strides.get(AX.m) ?? 0) === g.N;
}

/**
 * The wasm plan for a matmul's epilogue outputs, or null when some output is not expressible
 * (then the JavaScript epilogue runs).
 */
export function planWasmEpilogue(outputs: readonly KernelOutput[], dtypes: ReadonlyMap<number, DType>, kernelDtype: DType, g: EpilogueGeometry, lanes: EpilogueLanes = 'f32x4'): EpiloguePlan | null {
  const reducing = (o: KernelOutput): boolean => o.accumulate === true && o.init === 'zero';
  if (kernelDtype !== 'f32' || outputs.length === 0 || outputs.some((o) => o.dyn || o.when || (o.accumulate && !reducing(o)))) return null;
  const outBufs = new Set(outputs.map((o) => o.buf));
  const streams = new Map<string, { buf: number; row: Idx; stride: number }>();
  const leafOk = (e: SExpr): boolean => {
    if (e.op === 'acc') return e.id === 0;
    if (e.op !== 'load') return false;
    const s = splitN(e.index);
    const good = !e.dyn && dtypes.get(e.buf) === 'f32' && !outBufs.has(e.buf) && s !== null && (s.stride === 0 || s.stride === 1);
    if (good) streams.set(streamKey(e.buf, e.index), { buf: e.buf, row: s!.row, stride: s!.stride });
    return good;
  };
  const memo = new Map<SExpr, string>();
  const outRows: Idx[] = [];
  for (const o of outputs) {
    if (dtypes.get(o.buf) !== 'f32') return null;
    const s = splitN(o.index);
    if (!s || s.stride !== 1) return null;
    // a reducing output sums over rows: its row part depends on m only through the group,
    // floor(m / reduceRows) (the kernel's contract), and the GEMM ends its row chunks at group
    // boundaries (groupRows), so the part is one value per chunk
    if (reducing(o) && idxVars(s.row).has(AX.m) && !g.groupRows) return null;
    if (!exprSupported(o.expr, 'f32', leafOk, memo)) return null;
    outRows.push(s.row);
  }

  // staging layout in S (elements)
  let sElems = 0;
  const take = (n: number): number => {
    const at = sElems;
    sElems += Math.ceil(n / 16) * 16;
    return at;
  };
  const loads: LoadStream[] = [];
  for (const [key, s] of streams) {
    const mDep = idxVars(s.row).has(AX.m);
    if (s.stride === 1 && mDep) {
      const contiguous = rowsContiguous(s.row, g);
      const ld = contiguous ? g.N : g.NC;
      loads.push({ key, buf: s.buf, row: s.row, mode: 'tile', contiguous, area: take(g.RCH * ld), ld });
    } else if (s.stride === 1) {
      loads.push({ key, buf: s.buf, row: s.row, mode: 'vector', contiguous: false, area: take(g.NC), ld: 0 });
    } else if (mDep) {
      loads.push({ key, buf: s.buf, row: s.row, mode: 'rowscalar', contiguous: false, area: take(g.RCH), ld: 1 });
    } else {
      loads.push({ key, buf: s.buf, row: s.row, mode: 'scalar', contiguous: false, area: take(1), ld: 0 });
    }
  }
  const outs: OutStream[] = [];
  let ctUsed = false;
  outputs.forEach((o, i) => {
    const row = outRows[i]!;
    if (reducing(o)) {
      outs.push({ buf: o.buf, row, expr: o.expr, computed: true, reduce: true, src: 'S', area: take(g.NC), ld: 0, contiguous: false });
      return;
    }
    const contiguous = rowsContiguous(row, g);
    const computed = !(o.expr.op === 'acc');
    if (!computed) {
      outs.push({ buf: o.buf, row, expr: o.expr, computed, reduce: false, src: 'Ct', area: 0, ld: g.NCP, contiguous: contiguous && g.N === g.NCP });
      return;
    }
    // the first computed output overwrites Ct (acc-only outputs are copied out before)
    if (!ctUsed && (!contiguous || g.N === g.NCP)) {
      ctUsed = true;
      outs.push({ buf: o.buf, row, expr: o.expr, computed, reduce: false, src: 'Ct', area: 0, ld: g.NCP, contiguous });
      return;
    }
    const ld = contiguous ? g.N : g.NCP;
    outs.push({ buf: o.buf, row, expr: o.expr, computed, reduce: false, src: 'S', area: take(g.RCH * ld), ld, contiguous });
  });
  const plan = { loads, outputs: outs, sElems, lanes };
  const func = outs.some((o) => o.computed) ? epilogueFunc(plan, g, lanes) : null;
  if (func && !validGemmEpilogue(func)) return null;
  return { ...plan, func };
}

const streamKey = (buf: number, index: Idx): string => `${buf}@${idxKey(index)}`;

// ---------------------------------------------------------------------------------------
// WebAssembly

const GT_S = [0x4a];
const SHL = [0x74];

/**
 * The epilogue function epi(rows, nc): for each of `rows` rows and each n < nc, evaluates the
 * computed outputs (reading Ct and the staged loads) and stores them at their areas. The main
 * loop takes W lanes (f64x2: 2, f32x4: 4) times `unroll` at a time, then W, then single
 * elements.
 */
function epilogueFunc(plan: { loads: readonly LoadStream[]; outputs: readonly OutStream[] }, g: EpilogueGeometry, lanes: EpilogueLanes, unroll = 1): WasmFunc {
  const L = LANES[lanes];
  const f64 = lanes === 'f64x2';
  const W = L.W;
  const P_ROWS = 0;
  const P_NC = 1;
  let nl = 2;
  const R = nl++;
  const NB = nl++;
  const NCB = nl++;
  // byte addresses: constants for row-invariant streams, a per-row pointer local otherwise
  interface Addr {
    readonly local: number;
    readonly base: number;
    readonly ldB: number;
    readonly stride: 0 | 1;
  }
  const ptrs: Addr[] = [];
  const addrOf = (base: number, ldB: number, stride: 0 | 1): Addr => {
    const a: Addr = { local: ldB !== 0 ? nl++ : -1, base, ldB, stride };
    if (a.local >= 0) ptrs.push(a);
    return a;
  };
  const ctAddr = addrOf(g.ctOff, g.NCP * 4, 1);
  const loadAddr = new Map<string, Addr>();
  for (const s of plan.loads) loadAddr.set(s.key, addrOf(g.sOff + s.area * 4, s.ld * 4, s.mode === 'tile' || s.mode === 'vector' ? 1 : 0));
  const computed = plan.outputs.filter((o) => o.computed);
  const outAddr = computed.map((o) => addrOf((o.src === 'Ct' ? g.ctOff : g.sOff) + o.area * 4, o.ld * 4, 1));
  const nI32 = nl - 2;
  const vBase = nl;
  const vb = wasmBody(vBase);
  const { code, e, vLocal } = vb;
  /** Pushes the address operand of a stream access; returns the memarg offset. */
  const address = (a: Addr, off: number): number => {
    if (a.local >= 0) {
      e(lget(a.local));
      if (a.stride === 1) e(lget(NB), ADD);
      return off;
    }
    if (a.stride === 1) {
      e(lget(NB));
      return a.base + off;
    }
    e(i32c(0));
    return a.base;
  };

  /** Loads a stream's lanes as a vector of the lane type. */
  const load = (a: Addr, one: boolean, off: number): void => {
    const o = address(a, a.stride === 1 ? off : 0);
    if (a.stride === 0) e(simd(0x09, ...memarg(o)));
    else if (one) e(simd(0x5c, ...memarg(o)));
    else e(f64 ? simd(0x5d, ...memarg(o)) : simd(0x00, ...memarg(o)));
    if (f64) e(PROMOTE);
  };

  /** One instance of the loop body over `one` ? 1 : W lanes at byte offset `off` from NB. */
  const body = (one: boolean, off: number): void => {
    const { value } = exprCompiler(e, L, vLocal, (x) => {
      if (x.op === 'acc') load(ctAddr, one, off);
      else if (x.op === 'load') load(loadAddr.get(streamKey(x.buf, x.index))!, one, off);
    });
    const vals = computed.map((o) => value(o.expr));
    computed.forEach((o, i) => {
      const a = outAddr[i]!;
      const mo = address(a, off);
      if (o.reduce) {
        load(a, one, off);
        e(lget(vals[i]!), simd(L.add));
      } else e(lget(vals[i]!));
      if (f64) e(DEMOTE);
      if (one) e(simd(0x5a, ...memarg(mo), 0));
      else e(f64 ? simd(0x5b, ...memarg(mo), 0) : simd(0x0b, ...memarg(mo)));
    });
  };

  /** while (NB + step * 4 <= NCB) { bodies; NB += step * 4 } */
  const loop = (step: number, copies: number, one: boolean): void => {
    e(BLOCK, LOOP);
    e(lget(NB), i32c(step * 4), ADD, lget(NCB), GT_S, brIf(1));
    for (let j = 0; j < copies; j++) body(one, j * W * 4);
    e(lget(NB), i32c(step * 4), ADD, lset(NB), br(0));
    e(END, END);
  };

  e(lget(P_NC), i32c(2), SHL, lset(NCB));
  for (const a of ptrs) e(i32c(a.base), lset(a.local));
  e(i32c(0), lset(R));
  e(BLOCK, LOOP);
  e(lget(R), lget(P_ROWS), [0x4e] /* i32.ge_s */, brIf(1));
  e(i32c(0), lset(NB));
  if (unroll > 1) loop(W * unroll, unroll, false);
  loop(W, 1, false);
  if (W > 1) loop(1, 1, true);
  for (const a of ptrs) e(lget(a.local), i32c(a.ldB), ADD, lset(a.local));
  e(lget(R), i32c(1), ADD, lset(R), br(0));
  e(END, END);
  return {
    params: 2,
    locals: [
      [nI32, I32],
      [Math.max(vb.nV, 1), V128],
    ],
    code,
  };
}

// ---------------------------------------------------------------------------------------
// JavaScript around it

/**
 * Emits the epilogue of one tile (inside the column-block loop of emitGemm, where b, _c0, _c1,
 * _jc and _nc are defined; `Ct` and `S` are the scratch views and G the combined function).
 */
export function emitWasmEpilogueJs(cb: CodeBuilder, plan: EpiloguePlan, g: EpilogueGeometry): void {
  cb.line('const _rows = _c1 - _c0;');
  /** Code per row m in [_c0, _c1). */
  const perRow = (body: () => void): void => {
    cb.open('m');
    body();
    cb.close('for (let m = _c0; m < _c1; m++)');
  };
  /** Code for the chunk's first row (m = _c0). */
  const firstRow = (body: () => void): void => {
    cb.open('m');
    cb.line('const m = _c0;');
    body();
    cb.close('');
  };
  const copyOut = (o: OutStream): void => {
    const dst = bufName(o.buf);
    if (o.contiguous) {
      firstRow(() => cb.line(`${dst}.set(${o.src}.subarray(${o.area}, ${o.area} + _rows * ${g.N}), ${cb.index(o.row)});`));
    } else {
      perRow(() => {
        cb.line(`const _o = ${o.area} + (m - _c0) * ${o.ld}, _i = ${cb.index(o.row)} + _jc;`);
        cb.line(`for (let _n = 0; _n < _nc; _n++) ${dst}[_i + _n] = ${o.src}[_o + _n];`);
      });
    }
  };
  for (const o of plan.outputs) if (!o.computed) copyOut(o);
  for (const o of plan.outputs) {
    if (!o.reduce) continue;
    firstRow(() => {
      const i = cb.index(o.row);
      cb.line(`S.set(${bufName(o.buf)}.subarray(${i} + _jc, ${i} + _jc + _nc), ${o.area});`);
    });
  }
  for (const s of plan.loads) {
    const src = bufName(s.buf);
    switch (s.mode) {
      case 'scalar':
        cb.line(`S[${s.area}] = ${src}[${cb.index(s.row)}];`);
        break;
      case 'vector': {
        const i = cb.index(s.row);
        cb.line(`S.set(${src}.subarray(${i} + _jc, ${i} + _jc + _nc), ${s.area});`);
        break;
      }
      case 'rowscalar':
        perRow(() => cb.line(`S[${s.area} + m - _c0] = ${src}[${cb.index(s.row)}];`));
        break;
      case 'tile':
        if (s.contiguous) {
          firstRow(() => {
            const i = cb.index(s.row);
            cb.line(`S.set(${src}.subarray(${i}, ${i} + _rows * ${g.N}), ${s.area});`);
          });
        } else {
          perRow(() => {
            cb.line(`const _o = ${s.area} + (m - _c0) * ${s.ld}, _i = ${cb.index(s.row)} + _jc;`);
            cb.line(`for (let _n = 0; _n < _nc; _n++) S[_o + _n] = ${src}[_i + _n];`);
          });
        }
        break;
    }
  }
  if (plan.func) cb.line('G(1, _rows, _nc);');
  for (const o of plan.outputs) {
    if (!o.computed) continue;
    if (!o.reduce) {
      copyOut(o);
      continue;
    }
    firstRow(() => {
      const i = cb.index(o.row);
      cb.line(`${bufName(o.buf)}.set(S.subarray(${o.area}, ${o.area} + _nc), ${i} + _jc);`);
    });
  }
}
