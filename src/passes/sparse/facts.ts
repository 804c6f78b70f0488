/**
 * Forward facts of the masked sparse rewrite, per var of a program (and, recursively, of the
 * bodies of its regions):
 *
 * - `field`: the value is the patch mask or its complement (keep = 1 - mask), exactly 0/1, in
 *   the [N, L] patch form ('NL') or on the image grid at s cells per patch ([N, H, W] or a
 *   broadcast of it along trailing axes). Its compact form is all ones (keep) or all zeros (mask)
 *   because every compact cell is visible.
 * - `zero`: the value is zero at every masked site (what makes a convolution that reads masked
 *   neighbours, or a sum over sites, computable from visible sites alone).
 *
 * Both are derived by a table of rules, one per primitive or region name; anything not in the
 * table has no facts.
 */
import { constantOf } from '../patterns.js';
import { type Atom, type Eqn, Literal, type Program, type Var } from '../../ir/program.js';
import { avoidsSites, type MaskGeometry, siteScale, UPSAMPLE_MASK_REGION } from './geometry.js';

export interface Field {
  readonly pol: 'keep' | 'mask';
  /** Cells per patch side, or 'NL' for the [N, L] patch form. */
  readonly s: number | 'NL';
}

export interface Facts {
  readonly field?: Field;
  readonly zero: boolean;
}

export const NO_FACTS: Facts = Object.freeze({ zero: false });

/** The analysis of one program: facts per var, the producer of each var, the analysis of each region's body. */
export interface Analysis {
  readonly program: Program;
  readonly facts: Map<Var, Facts>;
  readonly producer: Map<Var, Eqn>;
  readonly bodies: Map<Eqn, Analysis>;
  /** Filled by the demand analysis: true when no use observes the var's masked sites. */
  readonly unobserved: Map<Var, boolean>;
}

export interface FactContext {
  readonly g: MaskGeometry;
  readonly factsOf: (a: Atom) => Facts;
  readonly producer: (a: Atom) => Eqn | undefined;
}

const fieldFacts = (f: Field): Facts => ({ field: f, zero: f.pol === 'keep' });
const flip = (f: Field): Field => ({ pol: f.pol === 'keep' ? 'mask' : 'keep', s: f.s });

/** The field of a site var (not the NL form). */
function siteField(ctx: FactContext, a: Atom): Field | undefined {
  const f = ctx.factsOf(a).field;
  return f && f.s !== 'NL' ? f : undefined;
}

/** A reshape that keeps a site var's three leading axes. */
export function keepsSites(g: MaskGeometry, from: readonly number[], to: readonly number[]): boolean {
  const s = siteScale(g, from);
  return s !== undefined && siteScale(g, to) === s;
}

/** The field a reshape of a field gives: NL <-> [N, side, side, 1...], or a site field with trailing axes changed. */
function reshapeField(g: MaskGeometry, f: Field, from: readonly number[], to: readonly number[]): Field | undefined {
  const trailingOnes = (sh: readonly number[]) => sh.slice(3).every((d) => d === 1);
  if (f.s === 'NL') return siteScale(g, to) === 1 && trailingOnes(to) ? { pol: f.pol, s: 1 } : undefined;
  if (keepsSites(g, from, to) && trailingOnes(from) && trailingOnes(to)) return f;
  if (f.s === 1 && trailingOnes(from) && to.length === 2 && to[0] === g.n && to[1] === g.L) return { pol: f.pol, s: 'NL' };
  return undefined;
}

/** A broadcast_in_dim whose operand is a site var keeping its three leading axes in place. */
export function broadcastKeepsSites(g: MaskGeometry, e: Eqn): boolean {
  if (e.prim !== 'broadcast_in_dim') return false;
  const x = e.inputs[0]!;
  const dims = e.params.dims;
  return siteScale(g, x.aval.shape) !== undefined && dims[0] === 0 && dims[1] === 1 && dims[2] === 2 && siteScale(g, e.params.shape) === siteScale(g, x.aval.shape);
}

const FLOAT_DTYPES: ReadonlySet<string> = new Set(['f32', 'f64', 'f16', 'bf16']);
const axesOf = (e: Eqn): readonly number[] => (e.params as { axes: readonly number[] }).axes;

type FactRule = (e: Eqn, ctx: FactContext) => Facts[] | undefined;

const zeroOf = (ctx: FactContext, a: Atom): boolean => ctx.factsOf(a).zero;
const one = (f: Facts): Facts[] => [f];
const zeroIf = (z: boolean): Facts[] => [z ? { zero: true } : NO_FACTS];

/** A patch-local convolution: every output cell reads only cells of its own patch (kernel = stride, no padding). */
export function patchLocalConv(g: MaskGeometry, e: Eqn): boolean {
  if (e.prim !== 'conv_general') return false;
  const p = e.params;
  const nhwc = (d: readonly number[]) => d[0] === 0 && d[1] === 3 && d[2] === 1 && d[3] === 2;
  if (!nhwc(p.dims.lhs) || !nhwc(p.dims.out) || p.batchGroupCount !== 1) return false;
  const w = e.inputs[1]!.aval.shape;
  const win = [w[p.dims.rhs[2]!]!, w[p.dims.rhs[3]!]!];
  const sIn = siteScale(g, e.inputs[0]!.aval.shape);
  return (
    sIn !== undefined &&
    p.windowStrides.length === 2 &&
    p.windowStrides.every((st, i) => st === win[i] && sIn % st === 0) &&
    win[0] === win[1] &&
    p.padding.every(([lo, hi]) => lo === 0 && hi === 0) &&
    p.lhsDilation.every((d) => d === 1) &&
    p.rhsDilation.every((d) => d === 1)
  );
}

const FACT_RULES: Readonly<Record<string, FactRule>> = {
  mul: (e, ctx) => {
    const [a, b] = e.inputs as [Atom, Atom];
    const fa = siteField(ctx, a);
    const fb = siteField(ctx, b);
    // keep * keep = keep, mask * mask = mask (0/1 values)
    if (fa && fb && fa.pol === fb.pol && fa.s === fb.s) return one(fieldFacts(fa));
    return zeroIf(zeroOf(ctx, a) || zeroOf(ctx, b));
  },
  sub: (e, ctx) => {
    const [a, b] = e.inputs as [Atom, Atom];
    const f = ctx.factsOf(b).field;
    // 1 - field flips it
    if (f && constantOf(a, ctx.producer) === 1) return one(fieldFacts(flip(f)));
    return zeroIf(zeroOf(ctx, a) && zeroOf(ctx, b));
  },
  add: (e, ctx) => zeroIf(zeroOf(ctx, e.inputs[0]!) && zeroOf(ctx, e.inputs[1]!)),
  neg: (e, ctx) => zeroIf(zeroOf(ctx, e.inputs[0]!)),
  select: (e, ctx) => zeroIf(zeroOf(ctx, e.inputs[1]!) && zeroOf(ctx, e.inputs[2]!)),
  cast: (e, ctx) => {
    const f = ctx.factsOf(e.inputs[0]!);
    const to = (e.params as { dtype: string }).dtype;
    return f.field && FLOAT_DTYPES.has(to) ? one(f) : zeroIf(f.zero);
  },
  reshape: (e, ctx) => {
    const x = e.inputs[0]!;
    const f = ctx.factsOf(x);
    const from = x.aval.shape;
    const to = (e.params as { shape: readonly number[] }).shape;
    const field = f.field && reshapeField(ctx.g, f.field, from, to);
    if (field) return one(fieldFacts(field));
    return zeroIf(f.zero && keepsSites(ctx.g, from, to));
  },
  broadcast_in_dim: (e, ctx) => {
    if (!broadcastKeepsSites(ctx.g, e)) return undefined;
    const f = ctx.factsOf(e.inputs[0]!);
    return one(f.field ? fieldFacts(f.field) : f);
  },
  reduce_sum: (e, ctx) => zeroIf(avoidsSites(axesOf(e)) && zeroOf(ctx, e.inputs[0]!)),
  reduce_max: (e, ctx) => zeroIf(avoidsSites(axesOf(e)) && zeroOf(ctx, e.inputs[0]!)),
  reduce_min: (e, ctx) => zeroIf(avoidsSites(axesOf(e)) && zeroOf(ctx, e.inputs[0]!)),
  dot_general: (e, ctx) => zeroIf(lhsSitesFree(ctx.g, e) && zeroOf(ctx, e.inputs[0]!)),
  conv_general: (e, ctx) => zeroIf(patchLocalConv(ctx.g, e) && zeroOf(ctx, e.inputs[0]!)),
};

/** A dot_general whose lhs is a site var that keeps its site axes as the output's leading axes. */
export function lhsSitesFree(g: MaskGeometry, e: Eqn): boolean {
  if (e.prim !== 'dot_general') return false;
  const p = e.params;
  return siteScale(g, e.inputs[0]!.aval.shape) !== undefined && p.batch[0].length === 0 && avoidsSites(p.contracting[0]);
}

/**
 * Facts of a program given its inputs' facts; `seed` pins facts on vars (the mask itself).
 * Region bodies are analysed with the facts of their operands.
 */
export function analyseFacts(p: Program, g: MaskGeometry, inputs: readonly Facts[], seed: ReadonlyMap<Var, Facts> = new Map()): Analysis {
  const facts = new Map<Var, Facts>();
  const producer = new Map<Var, Eqn>();
  const bodies = new Map<Eqn, Analysis>();
  p.inputs.forEach((v, i) => facts.set(v, inputs[i] ?? NO_FACTS));
  for (const [v, f] of seed) facts.set(v, f);
  const ctx: FactContext = {
    g,
    factsOf: (a) => (a instanceof Literal ? NO_FACTS : (facts.get(a) ?? NO_FACTS)),
    producer: (a) => (a instanceof Literal ? undefined : producer.get(a)),
  };
  for (const e of p.eqns) {
    e.outputs.forEach((v) => producer.set(v, e));
    if (e.outputs.some((v) => seed.has(v))) continue;
    const outs = eqnFacts(e, ctx, bodies);
    e.outputs.forEach((v, i) => facts.set(v, outs?.[i] ?? NO_FACTS));
  }
  return { program: p, facts, producer, bodies, unobserved: new Map() };
}

function eqnFacts(e: Eqn, ctx: FactContext, bodies: Map<Eqn, Analysis>): Facts[] | undefined {
  if (e.prim === 'region') {
    if (e.params.name === UPSAMPLE_MASK_REGION) {
      const f = ctx.factsOf(e.inputs[0]!).field;
      const scale = e.params.attrs.scale;
      const ok = f && f.s === 'NL' && typeof scale === 'number' && siteScale(ctx.g, e.outputs[0]!.aval.shape) === scale;
      if (ok) return [fieldFacts({ pol: f.pol, s: scale })];
    }
  }
  if (e.prim === 'region' || e.prim === 'checkpoint') {
    const body = analyseFacts(e.params.body, ctx.g, e.inputs.map(ctx.factsOf));
    bodies.set(e, body);
    return e.params.body.outputs.map((a) => (a instanceof Literal ? NO_FACTS : (body.facts.get(a) ?? NO_FACTS)));
  }
  const rule = FACT_RULES[e.prim];
  const out = rule?.(e, ctx);
  // only site vars carry the zero fact
  return out?.map((f, i) => (f.field || siteScale(ctx.g, e.outputs[i]!.aval.shape) !== undefined ? f : NO_FACTS));
}
