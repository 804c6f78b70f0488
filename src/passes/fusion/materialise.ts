/**
 * Phase 1 of fusion: which values get a buffer of their own. Program outputs, anchor (matmul,
 * convolution) and sort outputs, scatter results, operands that must be buffers (a sort's input,
 * a gather's table, an anchor operand that is not a strided view of a buffer), and values that
 * several kernels would otherwise recompute when recomputing costs more than the device's limit
 * (the cost rule, iterated to a fixed point). Everything else is inlined as a scalar expression
 * into the kernel that needs it.
 */
import { type Eqn, Var } from '../../ir/program.js';
import { isAnchor, isElementwise, isInlinable, isReducing, isView, loweringOf, type ProgramView } from './program_view.js';

/** Cost of recomputing one element, by primitive (transcendentals and hashes are dearer). */
export const OP_COST: Readonly<Record<string, number>> = {
  exp: 4, log: 4, log1p: 4, expm1: 4, sin: 4, cos: 4, tanh: 4, logistic: 4, erf: 6, pow: 6, sqrt: 2, rsqrt: 2, div: 2,
  random_bits: 30, gather: 2,
};

/** Operand positions of non-inlined equations that must be buffers, by lowering. */
const BUFFER_OPERANDS: Readonly<Partial<Record<string, readonly number[]>>> = { sort: [0], gather: [0] };

export function structuralMaterialisation(view: ProgramView): Set<Var> {
  const M = new Set<Var>();
  for (const v of view.outputVars) if (!view.isSource(v)) M.add(v);
  const needBuffer = (a: unknown): void => {
    if (a instanceof Var && !view.isSource(a)) M.add(a);
  };
  for (const e of view.program.eqns) {
    const lowering = loweringOf(e.prim);
    for (const i of BUFFER_OPERANDS[lowering] ?? []) needBuffer(e.inputs[i]);
    if (isInlinable(e.prim) || isReducing(e.prim)) continue;
    e.outputs.forEach((v) => M.add(v));
    if (isAnchor(e.prim)) for (const a of e.inputs) anchorOperand(view, M, a);
  }
  return M;
}

/** An anchor reads a reshape/transpose view of a buffer in place; any other computed operand is materialised. */
function anchorOperand(view: ProgramView, M: Set<Var>, a: unknown): void {
  if (!(a instanceof Var) || view.isSource(a)) return;
  let u: Var = a;
  while (view.prim(u) === 'reshape' || view.prim(u) === 'transpose') u = view.producer.get(u)!.inputs[0] as Var;
  if (u === a || !(view.isSource(u) || M.has(u) || isAnchor(view.prim(u)))) M.add(a);
}

/**
 * The cost rule: a value that several kernels need is materialised when recomputing it costs
 * more than `costLimit` per element; a reduction several kernels need is always materialised
 * (a view of such a value is free: what it views is materialised instead).
 */
export function applyCostRule(view: ProgramView, M: Set<Var>, costLimit: number): void {
  const eqns = view.program.eqns;
  for (let changed = true; changed; ) {
    changed = false;
    const cost = costOf(view, M);
    // Two notions of the kernels that need a value. rootsT: reductions are transparent (a
    // reduction can run as a phase of its consumer's kernel, so statistics like LayerNorm's
    // mean and variance do not count twice). rootsP: a reduction is a place of its own (its
    // input is computed in the reduction's pass and again wherever else it is used).
    const rootsT = new Map<Var, Set<Var>>();
    const rootsP = new Map<Var, Set<Var>>();
    for (let k = eqns.length - 1; k >= 0; k--) {
      for (const v of eqns[k]!.outputs) {
        if (M.has(v)) continue;
        const [rt, rp] = rootsOf(view, M, v, rootsT, rootsP);
        rootsT.set(v, rt);
        rootsP.set(v, rp);
        const reducing = isReducing(view.prim(v));
        const r = reducing ? rt : rp;
        if (r.size > 1 && (reducing || cost(v) > costLimit)) {
          const target = viewedValue(view, M, v);
          if (target === undefined) continue;
          M.add(target);
          changed = true;
        }
      }
    }
  }
}

function costOf(view: ProgramView, M: Set<Var>): (v: Var) => number {
  const memo = new Map<Var, number>();
  const cost = (v: Var): number => {
    if (M.has(v) || view.isSource(v)) return 0;
    const c = memo.get(v);
    if (c !== undefined) return c;
    const e = view.producer.get(v)!;
    // a reduction needed by several kernels is materialised itself, so what lies behind it
    // does not make its consumers look expensive
    if (isReducing(e.prim)) {
      memo.set(v, 1);
      return 1;
    }
    let total = isElementwise(e.prim) || e.prim in OP_COST ? (OP_COST[e.prim] ?? 1) : 0;
    for (const a of e.inputs) if (a instanceof Var) total += cost(a);
    memo.set(v, total);
    return total;
  };
  return cost;
}

function rootsOf(view: ProgramView, M: Set<Var>, v: Var, rootsT: Map<Var, Set<Var>>, rootsP: Map<Var, Set<Var>>): [Set<Var>, Set<Var>] {
  const rt = new Set<Var>();
  const rp = new Set<Var>();
  for (const c of view.usesOf(v)) {
    for (const o of c.outputs) {
      if (M.has(o) || !(isInlinable(c.prim) || isReducing(c.prim))) {
        rt.add(o);
        rp.add(o);
        continue;
      }
      for (const x of rootsT.get(o) ?? []) rt.add(x);
      if (isReducing(c.prim)) rp.add(o);
      else for (const x of rootsP.get(o) ?? []) rp.add(x);
    }
  }
  return [rt, rp];
}

/** The value to keep for v: what a chain of single-operand views of v looks at; undefined when that is kept already. */
function viewedValue(view: ProgramView, M: Set<Var>, v: Var): Var | undefined {
  let target = v;
  for (;;) {
    const pe: Eqn = view.producer.get(target)!;
    const src = pe.inputs[0];
    if (!isView(pe.prim) || pe.inputs.length !== 1 || !(src instanceof Var) || view.isSource(src) || M.has(src)) break;
    target = src;
  }
  if (target !== v && (M.has(target) || view.isSource(target))) return undefined;
  return target;
}
