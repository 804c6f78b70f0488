/**
 * Row-reduction loop kernels in WebAssembly SIMD: LayerNorm (its statistics, and its apply when
 * the kernel stores the normalized rows) where no GEMM can take it as a prologue, as before
 * ConvNeXt's downsample layers. A loop kernel qualifies when its row is one contiguous axis of
 * R elements (R a multiple of 4), its reductions are f32 sums, and every load and store is one
 * of
 *   - a tile: element base + R u + r of the flattened outer index u and the row index r,
 *   - a vector over the row: base + r (gamma, beta, a bias),
 *   - one value per outer item: base + u,
 * over f32 buffers, with expressions wasm_expr.ts compiles. The JavaScript around the module
 * stages a chunk of outer items (one copy per tile buffer, the rows being contiguous), calls
 * rows(n), and copies the outputs back (one copy each).
 *
 * Per item, each reduction sums its expression in four f32 lanes over the row (then across the
 * lanes), as the GEMM prologue's statistics do; values that do not depend on the row (LayerNorm's
 * mean and 1 / sqrt(var + eps)) are computed once per item; row outputs are stored 4 at a time.
 * Numerics: every operation rounds to f32 (the JavaScript loop evaluates in double and rounds
 * at the store), the policy of the WebAssembly epilogues.
 */
import type { DType } from '../../ir/dtype.js';
import { affineStrides, type Idx } from '../kernel/index_expr.js';
import type { KernelOutput, LoopKernel, SExpr } from '../kernel/kernel_graph.js';
import { type JsKernelCode, wrapFunction } from './common.js';
import { bufName, CodeBuilder } from './scope.js';
import { ADD, BLOCK, br, brIf, END, GE_S, I32, i32c, lget, LOOP, lset, MUL, simd, type WasmFunc, V128, validFunc, wasmBody } from './wasm.js';
import { exprCompiler, exprSupported, LANES, memarg } from './wasm_expr.js';

/** Outer items per staged chunk (bounds the staging area: CHUNK x R floats per tile stream). */
const CHUNK = 64;

/** Fewer row elements than this stay in JavaScript (staging and a call would not pay). */
const MIN_ELEMENTS = 4096;

type Mode = 'tile' | 'vector' | 'item';

interface Stream {
  readonly buf: number;
  readonly base: number;
  readonly mode: Mode;
  /** Byte offset of its area in the module's memory. */
  readonly area: number;
}

interface OutStream {
  readonly out: KernelOutput;
  readonly base: number;
  readonly row: boolean;
  readonly area: number;
}

export interface RowLoopPlan {
  readonly R: number;
  readonly total: number;
  readonly streams: readonly Stream[];
  readonly outs: readonly OutStream[];
  readonly bytes: number;
  readonly func: WasmFunc;
}

/** The row variable's name and the outer variables' flat strides (extent-1 axes are the constant 0). */
function geometry(k: LoopKernel): { R: number; rowVar: string; flat: Map<string, number>; ones: Set<string>; total: number } | null {
  const big = k.row.map((n, i) => [n, i] as const).filter(([n]) => n > 1);
  if (big.length !== 1) return null;
  const [R, ri] = big[0]!;
  const flat = new Map<string, number>();
  let s = 1;
  for (let i = k.outer.length - 1; i >= 0; i--) {
    if (k.outer[i]! > 1) flat.set(`o${i}`, s);
    s *= k.outer[i]!;
  }
  const ones = new Set([...k.outer.flatMap((n, i) => (n === 1 ? [`o${i}`] : [])), ...k.row.flatMap((n, i) => (n === 1 ? [`r${i}`] : []))]);
  return { R, rowVar: `r${ri}`, flat, ones, total: s };
}

/** An index as base + u * (stride per outer item) + r * (stride per row element), or null. */
function decompose(x: Idx, g: { rowVar: string; flat: Map<string, number>; ones: Set<string> }): { base: number; u: number; r: number } | null {
  const a = affineStrides(x);
  if (!a) return null;
  const byName = new Map<string, number>();
  // (axes of extent 1 are the constant 0)
  for (const [ax, st] of a.strides) if (st !== 0 && !g.ones.has(ax.name)) byName.set(ax.name, st);
  const r = byName.get(g.rowVar) ?? 0;
  byName.delete(g.rowVar);
  // the outer axes of extent > 1: all absent (u = 0), or all at (their flat stride) x u
  const present = [...g.flat.keys()].filter((n) => byName.has(n));
  let u = 0;
  if (present.length) {
    if (present.length !== g.flat.size) return null;
    u = byName.get(present[0]!)! / g.flat.get(present[0]!)!;
    if (!Number.isInteger(u) || present.some((n) => byName.get(n) !== u * g.flat.get(n)!)) return null;
  }
  for (const n of byName.keys()) if (!g.flat.has(n)) return null;
  return { base: a.offset, u, r };
}

/** The plan for a loop kernel, or null when it stays in JavaScript. */
export function planRowLoop(k: LoopKernel, dtypes: ReadonlyMap<number, DType>): RowLoopPlan | null {
  const g = geometry(k);
  if (!g || g.R % 4 !== 0 || g.total * g.R < MIN_ELEMENTS) return null;
  const { R } = g;
  if (k.reductions.some((r, j) => r.op !== 'sum' || r.dtype !== 'f32' || r.id !== j)) return null;
  let bytes = 0;
  const take = (elems: number): number => {
    const at = bytes;
    bytes += Math.ceil((elems * 4) / 64) * 64;
    return at;
  };
  const streams = new Map<string, Stream>();
  const loadStream = new Map<SExpr, Stream>();
  const streamOf = (e: SExpr): Stream | null => {
    if (e.op !== 'load' || e.dyn || dtypes.get(e.buf) !== 'f32') return null;
    const known = loadStream.get(e);
    if (known) return known;
    const d = decompose(e.index, g);
    if (!d) return null;
    const mode: Mode | null = d.r === 1 && d.u === R ? 'tile' : d.r === 1 && d.u === 0 ? 'vector' : d.r === 0 && d.u === 1 ? 'item' : null;
    if (!mode) return null;
    const key = `${e.buf}@${d.base}@${mode}`;
    let s = streams.get(key);
    if (!s) {
      s = { buf: e.buf, base: d.base, mode, area: take(mode === 'tile' ? CHUNK * R : mode === 'vector' ? R : CHUNK) };
      streams.set(key, s);
    }
    loadStream.set(e, s);
    return s;
  };
  const leafOk = (nAcc: number) => (e: SExpr): boolean => (e.op === 'acc' ? e.id >= 0 && e.id < nAcc : streamOf(e) !== null);
  for (let j = 0; j < k.reductions.length; j++) if (!exprSupported(k.reductions[j]!.expr, 'f32', leafOk(j))) return null;
  const outs: OutStream[] = [];
  for (const [list, row] of [[k.outerOutputs, false], [k.rowOutputs, true]] as const) {
    for (const o of list) {
      if (o.dyn || o.when || o.accumulate || dtypes.get(o.buf) !== 'f32' || o.expr.dtype !== 'f32') return null;
      const d = decompose(o.index, g);
      if (!d || (row ? d.r !== 1 || d.u !== R : d.r !== 0 || d.u !== 1)) return null;
      if (!exprSupported(o.expr, 'f32', leafOk(k.reductions.length))) return null;
      outs.push({ out: o, base: d.base, row, area: take(row ? CHUNK * R : CHUNK) });
    }
  }
  // (an output over an input buffer: each chunk stages its inputs before it stores; a vector
  // or another chunk's rows read from a written buffer would see the new values)
  const read = new Set([...streams.values()].map((t) => t.buf));
  if (outs.some((o) => read.has(o.out.buf))) return null;
  const func = rowLoopFunc(k, loadStream, outs, R);
  if (!validFunc(func)) return null;
  return { R, total: g.total, streams: [...streams.values()], outs, bytes, func };
}

const F32X4_SPLAT = simd(0x13);
const EXTRACT = (lane: number): number[] => simd(0x1f, lane);
const F32_ADD = [0x92];
const F32_STORE = (off: number): number[] => [0x38, ...memarg(off)];
const VLOAD = (off: number): number[] => simd(0x00, ...memarg(off));
const VSTORE = (off: number): number[] => simd(0x0b, ...memarg(off));
const LOAD_SPLAT = (off: number): number[] => simd(0x09, ...memarg(off));

/** rows(n): items 0..n-1 of the staged chunk (see the file comment). */
function rowLoopFunc(k: LoopKernel, loadStream: ReadonlyMap<SExpr, Stream>, outs: readonly OutStream[], R: number): WasmFunc {
  const L = LANES.f32x4;
  const P = { n: 0 };
  let nl = 1;
  const u = nl++;
  const rowB = nl++; // u * R * 4
  const col = nl++; // bytes within the row
  const itemB = nl++; // u * 4
  const nI32 = nl - 1;
  const vBase = nl;
  const body = wasmBody(vBase);
  const { code, e, vLocal } = body;
  const byLoad = (x: SExpr): Stream => loadStream.get(x)!;
  const accLocals: number[] = [];
  /** A compiler whose leaves read the current item (and, inside a row loop, the current 4 columns). */
  const compiler = (have: Map<SExpr, number>) =>
    exprCompiler(e, L, vLocal, (x) => {
      if (x.op === 'acc') return e(lget(accLocals[x.id]!));
      const s = byLoad(x);
      if (s.mode === 'tile') e(lget(rowB), lget(col), ADD, VLOAD(s.area));
      else if (s.mode === 'vector') e(lget(col), VLOAD(s.area));
      else e(lget(itemB), LOAD_SPLAT(s.area));
    }, have);
  /** Whether a node reads the row (a tile or vector load). */
  const rowMemo = new Map<SExpr, boolean>();
  const readsRow = (x: SExpr): boolean => {
    let d = rowMemo.get(x);
    if (d !== undefined) return d;
    switch (x.op) {
      case 'load':
        d = byLoad(x).mode !== 'item';
        break;
      case 'unary':
      case 'cast':
        d = readsRow(x.a);
        break;
      case 'binary':
      case 'cmp':
        d = readsRow(x.a) || readsRow(x.b);
        break;
      case 'select':
        d = readsRow(x.c) || readsRow(x.a) || readsRow(x.b);
        break;
      default:
        d = false;
    }
    rowMemo.set(x, d);
    return d;
  };
  /** The per-item values (not reading the row) a row body needs, computed before its loop. */
  const hoist = (roots: readonly SExpr[], have: Map<SExpr, number>): void => {
    const c = compiler(have);
    const seen = new Set<SExpr>();
    const walk = (x: SExpr): void => {
      if (seen.has(x)) return;
      seen.add(x);
      if (!readsRow(x)) {
        if (x.op !== 'const') c.value(x);
        return;
      }
      if (x.op === 'unary' || x.op === 'cast') walk(x.a);
      else if (x.op === 'binary' || x.op === 'cmp') (walk(x.a), walk(x.b));
      else if (x.op === 'select') (walk(x.c), walk(x.a), walk(x.b));
    };
    roots.forEach(walk);
  };
  /** A loop over the row's columns, 4 at a time. */
  const rowLoop = (body: () => void): void => {
    e(i32c(0), lset(col));
    e(BLOCK, LOOP);
    e(lget(col), i32c(R * 4), GE_S, brIf(1));
    body();
    e(lget(col), i32c(16), ADD, lset(col), br(0));
    e(END, END);
  };

  e(i32c(0), lset(u));
  e(BLOCK, LOOP);
  e(lget(u), lget(P.n), GE_S, brIf(1));
  e(lget(u), i32c(R * 4), MUL, lset(rowB));
  e(lget(u), i32c(4), MUL, lset(itemB));
  const perItem = new Map<SExpr, number>();
  k.reductions.forEach((r, j) => {
    const have = new Map(perItem);
    hoist([r.expr], have);
    const sum = vLocal();
    e(simd(0x0c, ...new Array<number>(16).fill(0)), lset(sum));
    rowLoop(() => {
      const v = compiler(new Map(have)).value(r.expr);
      e(lget(sum), lget(v), simd(L.add), lset(sum));
    });
    const a = vLocal();
    e(lget(sum), EXTRACT(0), lget(sum), EXTRACT(1), F32_ADD, lget(sum), EXTRACT(2), F32_ADD, lget(sum), EXTRACT(3), F32_ADD, F32X4_SPLAT, lset(a));
    accLocals[j] = a;
  });
  // outer outputs, then the row outputs with their per-item parts hoisted
  const itemVals = new Map<SExpr, number>();
  const ic = compiler(itemVals);
  for (const o of outs.filter((x) => !x.row)) {
    const v = ic.value(o.out.expr);
    e(lget(itemB), lget(v), EXTRACT(0), F32_STORE(o.area));
  }
  const rowOuts = outs.filter((x) => x.row);
  if (rowOuts.length) {
    hoist(rowOuts.map((o) => o.out.expr), itemVals);
    rowLoop(() => {
      const c = compiler(new Map(itemVals));
      for (const o of rowOuts) {
        const v = c.value(o.out.expr);
        e(lget(rowB), lget(col), ADD, lget(v), VSTORE(o.area));
      }
    });
  }
  e(lget(u), i32c(1), ADD, lset(u), br(0));
  e(END, END);
  return {
    params: 1,
    locals: [
      [nI32, I32],
      [body.nV, V128],
    ],
    code,
  };
}

/** The kernel's JavaScript: chunks of outer items staged, rows(n), outputs copied back. */
export function emitRowLoopJs(k: LoopKernel, plan: RowLoopPlan, bufs: readonly number[], workPerItem: number): JsKernelCode {
  const cb = new CodeBuilder();
  const { R } = plan;
  const at = (byteOff: number): number => byteOff / 4;
  for (const s of plan.streams) if (s.mode === 'vector') cb.line(`M.set(${bufName(s.buf)}.subarray(${s.base}, ${s.base + R}), ${at(s.area)});`);
  cb.line(`for (let _u = start; _u < end; _u += ${CHUNK}) {`);
  cb.line(`  const _n = end - _u < ${CHUNK} ? end - _u : ${CHUNK};`);
  for (const s of plan.streams) {
    if (s.mode === 'tile') cb.line(`  M.set(${bufName(s.buf)}.subarray(${s.base} + _u * ${R}, ${s.base} + (_u + _n) * ${R}), ${at(s.area)});`);
    else if (s.mode === 'item') cb.line(`  M.set(${bufName(s.buf)}.subarray(${s.base} + _u, ${s.base} + _u + _n), ${at(s.area)});`);
  }
  cb.line('  G(_n);');
  for (const o of plan.outs) {
    const per = o.row ? R : 1;
    cb.line(`  ${bufName(o.out.buf)}.set(M.subarray(${at(o.area)}, ${at(o.area)} + _n * ${per}), ${o.base} + _u * ${per});`);
  }
  cb.line('}');
  return {
    kind: 'js',
    name: k.name,
    source: wrapFunction(k.name, ['start', 'end', ...bufs.map(bufName), 'M', 'G'], cb.finish()),
    bufs,
    scratch: [{ type: 'f32', size: plan.bytes / 4, wasmByteOffset: 0 }],
    tables: [],
    total: plan.total,
    splittable: true,
    workPerItem,
    wasm: { kind: 'rowloop', bytes: plan.bytes, func: plan.func },
  };
}
