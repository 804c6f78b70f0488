/**
 * The backend-neutral kernel IR. A KernelGraph is a list of kernels over numbered buffers.
 * Loop kernels are an index space (outer axes, optional inner "row" axes for reductions) with
 * scalar expression DAGs whose loads go through index expressions; matmul and convolution are
 * anchor kernels whose epilogue expressions see the accumulated value as `acc 0`; sort kernels
 * argsort rows. Every primitive lowers to these (gather is a load at a data-dependent offset,
 * scatter_add an accumulating store, random_bits a threefry expression, argmax a reduction).
 */
import type { DType } from '../../ir/dtype.js';
import type { HostArray } from '../../ir/host.js';
import type { ConvParams } from '../../ir/primitive.js';
import { type Idx, idxKey, idxSource } from './index_expr.js';
import { printSExpr, type ReduceOp, type SExpr, visitSExpr } from './sexpr.js';

export * from './sexpr.js';

export interface BufferDecl {
  readonly id: number;
  readonly dtype: DType;
  /** Elements. */
  readonly size: number;
  readonly kind: 'input' | 'output' | 'temp' | 'const';
}

export interface KernelOutput {
  readonly buf: number;
  readonly index: Idx;
  readonly expr: SExpr;
  /** A data-dependent i32 element offset added to `index` (scatter). */
  readonly dyn?: SExpr;
  /** Add into the buffer instead of storing (scatter_add; atomic where threads may collide). */
  readonly accumulate?: boolean;
  /** Store only where this bool expression holds (scatter drops out-of-range updates). */
  readonly when?: SExpr;
  /**
   * With `accumulate`: the kernel zeroes the buffer before it runs, so the output is the sum of
   * every value the kernel adds into it (a reducing epilogue: GRN's sum of squares accumulated
   * by the matmul that produces its input).
   */
  readonly init?: 'zero';
}

/** A reduction phase: `acc id` = op over the row space of expr (which may read earlier accs). */
export interface Reduction {
  readonly id: number;
  readonly op: ReduceOp;
  readonly expr: SExpr;
  readonly dtype: DType;
}

/** The expressions an output evaluates (its value, offset and guard). */
export function outputExprs(o: KernelOutput): SExpr[] {
  return [o.expr, ...(o.dyn ? [o.dyn] : []), ...(o.when ? [o.when] : [])];
}

/**
 * Loop variables o0..o{n-1} range over `outer`, r0..r{m-1} over `row`. For each outer index the
 * reductions run in order over the row space (a reduction may use earlier ones' results), then
 * `outerOutputs` are stored once and `rowOutputs` once per row index.
 */
export interface LoopKernel {
  readonly kind: 'loop';
  readonly name: string;
  readonly outer: readonly number[];
  readonly row: readonly number[];
  readonly reductions: readonly Reduction[];
  readonly outerOutputs: readonly KernelOutput[];
  readonly rowOutputs: readonly KernelOutput[];
  /** The full index space the loops cover (kept axes -> o vars, reduced axes -> r vars). */
  readonly space?: { readonly F: readonly number[]; readonly axes: readonly number[] };
}

export interface StridedOperand {
  readonly kind: 'strided';
  readonly buf: number;
  readonly offset: number;
  /** [batch, rows, cols] element strides. */
  readonly strides: readonly [number, number, number];
}

/**
 * An operand computed while the GEMM packs it (a prologue): a scalar expression over the loop
 * variables b, m, k (for A) or b, k, n (for B). GRN's scale and shift before the second
 * pointwise matmul, say, without a pass of their own.
 */
export interface ExprOperand {
  readonly kind: 'expr';
  readonly expr: SExpr;
  /**
   * Row statistics the expression reads as `acc id` (the A operand only): for each (b, m), the
   * reductions run in order over row variables r0.. of extents `row` (variables b, m, r0..; a
   * reduction may read earlier ones) before the row is packed. LayerNorm's mean and variance
   * before the first pointwise matmul, computed while the GEMM reads the rows anyway.
   */
  readonly stats?: { readonly row: readonly number[]; readonly reductions: readonly Reduction[] };
}

export type MatmulOperand = StridedOperand | ExprOperand;

export const isExprOperand = (o: MatmulOperand): o is ExprOperand => o.kind === 'expr';

/**
 * C[b, m, n] = sum_k A[b, m, k] * B[b, k, n], accumulated in f32 (f64 for f64); the epilogue
 * outputs use loop variables b, m, n and `acc 0`.
 */
export interface MatmulKernel {
  readonly kind: 'matmul';
  readonly name: string;
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly dtype: DType;
  /** A as [batch, m, k]. */
  readonly a: MatmulOperand;
  /** B as [batch, k, n]. */
  readonly b: MatmulOperand;
  readonly outputs: readonly KernelOutput[];
  /**
   * Rows per reduction group, with reducing epilogues (outputs with `init: 'zero'`): their store
   * index depends on m only through floor(m / reduceRows), which divides m, so a backend may split
   * the rows among threads at group boundaries and sum each group in row order (deterministic).
   * GRN's per-sample sum of squares over the H*W rows of each image.
   */
  readonly reduceRows?: number;
}

/** conv_general over contiguous operands; epilogue outputs use loop variables o0.. over outShape. */
export interface ConvKernel {
  readonly kind: 'conv';
  readonly name: string;
  readonly params: ConvParams;
  readonly dtype: DType;
  readonly lhs: { readonly buf: number; readonly shape: readonly number[] };
  readonly rhs: { readonly buf: number; readonly shape: readonly number[] };
  readonly outShape: readonly number[];
  readonly outputs: readonly KernelOutput[];
}

/**
 * A stable argsort of every row of `input` (rows run along `axis` of `shape`): output element j
 * of a row is the index of its j-th smallest element (largest when descending); NaN sorts last,
 * ties keep index order. Output i32, same shape.
 */
export interface SortKernel {
  readonly kind: 'sort';
  readonly name: string;
  readonly input: number;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly axis: number;
  readonly descending: boolean;
  readonly output: number;
}

export type Kernel = LoopKernel | MatmulKernel | ConvKernel | SortKernel;

export type GraphOutput = { readonly kind: 'buffer'; readonly buf: number; readonly shape: readonly number[]; readonly dtype: DType } | { readonly kind: 'literal'; readonly value: number; readonly dtype: DType };

export interface KernelGraph {
  readonly buffers: readonly BufferDecl[];
  readonly kernels: readonly Kernel[];
  /** One buffer per program input. */
  readonly inputs: readonly number[];
  readonly outputs: readonly GraphOutput[];
  readonly consts: readonly { readonly buf: number; readonly value: HostArray }[];
}

/** Buffers a kernel reads and writes (an accumulating store reads what it writes). */
export function kernelIO(k: Kernel): { reads: number[]; writes: number[] } {
  if (k.kind === 'sort') return { reads: [k.input], writes: [k.output] };
  const reads = new Set<number>();
  const seen = new Set<SExpr>();
  const visit = (e: SExpr): void =>
    visitSExpr(e, (n) => {
      if (n.op === 'load') reads.add(n.buf);
    }, seen);
  let outs: readonly KernelOutput[] = [];
  switch (k.kind) {
    case 'loop':
      k.reductions.forEach((r) => visit(r.expr));
      outs = [...k.outerOutputs, ...k.rowOutputs];
      break;
    case 'matmul':
      for (const op of [k.a, k.b]) {
        if (isExprOperand(op)) {
          visit(op.expr);
          op.stats?.reductions.forEach((r) => visit(r.expr));
        } else reads.add(op.buf);
      }
      outs = k.outputs;
      break;
    case 'conv':
      reads.add(k.lhs.buf);
      reads.add(k.rhs.buf);
      outs = k.outputs;
      break;
  }
  for (const o of outs) {
    outputExprs(o).forEach(visit);
    if (o.accumulate && o.init !== 'zero') reads.add(o.buf);
  }
  return { reads: [...reads], writes: [...new Set(outs.map((o) => o.buf))] };
}

// ---------------------------------------------------------------------------------------
// printer

function fmtOutputs(outs: readonly KernelOutput[], indent: string): string[] {
  return outs.map((o) => {
    const at = `buf${o.buf}[${idxSource(o.index)}${o.dyn ? ` + (${printSExpr(o.dyn)})` : ''}]`;
    const when = o.when ? ` when (${printSExpr(o.when)})` : '';
    return `${indent}${at} ${o.accumulate ? (o.init === 'zero' ? '+= (from 0)' : '+=') : '='} ${printSExpr(o.expr)}${when}`;
  });
}

export function printKernel(k: Kernel): string {
  const lines: string[] = [];
  switch (k.kind) {
    case 'loop':
      lines.push(`loop ${k.name} outer=[${k.outer.join(',')}]${k.row.length ? ` row=[${k.row.join(',')}]` : ''}`);
      for (const r of k.reductions) lines.push(`  acc${r.id} = ${r.op} over row: ${printSExpr(r.expr)}`);
      lines.push(...fmtOutputs(k.outerOutputs, '  '));
      lines.push(...fmtOutputs(k.rowOutputs, '  row: '));
      break;
    case 'matmul':
      {
        const op = (o: MatmulOperand): string => (isExprOperand(o) ? `(${printSExpr(o.expr)})` : `buf${o.buf}+${o.offset}[${o.strides.join(',')}]`);
        lines.push(`matmul ${k.name} b=${k.batch} m=${k.m} n=${k.n} k=${k.k}${k.reduceRows ? ` rows/group=${k.reduceRows}` : ''} A=${op(k.a)} B=${op(k.b)}`);
        if (isExprOperand(k.a) && k.a.stats) for (const r of k.a.stats.reductions) lines.push(`  A row stat acc${r.id} = ${r.op} over row [${k.a.stats.row.join(',')}]: ${printSExpr(r.expr)}`);
      }
      lines.push(...fmtOutputs(k.outputs, '  '));
      break;
    case 'conv':
      lines.push(`conv ${k.name} lhs=buf${k.lhs.buf}[${k.lhs.shape.join(',')}] rhs=buf${k.rhs.buf}[${k.rhs.shape.join(',')}] out=[${k.outShape.join(',')}] strides=${k.params.windowStrides.join(',')} groups=${k.params.featureGroupCount}/${k.params.batchGroupCount}`);
      lines.push(...fmtOutputs(k.outputs, '  '));
      break;
    case 'sort':
      lines.push(`sort ${k.name} buf${k.output} = argsort${k.descending ? ' desc' : ''}(buf${k.input}:${k.dtype}[${k.shape.join(',')}], axis ${k.axis})`);
      break;
  }
  return lines.join('\n');
}

export function printKernelGraph(g: KernelGraph): string {
  const bufs = g.buffers.map((b) => `buf${b.id}:${b.dtype}[${b.size}] ${b.kind}`).join(', ');
  return [`buffers: ${bufs}`, ...g.kernels.map(printKernel)].join('\n');
}

export { idxKey };
