/**
 * The backend-neutral kernel IR. A KernelGraph is a list of kernels over numbered buffers.
 * Loop kernels are an index space (outer loops, optional inner "row" loops for reductions) with
 * scalar expression DAGs whose loads go through index expressions; matmul and convolution are
 * anchor kernels whose epilogue expressions see the accumulated value as `acc 0`; host kernels
 * run a primitive's reference implementation (argsort, random bits, scatter ...).
 */
import type { DType } from '../../ir/dtype.js';
import type { HostArray } from '../../ir/host.js';
import type { ConvParams } from '../../ir/primitive.js';
import { type Idx, idxKey, idxSource } from './index_expr.js';

export type UnaryFn = 'neg' | 'exp' | 'log' | 'log1p' | 'expm1' | 'sin' | 'cos' | 'tanh' | 'logistic' | 'sqrt' | 'rsqrt' | 'erf' | 'abs' | 'sign' | 'floor' | 'ceil' | 'round' | 'not';
export type BinaryFn = 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min' | 'pow' | 'rem' | 'and' | 'or' | 'xor' | 'shift_left' | 'shift_right_logical';
export type CmpFn = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';
export type ReduceOp = 'sum' | 'max' | 'min';

/** A scalar expression. Nodes are shared (a DAG); emitters compute each node once. */
export type SExpr =
  | { readonly op: 'load'; readonly buf: number; readonly index: Idx; readonly dtype: DType }
  | { readonly op: 'const'; readonly value: number; readonly dtype: DType }
  /** The value of an index expression (iota; pad/concat bounds tests). */
  | { readonly op: 'index'; readonly index: Idx; readonly dtype: DType }
  | { readonly op: 'unary'; readonly fn: UnaryFn; readonly a: SExpr; readonly dtype: DType }
  | { readonly op: 'binary'; readonly fn: BinaryFn; readonly a: SExpr; readonly b: SExpr; readonly dtype: DType }
  | { readonly op: 'cmp'; readonly fn: CmpFn; readonly a: SExpr; readonly b: SExpr; readonly dtype: 'bool' }
  | { readonly op: 'select'; readonly c: SExpr; readonly a: SExpr; readonly b: SExpr; readonly dtype: DType }
  | { readonly op: 'cast'; readonly a: SExpr; readonly dtype: DType }
  /** A reduction's result in a loop kernel (by id), or the anchor's accumulator (id 0). */
  | { readonly op: 'acc'; readonly id: number; readonly dtype: DType };

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
  readonly reductions: readonly { readonly id: number; readonly op: ReduceOp; readonly expr: SExpr; readonly dtype: DType }[];
  readonly outerOutputs: readonly KernelOutput[];
  readonly rowOutputs: readonly KernelOutput[];
  /** The full index space the loops cover (kept axes -> o vars, reduced axes -> r vars). */
  readonly space?: { readonly F: readonly number[]; readonly axes: readonly number[] };
}

export interface StridedOperand {
  readonly kind?: 'strided';
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

/** Runs a primitive's host implementation on contiguous buffers. */
export interface HostKernel {
  readonly kind: 'host';
  readonly name: string;
  readonly prim: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly inputs: readonly { readonly buf: number; readonly shape: readonly number[]; readonly dtype: DType }[];
  readonly outputs: readonly { readonly buf: number; readonly shape: readonly number[]; readonly dtype: DType }[];
}

export type Kernel = LoopKernel | MatmulKernel | ConvKernel | HostKernel;

export type GraphOutput = { readonly kind: 'buffer'; readonly buf: number; readonly shape: readonly number[]; readonly dtype: DType } | { readonly kind: 'literal'; readonly value: number; readonly dtype: DType };

export interface KernelGraph {
  readonly buffers: readonly BufferDecl[];
  readonly kernels: readonly Kernel[];
  /** One buffer per program input. */
  readonly inputs: readonly number[];
  readonly outputs: readonly GraphOutput[];
  readonly consts: readonly { readonly buf: number; readonly value: HostArray }[];
}

/** The operands of a scalar expression node. */
export function sexprChildren(e: SExpr): SExpr[] {
  switch (e.op) {
    case 'unary':
    case 'cast':
      return [e.a];
    case 'binary':
    case 'cmp':
      return [e.a, e.b];
    case 'select':
      return [e.c, e.a, e.b];
    default:
      return [];
  }
}

/** Calls fn once for every node of the DAG under e (`seen` may be shared across roots). */
export function visitSExpr(e: SExpr, fn: (e: SExpr) => void, seen: Set<SExpr> = new Set()): void {
  if (seen.has(e)) return;
  seen.add(e);
  fn(e);
  for (const c of sexprChildren(e)) visitSExpr(c, fn, seen);
}

/** Buffers a kernel reads and writes. */
export function kernelIO(k: Kernel): { reads: number[]; writes: number[] } {
  const reads = new Set<number>();
  const visit = (e: SExpr, seen: Set<SExpr>): void =>
    visitSExpr(e, (n) => {
      if (n.op === 'load') reads.add(n.buf);
    }, seen);
  const seen = new Set<SExpr>();
  let outs: readonly KernelOutput[] = [];
  switch (k.kind) {
    case 'loop':
      k.reductions.forEach((r) => visit(r.expr, seen));
      outs = [...k.outerOutputs, ...k.rowOutputs];
      break;
    case 'matmul':
      for (const op of [k.a, k.b]) {
        if (isExprOperand(op)) visit(op.expr, seen);
        else reads.add(op.buf);
      }
      outs = k.outputs;
      break;
    case 'conv':
      reads.add(k.lhs.buf);
      reads.add(k.rhs.buf);
      outs = k.outputs;
      break;
    case 'host':
      return { reads: k.inputs.map((i) => i.buf), writes: k.outputs.map((o) => o.buf) };
  }
  outs.forEach((o) => visit(o.expr, seen));
  return { reads: [...reads], writes: outs.map((o) => o.buf) };
}

// ---------------------------------------------------------------------------------------
// printer

export function printSExpr(root: SExpr): string {
  const names = new Map<SExpr, string>();
  const lines: string[] = [];
  const go = (e: SExpr): string => {
    const have = names.get(e);
    if (have) return have;
    let s: string;
    switch (e.op) {
      case 'load':
        s = `buf${e.buf}[${idxSource(e.index)}]`;
        break;
      case 'const':
        s = `${e.value}:${e.dtype}`;
        break;
      case 'index':
        s = `idx(${idxSource(e.index)})`;
        break;
      case 'acc':
        s = `acc${e.id}`;
        break;
      case 'unary':
        s = `${e.fn}(${go(e.a)})`;
        break;
      case 'cast':
        s = `${e.dtype}(${go(e.a)})`;
        break;
      case 'binary':
      case 'cmp':
        s = `${e.fn}(${go(e.a)}, ${go(e.b)})`;
        break;
      case 'select':
        s = `select(${go(e.c)}, ${go(e.a)}, ${go(e.b)})`;
        break;
    }
    if (e.op === 'load' || e.op === 'const' || e.op === 'acc' || e.op === 'index') return s;
    const n = `t${names.size}`;
    names.set(e, n);
    lines.push(`${n} = ${s}`);
    return n;
  };
  const r = go(root);
  return [...lines, r].join('; ');
}

function fmtOutputs(outs: readonly KernelOutput[], indent: string): string[] {
  return outs.map((o) => `${indent}buf${o.buf}[${idxSource(o.index)}] = ${printSExpr(o.expr)}`);
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
        lines.push(`matmul ${k.name} b=${k.batch} m=${k.m} n=${k.n} k=${k.k} A=${op(k.a)} B=${op(k.b)}`);
      }
      lines.push(...fmtOutputs(k.outputs, '  '));
      break;
    case 'conv':
      lines.push(`conv ${k.name} lhs=buf${k.lhs.buf}[${k.lhs.shape.join(',')}] rhs=buf${k.rhs.buf}[${k.rhs.shape.join(',')}] out=[${k.outShape.join(',')}] strides=${k.params.windowStrides.join(',')} groups=${k.params.featureGroupCount}/${k.params.batchGroupCount}`);
      lines.push(...fmtOutputs(k.outputs, '  '));
      break;
    case 'host':
      lines.push(`host ${k.name} ${k.prim}(${k.inputs.map((i) => `buf${i.buf}`).join(', ')}) -> ${k.outputs.map((o) => `buf${o.buf}`).join(', ')}`);
      break;
  }
  return lines.join('\n');
}

export function printKernelGraph(g: KernelGraph): string {
  const bufs = g.buffers.map((b) => `buf${b.id}:${b.dtype}[${b.size}] ${b.kind}`).join(', ');
  return [`buffers: ${bufs}`, ...g.kernels.map(printKernel)].join('\n');
}

export { idxKey };
