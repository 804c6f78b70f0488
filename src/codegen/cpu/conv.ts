/**
 * Convolution kernels on the CPU, for the paths src/codegen/lower/conv_geometry.ts chooses:
 *
 * - im2col GEMM: feature and batch groups 1, no padding, no lhs dilation (1x1 convs, strided
 *   patchify convs like ConvNeXt's stem 4x4/4 and downsample 2x2/2, and their weight
 *   gradients): rows are (batch, output position), columns output features, the contraction
 *   (input feature, kernel position), gathered by the GEMM's packing code.
 * - depthwise: featureGroupCount == input features == output features: a direct loop per output
 *   position with the channel loop innermost (contiguous for NHWC).
 * - depthwise weight gradient: batchGroupCount == output features == lhs batch (what autodiff
 *   produces for a depthwise conv's kernel): per output position block, a sweep over the
 *   inputs with the channel loop innermost.
 * - generic: a direct implementation of the full semantics (window table computed at compile
 *   time), computing into scratch, then the epilogue.
 *
 * Epilogue outputs see the conv value at output index (o0, o1, ...) as `acc 0`.
 */
import type { DType } from '../../ir/dtype.js';
import { affineStrides, idx, type Idx, idxSubst, linearize } from '../kernel/index_expr.js';
import { axisNamed } from '../kernel/axis.js';
import type { ConvKernel } from '../kernel/kernel_graph.js';
import { type ConvGeom, convGeometry, convPath, gemmSpecOf, gemmSpecOfTransposed, windowTable } from '../lower/conv_geometry.js';
import { type EmitOptions, emitNestedLoops, emitRangeLoops, type JsKernelCode, wrapFunction } from './common.js';
import { emitGemm } from './matmul.js';
import { bufName, CodeBuilder } from './scope.js';
import { type DwRowConfig, type WgRowConfig, wasmSimdAvailable } from './wasm.js';

// ---------------------------------------------------------------------------------------
// direct paths

/**
 * Emits, for the spatial dims, the loops over kernel positions with the input position checks:
 * inside, `_xs` is the lhs spatial offset and `_ws` the rhs spatial offset. `ySrc[d]` is the
 * output position's source.
 */
function emitWindowLoops(cb: CodeBuilder, k: ConvKernel, g: ConvGeom, ySrc: readonly string[], body: () => void, prefix = '_'): void {
  const p = k.params;
  const rec = (d: number, xs: string, ws: string): void => {
    if (d === g.nsp) {
      cb.line(`const ${prefix}xs = ${xs}, ${prefix}ws = ${ws};`);
      body();
      return;
    }
    const kv = `${prefix}k${d}`;
    const iv = `${prefix}i${d}`;
    const ld = p.lhsDilation[d]!;
    const lo = p.padding[d]![0];
    cb.line(`for (let ${kv} = 0; ${kv} < ${g.kSp[d]}; ${kv}++) {`);
    cb.line(`  let ${iv} = ${ySrc[d]} * ${p.windowStrides[d]} + ${kv} * ${p.rhsDilation[d]} - ${lo};`);
    if (ld !== 1) {
      cb.line(`  if (${iv} < 0 || ${iv} % ${ld} !== 0) continue;`);
      cb.line(`  ${iv} = ${iv} / ${ld};`);
      cb.line(`  if (${iv} >= ${g.inSp[d]}) continue;`);
    } else {
      cb.line(`  if (${iv} < 0 || ${iv} >= ${g.inSp[d]}) continue;`);
    }
    rec(d + 1, `${xs} + ${iv} * ${g.lsSp[d]}`, `${ws} + ${kv} * ${g.rsSp[d]}`);
    cb.line('}');
  };
  rec(0, '0', '0');
}

function emitDepthwise(k: ConvKernel, g: ConvGeom, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[]): JsKernelCode {
  const cb = new CodeBuilder();
  const C = g.C;
  const X = bufName(k.lhs.buf);
  const W = bufName(k.rhs.buf);
  const pixDims = [g.N, ...g.outSp];
  const pixVars = [g.vN, ...g.vSp];
  const total = pixDims.reduce((a, b) => a * b, 1);
  const work = 2 * C * g.kSp.reduce((a, b) => a * b, 1);
  emitRangeLoops(cb, pixDims, pixVars, () => {
    cb.line(`for (let _c = 0; _c < ${C}; _c++) ACC[_c] = 0;`);
    emitWindowLoops(cb, k, g, g.vSp, () => {
      cb.line(`const _xb = ${g.vN} * ${g.lsN} + _xs;`);
      if (g.lsC === 1 && g.rsO === 1) {
        cb.line(`for (let _c = 0; _c < ${C}; _c++) ACC[_c] += ${X}[_xb + _c] * ${W}[_ws + _c];`);
      } else {
        cb.line(`for (let _c = 0; _c < ${C}; _c++) ACC[_c] += ${X}[_xb + _c * ${g.lsC}] * ${W}[_ws + _c * ${g.rsO}];`);
      }
    });
    emitEpilogueOverChannel(cb, k, dtypes, g.vC, C, (c) => `ACC[${c}]`);
  });
  return {
    kind: 'js',
    name: k.name,
    source: wrapFunction(k.name, ['start', 'end', ...bufs.map(bufName), 'ACC'], cb.finish()),
    bufs,
    scratch: [{ type: 'f64', size: C }],
    tables: [],
    total,
    splittable: true,
    workPerItem: work,
  };
}

/** Whether the depthwise conv can use the WebAssembly SIMD row kernel. */
function depthwiseWasmOk(k: ConvKernel, g: ConvGeom, opts: EmitOptions): boolean {
  const p = k.params;
  return (
    (opts.wasm ?? true) &&
    wasmSimdAvailable() &&
    k.dtype !== 'f64' &&
    g.nsp === 2 &&
    p.lhsDilation.every((d) => d === 1) &&
    p.padding.every(([lo, hi]) => lo >= 0 && hi >= 0)
  );
}

/**
 * Depthwise conv with the WebAssembly row kernel: per image, the input rows the range needs are
 * copied into a zero-padded band [rows][Wpad][Cp] in wasm memory (channels padded to a multiple
 * of 4), weights into [kh*kw][Cp]; each output row is one dwrow call into ACC [OW][Cp]; then
 * the generated epilogue reads ACC. The range is over output rows (batch, oy).
 */
function emitDepthwiseWasm(k: ConvKernel, g: ConvGeom, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[]): JsKernelCode {
  const p = k.params;
  const cb = new CodeBuilder();
  const C = g.C;
  const Cp = Math.ceil(C / 4) * 4;
  const [H, Wd] = g.inSp as [number, number];
  const [KH, KW] = g.kSp as [number, number];
  const [OH, OW] = g.outSp as [number, number];
  const [sy, sx] = p.windowStrides as [number, number];
  const [ry, rx] = p.rhsDilation as [number, number];
  const [loY, hiY] = p.padding[0]!;
  const [loX, hiX] = p.padding[1]!;
  const Wpad = loX + Wd + hiX;
  const ROWE = Wpad * Cp;
  const Hpad = loY + H + hiY;
  const X = bufName(k.lhs.buf);
  const Wt = bufName(k.rhs.buf);
  const [vy, vx] = g.vSp as [string, string];
  const align = (x: number): number => Math.ceil(x / 64) * 64;
  const xpOff = 0;
  const xpElems = Hpad * ROWE;
  const wpOff = align(xpOff + xpElems * 4);
  const wpElems = KH * KW * Cp;
  const accOff = align(wpOff + wpElems * 4);
  const accElems = OW * Cp;
  const cfg: DwRowConfig = { cg: Cp / 4, kh: KH, kw: KW, sxB: sx * Cp * 4, dxB: rx * Cp * 4, dyB: ry * ROWE * 4, cpB: Cp * 4 };
  // weights -> WP[(ky * KW + kx) * Cp + c]
  cb.line(`for (let _ky = 0; _ky < ${KH}; _ky++) for (let _kx = 0; _kx < ${KW}; _kx++) {`);
  cb.line(`  const _d = (_ky * ${KW} + _kx) * ${Cp}, _s = _ky * ${g.rsSp[0]} + _kx * ${g.rsSp[1]};`);
  cb.line(`  for (let _c = 0; _c < ${C}; _c++) WP[_d + _c] = ${Wt}[_s + _c * ${g.rsO}];`);
  cb.line('}');
  cb.line('let _r = start;');
  cb.open(g.vN);
  cb.line(`const ${g.vN} = (_r / ${OH}) | 0;`);
  cb.line(`const _oy0 = _r - ${g.vN} * ${OH};`);
  cb.line(`const _oy1 = end - ${g.vN} * ${OH} < ${OH} ? end - ${g.vN} * ${OH} : ${OH};`);
  // copy the padded input band for output rows [_oy0, _oy1)
  cb.line(`const _pr0 = _oy0 * ${sy}, _pr1 = (_oy1 - 1) * ${sy} + ${(KH - 1) * ry + 1};`);
  emitPaddedBand(cb, { X, src: `${g.vN} * ${g.lsN} + _iy * ${g.lsSp[0]}`, H, W: Wd, lo0: loY, lo1: loX, hi1: hiX, C, Cp, chStride: g.lsC, xStride: g.lsSp[1]! });
  cb.open(vy);
  cb.line(`D(${xpOff} + (${vy} - _oy0) * ${sy * ROWE * 4}, ${wpOff}, ${accOff}, ${OW});`);
  const copy = C === Cp ? plainRowCopy(k, dtypes, vx, g.vC, C) : null;
  if (copy) {
    // the output row is ACC as it is: one copy instead of an epilogue per element
    cb.line(`${bufName(copy.buf)}.set(ACC.subarray(0, ${OW * C}), ${cb.index(copy.rowStart)});`);
  } else {
    cb.open(vx);
    cb.line(`const _ab = ${vx} * ${Cp};`);
    emitEpilogueOverChannel(cb, k, dtypes, g.vC, C, (c) => `ACC[_ab + ${c}]`);
    cb.close(`for (let ${vx} = 0; ${vx} < ${OW}; ${vx}++)`);
  }
  cb.close(`for (let ${vy} = _oy0; ${vy} < _oy1; ${vy}++)`);
  cb.line(`_r = ${g.vN} * ${OH} + _oy1;`);
  cb.close('while (_r < end)');
  return {
    kind: 'js',
    name: k.name,
    source: wrapFunction(k.name, ['start', 'end', ...bufs.map(bufName), 'XP', 'WP', 'ACC', 'D'], cb.finish()),
    bufs,
    scratch: [
      { type: 'f32', size: xpElems, wasmByteOffset: xpOff },
      { type: 'f32', size: wpElems, wasmByteOffset: wpOff },
      { type: 'f32', size: accElems, wasmByteOffset: accOff },
    ],
    tables: [],
    total: g.N * OH,
    splittable: true,
    workPerItem: 2 * OW * C * KH * KW,
    wasm: { kind: 'dwrow', bytes: accOff + accElems * 4, cfg },
  };
}

/**
 * Depthwise weight gradient (batchGroupCount == O == lhs batch) with the WebAssembly row kernel:
 * out[0, o, y0, y1] = sum_c sum_{q0,q1} Xpad_c[y0*s0 + q0*rd0][y1*s1 + q1*rd1][o] * W_c[q0][q1][o]
 * where c runs over the lhs features (the forward pass's batch), X_c is lhs image c with the
 * roles' channel axis innermost (padded band in wasm memory) and W_c the rhs (the output
 * gradient) image c packed [q0][q1][Cp]. The range is over output rows y0; the accumulators
 * for the range live in wasm memory until the epilogue.
 */
function emitDepthwiseWgradWasm(k: ConvKernel, g: ConvGeom, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[]): JsKernelCode {
  const p = k.params;
  const cb = new CodeBuilder();
  const O = g.O;
  const Cp = Math.ceil(O / 4) * 4;
  const [H, Wd] = g.inSp as [number, number];
  const [Q0, Q1] = g.kSp as [number, number];
  const [OY, OX] = g.outSp as [number, number];
  const [s0, s1] = p.windowStrides as [number, number];
  const [rd0, rd1] = p.rhsDilation as [number, number];
  const [lo0, hi0] = p.padding[0]!;
  const [lo1, hi1] = p.padding[1]!;
  const Wpad = lo1 + Wd + hi1;
  const ROWE = Wpad * Cp;
  const Hpad = lo0 + H + hi0;
  const X = bufName(k.lhs.buf);
  const Wt = bufName(k.rhs.buf);
  const [vy, vx] = g.vSp as [string, string];
  const align = (x: number): number => Math.ceil(x / 64) * 64;
  const xpOff = 0;
  const xpElems = Hpad * ROWE;
  const dpOff = align(xpOff + xpElems * 4);
  const dpElems = Q0 * Q1 * Cp;
  const accOff = align(dpOff + dpElems * 4);
  const accElems = OY * OX * Cp;
  const cfg: WgRowConfig = { cg: Cp / 4, q0n: Q0, q1n: Q1, ow: OX, sxB: s1 * Cp * 4, rxB: rd1 * Cp * 4, ryB: rd0 * ROWE * 4, cpB: Cp * 4 };
  cb.line(`for (let _i = 0; _i < (end - start) * ${OX * Cp}; _i++) ACC[_i] = 0;`);
  cb.line(`const _pr0 = start * ${s0}, _pr1 = (end - 1) * ${s0} + ${(Q0 - 1) * rd0 + 1};`);
  cb.line(`for (let _c = 0; _c < ${g.I}; _c++) {`);
  // the rhs image c -> DP[(q0 * Q1 + q1) * Cp + o]
  cb.line(`  for (let _q0 = 0; _q0 < ${Q0}; _q0++) for (let _q1 = 0; _q1 < ${Q1}; _q1++) {`);
  cb.line(`    const _s = _c * ${g.rsI} + _q0 * ${g.rsSp[0]} + _q1 * ${g.rsSp[1]}, _d = (_q0 * ${Q1} + _q1) * ${Cp};`);
  cb.line(`    for (let _o = 0; _o < ${O}; _o++) DP[_d + _o] = ${Wt}[_s + _o * ${g.rsO}];`);
  cb.line('  }');
  // the lhs image c: padded band of rows [_pr0, _pr1)
  emitPaddedBand(cb, { X, src: `_c * ${g.lsC} + _iy * ${g.lsSp[0]}`, H, W: Wd, lo0, lo1, hi1, C: O, Cp, chStride: g.lsN, xStride: g.lsSp[1]! });
  cb.line(`  for (let _y = start; _y < end; _y++) D(${xpOff} + (_y - start) * ${s0 * ROWE * 4}, ${dpOff}, ${accOff} + (_y - start) * ${OX * Cp * 4});`);
  cb.line('}');
  // epilogue
  cb.line(`const ${g.vN} = 0;`);
  cb.defineVars(g.vN);
  cb.open(vy);
  cb.open(vx);
  cb.line(`const _ab = ((${vy} - start) * ${OX} + ${vx}) * ${Cp};`);
  emitEpilogueOverChannel(cb, k, dtypes, g.vC, O, (c) => `ACC[_ab + ${c}]`);
  cb.close(`for (let ${vx} = 0; ${vx} < ${OX}; ${vx}++)`);
  cb.close(`for (let ${vy} = start; ${vy} < end; ${vy}++)`);
  return {
    kind: 'js',
    name: k.name,
    source: wrapFunction(k.name, ['start', 'end', ...bufs.map(bufName), 'XP', 'DP', 'ACC', 'D'], cb.finish()),
    bufs,
    scratch: [
      { type: 'f32', size: xpElems, wasmByteOffset: xpOff },
      { type: 'f32', size: dpElems, wasmByteOffset: dpOff },
      { type: 'f32', size: accElems, wasmByteOffset: accOff },
    ],
    tables: [],
    total: OY,
    splittable: true,
    workPerItem: 2 * OX * O * g.I * Q0 * Q1,
    wasm: { kind: 'wgrow', bytes: accOff + accElems * 4, cfg },
  };
}

/**
 * Copies input rows [_pr0, _pr1) of one image into the zero-padded band XP[row][Wpad][Cp]
 * (channels innermost, padded to Cp); `src` is the element offset of input row _iy.
 */
function emitPaddedBand(
  cb: CodeBuilder,
  o: { X: string; src: string; H: number; W: number; lo0: number; lo1: number; hi1: number; C: number; Cp: number; chStride: number; xStride: number },
): void {
  const ROWE = (o.lo1 + o.W + o.hi1) * o.Cp;
  cb.line('for (let _pr = _pr0; _pr < _pr1; _pr++) {');
  cb.line(`  const _dst = (_pr - _pr0) * ${ROWE}, _iy = _pr - ${o.lo0};`);
  cb.line(`  if (_iy < 0 || _iy >= ${o.H}) { XP.fill(0, _dst, _dst + ${ROWE}); continue; }`);
  if (o.lo1 > 0) cb.line(`  XP.fill(0, _dst, _dst + ${o.lo1 * o.Cp});`);
  if (o.hi1 > 0) cb.line(`  XP.fill(0, _dst + ${(o.lo1 + o.W) * o.Cp}, _dst + ${ROWE});`);
  cb.line(`  const _src = ${o.src};`);
  if (o.chStride === 1 && o.xStride === o.C && o.Cp === o.C) {
    cb.line(`  XP.set(${o.X}.subarray(_src, _src + ${o.W * o.C}), _dst + ${o.lo1 * o.Cp});`);
  } else {
    cb.line(`  for (let _ix = 0; _ix < ${o.W}; _ix++) {`);
    cb.line(`    const _d1 = _dst + (_ix + ${o.lo1}) * ${o.Cp}, _s1 = _src + _ix * ${o.xStride};`);
    cb.line(`    for (let _ch = 0; _ch < ${o.C}; _ch++) XP[_d1 + _ch] = ${o.X}[_s1 + _ch * ${o.chStride}];`);
    cb.line('  }');
  }
  cb.line('}');
}

/**
 * When the kernel's only output stores the accumulator unchanged (an f32 `acc`, or a cast of it
 * to f32) with channels contiguous and pixels C apart along x, the buffer and the index of the
 * row's first element (x = 0, channel 0); null otherwise.
 */
function plainRowCopy(k: ConvKernel, dtypes: ReadonlyMap<number, DType>, vx: string, vc: string, C: number): { buf: number; rowStart: Idx } | null {
  if (k.outputs.length !== 1 || k.dtype !== 'f32') return null;
  const o = k.outputs[0]!;
  const e = o.expr.op === 'cast' && o.expr.dtype === 'f32' ? o.expr.a : o.expr;
  if (o.dyn || o.accumulate || o.when || e.op !== 'acc' || e.dtype !== 'f32' || dtypes.get(o.buf) !== 'f32') return null;
  const a = affineStrides(o.index);
  const ax = axisNamed(vx);
  const ac = axisNamed(vc);
  if (!a || a.strides.get(ac) !== 1 || a.strides.get(ax) !== C) return null;
  return { buf: o.buf, rowStart: idxSubst(o.index, new Map([[ax, idx.const(0)], [ac, idx.const(0)]]), new Map()) };
}

/** A loop over one output variable (the channel) storing the epilogue outputs. */
function emitEpilogueOverChannel(cb: CodeBuilder, k: ConvKernel, dtypes: ReadonlyMap<number, DType>, v: string, size: number, accOf: (c: string) => string): void {
  emitNestedLoops(cb, [size], [v], () => {
    const d = cb.depth;
    cb.accResolver = () => ({ src: accOf(v), depth: d });
    cb.storeAll(k.outputs, (b) => dtypes.get(b) ?? k.dtype);
  });
}

/**
 * batchGroupCount == O == lhs batch: out[0, o, y] = sum_c sum_k X[o, c, y*s + k*rd - lo] W[o, c, k].
 * The range is over output positions y; for each input feature c and kernel position k, all
 * output positions of the range accumulate with the channel (o) loop innermost.
 */
function emitDepthwiseWgrad(k: ConvKernel, g: ConvGeom, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[]): JsKernelCode {
  const cb = new CodeBuilder();
  const p = k.params;
  const O = g.O;
  const X = bufName(k.lhs.buf);
  const W = bufName(k.rhs.buf);
  const P = g.outSp.reduce((a, b) => a * b, 1);
  const Pk = g.kSp.reduce((a, b) => a * b, 1);
  // per output position y (flattened): decompose into y_d
  cb.line(`for (let _i = 0; _i < (end - start) * ${O}; _i++) ACC[_i] = 0;`);
  cb.line(`for (let _c = 0; _c < ${g.I}; _c++) {`);
  cb.line(`  const _xc = _c * ${g.lsC}, _wc = _c * ${g.rsI};`);
  // loops over the rhs spatial positions (kernel of this conv = e.g. the output gradient image)
  const kv = g.kSp.map((_, d) => `_q${d}`);
  for (let d = 0; d < g.nsp; d++) cb.line(`for (let ${kv[d]} = 0; ${kv[d]} < ${g.kSp[d]}; ${kv[d]}++) {`);
  cb.line(`const _wb = _wc${kv.map((v, d) => ` + ${v} * ${g.rsSp[d]}`).join('')};`);
  cb.line('for (let _y = start; _y < end; _y++) {');
  cb.line('  let _r = _y;');
  const yv = g.outSp.map((_, d) => `_y${d}`);
  for (let d = g.nsp - 1; d >= 0; d--) {
    cb.line(`  const ${yv[d]} = _r % ${g.outSp[d]}; _r = (_r - ${yv[d]}) / ${g.outSp[d]};`);
  }
  const checks: string[] = [];
  let xs = '_xc';
  for (let d = 0; d < g.nsp; d++) {
    const iv = `_i${d}`;
    const ld = p.lhsDilation[d]!;
    cb.line(`  let ${iv} = ${yv[d]} * ${p.windowStrides[d]} + ${kv[d]} * ${p.rhsDilation[d]} - ${p.padding[d]![0]};`);
    if (ld !== 1) {
      cb.line(`  if (${iv} < 0 || ${iv} % ${ld} !== 0) continue;`);
      cb.line(`  ${iv} = ${iv} / ${ld};`);
      cb.line(`  if (${iv} >= ${g.inSp[d]}) continue;`);
    } else checks.push(`${iv} < 0 || ${iv} >= ${g.inSp[d]}`);
    xs += ` + ${iv} * ${g.lsSp[d]}`;
  }
  if (checks.length) cb.line(`  if (${checks.join(' || ')}) continue;`);
  cb.line(`  const _xb = ${xs}, _ab = (_y - start) * ${O};`);
  if (g.lsN === 1 && g.rsO === 1) cb.line(`  for (let _o = 0; _o < ${O}; _o++) ACC[_ab + _o] += ${X}[_xb + _o] * ${W}[_wb + _o];`);
  else cb.line(`  for (let _o = 0; _o < ${O}; _o++) ACC[_ab + _o] += ${X}[_xb + _o * ${g.lsN}] * ${W}[_wb + _o * ${g.rsO}];`);
  cb.line('}');
  for (let d = 0; d < g.nsp; d++) cb.line('}');
  cb.line('}');
  // epilogue over the range's output positions, channel innermost
  const outVars = g.vSp.length ? [...g.vSp] : ['_y'];
  cb.line(`const ${g.vN} = 0;`);
  cb.defineVars(g.vN);
  emitRangeLoops(cb, g.outSp.length ? [...g.outSp] : [1], outVars, () => {
    cb.line(`const _ab = (_f + ${outVars[outVars.length - 1]} - _lo - start) * ${O};`);
    emitEpilogueOverChannel(cb, k, dtypes, g.vC, O, (c) => `ACC[_ab + ${c}]`);
  });
  return {
    kind: 'js',
    name: k.name,
    source: wrapFunction(k.name, ['start', 'end', ...bufs.map(bufName), 'ACC'], cb.finish()),
    bufs,
    scratch: [{ type: 'f64', size: P * O }],
    tables: [],
    total: P,
    splittable: true,
    workPerItem: 2 * O * g.I * Pk,
  };
}

function emitGeneric(k: ConvKernel, g: ConvGeom, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[]): JsKernelCode {
  const cb = new CodeBuilder();
  const Nb = g.N / g.BG;
  const Og = g.O / g.G;
  const Ob = g.O / g.BG;
  const Pk = g.kSp.reduce((a, b) => a * b, 1);
  const Pout = g.outSp.reduce((a, b) => a * b, 1);
  const X = bufName(k.lhs.buf);
  const W = bufName(k.rhs.buf);
  const integer = k.dtype === 'i32' || k.dtype === 'u32';
  const wk = new Int32Array(Pk);
  for (let pk = 0; pk < Pk; pk++) {
    let r = pk;
    let off = 0;
    for (let d = g.nsp - 1; d >= 0; d--) {
      off += (r % g.kSp[d]!) * g.rsSp[d]!;
      r = Math.floor(r / g.kSp[d]!);
    }
    wk[pk] = off;
  }
  const size = Nb * g.O * Pout;
  cb.line(`for (let _i = 0; _i < ${size}; _i++) ACC[_i] = 0;`);
  cb.line(`for (let _n = 0; _n < ${Nb}; _n++) {`);
  cb.line(`  for (let _o = 0; _o < ${g.O}; _o++) {`);
  cb.line(`    const _fg = (_o / ${Og}) | 0, _nIn = ((_o / ${Ob}) | 0) * ${Nb} + _n, _ao = (_n * ${g.O} + _o) * ${Pout};`);
  cb.line(`    for (let _c = 0; _c < ${g.I}; _c++) {`);
  cb.line(`      const _xo = _nIn * ${g.lsN} + (_fg * ${g.I} + _c) * ${g.lsC}, _wo = _o * ${g.rsO} + _c * ${g.rsI};`);
  cb.line(`      for (let _pk = 0; _pk < ${Pk}; _pk++) {`);
  cb.line(`        const _wv = ${W}[_wo + WK[_pk]], _to = _pk * ${Pout};`);
  cb.line(`        for (let _q = 0; _q < ${Pout}; _q++) {`);
  cb.line(`          const _t = TAB[_to + _q];`);
  if (integer) cb.line(`          if (_t >= 0) ACC[_ao + _q] = (ACC[_ao + _q] + Math.imul(_wv, ${X}[_xo + _t])) | 0;`);
  else cb.line(`          if (_t >= 0) ACC[_ao + _q] += _wv * ${X}[_xo + _t];`);
  cb.line('        }');
  cb.line('      }');
  cb.line('    }');
  cb.line('  }');
  cb.line('}');
  // epilogue over the output space; acc = ACC[canonical index]
  const outShape = k.outShape.length ? [...k.outShape] : [1];
  const vars = outShape.map((_, i) => `o${i}`);
  const accIdx = linearize([idx.var(g.aN), idx.var(g.aC), ...g.aSp.map((v) => idx.var(v))], [Nb, g.O, ...g.outSp]);
  const total = outShape.reduce((a, b) => a * b, 1);
  cb.line('{');
  cb.line('const start = 0, end = ' + total + ';');
  emitRangeLoops(cb, outShape, vars, () => {
    cb.accResolver = () => {
      const s = cb.index(accIdx);
      return { src: integer && k.dtype === 'u32' ? `(ACC[${s}] >>> 0)` : `ACC[${s}]`, depth: cb.idxDepth(accIdx) };
    };
    cb.storeAll(k.outputs, (b) => dtypes.get(b) ?? k.dtype);
  });
  cb.line('}');
  return {
    kind: 'js',
    name: k.name,
    source: wrapFunction(k.name, ['start', 'end', ...bufs.map(bufName), 'ACC'], cb.finish(), ['const TAB = T[0], WK = T[1];']),
    bufs,
    scratch: [{ type: 'f64', size: Math.max(size, 1) }],
    tables: [windowTable(k, g), wk],
    total: 1,
    splittable: false,
    workPerItem: 2 * size * g.I * Pk,
  };
}

export function emitConv(k: ConvKernel, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], opts: EmitOptions = {}, original: ConvKernel = k): JsKernelCode {
  const g = convGeometry(k);
  const path = convPath(k);
  switch (path) {
    case 'gemm':
      return { ...emitGemm({ ...gemmSpecOf(k, g), originalOutputs: gemmSpecOf(original, g).outputs }, dtypes, bufs, opts), name: k.name };
    case 'gemm_transposed':
      return { ...emitGemm({ ...gemmSpecOfTransposed(k, g), originalOutputs: gemmSpecOfTransposed(original, g).outputs }, dtypes, bufs, opts), name: k.name };
    case 'depthwise':
      return depthwiseWasmOk(k, g, opts) ? emitDepthwiseWasm(k, g, dtypes, bufs) : emitDepthwise(k, g, dtypes, bufs);
    case 'depthwise_wgrad':
      return depthwiseWasmOk(k, g, opts) ? emitDepthwiseWgradWasm(k, g, dtypes, bufs) : emitDepthwiseWgrad(k, g, dtypes, bufs);
    case 'generic':
      return emitGeneric(k, g, dtypes, bufs);
  }
}
