/** Helpers for hand-built KernelGraphs in the CPU backend tests. */
import { axisNamed } from '../../../src/codegen/kernel/axis.js';
import { allocHost, DTYPES, type DType } from '../../../src/ir/dtype.js';
import { HostArray } from '../../../src/ir/host.js';
import type { MemoryPlan } from '../../../src/codegen/kernel/device.js';
import { idx, type Idx, linearize } from '../../../src/codegen/kernel/index_expr.js';
import type { BinaryFn, BufferDecl, CmpFn, KernelGraph, SExpr, UnaryFn } from '../../../src/codegen/kernel/kernel_graph.js';
import { mulberry32 } from '../../helpers/rng.js';
export { mulberry32 };

export const v = (name: string): Idx => idx.var(axisNamed(name));
export const ic = (c: number): Idx => idx.const(c);
export const lin = (vars: readonly (string | Idx)[], shape: readonly number[]): Idx => linearize(vars.map((x) => (typeof x === 'string' ? idx.var(axisNamed(x)) : x)), shape);

export const ld = (buf: number, index: Idx, dtype: DType = 'f32'): SExpr => ({ op: 'load', buf, index, dtype });
export const cst = (value: number, dtype: DType = 'f32'): SExpr => ({ op: 'const', value, dtype });
export const acc = (id: number, dtype: DType = 'f32'): SExpr => ({ op: 'acc', id, dtype });
export const un = (fn: UnaryFn, a: SExpr): SExpr => ({ op: 'unary', fn, a, dtype: a.dtype });
export const bin = (fn: BinaryFn, a: SExpr, b: SExpr): SExpr => ({ op: 'binary', fn, a, b, dtype: a.dtype });
export const cmp = (fn: CmpFn, a: SExpr, b: SExpr): SExpr => ({ op: 'cmp', fn, a, b, dtype: 'bool' });
export const sel = (c: SExpr, a: SExpr, b: SExpr): SExpr => ({ op: 'select', c, a, b, dtype: a.dtype });
export const cast = (a: SExpr, dtype: DType): SExpr => ({ op: 'cast', a, dtype });
export const ixv = (index: Idx, dtype: DType = 'i32'): SExpr => ({ op: 'index', index, dtype });

export const buf = (id: number, dtype: DType, size: number, kind: BufferDecl['kind']): BufferDecl => ({ id, dtype, size, kind });

/** Every temp (and every buffer placed in the arena) gets its own storage; outputs are fresh. */
export function simplePlan(g: KernelGraph, opts: { aliases?: Map<number, number>; shareTemps?: boolean } = {}): MemoryPlan {
  const maxId = g.buffers.reduce((m, b) => Math.max(m, b.id), -1);
  const storageOf = new Array<number>(maxId + 1).fill(-1);
  const storageBytes: number[] = [];
  for (const b of g.buffers) {
    if (b.kind !== 'temp') continue;
    const bytes = b.size * DTYPES[b.dtype].bytes;
    if (opts.shareTemps && storageBytes.length > 0) {
      storageOf[b.id] = 0;
      storageBytes[0] = Math.max(storageBytes[0]!, bytes);
    } else {
      storageOf[b.id] = storageBytes.length;
      storageBytes.push(bytes);
    }
  }
  return { storageOf, storageBytes, outputAliases: opts.aliases ?? new Map(), peakBytes: storageBytes.reduce((a, b) => a + b, 0) };
}


export function randArray(dtype: DType, shape: readonly number[], rng: () => number, lo = -1, hi = 1): HostArray {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = allocHost(dtype, n);
  for (let i = 0; i < n; i++) {
    const x = lo + (hi - lo) * rng();
    d[i] = dtype === 'i32' || dtype === 'u32' ? Math.floor(x) : dtype === 'bool' ? (x > (lo + hi) / 2 ? 1 : 0) : x;
  }
  return new HostArray(dtype, [...shape], d);
}

/** Max |a - b| / (atol + |b|) style check: returns the worst violation ratio (<= 1 passes). */
export function closeness(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number): { worst: number; at: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue;
    const r = Math.abs(x - y) / (atol + rtol * Math.abs(y));
    if (!(r <= worst)) {
      worst = Number.isNaN(r) ? Infinity : r;
      at = i;
    }
  }
  return { worst, at };
}

export function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number, what = ''): void {
  const { worst, at } = closeness(a, b, rtol, atol);
  if (worst > 1) throw new Error(`${what} mismatch at ${at}: got ${a[at]}, expected ${b[at]} (ratio ${worst})`);
}

/** f32 tolerance for a reduction of length n. */
export const f32tol = (n: number): number => 2e-6 * Math.max(1, Math.sqrt(n)) * 4;
