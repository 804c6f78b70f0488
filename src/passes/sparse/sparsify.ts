/**
 * The masked sparse rewrite (DESIGN section 4, "masked sparse convolution"): given a program in
 * which a patch mask comes from the `fcmae.patch_mask` region (so each sample keeps exactly
 * lenKeep patches, known statically), rebuild it so that values whose masked sites are never
 * observed (or are zero) live in compact form [N*lenKeep, s, s, C] and every site-wise op,
 * LayerNorm, GELU, GRN, pointwise matmul, residual add, patch-local conv (stem, downsamplers)
 * and the depthwise 7x7 run on visible patches only. Values move to compact form where a rule
 * first needs them (a gather of whole patches) and back to the grid where a dense use needs
 * them (zeros at masked sites), so the program's outputs are unchanged.
 *
 * Driver: (1) forward facts (fields of the mask, zero-at-masked values), (2) backward demand
 * (unobserved masked sites), (3) a forward walk that emits each equation through the first rule
 * of SPARSE_RULES that fires, or densely; a region whose operands are compact is rebuilt with
 * its body rewritten the same way (same name and attrs), so autodiff and fusion still see it.
 */
import { NexgradError } from '../../ir/errors.js';
import { type Eqn, Literal, Program, type Var } from '../../ir/program.js';
import { Tensor } from '../../ir/tensor.js';
import { bind, inScopeOf, traceFlat } from '../../ir/trace.js';
import { dce } from '../simplify.js';
import { type Rep, RuleContext } from './context.js';
import { analyseDemand } from './demand.js';
import { type Analysis, analyseFacts, type Facts, NO_FACTS } from './facts.js';
import { geometryOf, type MaskGeometry, PATCH_MASK_REGION } from './geometry.js';
import { MaskTables } from './index_tables.js';
import type { ConvRoute } from './masked_conv.js';
import { applyRules } from './rules.js';

/** Where a program's patch mask is: a var (a region output or an input) and its geometry. */
export interface MaskSource {
  readonly v: Var;
  readonly g: MaskGeometry;
}

export interface SparsifyOptions {
  /** Counts rule firings: rule name -> times (nested bodies included). */
  readonly fired?: Map<string, number>;
  /** No custom_vjp in the result (the program is about to be differentiated in forward mode). */
  readonly plainAutodiff?: boolean;
  /** Force the depthwise convolutions' route instead of the cost rule's choice (tests, benchmarks). */
  readonly convRoute?: ConvRoute;
}

/** The patch masks made by `fcmae.patch_mask` regions at the top level of `p`. */
export function maskSources(p: Program): MaskSource[] {
  return patchMasksIn(p.eqns);
}

/** The patch masks made by `fcmae.patch_mask` regions among `eqns` (a program's, or a live trace's). */
export function patchMasksIn(eqns: readonly Eqn[]): MaskSource[] {
  const out: MaskSource[] = [];
  for (const e of eqns) {
    if (e.prim !== 'region' || e.params.name !== PATCH_MASK_REGION) continue;
    const g = geometryOf(e.params.attrs, e.outputs[0]!.aval.shape);
    if (g && e.outputs.length === 1) out.push({ v: e.outputs[0]!, g });
  }
  return out;
}

/**
 * Rewrites `p` for each mask source in turn; returns `p` itself when no rule fired.
 * `inputMasks` names program inputs known to be patch masks (see the autodiff hook).
 */
export function sparsifyMasked(p: Program, inputMasks: readonly MaskSource[] = [], opts: SparsifyOptions = {}): Program {
  let cur = p;
  const sources = [...inputMasks, ...maskSources(p)];
  for (let i = 0; i < sources.length; i++) {
    // after a rewrite the vars are new: find the i-th source again by position
    const src = i < inputMasks.length ? { v: cur.inputs[p.inputs.indexOf(sources[i]!.v)]!, g: sources[i]!.g } : maskSources(cur)[i - inputMasks.length];
    if (!src) break;
    cur = sparsifyOne(cur, src, opts) ?? cur;
  }
  return cur;
}

function sparsifyOne(p: Program, src: MaskSource, opts: SparsifyOptions = {}): Program | undefined {
  const g = src.g;
  const seed = new Map<Var, Facts>([[src.v, { field: { pol: 'mask', s: 'NL' }, zero: false }]]);
  const a = analyseFacts(p, g, p.inputs.map(() => NO_FACTS), seed);
  analyseDemand(a, g, p.outputs.map(() => false));
  let fired = 0;
  const traced = traceFlat(
    (...xs) => {
      const ctx = new RuleContext(g, a, undefined, opts);
      // the index tables are built from the mask once it exists in the new program
      ctx.onDefined = (v, t) => {
        if (v === src.v) ctx.tables = new MaskTables(g, t);
      };
      const outs = transformProgram(ctx, xs.map((d) => ({ dense: d })), opts);
      fired = ctx.fired;
      return p.outputs.map((o, i) => (o instanceof Literal ? outs[i]!.dense! : ctx.dense(o)));
    },
    p.inputs.map((v) => v.aval),
  );
  if (fired === 0) return undefined;
  if (traced.captured.length) throw new NexgradError('internal: the masked sparse rewrite captured an outer value');
  return dce(traced.program);
}

/** Rebuilds the program of `ctx.analysis` into the active trace; returns its outputs' representations. */
function transformProgram(ctx: RuleContext, inputs: readonly Rep[], opts: SparsifyOptions = {}): Rep[] {
  const p = ctx.analysis.program;
  const define = (v: Var, r: Rep) => {
    ctx.reps.set(v, r);
    if (r.dense) ctx.onDefined?.(v, r.dense);
  };
  p.inputs.forEach((v, i) => define(v, inputs[i]!));
  for (const c of p.consts) define(c.v, { dense: Tensor._concrete(c.value) });
  for (const e of p.eqns) {
    // what replaces an equation is traced in its named scope (kernels are named after it)
    inScopeOf(e.outputs[0], undefined, () => {
      const hit = e.prim === 'region' || e.prim === 'checkpoint' ? rebuildRegion(ctx, e, opts) : applyRules(ctx, e);
      if (hit) {
        ctx.fired++;
        const count = opts.fired;
        count?.set(hit.rule, (count.get(hit.rule) ?? 0) + 1);
        e.outputs.forEach((v, i) => define(v, hit.reps[i]!));
        return;
      }
      const outs = bind(e.prim, e.inputs.map((x) => ctx.dense(x)), e.params);
      e.outputs.forEach((v, i) => define(v, { dense: outs[i]! }));
    });
  }
  return p.outputs.map((o) => ctx.rep(o));
}

/**
 * A region (or checkpoint) with a compact operand: its body rewritten with those operands
 * compact; outputs come back compact where the body made them so and the output may be compact.
 */
function rebuildRegion(ctx: RuleContext, e: Eqn, opts: SparsifyOptions = {}): { rule: string; reps: Rep[] } | undefined {
  if (e.prim !== 'region' && e.prim !== 'checkpoint') return undefined;
  const body = ctx.analysis.bodies.get(e);
  const reps = e.inputs.map((x) => ctx.rep(x));
  // worth a look when a value arrives compact, or the mask does (the body may start compact work)
  if (!body || !ctx.tables || !e.inputs.some((x, i) => reps[i]!.compact || ctx.facts(x).field)) return undefined;
  const chosen = e.inputs.map((x, i) => reps[i]!.compact ?? ctx.dense(x));
  let kinds: boolean[] = [];
  let inner = 0;
  const traced = traceFlat(
    (...args) => {
      const child = new RuleContext(ctx.g, body, ctx.tables!.child(), ctx.opts);
      const outs = transformProgram(child, args.map((t, i) => (reps[i]!.compact ? { compact: t } : { dense: t })), opts);
      inner = child.fired;
      kinds = outs.map((r, j) => !!r.compact && ctx.compactable(e.outputs[j]!));
      return outs.map((r, j) => (kinds[j] ? r.compact! : child.dense(e.params.body.outputs[j]!)));
    },
    chosen.map((t) => t.aval),
  );
  if (inner === 0 && !kinds.some(Boolean)) return undefined;
  ctx.fired += inner;
  const body2 = dce(traced.program);
  const ins = [...chosen, ...traced.captured];
  const outs = e.prim === 'region' ? bind('region', ins, { name: e.params.name, attrs: e.params.attrs, body: body2 }) : bind('checkpoint', ins, { body: body2 });
  return { rule: e.prim === 'region' ? `region ${e.params.name}` : 'checkpoint', reps: outs.map((t, j) => (kinds[j] ? { compact: t } : { dense: t })) };
}

export type { Analysis };
