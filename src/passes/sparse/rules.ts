/**
 * The masked sparse rules: for each primitive (or region) whose site-var outputs may live in
 * compact form (their masked sites are unobserved or zero), how to compute them from compact
 * operands. A rule declines (returns undefined) when its operands are not available compact
 * in the way it needs; the driver then emits the equation densely, so anything not matched
 * stays dense and the rewrite always preserves the program's outputs.
 *
 * Patterns use the pass pattern type (src/passes/patterns.ts); guards check the static shape
 * conditions, rewrites emit the compact equations into the trace being built.
 */
import type { ConvParams } from '../../ir/primitive.js';
import { type Atom, Literal } from '../../ir/program.js';
import * as ops from '../../ir/ops.js';
import { bind } from '../../ir/trace.js';
import type { Tensor } from '../../ir/tensor.js';
import { type EqnPattern, type Match, matchEqn } from '../patterns.js';
import { ELEMENTWISE } from '../prim_kinds.js';
import type { Rep, RuleContext } from './context.js';
import { broadcastKeepsSites, keepsSites, lhsSitesFree, patchLocalConv } from './facts.js';
import { avoidsSites, compactShape } from './geometry.js';
import { chooseRoute, maskedSameConv, type SameConv } from './masked_conv.js';

export interface SparseRule {
  readonly name: string;
  readonly pattern: EqnPattern;
  readonly guard?: (m: Match, ctx: RuleContext) => boolean;
  /** The outputs' new representations, or undefined to decline. */
  readonly rewrite: (m: Match, ctx: RuleContext) => Rep[] | undefined;
}

const out0 = (m: Match) => m.root.outputs[0]!;
const compactOut = (t: Tensor): Rep[] => [{ compact: t }];
const bindCompact = (m: Match, inputs: Tensor[], params: unknown = m.root.params): Rep[] =>
  compactOut(bind(m.root.prim, inputs, params as never)[0]!);

/** The site-wise elementwise rule: every operand compact, at least one already so (nothing gathered for nothing). */
function elementwise(m: Match, ctx: RuleContext): Rep[] | undefined {
  const ins = m.root.inputs;
  if (ins.some((a) => a instanceof Literal) || !ins.some((a) => ctx.compact(a))) return undefined;
  const cs = ins.map((a) => ctx.anyCompact(a));
  if (cs.some((c) => !c)) return undefined;
  return bindCompact(m, cs as Tensor[]);
}

/** reduce_sum over both grid axes of a value zero at masked sites: a sum over its visible cells. */
function reduceSites(m: Match, ctx: RuleContext): Rep[] | undefined {
  const e = m.root;
  if (e.prim !== 'reduce_sum') return undefined;
  const x = e.inputs[0]!;
  const c = ctx.compact(x);
  const axes = e.params.axes;
  if (!c || !ctx.facts(x).zero || !axes.includes(1) || !axes.includes(2)) return undefined;
  const { n, lenKeep } = ctx.g;
  const s = ctx.scale(x)!;
  const rest = c.shape.slice(3);
  // [M, s, s, ...r] -> [N, K*s*s, ...r]: axis 0 the sample, axis 1 its visible cells
  const perSample = ops.reshape(c, [n, lenKeep * s * s, ...rest]);
  const newAxes = [...(axes.includes(0) ? [0] : []), 1, ...axes.filter((a) => a > 2).map((a) => a - 1)];
  const [y] = bind('reduce_sum', [perSample], { axes: newAxes });
  return [{ dense: y! }];
}

/** The depthwise 7x7 kind: stride 1, no dilation, 'same' padding, NHWC, input zero at masked sites. */
function sameConvGuard(m: Match, ctx: RuleContext): boolean {
  const e = m.root;
  if (e.prim !== 'conv_general') return false;
  const p = e.params;
  const nhwc = (d: readonly number[]) => d[0] === 0 && d[1] === 3 && d[2] === 1 && d[3] === 2;
  const w = e.inputs[1]!.aval.shape;
  const win = [w[p.dims.rhs[2]!]!, w[p.dims.rhs[3]!]!];
  return (
    nhwc(p.dims.lhs) &&
    nhwc(p.dims.out) &&
    p.batchGroupCount === 1 &&
    p.windowStrides.every((st) => st === 1) &&
    p.lhsDilation.every((d) => d === 1) &&
    p.rhsDilation.every((d) => d === 1) &&
    p.padding.every(([lo, hi], i) => lo >= 0 && hi >= 0 && lo + hi === win[i]! - 1) &&
    ctx.scale(e.inputs[0]!) !== undefined &&
    ctx.facts(e.inputs[0]!).zero &&
    ctx.compactable(e.outputs[0]!)
  );
}

function sameConv(m: Match, ctx: RuleContext): Rep[] | undefined {
  const e = m.root;
  const [x, w] = e.inputs as [Atom, Atom];
  if (!ctx.tables || x instanceof Literal) return undefined;
  const p = e.params as ConvParams;
  const ws = w.aval.shape;
  const conv: SameConv = {
    s: ctx.scale(x)!,
    channelsIn: x.aval.shape[3]!,
    channelsOut: e.outputs[0]!.aval.shape[3]!,
    window: [ws[p.dims.rhs[2]!]!, ws[p.dims.rhs[3]!]!],
    groups: p.featureGroupCount,
  };
  const route = ctx.opts.convRoute ?? chooseRoute(ctx.g, conv);
  // the dense route reads the grid: the input as it is when it exists there (zero at masked sites)
  const have = ctx.rep(x);
  const input = route === 'dense' && have.dense ? { dense: have.dense } : { compact: have.compact ?? ctx.gathered(x)! };
  return compactOut(maskedSameConv(ctx.tables, input, ctx.dense(w), p, conv, { ...ctx.opts, convRoute: route }));
}

/** x * keep at x's scale: the keep field is 1 at every visible site, so the compact product is x's. */
function mulByKeep(m: Match, ctx: RuleContext): Rep[] | undefined {
  const [a, b] = m.root.inputs as [Atom, Atom];
  const s = ctx.scale(m.root.outputs[0]!);
  const isKeep = (t: Atom) => {
    const f = ctx.facts(t).field;
    return !!f && f.pol === 'keep' && f.s === s;
  };
  const x = isKeep(b) ? a : isKeep(a) ? b : undefined;
  const c = x === undefined ? undefined : ctx.compact(x);
  return c ? compactOut(c) : undefined;
}

export const SPARSE_RULES: readonly SparseRule[] = [
  { name: 'multiply by keep', pattern: { prim: 'mul' }, guard: (m, ctx) => ctx.compactable(out0(m)), rewrite: mulByKeep },
  {
    name: 'site-wise elementwise',
    pattern: { prim: [...ELEMENTWISE] },
    guard: (m, ctx) => ctx.compactable(out0(m)),
    rewrite: elementwise,
  },
  {
    name: 'broadcast along channels',
    pattern: { prim: 'broadcast_in_dim', inputs: [{ any: 'x' }] },
    guard: (m, ctx) => broadcastKeepsSites(ctx.g, m.root) && ctx.compactable(out0(m)),
    rewrite: (m, ctx) => {
      const c = ctx.compact(m.atoms.get('x')!);
      return c ? bindCompact(m, [c], { ...m.root.params, shape: compactShape(ctx.g, out0(m).aval.shape) }) : undefined;
    },
  },
  {
    name: 'reshape of channels',
    pattern: { prim: 'reshape', inputs: [{ any: 'x' }] },
    guard: (m, ctx) => m.root.prim === 'reshape' && keepsSites(ctx.g, m.atoms.get('x')!.aval.shape, m.root.params.shape) && ctx.compactable(out0(m)),
    rewrite: (m, ctx) => {
      const c = ctx.compact(m.atoms.get('x')!);
      return c ? compactOut(ops.reshape(c, compactShape(ctx.g, out0(m).aval.shape))) : undefined;
    },
  },
  {
    name: 'reduce over channels',
    pattern: { prim: ['reduce_sum', 'reduce_max', 'reduce_min'], inputs: [{ any: 'x' }] },
    guard: (m, ctx) => 'axes' in m.root.params && avoidsSites(m.root.params.axes as number[]) && ctx.compactable(out0(m)),
    rewrite: (m, ctx) => {
      const c = ctx.compact(m.atoms.get('x')!);
      return c ? bindCompact(m, [c]) : undefined;
    },
  },
  { name: 'sum over visible sites', pattern: { prim: 'reduce_sum' }, rewrite: reduceSites },
  {
    name: 'pointwise contraction',
    pattern: { prim: 'dot_general', inputs: [{ any: 'x' }, { any: 'w' }] },
    guard: (m, ctx) => lhsSitesFree(ctx.g, m.root) && ctx.compactable(out0(m)),
    rewrite: (m, ctx) => {
      const c = ctx.compact(m.atoms.get('x')!);
      return c ? bindCompact(m, [c, ctx.dense(m.atoms.get('w')!)]) : undefined;
    },
  },
  {
    name: 'patch-local convolution',
    pattern: { prim: 'conv_general', inputs: [{ any: 'x' }, { any: 'w' }] },
    guard: (m, ctx) => patchLocalConv(ctx.g, m.root) && ctx.compactable(out0(m)),
    rewrite: (m, ctx) => {
      const x = m.atoms.get('x')!;
      const c = x instanceof Literal ? undefined : (ctx.compact(x) ?? ctx.gathered(x));
      return c ? bindCompact(m, [c, ctx.dense(m.atoms.get('w')!)]) : undefined;
    },
  },
  { name: 'masked same convolution', pattern: { prim: 'conv_general' }, guard: sameConvGuard, rewrite: sameConv },
];

const byPrim = new Map<string, SparseRule[]>();
for (const r of SPARSE_RULES) {
  for (const p of typeof r.pattern.prim === 'string' ? [r.pattern.prim] : r.pattern.prim) byPrim.set(p, [...(byPrim.get(p) ?? []), r]);
}

/** The first rule that rewrites `e`, with its name. */
export function applyRules(ctx: RuleContext, e: Match['root']): { rule: string; reps: Rep[] } | undefined {
  const producer = (a: Atom) => (a instanceof Literal ? undefined : ctx.analysis.producer.get(a));
  for (const r of byPrim.get(e.prim) ?? []) {
    const m = matchEqn(r.pattern, e, producer);
    if (!m || (r.guard && !r.guard(m, ctx))) continue;
    const reps = r.rewrite(m, ctx);
    if (reps) return { rule: r.name, reps };
  }
  return undefined;
}
