/**
 * Demand analysis of the masked sparse rewrite: a var is *unobserved* (at masked sites) when no
 * use of it can see its values at masked sites, so any value there (garbage, zeros) gives the
 * same program outputs. Computed backwards over the program (and into region bodies, whose
 * outputs inherit the demand of the region's outputs); program outputs are observed.
 *
 * A use ignores its operand's masked sites when the operation is site-wise (its output at a
 * site reads the operand only at that site) and the output is itself unobserved, or when it
 * multiplies the operand by the keep field (masked sites become 0 whatever they held). The
 * rules are a table: one predicate per primitive (and a region rule that recurses).
 */
import { type Atom, type Eqn, Literal, type Var } from '../../ir/program.js';
import { ELEMENTWISE } from '../prim_kinds.js';
import { type Analysis, broadcastKeepsSites, type Facts, keepsSites, lhsSitesFree, NO_FACTS, patchLocalConv } from './facts.js';
import { avoidsSites, type MaskGeometry, siteScale } from './geometry.js';

interface UseContext {
  readonly g: MaskGeometry;
  readonly factsOf: (a: Atom) => Facts;
  /** Every output of the eqn is unobserved. */
  readonly outsUnobserved: boolean;
  readonly analysis: Analysis;
}

/** Does use `i` of `e` ignore operand i's masked sites? */
type UseRule = (e: Eqn, i: number, ctx: UseContext) => boolean;

/** The keep field at the same scale as the output (multiplying by it zeroes masked sites). */
function isKeepFor(ctx: UseContext, a: Atom, outShape: readonly number[]): boolean {
  const f = ctx.factsOf(a).field;
  return !!f && f.pol === 'keep' && f.s === siteScale(ctx.g, outShape);
}

const sameSiteShape = (g: MaskGeometry, e: Eqn, i: number): boolean => {
  const x = e.inputs[i]!.aval.shape;
  const o = e.outputs[0]!.aval.shape;
  return siteScale(g, o) !== undefined && x.length === o.length && x.every((d, k) => d === o[k]);
};

const elementwise: UseRule = (e, i, ctx) => {
  if (!sameSiteShape(ctx.g, e, i)) return false;
  if (e.prim === 'mul' && isKeepFor(ctx, e.inputs[1 - i]!, e.outputs[0]!.aval.shape)) return true;
  return ctx.outsUnobserved;
};

const USE_RULES: Readonly<Record<string, UseRule>> = {
  ...Object.fromEntries([...ELEMENTWISE].map((p) => [p, elementwise])),
  broadcast_in_dim: (e, _i, ctx) => broadcastKeepsSites(ctx.g, e) && ctx.outsUnobserved,
  reshape: (e, _i, ctx) => e.prim === 'reshape' && keepsSites(ctx.g, e.inputs[0]!.aval.shape, e.params.shape) && ctx.outsUnobserved,
  reduce_sum: (e, _i, ctx) => e.prim === 'reduce_sum' && avoidsSites(e.params.axes) && ctx.outsUnobserved,
  reduce_max: (e, _i, ctx) => e.prim === 'reduce_max' && avoidsSites(e.params.axes) && ctx.outsUnobserved,
  reduce_min: (e, _i, ctx) => e.prim === 'reduce_min' && avoidsSites(e.params.axes) && ctx.outsUnobserved,
  dot_general: (e, i, ctx) => i === 0 && lhsSitesFree(ctx.g, e) && ctx.outsUnobserved,
  conv_general: (e, i, ctx) => i === 0 && patchLocalConv(ctx.g, e) && ctx.outsUnobserved,
  region: (e, i, ctx) => bodyIgnores(e, i, ctx),
  checkpoint: (e, i, ctx) => bodyIgnores(e, i, ctx),
};

/** A region's or checkpoint's use is its body's uses of the matching input. */
function bodyIgnores(e: Eqn, i: number, ctx: UseContext): boolean {
  const body = ctx.analysis.bodies.get(e);
  if (!body || (e.prim !== 'region' && e.prim !== 'checkpoint')) return false;
  return body.unobserved.get(e.params.body.inputs[i]!) ?? false;
}

/**
 * Fills `a.unobserved` (and its bodies') given whether each program output is unobserved.
 * A var used nowhere is unobserved.
 */
export function analyseDemand(a: Analysis, g: MaskGeometry, outputs: readonly boolean[]): void {
  const p = a.program;
  const u = a.unobserved;
  const mark = (v: Var, ignored: boolean) => u.set(v, (u.get(v) ?? true) && ignored);
  p.outputs.forEach((o, i) => {
    if (!(o instanceof Literal)) mark(o, outputs[i] ?? false);
  });
  const factsOf = (x: Atom): Facts => (x instanceof Literal ? NO_FACTS : (a.facts.get(x) ?? NO_FACTS));
  for (let k = p.eqns.length - 1; k >= 0; k--) {
    const e = p.eqns[k]!;
    const outsUnobserved = e.outputs.every((v) => u.get(v) ?? true);
    const body = a.bodies.get(e);
    if (body) analyseDemand(body, g, e.outputs.map((v) => u.get(v) ?? true));
    const rule = USE_RULES[e.prim];
    const ctx: UseContext = { g, factsOf, outsUnobserved, analysis: a };
    e.inputs.forEach((x, i) => {
      if (x instanceof Literal) return;
      mark(x, siteScale(g, x.aval.shape) !== undefined && !!rule && rule(e, i, ctx));
    });
  }
  p.inputs.forEach((v) => mark(v, true));
}
