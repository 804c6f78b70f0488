/**
 * Layout changes on the native CPU backend: a loop kernel with no reductions whose output is
 * contiguous in its last variable while one of its loads is contiguous in another variable and
 * far apart in the last (autodiff's NHWC -> CHWN copies before a weight-gradient convolution, 4%
 * of a ConvNeXt training step as a plain loop: every element of the inner loop read another cache
 * line and page). Emitted in tiles: the load's contiguous variable in blocks of TILE innermost,
 * the last variable around it, so both the lines read and the lines written stay in L1.
 */
import type { DType } from '../../../ir/dtype.js';
import { axisNamed } from '../../kernel/axis.js';
import { affineStrides } from '../../kernel/index_expr.js';
import { type LoopKernel, type SExpr, visitSExpr } from '../../kernel/kernel_graph.js';
import { CBuilder, type CKernelCode, cRangeLoops, wrapRange } from './c_common.js';

const TILE = 16;
/** A load whose last-variable stride is at least this many elements counts as strided. */
const FAR = 64;

/** The variable (index into k.outer) a tiled copy blocks on, or -1 when the kernel is not such a copy. */
export function transposeAxis(k: LoopKernel): number {
  if (k.row.length || k.reductions.length || k.rowOutputs.length || k.outer.length < 2) return -1;
  const outs = k.outerOutputs;
  if (!outs.length || outs.some((o) => o.accumulate || o.dyn || o.when)) return -1;
  const L = k.outer.length - 1;
  const vL = axisNamed(`o${L}`);
  if (k.outer[L]! < 2) return -1;
  // every store contiguous in the last variable
  for (const o of outs) {
    const a = affineStrides(o.index);
    if (!a || Math.abs(a.strides.get(vL) ?? 0) !== 1) return -1;
  }
  const loads: SExpr[] = [];
  const seen = new Set<SExpr>();
  outs.forEach((o) => visitSExpr(o.expr, (n) => n.op === 'load' && loads.push(n), seen));
  for (const l of loads) {
    if (l.op !== 'load') continue;
    const a = affineStrides(l.index);
    if (!a || Math.abs(a.strides.get(vL) ?? 0) < FAR) continue;
    for (let i = 0; i < L; i++) {
      if (k.outer[i]! >= TILE && Math.abs(a.strides.get(axisNamed(`o${i}`)) ?? 0) === 1) return i;
    }
  }
  return -1;
}

export function emitTransposeC(k: LoopKernel, vin: number, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[], fn: string): CKernelCode {
  const cb = new CBuilder();
  const L = k.outer.length - 1;
  const dims: number[] = [];
  const vars: string[] = [];
  k.outer.forEach((n, i) => {
    if (i === vin || i === L) return;
    if (n === 1) {
      cb.line(`const int64_t o${i} = 0;`);
      cb.defineVars(`o${i}`);
    } else {
      dims.push(n);
      vars.push(`o${i}`);
    }
  });
  const nIn = k.outer[vin]!;
  const blocks = Math.ceil(nIn / TILE);
  dims.push(blocks);
  vars.push('_tb');
  const dt = (b: number): DType => {
    const d = dtypes.get(b);
    if (!d) throw new Error(`cpu-native codegen: kernel ${k.name} writes unknown buffer ${b}`);
    return d;
  };
  cRangeLoops(cb, dims, vars, () => {
    cb.line(`const int64_t _t0 = _tb * ${TILE}, _t1 = _t0 + ${TILE} < ${nIn} ? _t0 + ${TILE} : ${nIn};`);
    cb.open(`o${L}`);
    cb.open(`o${vin}`);
    cb.storeAll(k.outerOutputs, dt);
    cb.close(`for (int64_t o${vin} = _t0; o${vin} < _t1; o${vin}++)`);
    cb.close(`for (int64_t o${L} = 0; o${L} < ${k.outer[L]}; o${L}++)`);
  });
  const total = dims.reduce((a, b) => a * b, 1);
  return { name: k.name, fn, source: wrapRange(fn, bufs, dtypes, cb.finish()), total, splittable: true, workPerItem: TILE * k.outer[L]! * k.outerOutputs.length };
}
