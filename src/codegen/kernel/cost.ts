/**
 * What a kernel costs, counted from the kernel IR alone (no backend): floating-point and integer
 * operations, and the bytes it must move -- each buffer's elements read once and written once
 * (the compulsory traffic; a kernel that re-reads a row it could keep in cache is not charged
 * twice). `nexgrad ir --print kernels` prints these per kernel and per scope (block), and
 * bench/fusion compares them fused and unfused.
 *
 * Counting rules (one table): every unary, binary, compare or select node of an expression DAG
 * is one operation per element it is evaluated for (shared nodes once), a Threefry word is
 * THREEFRY_OPS, casts, loads, constants and index values are free; a matmul is 2 b m n k, a
 * convolution 2 per multiply-add of its window, a sort n log2 n compares per row. Reads of a
 * load are the elements its index can reach (the product of the extents of the loop variables it
 * uses, capped at the buffer's size), taken per buffer as the largest of its load sites.
 */
import type { DType } from '../../ir/dtype.js';
import type { Axis } from './axis.js';
import { AX } from './axis.js';
import { idxVars } from './index_expr.js';
import { isExprOperand, type Kernel, type KernelGraph, type KernelOutput, outputExprs, type SExpr, type SExprOp, visitSExpr } from './kernel_graph.js';

export interface KernelCost {
  /** Arithmetic operations (a multiply-add is two). */
  readonly flops: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

/** Rounds of Threefry-2x32 (20) times the operations of one round on two words (add, rotate, xor: ~5), plus key injections. */
const THREEFRY_OPS = 120;

/** Operations one node costs per evaluation. */
const NODE_OPS: Readonly<Record<SExprOp, number>> = {
  load: 0,
  const: 0,
  index: 0,
  acc: 0,
  cast: 0,
  unary: 1,
  binary: 1,
  cmp: 1,
  select: 1,
  threefry: THREEFRY_OPS,
};

/** Operations of a set of expressions evaluated together (shared nodes counted once). */
export function exprOps(exprs: readonly SExpr[]): number {
  const seen = new Set<SExpr>();
  let n = 0;
  for (const e of exprs) visitSExpr(e, (x) => (n += NODE_OPS[x.op]), seen);
  return n;
}

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

/** The default bytes per element of a dtype (a device's own sizes come from its DeviceCaps). */
export function defaultElementBytes(d: DType): number {
  return d === 'f64' ? 8 : d === 'f16' || d === 'bf16' ? 2 : d === 'bool' ? 1 : 4;
}

/** The loop variables a kernel's expressions use, with their extents. */
function kernelRanges(k: Kernel): Map<Axis, number> {
  switch (k.kind) {
    case 'loop':
      return new Map<Axis, number>([...k.outer.map((n, i) => [AX.outer(i), n] as const), ...k.row.map((n, i) => [AX.row(i), n] as const)]);
    case 'matmul':
      return new Map<Axis, number>([
        [AX.b, k.batch],
        [AX.m, k.m],
        [AX.n, k.n],
        [AX.k, k.k],
        // the row statistics of an A prologue run over r0 = the flattened k
        [AX.row(0), k.k],
      ]);
    case 'conv':
      return new Map<Axis, number>(k.outShape.map((n, i) => [AX.outer(i), n] as const));
    case 'sort':
      return new Map();
  }
}

class Traffic {
  private readonly reads = new Map<number, number>();
  private readonly writes = new Map<number, number>();
  constructor(
    private readonly g: KernelGraph,
    private readonly ranges: ReadonlyMap<Axis, number>,
  ) {}

  private cap(buf: number, n: number): number {
    return Math.min(n, this.g.buffers[buf]?.size ?? n);
  }
  /** Elements an index over `vars` can reach, given the iterations it runs for. */
  private reach(vars: ReadonlySet<Axis>, iterations: number, dynamic: boolean): number {
    if (dynamic) return iterations;
    let n = 1;
    for (const v of vars) n *= this.ranges.get(v) ?? 1;
    return Math.min(n, iterations);
  }
  read(buf: number, n: number): void {
    this.reads.set(buf, Math.max(this.reads.get(buf) ?? 0, this.cap(buf, n)));
  }
  write(buf: number, n: number): void {
    this.writes.set(buf, Math.max(this.writes.get(buf) ?? 0, this.cap(buf, n)));
  }
  /** The loads of expressions evaluated `iterations` times. */
  loads(exprs: readonly SExpr[], iterations: number): void {
    const seen = new Set<SExpr>();
    for (const e of exprs) {
      visitSExpr(e, (x) => {
        if (x.op === 'load') this.read(x.buf, this.reach(idxVars(x.index), iterations, x.dyn !== undefined));
      }, seen);
    }
  }
  outputs(outs: readonly KernelOutput[], iterations: number): void {
    for (const o of outs) {
      this.loads(outputExprs(o), iterations);
      const n = this.reach(idxVars(o.index), iterations, o.dyn !== undefined);
      this.write(o.buf, n);
      if (o.accumulate && o.init !== 'zero') this.read(o.buf, n);
    }
  }
  bytes(elementBytes: (d: DType) => number): { bytesRead: number; bytesWritten: number } {
    const sum = (m: Map<number, number>): number => [...m].reduce((s, [b, n]) => s + n * elementBytes(this.g.buffers[b]?.dtype ?? 'f32'), 0);
    return { bytesRead: sum(this.reads), bytesWritten: sum(this.writes) };
  }
}

/** The operations and compulsory bytes of one kernel of `g`. */
export function kernelCost(k: Kernel, g: KernelGraph, elementBytes: (d: DType) => number = defaultElementBytes): KernelCost {
  const t = new Traffic(g, kernelRanges(k));
  let flops = 0;
  switch (k.kind) {
    case 'loop': {
      const O = prod(k.outer);
      const OR = O * prod(k.row);
      const reds = k.reductions.map((r) => r.expr);
      flops += OR * (exprOps(reds) + k.reductions.length) + O * exprOps(k.outerOutputs.flatMap(outputExprs)) + OR * exprOps(k.rowOutputs.flatMap(outputExprs));
      t.loads(reds, OR);
      t.outputs(k.outerOutputs, O);
      t.outputs(k.rowOutputs, OR);
      break;
    }
    case 'matmul': {
      const mn = k.batch * k.m * k.n;
      flops += 2 * mn * k.k + mn * exprOps(k.outputs.flatMap(outputExprs));
      for (const [op, rows, cols] of [[k.a, k.m, k.k], [k.b, k.k, k.n]] as const) {
        const n = k.batch * rows * cols;
        if (isExprOperand(op)) {
          flops += n * exprOps([op.expr]);
          t.loads([op.expr], n);
          // row statistics: each reduction's expression once per element of the row space
          const stats = (op.stats?.reductions ?? []).map((r) => r.expr);
          flops += n * (exprOps(stats) + stats.length);
          t.loads(stats, n);
        } else {
          t.read(op.buf, n);
        }
      }
      t.outputs(k.outputs, mn);
      break;
    }
    case 'conv': {
      const E = prod(k.outShape);
      const outFeatures = k.rhs.shape[k.params.dims.rhs[0]!] ?? 1;
      const window = prod(k.rhs.shape) / Math.max(1, outFeatures);
      flops += 2 * E * window + E * exprOps(k.outputs.flatMap(outputExprs));
      t.read(k.lhs.buf, prod(k.lhs.shape));
      t.read(k.rhs.buf, prod(k.rhs.shape));
      t.outputs(k.outputs, E);
      break;
    }
    case 'sort': {
      const n = k.shape[k.axis] ?? 1;
      const rows = prod(k.shape) / Math.max(1, n);
      flops += rows * n * Math.max(1, Math.ceil(Math.log2(Math.max(2, n))));
      t.read(k.input, prod(k.shape));
      t.write(k.output, prod(k.shape));
      break;
    }
  }
  return { flops, ...t.bytes(elementBytes) };
}

/** The total cost of a graph's kernels. */
export function graphCost(g: KernelGraph, elementBytes?: (d: DType) => number): KernelCost {
  return g.kernels.reduce<KernelCost>(
    (s, k) => {
      const c = kernelCost(k, g, elementBytes);
      return { flops: s.flops + c.flops, bytesRead: s.bytesRead + c.bytesRead, bytesWritten: s.bytesWritten + c.bytesWritten };
    },
    { flops: 0, bytesRead: 0, bytesWritten: 0 },
  );
}
