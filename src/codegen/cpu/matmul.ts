/**
 * The GEMM anchor template: C[b, m, n] = sum_k A[b, m, k] * B[b, k, n] with generated packing
 * (any operand index expression: strided, transposed, or an im2col gather for patchify convs),
 * a register-blocked micro-kernel (WebAssembly SIMD for f32, JavaScript with f64 accumulators
 * otherwise) and a generated epilogue that sees the product as `acc 0` at loop variables b, m, n.
 *
 * Blocking (Goto style): a chunk of RCH rows (one batch entry) x NC columns of C lives in the
 * scratch tile Ct; K is split into KC blocks; for each (column block, K block) the B block is
 * packed into Bp ([strip][k][NR]) and, per MC rows, the A block into Ap ([strip][k][MR]);
 * the micro-kernel accumulates into Ct; after the last K block the epilogue reads Ct. When B
 * has a single block and does not depend on the batch, it is packed once per call.
 *
 * With the WebAssembly GEMM, an epilogue that wasm_epilogue.ts can express runs there (over
 * the whole Ct tile, in the same module as the micro-kernel: G(0, ...) is the micro-kernel,
 * G(1, rows, nc) the epilogue), its other loads staged into a scratch area S behind Ct;
 * otherwise the JavaScript epilogue below reads Ct element by element. Likewise the packing of
 * A (its prologue: LayerNorm/GRN apply, im2col gathers) and of B run as G(2, ...) and G(3, ...)
 * where wasm_prologue.ts can express them, after the JavaScript stages their inputs.
 *
 * The range [start, end) is over the flattened (batch, row) space, so row blocks can run on
 * different threads (each with its own scratch).
 */
import type { DType } from '../../ir/dtype.js';
import { affineStrides, type Idx, idxVars } from '../kernel/index_expr.js';
import { type GemmSpec, matmulSpec, usesReducingFeatures } from '../lower/gemm_spec.js';
import { emitReducingPrologue, emitRowStats, JS_LOOPS, rangeUnitRows } from '../lower/gemm_reducing.js';
import { AX, type Axis } from '../kernel/axis.js';
import type { MatmulKernel, SExpr } from '../kernel/kernel_graph.js';
import { visitSExpr } from '../kernel/sexpr.js';
import { type EmitOptions, emitNestedLoops, emitRangeLoops, type JsKernelCode, type ScratchSpec, wrapFunction } from './common.js';
import { bufName, CodeBuilder } from './scope.js';
import { WASM_MR, WASM_NR, wasmSimdAvailable } from './wasm.js';
import { emitWasmEpilogueJs, type EpilogueGeometry, planWasmEpilogue } from './wasm_epilogue.js';
import { emitWasmPrologueJs, evalK, planWasmPrologue, type PrologueGeometry, splitOn } from './wasm_prologue.js';

export interface GemmTiles {
  readonly mc: number;
  readonly nc: number;
  readonly kc: number;
  /** Rows per Ct chunk when K has several blocks (default: about 4 MB of Ct). */
  readonly rch?: number;
}

/** Default cache blocking. */
export function gemmTiles(spec: GemmSpec, wasm: boolean): GemmTiles {
  const nr = wasm ? WASM_NR : JS_NR;
  // one K block up to K = 1280 (ConvNeXt atto's widest contraction): the packed strips (4 x K
  // of A, K x 8 of B) still stream well from L2 (the micro-kernel runs as fast at kc 1280 as at
  // 256), while K blocks cost a staging copy per row and block in JavaScript (with the weights'
  // [n][k] rows cut into kc pieces) and keep LayerNorm prologues out of WebAssembly
  const kc = spec.k <= (wasm ? MAX_SINGLE_KC : 384) ? Math.max(spec.k, 1) : 256;
  const ncp = roundUp(spec.n, nr);
  // an A prologue is evaluated once per column block: keep all columns in one block when the
  // packed B panel (kc x nc) still fits comfortably in L2, or when one row chunk covers all of
  // M (B is then streamed once per chunk whatever the column blocks)
  const maxNc = spec.aExpr && (kc * ncp * 4 <= 1 << 20 || spec.m <= 64) ? 2048 : 512;
  const nc = ncp <= maxNc ? ncp : 256;
  return { mc: 64, nc, kc };
}

/** The largest K packed as one block (see gemmTiles). */
const MAX_SINGLE_KC = 1280;

const JS_MR = 4;
const JS_NR = 4;

const roundUp = (x: number, m: number): number => Math.ceil(x / m) * m;

const isPow2 = (x: number): boolean => (x & (x - 1)) === 0;

/** `i / d | 0` and `i % d` as source, with shifts for powers of two. */
function divSrc(i: string, d: number): string {
  return isPow2(d) ? `(${i} >> ${Math.log2(d)})` : `(${i} / ${d} | 0)`;
}
function modSrc(i: string, d: number): string {
  return isPow2(d) ? `(${i} & ${d - 1})` : `(${i} % ${d})`;
}

/** Absolute stride of variable v in an affine index (Infinity when not affine). */
function strideOf(x: Idx, v: Axis): number {
  const a = affineStrides(x);
  if (!a) return Infinity;
  return Math.abs(a.strides.get(v) ?? 0);
}

/** The GEMM kernel code for a spec. */
export function emitGemm(spec: GemmSpec, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], opts: EmitOptions = {}, tiles?: GemmTiles): JsKernelCode {
  if (spec.dtype === 'i32' || spec.dtype === 'u32' || spec.dtype === 'bool') return emitIntGemm(spec, dtypes, bufs);
  const useWasm = spec.dtype !== 'f64' && (opts.wasm ?? true) && wasmSimdAvailable();
  const MR = useWasm ? WASM_MR : JS_MR;
  const NR = useWasm ? WASM_NR : JS_NR;
  const { batch, m: M, n: N, k: K } = spec;
  const t = tiles ?? gemmTiles(spec, useWasm);
  const MC = roundUp(t.mc, MR);
  const NC = roundUp(t.nc, NR);
  const KC = Math.max(1, Math.min(t.kc, Math.max(K, 1)));
  const NCP = NC;
  const singleK = K <= KC;
  const singleN = N <= NC;
  const RCH = singleK ? MC : Math.max(MC, Math.floor((t.rch ?? Math.max(1, (1 << 20) / NCP)) / MC) * MC);
  const aDtype = dtypes.get(spec.aBuf) ?? spec.dtype;
  const bDtype = dtypes.get(spec.bBuf) ?? spec.dtype;
  const bLoadExpr: SExpr = spec.bExpr ?? { op: 'load', buf: spec.bBuf, index: spec.bIdx, dtype: bDtype };
  const bReads = pureReads(bLoadExpr);
  const bDependsOnBatch = !bReads || bReads.usesBatch;
  const packBOnce = singleK && singleN && (!bDependsOnBatch || batch === 1);

  // scratch layout (wasm: byte offsets into the executable's memory; views over it)
  const apElems = MC * KC;
  const bpElems = KC * NCP;
  const ctElems = RCH * NCP;
  const elemBytes = useWasm ? 4 : 8;
  const align = (x: number): number => roundUp(x, 64);
  const apOff = 0;
  const bpOff = align(apOff + apElems * elemBytes);
  const ctOff = align(bpOff + bpElems * elemBytes);
  // the epilogue in WebAssembly when expressible (wasm_epilogue.ts), with its staging area S
  const epiMode = opts.wasmEpilogue ?? true;
  // with reducing outputs, row chunks end at reduction-group boundaries (so that a group's
  // output index is one value per chunk for the wasm epilogue)
  const groupRows = spec.reduceRows && spec.outputs.some((o) => o.init === 'zero') && spec.m % spec.reduceRows === 0 ? spec.reduceRows : undefined;
  const epiGeom: EpilogueGeometry = { N, NC, NCP, RCH, singleN, ctOff, sOff: align(ctOff + ctElems * elemBytes), ...(groupRows ? { groupRows } : {}) };
  const epi = useWasm && K > 0 && epiMode !== false ? planWasmEpilogue(spec.originalOutputs ?? spec.outputs, dtypes, spec.dtype, epiGeom, epiMode === 'f64x2' ? 'f64x2' : 'f32x4') : null;
  const endS = epi ? epiGeom.sOff + epi.sElems * 4 : ctOff + ctElems * 4;
  // the A prologue in WebAssembly when expressible (wasm_prologue.ts), with its staging area P
  const proGeom: PrologueGeometry = { MC, KC, singleK, apOff, pOff: align(endS), strip: 4 };
  const pro = useWasm && K > 0 && epiMode !== false ? planWasmPrologue(spec, dtypes, proGeom) : null;
  const endP = pro ? proGeom.pOff + pro.pElems * 4 : endS;
  // B's packing too (rows n, strips of NR), staged into Q
  const bGeom: PrologueGeometry = { MC: NCP, KC, singleK, apOff: bpOff, pOff: align(endP), strip: 8 };
  const bOperand = { expr: spec.bExpr ?? { op: 'load' as const, buf: spec.bBuf, index: spec.bIdx, dtype: bDtype }, rowAxis: AX.n };
  const bPro = useWasm && NR === 8 && K > 0 && epiMode !== false ? planWasmPrologue(spec, dtypes, bGeom, bOperand) : null;
  const combined = epi?.func || pro || bPro ? 1 : 0;
  // the packed B kept across calls (the device decides whether its sources are stable: BC below)
  const bCache = useWasm && packBOnce && bReads ? { bufs: bReads.bufs, bytes: bpElems * 4 } : null;
  const wasmBytes = bPro ? bGeom.pOff + bPro.pElems * 4 : endP;
  const scratch: ScratchSpec[] = useWasm
    ? [
        { type: 'f32', size: apElems, wasmByteOffset: apOff },
        { type: 'f32', size: bpElems, wasmByteOffset: bpOff },
        { type: 'f32', size: ctElems, wasmByteOffset: ctOff },
        ...(epi ? [{ type: 'f32' as const, size: epi.sElems, wasmByteOffset: epiGeom.sOff }] : []),
        ...(pro ? [{ type: 'f32' as const, size: pro.pElems, wasmByteOffset: proGeom.pOff }] : []),
        ...(bPro ? [{ type: 'f32' as const, size: bPro.pElems, wasmByteOffset: bGeom.pOff }] : []),
      ]
    : [
        { type: 'f64', size: apElems },
        { type: 'f64', size: bpElems },
        { type: 'f64', size: ctElems },
      ];

  const cb = new CodeBuilder();
  const aLoad: SExpr = spec.aExpr ?? { op: 'load', buf: spec.aBuf, index: spec.aIdx, dtype: aDtype };
  const bLoad = bLoadExpr;

  const packB = (): void => {
    if (bPro) return emitWasmPrologueJs(cb, bPro, bGeom);
    emitJsPackB(cb, spec, bLoad, NR);
  };

  const aTable = pro ? null : aGatherTable(spec, aLoad, dtypes);
  const packA = (): void => {
    if (pro) return emitWasmPrologueJs(cb, pro, proGeom);
    emitJsPackA(cb, spec, aLoad, MR, aTable);
  };

  const microKernel = (): void => {
    if (useWasm) {
      cb.line(`G(${combined ? '0, ' : ''}${apOff}, ${bCache ? '_bOff' : bpOff}, ${ctOff} + (_ic - _c0) * ${NCP * 4}, _kc, _mcp, _ncp, ${NCP * 4}, _pc > 0 ? 1 : 0);`);
      return;
    }
    for (const l of jsMicroKernel(MR, NR, NCP)) cb.line(l);
  };

  const epilogue = (accSrc: (() => string) | null): void => emitJsEpilogue(cb, spec, dtypes, NCP, accSrc);

  // ---- the function body
  const unitRows = rangeUnitRows(spec);
  emitReducingPrologue(cb, spec, JS_LOOPS, (b) => dtypes.get(b) ?? spec.dtype);
  if (packBOnce) cb.line('let _bPacked = -1;');
  if (bCache) cb.line(`let _bOff = ${bpOff};`);
  cb.line('let _r = start;');
  cb.open('b');
  cb.line(`const b = (_r / ${M}) | 0;`);
  cb.line(`const _c0 = _r - b * ${M};`);
  cb.line(`const _bEnd = end - b * ${M} < ${M} ? end - b * ${M} : ${M};`);
  // chunks end at the groups' ends: reducing outputs' (above) and the A prologue's per-block streams'
  // (a split range starts anywhere: the prologue's groups clamp whatever RCH is)
  const clamps = [groupRows !== undefined && groupRows % RCH !== 0 ? groupRows : undefined, pro?.groupRows !== undefined && pro.groupRows < M ? pro.groupRows : undefined].filter((gr): gr is number => gr !== undefined);
  cb.line(`${clamps.length ? 'let' : 'const'} _c1 = _c0 + ${RCH} < _bEnd ? _c0 + ${RCH} : _bEnd;`);
  for (const gr of new Set(clamps)) cb.line(`if (_c1 > ((_c0 / ${gr} | 0) + 1) * ${gr}) _c1 = ((_c0 / ${gr} | 0) + 1) * ${gr};`);
  if (K === 0) {
    cb.line('const _jc = 0, _nc = ' + N + ';');
    epilogue(null);
  } else {
    cb.open();
    cb.line(`const _nc = ${N} - _jc < ${NC} ? ${N} - _jc : ${NC};`);
    cb.line(`const _ncp = ((_nc + ${NR - 1}) / ${NR} | 0) * ${NR};`);
    cb.open();
    cb.line(`const _kc = ${K} - _pc < ${KC} ? ${K} - _pc : ${KC};`);
    cb.line(`const _kcNR = _kc * ${NR}, _kcMR = _kc * ${MR};`);
    if (bCache) {
      // BC (the device's, or null): 2 = the kept packing is current, 1 = the sources are those of
      // the previous call (pack and keep), 0 = they changed (pack into Bp only)
      cb.line(`if (_bPacked !== 0) {`);
      cb.line('  const _bState = BC === null ? 0 : BC.state();');
      cb.line('  if (_bState === 2) _bOff = BC.view.byteOffset;');
      cb.line('  else {');
      packB();
      cb.line('    if (_bState === 1) { BC.view.set(Bp); BC.kept(); _bOff = BC.view.byteOffset; }');
      cb.line('  }');
      cb.line('  _bPacked = 0;');
      cb.line('}');
    } else if (packBOnce) {
      cb.line(`if (_bPacked !== ${bDependsOnBatch ? 'b' : '0'}) {`);
      packB();
      cb.line(`  _bPacked = ${bDependsOnBatch ? 'b' : '0'};`);
      cb.line('}');
    } else {
      packB();
    }
    cb.open();
    cb.line(`const _mc = _c1 - _ic < ${MC} ? _c1 - _ic : ${MC};`);
    cb.line(`const _mcp = ((_mc + ${MR - 1}) / ${MR} | 0) * ${MR};`);
    packA();
    microKernel();
    cb.close(`for (let _ic = _c0; _ic < _c1; _ic += ${MC})`);
    cb.close(`for (let _pc = 0; _pc < ${K}; _pc += ${KC})`);
    if (epi) emitWasmEpilogueJs(cb, epi, epiGeom);
    else epilogue(() => 'Ct[_cr + n]');
    cb.close(`for (let _jc = 0; _jc < ${N}; _jc += ${NC})`);
  }
  cb.line(`_r = b * ${M} + _c1;`);
  cb.close('while (_r < end)');
  const params = ['start', 'end', ...bufs.map(bufName), 'Ap', 'Bp', 'Ct', ...(epi ? ['S'] : []), ...(pro ? ['P'] : []), ...(bPro ? ['Q'] : []), ...(bCache ? ['BC'] : []), 'G'];
  return {
    kind: 'js',
    name: spec.name,
    source: wrapFunction(spec.name, params, cb.finish(), aTable ? ['const _KT = T[0];'] : []),
    bufs,
    scratch,
    tables: aTable ? [aTable.table] : [],
    total: (batch * M) / unitRows,
    splittable: true,
    workPerItem: Math.max(1, 2 * N * K) * unitRows,
    ...(bCache ? { bCache } : {}),
    ...(useWasm ? { wasm: { kind: 'gemm_f32' as const, bytes: wasmBytes, ...(epi?.func ? { epilogue: epi.func } : {}), ...(pro ? { prologue: pro.func } : {}), ...(bPro ? { bPrologue: bPro.func } : {}) } } : {}),
  };
}

/**
 * The buffers an operand expression reads and whether it depends on the batch variable, when it
 * is a pure function of its loads and the loop variables (no gathers by data, no random bits,
 * no accumulators); null otherwise.
 */
function pureReads(e: SExpr): { bufs: number[]; usesBatch: boolean } | null {
  const bufs = new Set<number>();
  let usesBatch = false;
  let pure = true;
  visitSExpr(e, (n) => {
    if (n.op === 'load') {
      if (n.dyn) pure = false;
      bufs.add(n.buf);
      if (idxVars(n.index).has(AX.b)) usesBatch = true;
    } else if (n.op === 'index') {
      if (idxVars(n.index).has(AX.b)) usesBatch = true;
    } else if (n.op === 'threefry' || n.op === 'acc') pure = false;
  });
  return pure ? { bufs: [...bufs], usesBatch } : null;
}

/** The JavaScript epilogue over rows _c0.._c1 and columns _jc.._jc+_nc: every output from the accumulator (Ct, or 0 when K = 0). */
function emitJsEpilogue(cb: CodeBuilder, spec: GemmSpec, dtypes: ReadonlyMap<number, DType>, NCP: number, accSrc: (() => string) | null): void {
  cb.open('m');
  if (accSrc) cb.line(`const _cr = (m - _c0) * ${NCP} - _jc;`);
  cb.open('n');
  const nDepth = cb.depth;
  cb.accResolver = (id) => {
    if (id !== 0) throw new Error(`cpu codegen: matmul ${spec.name} epilogue reads acc ${id}`);
    return { src: accSrc ? accSrc() : '0', depth: accSrc ? nDepth : 0 };
  };
  cb.storeAll(spec.outputs, (b) => dtypes.get(b) ?? spec.dtype);
  cb.close('for (let n = _jc; n < _jc + _nc; n++)');
  cb.close('for (let m = _c0; m < _c1; m++)');
}

/**
 * When A is a plain f32/f64 load whose index is (part in b, m) + (part in k) with a k part that
 * is not affine: the load's buffer, its row part, and the k part's value for every k (the table
 * `_KT` in the kernel's prelude); null otherwise.
 */
export function aGatherTable(spec: GemmSpec, aLoad: SExpr, dtypes: ReadonlyMap<number, DType>): { buf: number; row: Idx; table: Int32Array } | null {
  if (aLoad.op !== 'load' || aLoad.dyn || spec.aStats || spec.k === 0) return null;
  const dt = dtypes.get(aLoad.buf);
  if (dt !== 'f32' && dt !== 'f64') return null;
  const s = splitOn(aLoad.index, AX.k);
  if (!s || affineStrides(s.kpart)) return null;
  const table = new Int32Array(spec.k);
  for (let k = 0; k < spec.k; k++) table[k] = evalK(s.kpart, k);
  return { buf: aLoad.buf, row: s.row, table };
}

/** Packs A[b, ic.., pc..] into Ap in strips of MR rows, with the A operand's row statistics first (JavaScript). */
function emitJsPackA(cb: CodeBuilder, spec: GemmSpec, aLoad: SExpr, MR: number, kTable: { buf: number; row: Idx } | null): void {
  // Ap[(i / MR) * (kc * MR) + (k - pc) * MR + i % MR] = A[b, ic + i, k]
  const mInner = spec.aExpr ? false : strideOf(spec.aIdx, AX.m) < strideOf(spec.aIdx, AX.k);
  if (mInner) {
    cb.open('k');
    cb.line(`const _ad = (k - _pc) * ${MR};`);
    cb.open('m');
    const v = cb.value(aLoad);
    cb.line(`Ap[_ad + ${divSrc('(m - _ic)', MR)} * _kcMR + ${modSrc('(m - _ic)', MR)}] = ${v};`);
    cb.close('for (let m = _ic; m < _ic + _mc; m++)');
    cb.close('for (let k = _pc; k < _pc + _kc; k++)');
  } else if (kTable) {
    // a gather whose k part is not affine (an im2col read of a patchify conv): per row one base
    // offset, per k an offset from a table, instead of divisions and remainders per element
    cb.open('m');
    cb.line(`const _ad = ${divSrc('(m - _ic)', MR)} * _kcMR + ${modSrc('(m - _ic)', MR)} - _pc * ${MR};`);
    cb.line(`const _ar = ${cb.index(kTable.row)};`);
    cb.line(`for (let k = _pc; k < _pc + _kc; k++) Ap[_ad + k * ${MR}] = ${bufName(kTable.buf)}[_ar + _KT[k]];`);
    cb.close('for (let m = _ic; m < _ic + _mc; m++)');
  } else {
    cb.open('m');
    cb.line(`const _ad = ${divSrc('(m - _ic)', MR)} * _kcMR + ${modSrc('(m - _ic)', MR)} - _pc * ${MR};`);
    emitRowStats(cb, spec, JS_LOOPS);
    cb.open('k');
    const v = cb.value(aLoad);
    cb.line(`Ap[_ad + k * ${MR}] = ${v};`);
    cb.close('for (let k = _pc; k < _pc + _kc; k++)');
    cb.close('for (let m = _ic; m < _ic + _mc; m++)');
  }
}

/** Packs B[b, pc.., jc..] into Bp in strips of NR columns (JavaScript; the order that reads B contiguously). */
function emitJsPackB(cb: CodeBuilder, spec: GemmSpec, bLoad: SExpr, NR: number): void {
  // Bp[(j / NR) * (kc * NR) + (k - pc) * NR + j % NR] = B[b, k, jc + j]
  const nInner = spec.bExpr ? true : strideOf(spec.bIdx, AX.n) <= strideOf(spec.bIdx, AX.k);
  const body = (): void => {
    const v = cb.value(bLoad);
    cb.line(`Bp[_bd + ${divSrc('(n - _jc)', NR)} * _kcNR + ${modSrc('(n - _jc)', NR)}] = ${v};`);
  };
  if (nInner) {
    cb.open('k');
    cb.line(`const _bd = (k - _pc) * ${NR};`);
    cb.open('n');
    body();
    cb.close('for (let n = _jc; n < _jc + _nc; n++)');
    cb.close('for (let k = _pc; k < _pc + _kc; k++)');
  } else {
    cb.open('n');
    cb.line(`const _bd = ${divSrc('(n - _jc)', NR)} * _kcNR + ${modSrc('(n - _jc)', NR)} - _pc * ${NR};`);
    cb.open('k');
    const v = cb.value(bLoad);
    cb.line(`Bp[_bd + k * ${NR}] = ${v};`);
    cb.close('for (let k = _pc; k < _pc + _kc; k++)');
    cb.close('for (let n = _jc; n < _jc + _nc; n++)');
  }
}

/** The JavaScript MR x NR register-tile micro-kernel over packed Ap/Bp into Ct (row stride NCP), as source lines. */
function jsMicroKernel(MR: number, NR: number, NCP: number): string[] {
  const L: string[] = [];
  L.push(`for (let _jr = 0; _jr < _ncp; _jr += ${NR}) {`);
  L.push(`  const _pbb = _jr * _kc;`);
  L.push(`  for (let _ir = 0; _ir < _mcp; _ir += ${MR}) {`);
  L.push(`    let _pa = _ir * _kc, _pb = _pbb;`);
  const accs: string[] = [];
  for (let i = 0; i < MR; i++) for (let j = 0; j < NR; j++) accs.push(`c${i}_${j}`);
  L.push(`    let ${accs.map((a) => `${a} = 0`).join(', ')};`);
  L.push(`    for (let _k = 0; _k < _kc; _k++) {`);
  for (let i = 0; i < MR; i++) L.push(`      const a${i} = Ap[_pa + ${i}];`);
  for (let j = 0; j < NR; j++) {
    L.push(`      const q${j} = Bp[_pb + ${j}];`);
    for (let i = 0; i < MR; i++) L.push(`      c${i}_${j} += a${i} * q${j};`);
  }
  L.push(`      _pa += ${MR}; _pb += ${NR};`);
  L.push('    }');
  L.push(`    let _co = (_ic - _c0 + _ir) * ${NCP} + _jr;`);
  L.push('    if (_pc > 0) {');
  for (let i = 0; i < MR; i++) {
    L.push(`      ${Array.from({ length: NR }, (_, j) => `Ct[_co + ${j}] += c${i}_${j};`).join(' ')}`);
    if (i < MR - 1) L.push(`      _co += ${NCP};`);
  }
  L.push('    } else {');
  for (let i = 0; i < MR; i++) {
    L.push(`      ${Array.from({ length: NR }, (_, j) => `Ct[_co + ${j}] = c${i}_${j};`).join(' ')}`);
    if (i < MR - 1) L.push(`      _co += ${NCP};`);
  }
  L.push('    }');
  L.push('  }');
  L.push('}');
  return L;
}

/** Integer GEMM: exact 32-bit wrap-around like the host (Math.imul, | 0). */
function emitIntGemm(spec: GemmSpec, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[]): JsKernelCode {
  if (usesReducingFeatures(spec)) throw new Error(`cpu codegen: integer matmul ${spec.name} with row statistics or reducing outputs`);
  const cb = new CodeBuilder();
  const aDtype = dtypes.get(spec.aBuf) ?? spec.dtype;
  const bDtype = dtypes.get(spec.bBuf) ?? spec.dtype;
  emitRangeLoops(cb, [spec.batch, spec.m], ['b', 'm'], () => {
    emitNestedLoops(cb, [spec.n], ['n'], () => {
      cb.line('let _acc = 0;');
      emitNestedLoops(cb, [spec.k], ['k'], () => {
        const a = cb.value(spec.aExpr ?? { op: 'load', buf: spec.aBuf, index: spec.aIdx, dtype: aDtype });
        const b = cb.value(spec.bExpr ?? { op: 'load', buf: spec.bBuf, index: spec.bIdx, dtype: bDtype });
        cb.line(`_acc = (_acc + Math.imul(${a}, ${b})) | 0;`);
      });
      if (spec.dtype === 'u32') cb.line('_acc = _acc >>> 0;');
      const d = cb.depth;
      cb.accResolver = () => ({ src: '_acc', depth: d });
      cb.storeAll(spec.outputs, (b) => dtypes.get(b) ?? spec.dtype);
    });
  });
  return {
    kind: 'js',
    name: spec.name,
    source: wrapFunction(spec.name, ['start', 'end', ...bufs.map(bufName)], cb.finish()),
    bufs,
    scratch: [],
    tables: [],
    total: spec.batch * spec.m,
    splittable: true,
    workPerItem: Math.max(1, 2 * spec.n * spec.k),
  };
}

export function emitMatmul(k: MatmulKernel, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], opts: EmitOptions = {}, original: MatmulKernel = k): JsKernelCode {
  return emitGemm({ ...matmulSpec(k), originalOutputs: original.outputs }, dtypes, bufs, opts);
}
