/**
 * A GEMM's A prologue (LayerNorm apply with its row statistics, GRN apply, a residual) compiled
 * to WebAssembly SIMD, in place of the scalar JavaScript packing loop of matmul.ts. For each A
 * block (rows [_ic, _ic + _mc) of one batch entry, k in [_pc, _pc + _kc)) the JavaScript around
 * it stages the buffers the expression loads into the area P of the executable's memory, then
 * G(2, mcp, kc) computes the packed block Ap ([strip of MR rows][k][MR], as the micro-kernel
 * reads it):
 *
 *   - per strip of 4 rows, the row statistics first (LayerNorm's mean, then its variance, which
 *     reads the mean): four rows at a time in f32x4 partial sums over the whole row, added
 *     across lanes and stored per row (only when one K block holds the whole row);
 *   - then 4 k at a time: the expression for each of the 4 rows as a vector over k (the parts
 *     that depend on k only, GRN's scale for instance, evaluated once for the 4 rows), the 4x4
 *     block transposed with shuffles and stored as 4 vectors of the packed layout.
 *
 * Staged streams: a row of A-shaped data (index (b, m) part + k), a vector over k shared by all
 * rows (gamma, beta), one value per row, one scalar. Loads with any other index, and other
 * element types, leave the prologue in JavaScript (planWasmPrologue returns null).
 *
 * Numerics: every operation rounds to f32 (the JavaScript prologue evaluates in double and
 * rounds once, at the store into Ap), and the statistics are f32 sums in four lanes (JavaScript:
 * a double sum rounded to f32): the same policy as the f32x4 epilogue (wasm_epilogue.ts).
 */
import { AX, type Axis } from '../kernel/axis.js';
import type { DType } from '../../ir/dtype.js';
import { affineStrides, idx, type Idx, idxKey, idxSubst, idxVars } from '../kernel/index_expr.js';
import type { Reduction, SExpr } from '../kernel/kernel_graph.js';
import type { GemmSpec } from '../lower/gemm_spec.js';
import type { CodeBuilder } from './scope.js';
import { bufName } from './scope.js';
import { ADD, BLOCK, br, brIf, END, GE_S, I32, i32c, IF, lget, LOOP, lset, MUL, simd, type WasmFunc, V128, validGemmFused, wasmBody } from './wasm.js';
import { exprCompiler, exprSupported, LANES, memarg } from './wasm_expr.js';

/** The block geometry the GEMM template uses (elements). */
export interface PrologueGeometry {
  /** Most rows per block (A: MC rows of m; B: NC columns n), a multiple of `strip`. */
  readonly MC: number;
  /** K block. */
  readonly KC: number;
  /** Whether one K block covers K (then _pc = 0 and _kc = K). */
  readonly singleK: boolean;
  /** Byte offset of the packed block (Ap or Bp). */
  readonly apOff: number;
  /** Byte offset of the staging area P. */
  readonly pOff: number;
  /** Rows per packed strip: the register tile's MR (A) or NR (B), 4 or 8. */
  readonly strip: 4 | 8;
}

/** Which operand: its expression, its row variable and the JavaScript names of its block loop. */
export interface PrologueOperand {
  readonly expr: SExpr;
  readonly stats?: GemmSpec['aStats'];
  /** The row variable: m for A, n for B. */
  readonly rowAxis: Axis;
}

/** JavaScript names around the call: the row loop variable, the block's first row, count and padded count, and the op. */
const JS_NAMES = {
  m: { v: 'm', lo: '_ic', cnt: '_mc', cntp: '_mcp', op: 2, view: 'P' },
  n: { v: 'n', lo: '_jc', cnt: '_nc', cntp: '_ncp', op: 3, view: 'Q' },
} as const;

/**
 * A run of k over which a gathered load's k part is consecutive (step 1: a `set`) or constant
 * (step 0: a `fill`): k in [k0, k0 + len) reads row + off + step * (k - k0).
 */
type Run = readonly [k0: number, len: number, off: number, step: 0 | 1];

interface Stream {
  readonly key: string;
  readonly buf: number;
  /** The load index without its k (or r0) terms: variables b, m. */
  readonly row: Idx;
  readonly mode: 'tile' | 'vector' | 'rowscalar' | 'scalar';
  /** tile: rows are K apart in the source and one K block covers K (one copy per block). */
  readonly contiguous: boolean;
  /**
   * tile and vector modes whose k part is not simply k (an im2col read: a patch's pixels, or a
   * per-pixel statistic repeated over its channels): the runs that stage it.
   */
  readonly runs: readonly Run[] | null;
  /** Element offset in P. */
  readonly area: number;
  /**
   * vector and scalar modes whose row index does depend on m, but only through m's group of
   * `ProloguePlan.groupRows` rows (GRN's per-image scale, an image's statistics): staged once
   * per block at m = the block's first row, blocks never crossing a group's end.
   */
  readonly perBlock?: boolean;
}

export interface ProloguePlan {
  readonly streams: readonly Stream[];
  /** Element offset in P of each row statistic (MC values). */
  readonly statAreas: readonly number[];
  /** Elements of P. */
  readonly pElems: number;
  readonly func: WasmFunc;
  readonly names: (typeof JS_NAMES)[keyof typeof JS_NAMES];
  /** When some streams are staged per block (Stream.perBlock): row blocks must not cross multiples of this. */
  readonly groupRows?: number;
}

/** Smallest group of rows worth a block of its own (smaller groups keep staging per row). */
const MIN_GROUP_ROWS = 16;

/** The value of an index at row m (every other variable 0: the batch is fixed within a block). */
function evalAtRow(x: Idx, R: Axis, m: number): number {
  let s = x.c;
  for (const t of x.terms) {
    const a = t.atom;
    const v = a.k === 'var' ? (a.axis === R ? m : 0) : a.k === 'div' ? Math.floor(evalAtRow(a.a, R, m) / a.d) : ((evalAtRow(a.a, R, m) % a.d) + a.d) % a.d;
    s += t.coef * v;
  }
  return s;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * The rows over which an index in (b, m) stays constant: the gcd of the rows where its value
 * changes over m < M (M itself when it never changes), so that it is constant on every aligned
 * group of that many rows.
 */
function rowGroup(row: Idx, R: Axis, M: number): number {
  let g = 0;
  let prev = evalAtRow(row, R, 0);
  for (let m = 1; m < M; m++) {
    const v = evalAtRow(row, R, m);
    if (v !== prev) {
      g = gcd(m, g);
      if (g < MIN_GROUP_ROWS) return g;
      prev = v;
    }
  }
  return g === 0 ? M : g;
}

/** Row stride (elements) of tile streams in P. */
const ldOf = (g: PrologueGeometry): number => Math.ceil(g.KC / 4) * 4;

/**
 * An index as (part in b, m) + (part in v), the second written over k whatever v is (so that a
 * statistic's load over r0 and the apply's over k share a stream), or null when a term mixes them.
 */
export function splitOn(x: Idx, v: Axis, rowAxis: Axis = AX.m): { row: Idx; kpart: Idx } | null {
  const rowTerms: Idx['terms'][number][] = [];
  const kTerms: Idx['terms'][number][] = [];
  for (const t of x.terms) {
    const vars = t.atom.k === 'var' ? [t.atom.axis] : [...idxVars(t.atom.a)];
    if (vars.every((w) => w === AX.b || w === rowAxis)) rowTerms.push(t);
    else if (vars.every((w) => w === v)) kTerms.push(t);
    else return null;
  }
  const kpart: Idx = { c: 0, terms: kTerms };
  return { row: { c: x.c, terms: rowTerms }, kpart: v === AX.k ? kpart : idxSubst(kpart, new Map([[v, idx.var(AX.k)]]), new Map()) };
}

const streamKey = (buf: number, row: Idx, kpart: Idx): string => `${buf}@${idxKey(row)}@${idxKey(kpart)}`;

/** The value of an index in k alone. */
export function evalK(x: Idx, k: number): number {
  let s = x.c;
  for (const t of x.terms) {
    const a = t.atom;
    const val = a.k === 'var' ? k : a.k === 'div' ? Math.floor(evalK(a.a, k) / a.d) : ((evalK(a.a, k) % a.d) + a.d) % a.d;
    s += t.coef * val;
  }
  return s;
}

/** Runs of consecutive (step 1) or repeated (step 0) values of kpart over k < K; null if too many. */
function runsOf(kpart: Idx, K: number): Run[] | null {
  const runs: [number, number, number, 0 | 1][] = [];
  for (let k = 0; k < K; k++) {
    const off = evalK(kpart, k);
    const last = runs[runs.length - 1];
    if (last) {
      const next = off - last[2];
      if (last[1] === 1 && (next === 0 || next === 1)) last[3] = next;
      if (next === last[3] * last[1]) {
        last[1]++;
        continue;
      }
    }
    runs.push([k, 1, off, 1]);
  }
  // short runs would cost a call each per row: leave such gathers to JavaScript
  return runs.length * 8 <= K ? runs : null;
}

/** The wasm plan for the A prologue of a GEMM, or null when it stays in JavaScript. */
export function planWasmPrologue(spec: GemmSpec, dtypes: ReadonlyMap<number, DType>, g: PrologueGeometry, op?: PrologueOperand): ProloguePlan | null {
  const expr = op ? op.expr : spec.aExpr;
  const R = op ? op.rowAxis : AX.m;
  if (!expr || spec.dtype !== 'f32' || expr.dtype !== 'f32') return null;
  const stats = op ? op.stats : spec.aStats;
  if (stats && g.strip !== 4) return null;
  if (stats && (!g.singleK || stats.row.length !== 1 || stats.row[0] !== spec.k)) return null;
  const reductions: readonly Reduction[] = stats?.reductions ?? [];
  if (reductions.some((r, j) => r.op !== 'sum' || r.id !== j || r.dtype !== 'f32')) return null;
  const found = new Map<string, { buf: number; row: Idx; kpart: Idx; runs: Run[] | null }>();
  const leafOk = (v: Axis, nStats: number) => (e: SExpr): boolean => {
    if (e.op === 'acc') return e.id >= 0 && e.id < nStats;
    if (e.op !== 'load' || e.dyn || dtypes.get(e.buf) !== 'f32') return false;
    const s = splitOn(e.index, v, R);
    if (!s) return false;
    const key = streamKey(e.buf, s.row, s.kpart);
    if (found.has(key)) return true;
    const a = affineStrides(s.kpart);
    const plain = a !== null && a.offset === 0 && ((a.strides.get(AX.k) ?? 0) === 0 || (a.strides.get(AX.k) ?? 0) === 1);
    const runs = plain ? null : runsOf(s.kpart, spec.k);
    if (!plain && !runs) return false;
    found.set(key, { buf: e.buf, row: s.row, kpart: s.kpart, runs });
    return true;
  };
  if (!exprSupported(expr, 'f32', leafOk(AX.k, reductions.length))) return null;
  for (let j = 0; j < reductions.length; j++) if (!exprSupported(reductions[j]!.expr, 'f32', leafOk(AX.row(0), j))) return null;

  let pElems = 0;
  const take = (n: number): number => {
    const at = pElems;
    pElems += Math.ceil(n / 16) * 16;
    return at;
  };
  const LD = ldOf(g);
  const streams: Stream[] = [];
  // streams whose row part changes only between groups of rows (per image): staged per block
  const groupOf = new Map<string, number>();
  if (R === AX.m) {
    for (const [key, s] of found) {
      if (!idxVars(s.row).has(R) || affineStrides(s.row)?.strides.get(R)) continue;
      const gr = rowGroup(s.row, R, spec.m);
      if (gr >= MIN_GROUP_ROWS) groupOf.set(key, gr);
    }
  }
  const groupRows = groupOf.size ? [...groupOf.values()].reduce(gcd) : 0;
  const grouped = groupRows >= MIN_GROUP_ROWS;
  for (const [key, s] of found) {
    if (grouped && groupOf.has(key)) {
      const perK = s.runs !== null || idxVars(s.kpart).has(AX.k);
      streams.push({ key, buf: s.buf, row: s.row, runs: s.runs, mode: perK ? 'vector' : 'scalar', contiguous: false, area: take(perK ? LD : 1), perBlock: true });
      continue;
    }
    const mDep = idxVars(s.row).has(R);
    const perK = s.runs !== null || idxVars(s.kpart).has(AX.k);
    const base = { key, buf: s.buf, row: s.row, runs: s.runs };
    if (perK && mDep) {
      const a = affineStrides(s.row);
      const contiguous = !s.runs && g.singleK && LD === spec.k && a !== null && (a.strides.get(R) ?? 0) === spec.k;
      streams.push({ ...base, mode: 'tile', contiguous, area: take(g.MC * LD) });
    } else if (perK) streams.push({ ...base, mode: 'vector', contiguous: false, area: take(LD) });
    else if (mDep) streams.push({ ...base, mode: 'rowscalar', contiguous: false, area: take(g.MC) });
    else streams.push({ ...base, mode: 'scalar', contiguous: false, area: take(1) });
  }
  const statAreas = reductions.map(() => take(g.MC));
  const func = prologueFunc(expr, reductions, streams, statAreas, spec.k, g, R);
  if (!validGemmFused({ prologue: func })) return null;
  return { streams, statAreas, pElems, func, names: JS_NAMES[R === AX.n ? 'n' : 'm'], ...(grouped ? { groupRows } : {}) };
}

// ---------------------------------------------------------------------------------------
// WebAssembly

const SHUFFLE = (lanes: readonly number[]): number[] => simd(0x0d, ...lanes.flatMap((l) => [4 * l, 4 * l + 1, 4 * l + 2, 4 * l + 3]));
const EXTRACT = (lane: number): number[] => simd(0x1f, lane);
const F32_ADD = [0x92];
const F32_STORE = (off: number): number[] => [0x38, ...memarg(off)];
const LT_S = [0x48];

/**
 * pro(mcp, kc): the packed A block for mcp rows (a multiple of 4) and kc columns, from the
 * staged streams; row statistics first when there are any.
 */
function prologueFunc(expr: SExpr, reductions: readonly Reduction[], streams: readonly Stream[], statAreas: readonly number[], K: number, g: PrologueGeometry, R: Axis): WasmFunc {
  const S = g.strip;
  const L = LANES.f32x4;
  const LD = ldOf(g);
  const P_MCP = 0;
  const P_KC = 1;
  let nl = 2;
  const TP = nl++; // tile streams: byte offset of the strip's first row (s * 4 * LD * 4)
  const RP = nl++; // row scalars and statistics: byte offset of the strip's first row (s * 16)
  const KB = nl++; // byte offset of the k chunk in a row (kk * 4)
  const PA = nl++; // byte address in Ap of the k chunk of this strip
  const KCB = nl++; // kc * 4
  const SA = nl++; // byte address in Ap of this strip (apOff + s * kc * 16)
  const nI32 = nl - 2;
  const vBase = nl;
  const body = wasmBody(vBase);
  const { code, e, vLocal } = body;
  const byKey = new Map(streams.map((s) => [s.key, s]));
  const pB = (area: number): number => g.pOff + area * 4;

  /** Pushes row i's lanes of a leaf (k or r0 chunk at KB). */
  const leaf = (v: Axis, i: number) => (x: SExpr): void => {
    if (x.op === 'acc') {
      e(lget(RP), simd(0x09, ...memarg(pB(statAreas[x.id]!) + 4 * i)));
      return;
    }
    if (x.op !== 'load') throw new Error(`wasm prologue: leaf ${x.op}`);
    const sp = splitOn(x.index, v, R)!;
    const s = byKey.get(streamKey(x.buf, sp.row, sp.kpart))!;
    switch (s.mode) {
      case 'tile':
        e(lget(TP), lget(KB), ADD, simd(0x00, ...memarg(pB(s.area) + i * LD * 4)));
        break;
      case 'vector':
        e(lget(KB), simd(0x00, ...memarg(pB(s.area))));
        break;
      case 'rowscalar':
        e(lget(RP), simd(0x09, ...memarg(pB(s.area) + 4 * i)));
        break;
      case 'scalar':
        e(i32c(0), simd(0x09, ...memarg(pB(s.area))));
        break;
    }
  };
  const dependsOnRow = rowDependence(byKey, R);
  /** The four rows' values of `x` (lanes: the chunk at KB), sharing row-independent nodes. */
  const fourRows = (x: SExpr, v: Axis, h: number): number[] => {
    const out: number[] = [];
    let shared: Map<SExpr, number> | undefined;
    for (let i = 0; i < 4; i++) {
      const c = exprCompiler(e, L, vLocal, leaf(v, 4 * h + i), new Map(shared ?? []));
      out.push(c.value(x));
      if (!shared) shared = new Map([...c.have].filter(([n]) => !dependsOnRow(n, v)));
    }
    return out;
  };
  /** while (KB + 16 <= limitBytes) { body; KB += 16 } */
  const chunkLoop = (limit: () => void, body: () => void): void => {
    e(BLOCK, LOOP);
    e(lget(KB), i32c(16), ADD);
    limit();
    e(GT_S_, brIf(1));
    body();
    e(lget(KB), i32c(16), ADD, lset(KB), br(0));
    e(END, END);
  };

  // ---- statistics of the strip's four rows (whole rows: K is the row length)
  const statistic = (r: Reduction, j: number): void => {
    const accs = [vLocal(), vLocal(), vLocal(), vLocal()];
    for (const a of accs) e(simd(0x0c, ...new Array<number>(16).fill(0)), lset(a));
    const addChunk = (mask: number | null): void => {
      const vals = fourRows(r.expr, AX.row(0), 0);
      vals.forEach((val, i) => {
        e(lget(accs[i]!), lget(val));
        // lanes past the row's end hold stale data: keep only those below K
        if (mask !== null) e(maskConst(mask), simd(0x4e) /* v128.and */);
        e(simd(L.add), lset(accs[i]!));
      });
    };
    e(i32c(0), lset(KB));
    chunkLoop(() => e(i32c((K - (K % 4)) * 4)), () => addChunk(null));
    if (K % 4) addChunk(K % 4);
    accs.forEach((a, i) => {
      e(lget(RP));
      e(lget(a), EXTRACT(0), lget(a), EXTRACT(1), F32_ADD, lget(a), EXTRACT(2), F32_ADD, lget(a), EXTRACT(3), F32_ADD);
      e(F32_STORE(pB(statAreas[j]!) + 4 * i));
    });
  };

  // ---- the packed block: 4 k at a time, transposed into [k][4 rows]
  const chunk = (tail: boolean, h: number): void => {
    const [r0, r1, r2, r3] = fourRows(expr, AX.k, h) as [number, number, number, number];
    const t = [vLocal(), vLocal(), vLocal(), vLocal()];
    e(lget(r0), lget(r1), SHUFFLE([0, 4, 1, 5]), lset(t[0]!));
    e(lget(r2), lget(r3), SHUFFLE([0, 4, 1, 5]), lset(t[1]!));
    e(lget(r0), lget(r1), SHUFFLE([2, 6, 3, 7]), lset(t[2]!));
    e(lget(r2), lget(r3), SHUFFLE([2, 6, 3, 7]), lset(t[3]!));
    const cols: [number, number, number[]][] = [
      [t[0]!, t[1]!, [0, 1, 4, 5]],
      [t[0]!, t[1]!, [2, 3, 6, 7]],
      [t[2]!, t[3]!, [0, 1, 4, 5]],
      [t[2]!, t[3]!, [2, 3, 6, 7]],
    ];
    cols.forEach(([a, b, lanes], j) => {
      // in the tail, column j exists when KB + 4 j < kc * 4
      if (tail && j > 0) e(lget(KB), i32c(4 * j), ADD, lget(KCB), LT_S, IF);
      e(lget(PA), lget(a), lget(b), SHUFFLE(lanes), simd(0x0b, ...memarg(4 * S * j)));
      if (tail && j > 0) e(END);
    });
    e(lget(PA), i32c(16 * S), ADD, lset(PA));
  };

  e(lget(P_KC), i32c(4), MUL, lset(KCB));
  e(i32c(0), lset(TP), i32c(0), lset(RP), i32c(g.apOff), lset(SA));
  e(BLOCK, LOOP); // strips: RP = s * S * 4 < rows * 4
  e(lget(RP), lget(P_MCP), i32c(4), MUL, GE_S, brIf(1));
  reductions.forEach((r, j) => statistic(r, j));
  // the strip's rows four at a time: quad h fills lanes 4h..4h+3 of each packed k row
  for (let h = 0; h < S / 4; h++) {
    e(lget(SA), i32c(16 * h), ADD, lset(PA), i32c(0), lset(KB));
    chunkLoop(() => e(lget(KCB)), () => chunk(false, h));
    e(lget(KB), lget(KCB), LT_S, IF);
    chunk(true, h);
    e(END);
  }
  e(lget(SA), lget(KCB), i32c(S), MUL, ADD, lset(SA));
  e(lget(TP), i32c(4 * S * LD), ADD, lset(TP));
  e(lget(RP), i32c(4 * S), ADD, lset(RP));
  e(br(0), END, END);
  return {
    params: 2,
    locals: [
      [nI32, I32],
      [Math.max(body.nV, 1), V128],
    ],
    code,
  };
}

const GT_S_ = [0x4a];

/**
 * Whether a node depends on the row (tile or row-scalar loads, statistics): those are evaluated
 * per row, the others once per chunk and shared by the strip's rows. Memoized per (node, axis).
 */
function rowDependence(byKey: ReadonlyMap<string, Stream>, R: Axis): (x: SExpr, v: Axis) => boolean {
  const memo = new Map<string, Map<SExpr, boolean>>();
  const dep = (x: SExpr, v: Axis): boolean => {
    let m = memo.get(v.name);
    if (!m) memo.set(v.name, (m = new Map()));
    let d = m.get(x);
    if (d !== undefined) return d;
    switch (x.op) {
      case 'acc':
        d = true;
        break;
      case 'load': {
        const sp = splitOn(x.index, v, R)!;
        const mode = byKey.get(streamKey(x.buf, sp.row, sp.kpart))!.mode;
        d = mode === 'tile' || mode === 'rowscalar';
        break;
      }
      case 'const':
        d = false;
        break;
      case 'unary':
      case 'cast':
        d = dep(x.a, v);
        break;
      case 'binary':
      case 'cmp':
        d = dep(x.a, v) || dep(x.b, v);
        break;
      case 'select':
        d = dep(x.c, v) || dep(x.a, v) || dep(x.b, v);
        break;
      default:
        d = true;
    }
    m.set(x, d);
    return d;
  };
  return dep;
}

/** A v128 constant whose first `lanes` f32 lanes are all ones. */
function maskConst(lanes: number): number[] {
  const b = new Array<number>(16).fill(0);
  for (let i = 0; i < 4 * lanes; i++) b[i] = 0xff;
  return simd(0x0c, ...b);
}

// ---------------------------------------------------------------------------------------
// JavaScript around it

/**
 * Emits the staging and the call for one A block (inside the _ic loop of emitGemm, where b,
 * _ic, _mc, _mcp, _pc and _kc are defined; `P` is the staging view and G the combined function).
 */
export function emitWasmPrologueJs(cb: CodeBuilder, plan: ProloguePlan, g: PrologueGeometry): void {
  const LD = ldOf(g);
  const { v, lo, cnt, cntp, op, view: P } = plan.names;
  const perRow = (body: () => void): void => {
    cb.open(v);
    body();
    cb.close(`for (let ${v} = ${lo}; ${v} < ${lo} + ${cnt}; ${v}++)`);
  };
  /** Stages a gathered row (runs clipped to the K block) at element offset `dst` of P. */
  const stageRuns = (s: Stream, i: string, dst: string): void => {
    const src = bufName(s.buf);
    cb.line(`for (let _q = 0; _q < ${s.runs!.length * 4}; _q += 4) {`);
    cb.line(`  const _k0 = _R${s.area}[_q], _k1 = _k0 + _R${s.area}[_q + 1];`);
    cb.line('  const _a = _k0 > _pc ? _k0 : _pc, _e = _k1 < _pc + _kc ? _k1 : _pc + _kc;');
    cb.line('  if (_a >= _e) continue;');
    cb.line(`  const _o = ${i} + _R${s.area}[_q + 2];`);
    cb.line(`  if (_R${s.area}[_q + 3] === 0) ${P}.fill(${src}[_o], ${dst} + _a - _pc, ${dst} + _e - _pc);`);
    cb.line(`  else ${P}.set(${src}.subarray(_o + _a - _k0, _o + _e - _k0), ${dst} + _a - _pc);`);
    cb.line('}');
  };
  for (const s of plan.streams) if (s.runs) cb.line(`const _R${s.area} = [${s.runs.flat().join(', ')}];`);
  for (const s of plan.streams) {
    const src = bufName(s.buf);
    if (s.perBlock) {
      // the block's rows share the group's values: read them at its first row
      cb.open(v);
      cb.line(`const ${v} = ${lo};`);
      const i = cb.index(s.row);
      if (s.runs) stageRuns(s, i, String(s.area));
      else if (s.mode === 'scalar') cb.line(`${P}[${s.area}] = ${src}[${i}];`);
      else cb.line(`${P}.set(${src}.subarray(${i} + _pc, ${i} + _pc + _kc), ${s.area});`);
      cb.close('');
      continue;
    }
    if (s.runs && s.mode === 'vector') {
      stageRuns(s, cb.index(s.row), String(s.area));
      continue;
    }
    if (s.runs && s.mode === 'tile') {
      perRow(() => stageRuns(s, cb.index(s.row), `${s.area} + (${v} - ${lo}) * ${LD}`));
      continue;
    }
    switch (s.mode) {
      case 'scalar':
        cb.line(`${P}[${s.area}] = ${src}[${cb.index(s.row)}];`);
        break;
      case 'vector': {
        const i = cb.index(s.row);
        cb.line(`${P}.set(${src}.subarray(${i} + _pc, ${i} + _pc + _kc), ${s.area});`);
        break;
      }
      case 'rowscalar':
        perRow(() => cb.line(`${P}[${s.area} + ${v} - ${lo}] = ${src}[${cb.index(s.row)}];`));
        break;
      case 'tile':
        if (s.contiguous) {
          cb.open(v);
          cb.line(`const ${v} = ${lo};`);
          const i = cb.index(s.row);
          cb.line(`${P}.set(${src}.subarray(${i}, ${i} + ${cnt} * ${LD}), ${s.area});`);
          cb.close('');
        } else {
          perRow(() => {
            const i = cb.index(s.row);
            cb.line(`${P}.set(${src}.subarray(${i} + _pc, ${i} + _pc + _kc), ${s.area} + (${v} - ${lo}) * ${LD});`);
          });
        }
        break;
    }
  }
  cb.line(`G(${op}, ${cntp}, _kc);`);
}
