/**
 * Parameter folding: when a jitted function closes over its parameters (inference with fixed
 * weights), they are program constants, and everything computed from them alone can be computed
 * once, at compile time. Two rules, then evaluation:
 *
 *  - **a constant row term through a matmul** (GRN folding): dot(a + ... + broadcast(c), W), with
 *    c varying only along the contracted axis and W constant, is dot(a + ..., W) +
 *    broadcast(c . W). GRN's `beta` before the second pointwise matmul becomes part of that
 *    matmul's bias, and the operand prologue loses an addition per element. (GRN's `gamma` scales
 *    by the per-sample statistic Nx, which is data: it cannot be folded into constant weights.)
 *  - **constant terms gather**: (x + broadcast(c1)) + broadcast(c2) is x + broadcast(c1 + c2),
 *    so the folded term and the matmul's own bias are one epilogue addition.
 *  - **evaluation**: an equation whose operands are all constants (or literals) is evaluated by
 *    the reference implementation and becomes a constant, unless that would grow the constants
 *    (broadcasts, iota, pads stay views that fusion reads in place) or exceed MAX_FOLD elements.
 *
 * Folding reassociates sums, so results can differ from the unfolded program in the last f32 bit.
 */
import type { AnyParams, Atom, Eqn, ProgramConst } from '../ir/program.js';
import { Literal, paramsOf, Program, Var } from '../ir/program.js';
import { HostArray } from '../ir/host.js';
import type { DotParams, PrimName } from '../ir/primitive.js';
import { PRIMS } from '../ir/primitives/index.js';
import { sizeOf } from '../ir/shape.js';
import type { Origins } from './inline.js';
import { ProgramBuilder } from './rewrite.js';
import { dce } from './simplify.js';

/** The largest constant folding makes (elements). */
const MAX_FOLD = 1 << 24;
/** Primitives whose folded result would be larger than the data they read: left as views. */
const KEEP_AS_VIEW: ReadonlySet<string> = new Set(['broadcast_in_dim', 'iota', 'pad']);

interface Ctx {
  readonly b: ProgramBuilder;
  readonly consts: Map<Var, HostArray>;
  readonly producers: Map<Var, Eqn>;
  /** Uses in the source program, by source variable. */
  readonly uses: Map<Var, number>;
  /** The source variable each emitted one stands for. */
  readonly source: Map<Var, Var>;
  /** Views (broadcasts, iota, pads) of constants: constant, but left in the program. */
  readonly views: Map<Var, Eqn>;
}

const usesOf = (c: Ctx, a: Var): number => c.uses.get(c.source.get(a) ?? a) ?? 0;

const isConst = (c: Ctx, a: Atom): boolean => a instanceof Literal || c.consts.has(a) || c.views.has(a);

/**
 * The value of a constant atom. A view of constants (a broadcast, say) is kept in the program
 * and materialised here only for an equation being folded.
 */
function valueOf(c: Ctx, a: Atom): HostArray {
  if (a instanceof Literal) return HostArray.scalar(a.value, a.dtype);
  const have = c.consts.get(a);
  if (have) return have;
  const e = c.views.get(a)!;
  const [r] = PRIMS[e.prim as PrimName].impl(e.inputs.map((x) => valueOf(c, x)), paramsOf(e) as never, { wide: false });
  return r!;
}

function useCounts(p: Program): Map<Var, number> {
  const n = new Map<Var, number>();
  const use = (a: Atom): void => {
    if (a instanceof Var) n.set(a, (n.get(a) ?? 0) + 1);
  };
  p.eqns.forEach((e) => e.inputs.forEach(use));
  p.outputs.forEach(use);
  return n;
}

/** The terms of an addition tree (through adds whose result is used only there). */
function addTerms(c: Ctx, a: Atom, top = true): Atom[] {
  const e = a instanceof Var ? c.producers.get(a) : undefined;
  if (!e || e.prim !== 'add' || (!top && usesOf(c, a as Var) !== 1)) return [a];
  return [...addTerms(c, e.inputs[0]!, false), ...addTerms(c, e.inputs[1]!, false)];
}

/** c when `a` is broadcast_in_dim(c) with c constant and varying only along `axis` of a's shape. */
function rowConstant(c: Ctx, a: Atom, axis: number): Var | undefined {
  const e = a instanceof Var ? c.producers.get(a) : undefined;
  if (!e || e.prim !== 'broadcast_in_dim' || !(e.inputs[0] instanceof Var) || !c.consts.has(e.inputs[0])) return undefined;
  const { dims } = paramsOf(e) as { dims: readonly number[] };
  const src = e.inputs[0];
  const varying = src.aval.shape.map((n, i) => (n === 1 ? -1 : dims[i]!)).filter((d) => d >= 0);
  return varying.every((d) => d === axis) ? src : undefined;
}

function emit(c: Ctx, prim: string, params: AnyParams, ins: readonly Atom[], like: readonly Var[]): Var[] {
  const outs = like.map((v) => new Var(v.aval));
  c.b.emit(prim, params, ins, outs);
  c.b.inherit(like, outs);
  outs.forEach((v) => c.producers.set(v, c.b.eqns[c.b.eqns.length - 1]!));
  return outs;
}

/** dot(sum of terms with constant row terms, W) -> dot(rest, W) + broadcast(c . W); undefined when it does not apply. */
function foldRowTerm(c: Ctx, e: Eqn, ins: readonly Atom[]): Atom | undefined {
  if (e.prim !== 'dot_general' || !isConst(c, ins[1]!)) return undefined;
  const p = paramsOf(e) as unknown as DotParams;
  const [lc, rc] = p.contracting;
  if (p.batch[0].length !== 0 || lc.length !== 1 || rc.length !== 1) return undefined;
  const lhs = ins[0]!;
  const terms = addTerms(c, lhs);
  const rows = terms.map((t) => rowConstant(c, t, lc[0]!));
  const k = rows.findIndex((r) => r !== undefined);
  if (k < 0 || terms.length < 2) return undefined;
  const row = rows[k]!;
  const w = ins[1] as Var;
  const K = lhs.aval.shape[lc[0]!]!;
  const dtype = e.outputs[0]!.aval.dtype;
  // the rest of the sum, in its original order
  let rest: Atom = terms.filter((_, i) => i !== k).reduce((acc, t) => emit(c, 'add', {}, [acc, t], [new Var(lhs.aval)])[0]!);
  if (rest instanceof Literal) return undefined;
  const main = emit(c, 'dot_general', paramsOf(e), [rest, w], e.outputs)[0]!;
  // c . W: the row as a vector [K], contracted with W's contracting axis
  const vec = emit(c, 'reshape', { shape: [K] }, [row], [new Var({ shape: [K], dtype: row.aval.dtype })])[0]!;
  evalIfConst(c, c.b.eqns[c.b.eqns.length - 1]!);
  const wFree = w.aval.shape.filter((_, i) => i !== rc[0]);
  const cw = emit(c, 'dot_general', { contracting: [[0], [rc[0]!]], batch: [[], []] }, [vec, w], [new Var({ shape: wFree, dtype })])[0]!;
  evalIfConst(c, c.b.eqns[c.b.eqns.length - 1]!);
  const out = e.outputs[0]!.aval.shape;
  const lhsFree = lhs.aval.shape.length - 1;
  const bias = emit(c, 'broadcast_in_dim', { shape: [...out], dims: wFree.map((_, i) => lhsFree + i) }, [cw], [new Var(e.outputs[0]!.aval)])[0]!;
  rest = emit(c, 'add', {}, [main, bias], e.outputs)[0]!;
  return rest;
}

/** (x + bcast(c1)) + bcast(c2) with the same broadcast -> x + bcast(c1 + c2). */
function gatherConstTerms(c: Ctx, e: Eqn, ins: readonly Atom[]): Atom | undefined {
  if (e.prim !== 'add') return undefined;
  const bc = (a: Atom): Eqn | undefined => {
    const q = a instanceof Var ? c.producers.get(a) : undefined;
    return q && q.prim === 'broadcast_in_dim' && isConst(c, q.inputs[0]!) && !(q.inputs[0] instanceof Literal) ? q : undefined;
  };
  for (const [inner, outer] of [[ins[0]!, ins[1]!], [ins[1]!, ins[0]!]] as const) {
    const b2 = bc(outer);
    const ie = inner instanceof Var && usesOf(c, inner) === 1 ? c.producers.get(inner) : undefined;
    if (!b2 || !ie || ie.prim !== 'add') continue;
    for (const [x, t] of [[ie.inputs[0]!, ie.inputs[1]!], [ie.inputs[1]!, ie.inputs[0]!]] as const) {
      const b1 = bc(t);
      if (!b1 || JSON.stringify(paramsOf(b1)) !== JSON.stringify(paramsOf(b2))) continue;
      const c1 = b1.inputs[0] as Var;
      const sum = emit(c, 'add', {}, [c1, b2.inputs[0]!], [new Var(c1.aval)])[0]!;
      evalIfConst(c, c.b.eqns[c.b.eqns.length - 1]!);
      const bsum = emit(c, 'broadcast_in_dim', paramsOf(b2), [sum], [new Var(e.outputs[0]!.aval)])[0]!;
      return emit(c, 'add', {}, [x, bsum], e.outputs)[0]!;
    }
  }
  return undefined;
}

/** Elements of constant data behind an atom (a view counts what it reads, not its shape). */
function dataSize(c: Ctx, a: Atom): number {
  if (a instanceof Literal) return 1;
  const v = c.views.get(a);
  return v ? v.inputs.reduce((s, x) => s + dataSize(c, x), 0) : sizeOf(a.aval.shape);
}

/** Evaluates the last emitted equation when all its operands are constants (and it should be). */
function evalIfConst(c: Ctx, e: Eqn): void {
  if (e.outputs.length !== 1 || !e.inputs.every((a) => isConst(c, a))) return;
  const out = e.outputs[0]!;
  if (KEEP_AS_VIEW.has(e.prim)) {
    c.views.set(out, e);
    return;
  }
  const n = sizeOf(out.aval.shape);
  const read = e.inputs.reduce((s, a) => s + dataSize(c, a), 0);
  if (n > MAX_FOLD || n > Math.max(read, 64) || e.inputs.every((a) => a instanceof Literal)) return;
  const hosts = e.inputs.map((a) => valueOf(c, a));
  const [r] = PRIMS[e.prim as PrimName].impl(hosts, paramsOf(e) as never, { wide: false });
  c.consts.set(out, r!);
  c.b.eqns.splice(c.b.eqns.indexOf(e), 1);
}

export function foldConstants(p: Program, origins?: Origins): Program {
  if (p.consts.length === 0) return p;
  const c: Ctx = { b: new ProgramBuilder(origins), consts: new Map(p.consts.map((k) => [k.v, k.value])), producers: new Map(), uses: useCounts(p), source: new Map(), views: new Map() };
  for (const e of p.eqns) {
    const ins = e.inputs.map((a) => c.b.read(a));
    const folded = foldRowTerm(c, e, ins) ?? gatherConstTerms(c, e, ins);
    if (folded !== undefined) {
      c.b.alias(e.outputs[0]!, folded);
      continue;
    }
    const outs = emit(c, e.prim, paramsOf(e), ins, e.outputs);
    e.outputs.forEach((v, i) => {
      c.b.alias(v, outs[i]!);
      c.source.set(outs[i]!, v);
    });
    evalIfConst(c, c.b.eqns[c.b.eqns.length - 1]!);
  }
  const consts: ProgramConst[] = [...c.consts].map(([v, value]) => ({ v, value }));
  const q = dce(c.b.finish(p, consts));
  // drop constants nothing reads any more
  const used = new Set<Var>();
  q.eqns.forEach((e) => e.inputs.forEach((a) => a instanceof Var && used.add(a)));
  q.outputs.forEach((a) => a instanceof Var && used.add(a));
  return new Program(q.inputs, q.eqns, q.outputs, q.consts.filter((k) => used.has(k.v)));
}

