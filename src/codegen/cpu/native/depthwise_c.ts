/**
 * Depthwise convolutions on the native CPU backend through the micro-kernels of
 * depthwise_runtime_c.ts: the forward / input-gradient conv (a range over output rows; each row
 * accumulated in a per-thread f32 buffer, kernel row by kernel row, then the fused epilogue per
 * pixel and channel) and the weight gradient (a range over the kernel taps; each tap's per-channel
 * sums over images and positions, one contiguous row of positions at a time). Both need channels
 * contiguous in the activations and the weights, f32, and unit strides and dilations (ConvNeXt's
 * 7x7); anything else returns null and keeps the general loops of emit_c.ts.
 */
import type { DType } from '../../../ir/dtype.js';
import type { ConvKernel } from '../../kernel/kernel_graph.js';
import type { ConvGeom } from '../../lower/conv_geometry.js';
import { bufName } from '../../lower/dialect.js';
import { CBuilder, type CKernelCode, cNestedLoops, cRangeLoops, wrapRange } from './c_common.js';

/** Stores the kernel's outputs for each channel `v` < size, the accumulator being `accOf(v)`. */
export function epilogueOverChannel(cb: CBuilder, k: ConvKernel, dtypes: ReadonlyMap<number, DType>, v: string, size: number, accOf: (c: string) => string): void {
  cNestedLoops(cb, [size], [v], () => {
    const d = cb.depth;
    cb.accResolver = () => ({ src: accOf(v), depth: d });
    cb.storeAll(k.outputs, (b) => dtypes.get(b) ?? k.dtype);
  });
}

function unitSteps(k: ConvKernel): boolean {
  const p = k.params;
  return [...p.windowStrides, ...p.lhsDilation, ...p.rhsDilation].every((s) => s === 1);
}

/** Depthwise conv (forward or input gradient), or null when the micro-kernel does not apply. */
export function emitDepthwiseFastC(k: ConvKernel, g: ConvGeom, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode | null {
  if (k.dtype !== 'f32' || g.nsp !== 2 || g.lsC !== 1 || !unitSteps(k)) return null;
  const [OH, OW] = g.outSp as [number, number];
  const [H, W] = g.inSp as [number, number];
  const [KH, KW] = g.kSp as [number, number];
  const C = g.C;
  const [pad0, pad1] = [k.params.padding[0]![0], k.params.padding[1]![0]];
  const X = bufName(k.lhs.buf);
  const Wt = bufName(k.rhs.buf);
  const [vy, vx] = g.vSp as [string, string];
  const cb = new CBuilder();
  cb.line(`float* const ACC = (float*)ng_scratch(0, ${Math.max(1, OW * C) * 4});`);
  // weights tap-major with channels contiguous ([KH][KW][C]); other layouts (OIHW) are copied so
  // once per call by a driver into storage of the object (calls into one object never overlap),
  // before the rows split: copied by every part, the copy cost as much as a part's rows in the
  // 7x7 and 14x14 stages (7 x 320 channels: one row of work, 49 x 320 weights) and two threads
  // ran those convolutions slower than one
  const transposed = g.rsO !== 1;
  let wRow = `${Wt} + _ky * ${g.rsSp[0]}`;
  let wStride = g.rsSp[1]!;
  if (transposed) {
    wRow = `${fn}_WP + _ky * ${KW * C}`;
    wStride = C;
  }
  cRangeLoops(cb, [g.N, OH], [g.vN, vy], () => {
    cb.line(`memset(ACC, 0, ${OW * C * 4});`);
    cb.line(`for (int64_t _ky = 0; _ky < ${KH}; _ky++) {`);
    cb.line(`  const int64_t _iy = ${vy} + _ky - ${pad0};`);
    cb.line(`  if (_iy < 0 || _iy >= ${H}) continue;`);
    cb.line(`  ng_dw_row(${X} + ${g.vN} * ${g.lsN} + _iy * ${g.lsSp[0]}, ${wRow}, ACC, ${OW}, ${W}, ${C}, ${KW}, ${pad1}, ${g.lsSp[1]}, ${wStride});`);
    cb.line('}');
    cNestedLoops(cb, [OW], [vx], () => epilogueOverChannel(cb, k, dtypes, g.vC, C, (c) => `(double)ACC[${vx} * ${C} + ${c}]`));
  });
  const workPerItem = 2 * OW * C * KH * KW;
  if (!transposed) return { name: k.name, fn, source: wrapRange(fn, bufs, dtypes, cb.finish()), total: g.N * OH, splittable: true, workPerItem };
  const taps = KH * KW;
  const source = [
    `static float* ${fn}_WP;`,
    wrapRange(`${fn}_rows`, bufs, dtypes, cb.finish()),
    `static void ${fn}(void* ctx_, int64_t start, int64_t end) {`,
    '  void** const B = (void**)ctx_;',
    `  const float* const ${Wt} = (const float*)B[${k.rhs.buf}];`,
    `  if (!${fn}_WP && !(${fn}_WP = (float*)aligned_alloc(64, ${Math.ceil((Math.max(1, taps * C) * 4) / 64) * 64}))) abort();`,
    `  for (int64_t _c = 0; _c < ${C}; _c++) for (int64_t _t = 0; _t < ${taps}; _t++) ${fn}_WP[_t * ${C} + _c] = ${Wt}[_c * ${g.rsO} + (_t / ${KW}) * ${g.rsSp[0]} + (_t % ${KW}) * ${g.rsSp[1]}];`,
    `  ng_parallel(NG_RT, end - start, ${workPerItem}, ${fn}_rows, ctx_);`,
    '}',
  ].join('\n');
  return { name: k.name, fn, source, total: g.N * OH, splittable: false, selfSplit: true, workPerItem };
}

/**
 * Depthwise weight gradient (batchGroupCount == O == lhs batch), or null when the micro-kernel does
 * not apply. When x's channels are not contiguous (autodiff hands x over as CHWN: channel-major,
 * images innermost), a driver first copies x into a channels-last scratch copy, in 16 x 16 tiles
 * of (channel, image) split over the images across threads, and the taps read that: gathering
 * each row's channels on the fly (every element from another cache line, once per tap row) ran
 * the Fashion-MNIST model's 7x7 weight gradient at 9 GFLOP/s.
 */
export function emitDepthwiseWgradFastC(k: ConvKernel, g: ConvGeom, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode | null {
  if (k.dtype !== 'f32' || g.nsp !== 2 || g.rsO !== 1 || !unitSteps(k)) return null;
  if (g.lsN === 1) return emitWgradTaps(k, g, dtypes, bufs, fn, null);
  const [H, W] = g.inSp as [number, number];
  const [O, I] = [g.O, g.I];
  const XT = `${fn}_XT`;
  // x as [image][row][column][channel]
  const ct: ConvGeom = { ...g, lsN: 1, lsC: H * W * O, lsSp: [W * O, O] };
  const taps = emitWgradTaps(k, ct, dtypes, bufs, `${fn}_taps`, XT);
  const X = bufName(k.lhs.buf);
  const transpose = [
    `static void ${fn}_xt(void* ctx_, int64_t start, int64_t end) {`,
    '  void** const B = (void**)ctx_;',
    `  const float* const ${X} = (const float*)B[${k.lhs.buf}];`,
    `  for (int64_t _c0 = start; _c0 < end; _c0 += 16) for (int64_t _s = 0; _s < ${H * W}; _s++) {`,
    `    const int64_t _sx = (_s / ${W}) * ${g.lsSp[0]} + (_s % ${W}) * ${g.lsSp[1]};`,
    `    for (int64_t _o0 = 0; _o0 < ${O}; _o0 += 16)`,
    `      for (int64_t _c = _c0; _c < (_c0 + 16 < end ? _c0 + 16 : end); _c++)`,
    `        for (int64_t _o = _o0; _o < (_o0 + 16 < ${O} ? _o0 + 16 : ${O}); _o++)`,
    `          ${XT}[_c * ${H * W * O} + _s * ${O} + _o] = ${X}[_o * ${g.lsN} + _c * ${g.lsC} + _sx];`,
    '  }',
    '}',
  ].join('\n');
  const source = [
    `static float* ${XT};`,
    transpose,
    taps.source,
    `static void ${fn}(void* ctx_, int64_t start, int64_t end) {`,
    '  (void)start; (void)end;',
    `  ${XT} = (float*)ng_scratch(4, ${Math.max(1, I * H * W * O) * 4});`,
    `  ng_parallel(NG_RT, ${I}, ${H * W * O * 2}, ${fn}_xt, ctx_);`,
    `  ng_parallel(NG_RT, ${taps.total}, ${taps.workPerItem}, ${fn}_taps, ctx_);`,
    '}',
  ].join('\n');
  return { ...taps, fn, source, total: 1, splittable: false, workPerItem: taps.total * taps.workPerItem };
}

/** The taps of a depthwise weight gradient (a range over output positions); `xCopy`: x read from this channels-last copy. */
function emitWgradTaps(k: ConvKernel, g: ConvGeom, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string, xCopy: string | null): CKernelCode {
  const O = g.O;
  const [OH, OW] = g.outSp as [number, number];
  const [H, W] = g.inSp as [number, number];
  const [QH, QW] = g.kSp as [number, number];
  const [pad0, pad1] = [k.params.padding[0]![0], k.params.padding[1]![0]];
  const X = xCopy ?? bufName(k.lhs.buf);
  const DY = bufName(k.rhs.buf);
  const P = OH * OW;
  const cb = new CBuilder();
  cb.line(`float* const ACC = (float*)ng_scratch(0, (size_t)(end - start) * ${O * 4});`);
  cb.line(`memset(ACC, 0, (size_t)(end - start) * ${O * 4});`);
  // images and input rows outermost, taps inside: an input row and the dy rows it meets stay in
  // cache across the taps (taps outermost streamed all of x and dy once per tap: memory-bound).
  // Channels not contiguous in x (autodiff may hand over x as CHWN) are gathered per row.
  const contiguous = g.lsN === 1;
  if (!contiguous) cb.line(`float* const XR = (float*)ng_scratch(1, ${Math.max(1, W * O) * 4});`);
  cb.line(`for (int64_t _c = 0; _c < ${g.I}; _c++) for (int64_t _i0 = 0; _i0 < ${H}; _i0++) {`);
  cb.line(`  const float* const _xr0 = ${X} + _c * ${g.lsC} + _i0 * ${g.lsSp[0]};`);
  if (contiguous) cb.line('  const float* const _xr = _xr0;');
  else {
    cb.line(`  for (int64_t _j = 0; _j < ${W}; _j++) for (int64_t _o = 0; _o < ${O}; _o++) XR[_j * ${O} + _o] = _xr0[_j * ${g.lsSp[1]} + _o * ${g.lsN}];`);
    cb.line('  const float* const _xr = XR;');
  }
  const xs = contiguous ? g.lsSp[1]! : O;
  cb.line('  for (int64_t _y = start; _y < end; _y++) {');
  cb.line(`    const int64_t _y0 = _y / ${OW}, _y1 = _y % ${OW};`);
  cb.line(`    const int64_t _q0 = _i0 + ${pad0} - _y0;`);
  cb.line(`    if (_q0 < 0 || _q0 >= ${QH}) continue;`);
  // the dy columns q whose input column y + q - pad lies inside the image
  cb.line(`    const int64_t _q1lo = ${pad1} - _y1 > 0 ? ${pad1} - _y1 : 0, _q1hi = ${W + pad1} - _y1 < ${QW} ? ${W + pad1} - _y1 : ${QW};`);
  cb.line('    if (_q1hi <= _q1lo) continue;');
  cb.line(
    `    ng_dw_dot_rows(_xr + (_y1 + _q1lo - ${pad1}) * ${xs}, ${DY} + _c * ${g.rsI} + _q0 * ${g.rsSp[0]} + _q1lo * ${g.rsSp[1]}, ACC + (_y - start) * ${O}, _q1hi - _q1lo, ${O}, ${xs}, ${g.rsSp[1]});`,
  );
  cb.line('  }');
  cb.line('}');
  const outVars = [...g.vSp];
  cb.line(`const int64_t ${g.vN} = 0;`);
  cb.defineVars(g.vN);
  cRangeLoops(cb, [...g.outSp], outVars, () => {
    cb.line(`const int64_t _ab = (_f + ${outVars[1]} - _lo - start) * ${O};`);
    epilogueOverChannel(cb, k, dtypes, g.vC, O, (c) => `(double)ACC[_ab + ${c}]`);
  });
  return { name: k.name, fn, source: wrapRange(fn, bufs, dtypes, cb.finish()), total: P, splittable: true, workPerItem: 2 * O * g.I * QH * QW };
}
