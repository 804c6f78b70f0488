/**
 * Rewrites every scalar expression of a kernel (reductions, stored values, scatter offsets and
 * guards, matmul prologues and their row statistics) with one memo, so nodes shared between them stay shared.
 */
import { isExprOperand, type Kernel, type KernelOutput, type MatmulOperand, rewriteSExpr, type SExpr } from '../kernel/kernel_graph.js';

export function rewriteKernel(k: Kernel, f: (e: SExpr) => SExpr): Kernel {
  const memo = new Map<SExpr, SExpr>();
  const go = (e: SExpr): SExpr => rewriteSExpr(e, f, memo);
  const outs = (os: readonly KernelOutput[]): KernelOutput[] =>
    os.map((o) => ({ ...o, expr: go(o.expr), ...(o.dyn ? { dyn: go(o.dyn) } : {}), ...(o.when ? { when: go(o.when) } : {}) }));
  const operand = (o: MatmulOperand): MatmulOperand =>
    isExprOperand(o)
      ? { kind: 'expr', expr: go(o.expr), ...(o.stats ? { stats: { row: o.stats.row, reductions: o.stats.reductions.map((r) => ({ ...r, expr: go(r.expr) })) } } : {}) }
      : o;
  switch (k.kind) {
    case 'loop':
      return { ...k, reductions: k.reductions.map((r) => ({ ...r, expr: go(r.expr) })), outerOutputs: outs(k.outerOutputs), rowOutputs: outs(k.rowOutputs) };
    case 'matmul':
      return { ...k, a: operand(k.a), b: operand(k.b), outputs: outs(k.outputs) };
    case 'conv':
      return { ...k, outputs: outs(k.outputs) };
    case 'sort':
      return k;
  }
}

/** Applies rewrite rules in order, each to the result of the previous (one memo per rule). */
export function rewriteKernelWith(k: Kernel, rules: readonly ((e: SExpr) => SExpr)[]): Kernel {
  return rules.reduce((kk, r) => rewriteKernel(kk, r), k);
}
