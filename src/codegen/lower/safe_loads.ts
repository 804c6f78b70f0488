/**
 * Loads that may fall outside their buffer are clamped into it. Fusion reads padded and
 * concatenated operands as `select(in bounds, x[i], fill)`, and both sides of a select are
 * evaluated, so x[i] is read at out-of-range i and its value thrown away. JavaScript reads
 * `undefined` there; C, WGSL and CUDA must not: C and CUDA read outside the allocation
 * (undefined behaviour, a fault at a page edge) and WGSL rejects a constant negative index at
 * compile time. Each load whose index can leave [0, size) over the kernel's loop ranges reads
 * at the index clamped to the buffer instead (the value is discarded all the same); loads that
 * provably stay inside, the vast majority, are left alone. Gathers (loads with a data-dependent
 * offset) are clamped by fusion already.
 */
import { AX, type Axis } from '../kernel/axis.js';
import { idx, idxRange, type Ranges } from '../kernel/index_expr.js';
import type { Kernel, SExpr } from '../kernel/kernel_graph.js';
import { rewriteKernel } from './kernel_rewrite.js';

/** The loop axes of a kernel and their extents. */
export function kernelRanges(k: Kernel): Ranges {
  const r = new Map<Axis, number>();
  switch (k.kind) {
    case 'loop':
      k.outer.forEach((n, i) => r.set(AX.outer(i), n));
      k.row.forEach((n, i) => r.set(AX.row(i), n));
      break;
    case 'matmul':
      // r0: the flattened k of an A prologue's row statistics
      r.set(AX.b, k.batch).set(AX.m, k.m).set(AX.n, k.n).set(AX.k, k.k).set(AX.row(0), k.k);
      break;
    case 'conv':
      k.outShape.forEach((n, i) => r.set(AX.outer(i), n));
      break;
    case 'sort':
      break;
  }
  return r;
}

const i32 = (value: number): SExpr => ({ op: 'const', value, dtype: 'i32' });

export function clampLoads(k: Kernel, sizeOf: (buf: number) => number): Kernel {
  const ranges = kernelRanges(k);
  return rewriteKernel(k, (e) => {
    if (e.op !== 'load' || e.dyn) return e;
    const last = Math.max(sizeOf(e.buf) - 1, 0);
    const [lo, hi] = idxRange(e.index, ranges);
    if (lo >= 0 && hi <= last) return e;
    const at: SExpr = { op: 'index', index: e.index, dtype: 'i32' };
    const high: SExpr = { op: 'select', c: { op: 'cmp', fn: 'gt', a: at, b: i32(last), dtype: 'bool' }, a: i32(last), b: at, dtype: 'i32' };
    const dyn: SExpr = { op: 'select', c: { op: 'cmp', fn: 'lt', a: at, b: i32(0), dtype: 'bool' }, a: i32(0), b: high, dtype: 'i32' };
    return { ...e, index: idx.const(0), dyn };
  });
}
