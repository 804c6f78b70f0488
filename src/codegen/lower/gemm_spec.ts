/**
 * A matmul as a GEMM specification every backend's GEMM template consumes:
 * C[b, m, n] = sum_k A[b, m, k] * B[b, k, n] with operands as index expressions over the axes
 * b, m, k / b, k, n (strided views, transposes, im2col gathers) or prologue expressions, and
 * epilogue outputs over b, m, n reading the product as `acc 0`.
 */
import type { DType } from '../../ir/dtype.js';
import { AX, type Axis } from '../kernel/axis.js';
import { idx, type Idx } from '../kernel/index_expr.js';
import { type ExprOperand, isExprOperand, type KernelOutput, type MatmulKernel, type MatmulOperand, type SExpr } from '../kernel/kernel_graph.js';

export interface GemmSpec {
  readonly name: string;
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  /** The operands' element type (f32 accumulates in f32 with WebAssembly, else in f64). */
  readonly dtype: DType;
  readonly aBuf: number;
  /** Element index of A[b, m, k] (variables b, m, k). */
  readonly aIdx: Idx;
  readonly bBuf: number;
  /** Element index of B[b, k, n] (variables b, k, n). */
  readonly bIdx: Idx;
  /** A prologue: A[b, m, k] as an expression (then aBuf/aIdx are unused). */
  readonly aExpr?: SExpr;
  /** A prologue: B[b, k, n] as an expression (then bBuf/bIdx are unused). */
  readonly bExpr?: SExpr;
  /** Row statistics of the A prologue (read there as `acc id`; see ExprOperand.stats). */
  readonly aStats?: ExprOperand['stats'];
  /** Epilogue outputs over variables b, m, n with `acc 0`. */
  readonly outputs: readonly KernelOutput[];
  /** Rows per reduction group of the reducing outputs (init 'zero'; see MatmulKernel.reduceRows). */
  readonly reduceRows?: number;
  /**
   * The same outputs before the dialect's edge-case rewrites (for a hand-written epilogue that
   * implements max/min, erf and friends with their host meaning itself, like the CPU's WebAssembly one).
   */
  readonly originalOutputs?: readonly KernelOutput[];
}

export function stridedIdx(offset: number, terms: readonly [Axis, number][]): Idx {
  return idx.add(idx.const(offset), ...terms.filter(([, s]) => s !== 0).map(([v, s]) => idx.scale(idx.var(v), s)));
}

/** A MatmulKernel as a GEMM spec. */
export function matmulSpec(k: MatmulKernel): GemmSpec {
  const strided = (o: MatmulOperand, vars: readonly [Axis, Axis, Axis]): { buf: number; idx: Idx; expr?: SExpr } =>
    isExprOperand(o)
      ? { buf: -1, idx: idx.const(0), expr: o.expr }
      : { buf: o.buf, idx: stridedIdx(o.offset, vars.map((v, i) => [v, o.strides[i]!] as [Axis, number])) };
  const a = strided(k.a, [AX.b, AX.m, AX.k]);
  const b = strided(k.b, [AX.b, AX.k, AX.n]);
  return {
    name: k.name,
    batch: k.batch,
    m: k.m,
    n: k.n,
    k: k.k,
    dtype: k.dtype,
    aBuf: a.buf,
    aIdx: a.idx,
    bBuf: b.buf,
    bIdx: b.idx,
    ...(a.expr ? { aExpr: a.expr } : {}),
    ...(b.expr ? { bExpr: b.expr } : {}),
    ...(isExprOperand(k.a) && k.a.stats ? { aStats: k.a.stats } : {}),
    outputs: k.outputs,
    ...(k.reduceRows ? { reduceRows: k.reduceRows } : {}),
  };
}


/** Whether a GEMM spec has reducing outputs (zeroed by the kernel, then accumulated). */
export const hasReducingOutputs = (spec: Pick<GemmSpec, 'outputs'>): boolean => spec.outputs.some((o) => o.init === 'zero');

/** Whether a GEMM spec uses the fields of prologue statistics or reducing epilogues. */
export const usesReducingFeatures = (spec: Pick<GemmSpec, 'outputs' | 'aStats'>): boolean => spec.aStats !== undefined || hasReducingOutputs(spec);
