/**
 * Phases 2 and 3 of fusion: what anchor kernels absorb.
 *
 * Epilogues: an anchor whose consumers are all same-shape elementwise ops that end in one
 * materialised root gets that root as its epilogue (bias, activation, residual add are applied
 * as the result is stored). A leading chain of single-use reshapes/transposes (a conv computed
 * in NHWC and returned in NCHW, a matmul over patches reshaped back to an image) becomes the
 * epilogue's store index.
 *
 * Prologues: a matmul operand computed by elementwise ops and views, used by that matmul alone,
 * is evaluated while the GEMM packs the operand and never stored (LayerNorm's normalisation
 * before the first pointwise matmul, GRN's scale and shift before the second).
 */
import { type Eqn, Var } from '../../ir/program.js';
import { shapeEq } from '../../ir/shape.js';
import { isAnchor, isElementwise, isInlinable, type ProgramView } from './program_view.js';
import type { ReducingEpilogue } from './reducing.js';

export interface Epilogues {
  /** epilogue root -> the anchor it stores */
  readonly anchorOf: Map<Var, Var>;
  /** epilogue root -> the reshape/transpose chain from the anchor's output */
  readonly views: Map<Var, Eqn[]>;
  /** epilogue root -> reductions its anchor accumulates as it stores it (reducing.ts) */
  readonly reducing: Map<Var, ReducingEpilogue[]>;
  /** reduction -> the reducing epilogue that computes it */
  readonly reducedBy: Map<Var, ReducingEpilogue>;
  /** bare anchor -> materialised values its kernel stores too (extra_outputs.ts) */
  readonly extras: Map<Var, Var[]>;
  /** extra output -> the anchor whose kernel stores it */
  readonly extraOf: Map<Var, Var>;
}

export function findEpilogues(view: ProgramView, M: Set<Var>): Epilogues {
  const anchorOf = new Map<Var, Var>();
  const views = new Map<Var, Eqn[]>();
  for (const e of view.program.eqns) {
    if (!isAnchor(e.prim)) continue;
    const a = e.outputs[0]!;
    if (view.outputVars.has(a)) continue;
    const chain = leadingViews(view, M, a);
    const start = chain.length ? chain[chain.length - 1]!.outputs[0]! : a;
    const root = singleRoot(view, M, a, start);
    if (!root || anchorOf.has(root) || isAnchor(view.prim(root))) continue;
    anchorOf.set(root, a);
    views.set(root, chain);
    M.delete(a);
  }
  return { anchorOf, views, reducing: new Map(), reducedBy: new Map(), extras: new Map(), extraOf: new Map() };
}

/** The single-use reshape/transpose chain after an anchor's output. */
function leadingViews(view: ProgramView, M: Set<Var>, a: Var): Eqn[] {
  const chain: Eqn[] = [];
  let cur = a;
  for (;;) {
    const us = view.usesOf(cur);
    if (us.length !== 1 || view.outputVars.has(cur) || (cur !== a && M.has(cur))) break;
    const c = us[0]!;
    if (c.prim !== 'reshape' && c.prim !== 'transpose') break;
    chain.push(c);
    cur = c.outputs[0]!;
  }
  return chain;
}

/** The one materialised value every same-shape elementwise path from `start` reaches, if any. */
function singleRoot(view: ProgramView, M: Set<Var>, a: Var, start: Var): Var | undefined {
  const shape = start.aval.shape;
  const reached = new Set<Var>();
  if (start !== a && M.has(start)) reached.add(start);
  const seen = new Set<Var>();
  const stack: Var[] = reached.size ? [] : [start];
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    for (const c of view.usesOf(v)) {
      const o = c.outputs[0]!;
      if (!isElementwise(c.prim) || !shapeEq(o.aval.shape, shape)) return undefined;
      if (M.has(o)) reached.add(o);
      else stack.push(o);
    }
  }
  return reached.size === 1 ? [...reached][0] : undefined;
}

export function findPrologues(view: ProgramView, M: Set<Var>, ep: Epilogues): void {
  for (const e of view.program.eqns) {
    if (e.prim !== 'dot_general') continue;
    for (const a of e.inputs) {
      if (!(a instanceof Var) || view.isSource(a) || view.outputVars.has(a) || ep.anchorOf.has(a) || !M.has(a)) continue;
      const pe = view.producer.get(a)!;
      if (!isInlinable(pe.prim) || view.usesOf(a).length !== 1 || e.inputs.filter((x) => x === a).length !== 1) continue;
      M.delete(a);
    }
  }
}
