/**
 * Kernel -> C for the native CPU backend: loop kernels (reductions in row and column mode,
 * gathers, scatters, threefry: all arrive as scalar expressions), sorts, and the convolution
 * paths of lower/conv_geometry.ts (the GEMM ones go to gemm_c.ts). Each kernel becomes a range
 * function `<fn>(ctx, start, end)` over its splittable range, like the JavaScript emitters
 * (emit.ts), so disjoint parts can run on the thread pool.
 */
import type { DType } from '../../../ir/dtype.js';
import { axisNamed } from '../../kernel/axis.js';
import { idx, linearize } from '../../kernel/index_expr.js';
import { type ConvKernel, type Kernel, type LoopKernel, type SortKernel } from '../../kernel/kernel_graph.js';
import { type ConvGeom, convGeometry, convPath, gemmSpecOf, gemmSpecOfTransposed, windowTable } from '../../lower/conv_geometry.js';
import { bufName } from '../../lower/dialect.js';
import { lowerExprs } from '../../lower/expr_rules.js';
import { type GemmSpec, matmulSpec } from '../../lower/gemm_spec.js';
import { kernelBuffers, preferColumns } from '../emit.js';
import { C_NATIVE, cElemType } from './c_dialect.js';
import { C_REDUCE_INIT, CBuilder, cFinishAcc, type CKernelCode, cName, cNestedLoops, cRangeLoops, cRangeLoopsPrefix, cReduceUpdate, cSumLoops, wrapRange } from './c_common.js';
import { emitDepthwiseFastC, emitDepthwiseWgradFastC, epilogueOverChannel } from './depthwise_c.js';
import { emitGemmC } from './gemm_c.js';
import { bCacheApplies, emitGemmBCacheC } from './gemm_bcache_c.js';
import { emitGemmKSplitC, kSplitApplies } from './gemm_ksplit_c.js';
import { columnSplitApplies, emitGemmColumnsC } from './gemm_cols_c.js';
import { emitTransposeC, transposeAxis } from './transpose_c.js';
import { reductionPasses } from './column_plan_c.js';

function rowIndexC(row: readonly number[]): string {
  let stride = 1;
  const parts: string[] = [];
  for (let d = row.length - 1; d >= 0; d--) {
    if (row[d]! > 1) parts.push(stride === 1 ? `r${d}` : `${stride} * r${d}`);
    stride *= row[d]!;
  }
  return parts.length ? parts.join(' + ') : '0';
}

function emitLoopC(k: LoopKernel, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode {
  const tiled = transposeAxis(k);
  if (tiled >= 0) return emitTransposeC(k, tiled, dtypes, bufs, fn);
  const cb = new CBuilder();
  const outerAll = k.outer.length ? [...k.outer] : [1];
  const total = outerAll.reduce((a, b) => a * b, 1);
  const rowSize = k.row.reduce((a, b) => a * b, 1);
  const outer: number[] = [];
  const ovars: string[] = [];
  outerAll.forEach((n, i) => {
    if (n === 1 && k.outer.length) {
      cb.line(`const int64_t o${i} = 0;`);
      cb.defineVars(`o${i}`);
    } else {
      outer.push(n);
      ovars.push(`o${i}`);
    }
  });
  if (outer.length === 0) {
    outer.push(1);
    ovars.push('_o');
  }
  const row: number[] = [];
  const rvars: string[] = [];
  k.row.forEach((n, i) => {
    if (n === 1) {
      cb.line(`const int64_t r${i} = 0;`);
      cb.defineVars(`r${i}`);
    } else {
      row.push(n);
      rvars.push(`r${i}`);
    }
  });
  const dt = (b: number): DType => {
    const d = dtypes.get(b);
    if (!d) throw new Error(`cpu-native codegen: kernel ${k.name} writes unknown buffer ${b}`);
    return d;
  };
  const NL = outer[outer.length - 1]!;
  const vL = ovars[ovars.length - 1]!;
  const lastRow = rvars[rvars.length - 1];
  const columns = NL > 1 && lastRow !== undefined && preferColumns(k, axisNamed(vL), axisNamed(lastRow));
  if (!columns) {
    cRangeLoops(cb, outer, ovars, () => {
      const accDepth = cb.depth;
      const done = new Set<number>();
      cb.accResolver = (id) => {
        if (!done.has(id)) throw new Error(`cpu-native codegen: kernel ${k.name} reads acc ${id} before its reduction`);
        return { src: `acc${id}`, depth: accDepth };
      };
      for (const r of k.reductions) {
        cb.line(`double acc${r.id}_ = ${C_REDUCE_INIT[r.op]};`);
        if (r.op === 'argmax') cb.line(`double acc${r.id}_v = 0;`);
        (r.op === 'sum' ? (body: () => void) => cSumLoops(cb, row, rvars, `acc${r.id}_`, body) : (body: () => void) => cNestedLoops(cb, row, rvars, body))(() => {
          const v = cb.value(r.expr);
          cb.line(cReduceUpdate(r.op, `acc${r.id}_`, v, r.op === 'argmax' ? rowIndexC(k.row) : ''));
        });
        cb.line(`const ${r.op === 'argmax' ? 'int32_t' : regOf(r.dtype)} acc${r.id} = ${r.op === 'argmax' ? `(int32_t)acc${r.id}_` : cFinishAcc(`acc${r.id}_`, r.dtype)};`);
        done.add(r.id);
      }
      cb.storeAll(k.outerOutputs, dt);
      if (k.rowOutputs.length) cNestedLoops(cb, row, rvars, () => cb.storeAll(k.rowOutputs, dt));
    });
  } else {
    // column mode: per prefix, accumulator arrays over the range of the last outer variable
    const accName = new Map<number, string>();
    // one scratch block for all the accumulator arrays (a merged kernel may have many)
    cb.line(`double* const S_ = (double*)ng_scratch(0, ${NL * 8 * Math.max(1, k.reductions.length)});`);
    k.reductions.forEach((r, i) => {
      accName.set(r.id, `S${i}`);
      cb.line(`double* const S${i} = S_ + ${i * NL};`);
    });
    const done = new Set<number>();
    cb.accResolver = (id) => {
      if (!done.has(id)) throw new Error(`cpu-native codegen: kernel ${k.name} reads acc ${id} before its reduction`);
      const r = k.reductions.find((x) => x.id === id)!;
      return { src: cFinishAcc(`${accName.get(id)!}[${vL} - _lo]`, r.dtype), depth: cb.depthOfVar(vL) };
    };
    const lastLoop = (body: () => void): void => {
      cb.open(vL);
      body();
      cb.close(`for (int64_t ${vL} = _lo; ${vL} < _hi; ${vL}++)`);
    };
    const passes = reductionPasses(k);
    cRangeLoopsPrefix(cb, outer, ovars, () => {
      for (const pass of passes) {
        for (const r of pass) cb.line(`for (int64_t _j = 0; _j < _hi - _lo; _j++) ${accName.get(r.id)!}[_j] = ${C_REDUCE_INIT[r.op]};`);
        cNestedLoops(cb, row, rvars, () => {
          lastLoop(() => {
            cb.line(`const int64_t _a = ${vL} - _lo;`);
            for (const r of pass) cb.line(cReduceUpdate(r.op, `${accName.get(r.id)!}[_a]`, cb.value(r.expr)));
          });
        });
        for (const r of pass) done.add(r.id);
      }
      if (k.outerOutputs.length) lastLoop(() => cb.storeAll(k.outerOutputs, dt));
      if (k.rowOutputs.length) cNestedLoops(cb, row, rvars, () => lastLoop(() => cb.storeAll(k.rowOutputs, dt)));
    });
  }
  const nodes = k.reductions.length + k.outerOutputs.length + k.rowOutputs.length;
  const scatters = [...k.outerOutputs, ...k.rowOutputs].some((o) => o.accumulate);
  return {
    name: k.name,
    fn,
    source: wrapRange(fn, bufs, dtypes, cb.finish()),
    total,
    splittable: !scatters,
    workPerItem: Math.max(1, rowSize * Math.max(1, k.reductions.length + (k.rowOutputs.length ? 1 : 0))) * Math.max(1, nodes),
    partsPerThread: columns ? 1 : 4,
  };
}

const regOf = (d: DType): string => (d === 'i32' ? 'int32_t' : d === 'u32' ? 'uint32_t' : d === 'bool' ? 'int' : 'double');

function emitSortC(k: SortKernel, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode {
  const n = k.shape[k.axis]!;
  const stride = k.shape.slice(k.axis + 1).reduce((a, b) => a * b, 1);
  const rows = k.shape.reduce((a, b) => a * b, 1) / Math.max(n, 1);
  const X = bufName(k.input);
  const O = bufName(k.output);
  const body = [
    `double* const _v = (double*)ng_scratch(0, ${Math.max(n, 1) * 8});`,
    `int32_t* const _i = (int32_t*)ng_scratch(1, ${Math.max(n, 1) * 4});`,
    `int32_t* const _t = (int32_t*)ng_scratch(2, ${Math.max(n, 1) * 4});`,
    'for (int64_t _r = start; _r < end; _r++) {',
    `  const int64_t _o = (_r / ${stride}) * ${stride * n} + (_r % ${stride});`,
    `  for (int64_t _k = 0; _k < ${n}; _k++) _v[_k] = (double)${X}[_o + ${stride} * _k];`,
    `  ng_argsort(_v, ${n}, _i, _t, ${k.descending ? 1 : 0});`,
    `  for (int64_t _k = 0; _k < ${n}; _k++) ${O}[_o + ${stride} * _k] = _i[_k];`,
    '}',
  ].join('\n');
  return { name: k.name, fn, source: wrapRange(fn, bufs, dtypes, body), total: n === 0 ? 0 : rows, splittable: true, workPerItem: Math.max(1, n * Math.log2(n + 1) * 4) };
}

// ---------------------------------------------------------------------------------------
// convolutions (direct paths)

/** Window loops over kernel positions with bounds checks; inside, `_xs`/`_ws` are the spatial offsets. */
function windowLoopsC(cb: CBuilder, k: ConvKernel, g: ConvGeom, ySrc: readonly string[], body: () => void): void {
  const p = k.params;
  const rec = (d: number, xs: string, ws: string): void => {
    if (d === g.nsp) {
      cb.line(`const int64_t _xs = ${xs}, _ws = ${ws};`);
      body();
      return;
    }
    const ld = p.lhsDilation[d]!;
    cb.line(`for (int64_t _k${d} = 0; _k${d} < ${g.kSp[d]}; _k${d}++) {`);
    cb.line(`  int64_t _i${d} = ${ySrc[d]} * ${p.windowStrides[d]} + _k${d} * ${p.rhsDilation[d]} - ${p.padding[d]![0]};`);
    if (ld !== 1) {
      cb.line(`  if (_i${d} < 0 || _i${d} % ${ld} != 0) continue;`);
      cb.line(`  _i${d} = _i${d} / ${ld};`);
      cb.line(`  if (_i${d} >= ${g.inSp[d]}) continue;`);
    } else cb.line(`  if (_i${d} < 0 || _i${d} >= ${g.inSp[d]}) continue;`);
    rec(d + 1, `${xs} + _i${d} * ${g.lsSp[d]}`, `${ws} + _k${d} * ${g.rsSp[d]}`);
    cb.line('}');
  };
  rec(0, '0', '0');
}

/** Depthwise conv: per output pixel, channels innermost (the compiler vectorises the constant-length channel loop). */
function emitDepthwiseC(k: ConvKernel, g: ConvGeom, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode {
  const cb = new CBuilder();
  const C = g.C;
  const X = bufName(k.lhs.buf);
  const W = bufName(k.rhs.buf);
  const acc = k.dtype === 'f64' ? 'double' : 'float';
  const pixDims = [g.N, ...g.outSp];
  const total = pixDims.reduce((a, b) => a * b, 1);
  cb.line(`${acc}* const ACC = (${acc}*)ng_scratch(0, ${C * 8});`);
  cRangeLoops(cb, pixDims, [g.vN, ...g.vSp], () => {
    cb.line(`for (int64_t _c = 0; _c < ${C}; _c++) ACC[_c] = 0;`);
    windowLoopsC(cb, k, g, g.vSp, () => {
      cb.line(`const ${cElemType(k.dtype)}* const _x = ${X} + ${g.vN} * ${g.lsN} + _xs;`);
      cb.line(`const ${cElemType(k.dtype)}* const _w = ${W} + _ws;`);
      cb.line(`for (int64_t _c = 0; _c < ${C}; _c++) ACC[_c] += _x[_c * ${g.lsC}] * _w[_c * ${g.rsO}];`);
    });
    epilogueOverChannel(cb, k, dtypes, g.vC, C, (c) => `(double)ACC[${c}]`);
  });
  return { name: k.name, fn, source: wrapRange(fn, bufs, dtypes, cb.finish()), total, splittable: true, workPerItem: 2 * C * g.kSp.reduce((a, b) => a * b, 1) };
}

/** Depthwise weight gradient (batchGroupCount == O == lhs batch): range over output positions. */
function emitDepthwiseWgradC(k: ConvKernel, g: ConvGeom, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode {
  const cb = new CBuilder();
  const p = k.params;
  const O = g.O;
  const X = bufName(k.lhs.buf);
  const W = bufName(k.rhs.buf);
  const P = g.outSp.reduce((a, b) => a * b, 1);
  const acc = k.dtype === 'f64' ? 'double' : 'float';
  cb.line(`${acc}* const ACC = (${acc}*)ng_scratch(0, (size_t)(end - start) * ${O * 8});`);
  cb.line(`for (int64_t _i = 0; _i < (end - start) * ${O}; _i++) ACC[_i] = 0;`);
  cb.line(`for (int64_t _c = 0; _c < ${g.I}; _c++) {`);
  cb.line(`  const int64_t _xc = _c * ${g.lsC}, _wc = _c * ${g.rsI};`);
  const kv = g.kSp.map((_, d) => `_q${d}`);
  for (let d = 0; d < g.nsp; d++) cb.line(`for (int64_t ${kv[d]} = 0; ${kv[d]} < ${g.kSp[d]}; ${kv[d]}++) {`);
  cb.line(`const int64_t _wb = _wc${kv.map((v, d) => ` + ${v} * ${g.rsSp[d]}`).join('')};`);
  cb.line('for (int64_t _y = start; _y < end; _y++) {');
  cb.line('  int64_t _r = _y;');
  const yv = g.outSp.map((_, d) => `_y${d}`);
  for (let d = g.nsp - 1; d >= 0; d--) cb.line(`  const int64_t ${yv[d]} = _r % ${g.outSp[d]}; _r = (_r - ${yv[d]}) / ${g.outSp[d]};`);
  let xs = '_xc';
  for (let d = 0; d < g.nsp; d++) {
    const ld = p.lhsDilation[d]!;
    cb.line(`  int64_t _i${d} = ${yv[d]} * ${p.windowStrides[d]} + ${kv[d]} * ${p.rhsDilation[d]} - ${p.padding[d]![0]};`);
    if (ld !== 1) {
      cb.line(`  if (_i${d} < 0 || _i${d} % ${ld} != 0) continue;`);
      cb.line(`  _i${d} = _i${d} / ${ld};`);
      cb.line(`  if (_i${d} >= ${g.inSp[d]}) continue;`);
    } else cb.line(`  if (_i${d} < 0 || _i${d} >= ${g.inSp[d]}) continue;`);
    xs += ` + _i${d} * ${g.lsSp[d]}`;
  }
  cb.line(`  const int64_t _xb = ${xs};`);
  cb.line(`  ${acc}* const _a = ACC + (_y - start) * ${O};`);
  cb.line(`  for (int64_t _o = 0; _o < ${O}; _o++) _a[_o] += ${X}[_xb + _o * ${g.lsN}] * ${W}[_wb + _o * ${g.rsO}];`);
  cb.line('}');
  for (let d = 0; d < g.nsp; d++) cb.line('}');
  cb.line('}');
  const outVars = g.vSp.length ? [...g.vSp] : ['_y'];
  cb.line(`const int64_t ${g.vN} = 0;`);
  cb.defineVars(g.vN);
  cRangeLoops(cb, g.outSp.length ? [...g.outSp] : [1], outVars, () => {
    cb.line(`const int64_t _ab = (_f + ${outVars[outVars.length - 1]} - _lo - start) * ${O};`);
    epilogueOverChannel(cb, k, dtypes, g.vC, O, (c) => `(double)ACC[_ab + ${c}]`);
  });
  return { name: k.name, fn, source: wrapRange(fn, bufs, dtypes, cb.finish()), total: P, splittable: true, workPerItem: 2 * O * g.I * g.kSp.reduce((a, b) => a * b, 1) };
}

/** The full conv_general semantics with a window table (not split). */
function emitGenericConvC(k: ConvKernel, g: ConvGeom, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode {
  const cb = new CBuilder();
  const Nb = g.N / g.BG;
  const Og = g.O / g.G;
  const Ob = g.O / g.BG;
  const Pk = g.kSp.reduce((a, b) => a * b, 1);
  const Pout = g.outSp.reduce((a, b) => a * b, 1);
  const X = bufName(k.lhs.buf);
  const W = bufName(k.rhs.buf);
  const integer = k.dtype === 'i32' || k.dtype === 'u32';
  const wk: number[] = [];
  for (let pk = 0; pk < Pk; pk++) {
    let r = pk;
    let off = 0;
    for (let d = g.nsp - 1; d >= 0; d--) {
      off += (r % g.kSp[d]!) * g.rsSp[d]!;
      r = Math.floor(r / g.kSp[d]!);
    }
    wk.push(off);
  }
  const size = Nb * g.O * Pout;
  const tab = windowTable(k, g);
  const accT = integer ? 'int32_t' : 'double';
  const table = `static const int32_t ${fn}_TAB[${Math.max(tab.length, 1)}] = {${tab.length ? Array.from(tab).join(',') : '0'}};\nstatic const int32_t ${fn}_WK[${Math.max(Pk, 1)}] = {${wk.length ? wk.join(',') : '0'}};`;
  cb.line(`${accT}* const ACC = (${accT}*)ng_scratch(0, ${Math.max(size, 1) * 8});`);
  cb.line(`for (int64_t _i = 0; _i < ${size}; _i++) ACC[_i] = 0;`);
  cb.line(`for (int64_t _n = 0; _n < ${Nb}; _n++) for (int64_t _o = 0; _o < ${g.O}; _o++) {`);
  cb.line(`  const int64_t _fg = _o / ${Og}, _nIn = (_o / ${Ob}) * ${Nb} + _n, _ao = (_n * ${g.O} + _o) * ${Pout};`);
  cb.line(`  for (int64_t _c = 0; _c < ${g.I}; _c++) {`);
  cb.line(`    const int64_t _xo = _nIn * ${g.lsN} + (_fg * ${g.I} + _c) * ${g.lsC}, _wo = _o * ${g.rsO} + _c * ${g.rsI};`);
  cb.line(`    for (int64_t _pk = 0; _pk < ${Pk}; _pk++) {`);
  cb.line(`      const ${accT} _wv = ${W}[_wo + ${fn}_WK[_pk]]; const int64_t _to = _pk * ${Pout};`);
  cb.line(`      for (int64_t _q = 0; _q < ${Pout}; _q++) {`);
  cb.line(`        const int32_t _t = ${fn}_TAB[_to + _q];`);
  if (integer) cb.line(`        if (_t >= 0) ACC[_ao + _q] = (int32_t)((uint32_t)ACC[_ao + _q] + (uint32_t)_wv * (uint32_t)${X}[_xo + _t]);`);
  else cb.line(`        if (_t >= 0) ACC[_ao + _q] += _wv * ${X}[_xo + _t];`);
  cb.line('      }');
  cb.line('    }');
  cb.line('  }');
  cb.line('}');
  const outShape = k.outShape.length ? [...k.outShape] : [1];
  const vars = outShape.map((_, i) => `o${i}`);
  const accIdx = linearize([idx.var(g.aN), idx.var(g.aC), ...g.aSp.map((v) => idx.var(v))], [Nb, g.O, ...g.outSp]);
  const total = outShape.reduce((a, b) => a * b, 1);
  cb.line('{');
  cb.line(`const int64_t start = 0, end = ${total};`);
  cRangeLoops(cb, outShape, vars, () => {
    cb.accResolver = () => {
      const s = cb.index(accIdx);
      return { src: k.dtype === 'u32' ? `((uint32_t)ACC[${s}])` : `ACC[${s}]`, depth: cb.idxDepth(accIdx) };
    };
    cb.storeAll(k.outputs, (b) => dtypes.get(b) ?? k.dtype);
  });
  cb.line('}');
  return { name: k.name, fn, source: `${table}\n${wrapRange(fn, bufs, dtypes, cb.finish())}`, total: 1, splittable: false, workPerItem: 2 * size * g.I * Pk };
}

/**
 * A GEMM split by rows, or by K when it has few rows and a long reduction (gemm_ksplit_c.ts); B
 * packed once across calls when it is read from a buffer the graph never writes (gemm_bcache_c.ts);
 * by columns when its row units are too few for the threads (gemm_cols_c.ts, decided at run time).
 */
function emitGemmAnyC(spec: GemmSpec, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string, stable: ReadonlySet<number>): CKernelCode {
  if (kSplitApplies(spec)) return emitGemmKSplitC(spec, dtypes, bufs, fn);
  if (bCacheApplies(spec, stable)) return emitGemmBCacheC(spec, dtypes, bufs, fn);
  return columnSplitApplies(spec) ? emitGemmColumnsC(spec, dtypes, bufs, fn) : emitGemmC(spec, dtypes, bufs, fn);
}

function emitConvC(k: ConvKernel, original: ConvKernel, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string, stable: ReadonlySet<number>): CKernelCode {
  const g = convGeometry(k);
  switch (convPath(k)) {
    case 'gemm':
      return { ...emitGemmAnyC(gemmSpecOf(k, g), dtypes, bufs, fn, stable), name: k.name };
    case 'gemm_transposed':
      return { ...emitGemmAnyC(gemmSpecOfTransposed(k, g), dtypes, bufs, fn, stable), name: k.name };
    case 'depthwise':
      return emitDepthwiseFastC(k, g, dtypes, bufs, fn) ?? emitDepthwiseC(k, g, dtypes, bufs, fn);
    case 'depthwise_wgrad':
      return emitDepthwiseWgradFastC(k, g, dtypes, bufs, fn) ?? emitDepthwiseWgradC(k, g, dtypes, bufs, fn);
    case 'generic':
      void original;
      return emitGenericConvC(k, g, dtypes, bufs, fn);
  }
}

/** The edge-case rewrites before printing C (src/codegen/lower/expr_rules.ts). */
export function prepareKernelC(k: Kernel): Kernel {
  return lowerExprs(k, { native: C_NATIVE });
}

/**
 * Generates the C of one kernel (its index in the graph names its function). `stable`: buffers the
 * graph never writes and the caller does not donate (GEMMs keep their packed copies across calls).
 */
export function emitKernelC(kernel: Kernel, index: number, dtypes: ReadonlyMap<number, DType>, stable: ReadonlySet<number> = new Set()): CKernelCode {
  const k = prepareKernelC(kernel);
  const bufs = kernelBuffers(k);
  const fn = cName(k.name, index);
  switch (k.kind) {
    case 'loop':
      return emitLoopC(k, dtypes, bufs, fn);
    case 'matmul':
      return { ...emitGemmAnyC(matmulSpec(k), dtypes, bufs, fn, stable), name: k.name };
    case 'conv':
      return emitConvC(k, kernel as ConvKernel, dtypes, bufs, fn, stable);
    case 'sort':
      return emitSortC(k, dtypes, bufs, fn);
  }
}
