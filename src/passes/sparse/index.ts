/**
 * Masked sparse execution of the FCMAE encoder, as a compiler rewrite (see sparsify.ts). It runs
 * in two places:
 * - before autodiff: installed at import into src/autodiff's forward-rewrite slot, so
 *   vjp/grad/valueAndGrad/jvp differentiate the rewritten forward program and the backward is
 *   sparse too (the gathers transpose into scatter-adds);
 * - as the first pass of jit's pipeline (PASSES), for forward-only programs (inference, the
 *   reconstruction picture).
 *
 * Inside a jitted training step the mask is usually made outside the differentiated function
 * and reaches it as a captured tracer; the hook looks for the tracer among the patch masks the
 * enclosing trace has made, so a mask from `fcmae.patch_mask` there still counts.
 */
import { getForwardRewrites, setForwardRewrites } from '../../autodiff/api.js';
import type { Program, Var } from '../../ir/program.js';
import type { TraceContext } from '../../ir/trace.js';
import type { Tensor } from '../../ir/tensor.js';
import type { MaskGeometry } from './geometry.js';
import { type MaskSource, patchMasksIn, sparsifyMasked } from './sparsify.js';

export { sparsifyMasked, maskSources, type MaskSource, type SparsifyOptions } from './sparsify.js';
export { countFlops, type FlopCount } from './flops.js';
export { chooseRoute, type ConvRoute, GATHER_COST } from './masked_conv.js';
import type { ConvRoute } from './masked_conv.js';

export const MASKED_SPARSE = 'masked-sparse';

/**
 * NEXGRAD_SPARSE_CONV_ROUTE=halo|dense forces the depthwise convolutions' route instead of the
 * cost rule (a benchmarking knob; both compute the same values, so a jit disk-cache entry made
 * under the other setting is still correct).
 */
function envRoute(): ConvRoute | undefined {
  const v = typeof process !== 'undefined' ? process.env.NEXGRAD_SPARSE_CONV_ROUTE : undefined;
  return v === 'halo' || v === 'dense' ? v : undefined;
}

/** The rewrite as jit's first pass runs it. */
export function sparsePass(p: Program): Program {
  return sparsifyMasked(p, [], { convRoute: envRoute() });
}

/** The patch masks a trace has made so far: output var -> geometry (one pass over its equations). */
function patchMasksOf(ctx: TraceContext): Map<Var, MaskGeometry> {
  return new Map(patchMasksIn(ctx.eqns).map((m) => [m.v, m.g]));
}

/**
 * The forward rewrite autodiff applies. An input that is a tracer made by a `fcmae.patch_mask`
 * region of its (enclosing, still active) trace counts as a mask source.
 */
export function sparseForwardRewrite(p: Program, inputs: readonly Tensor[], mode: 'vjp' | 'jvp' = 'vjp'): Program {
  const masks = new Map<TraceContext, Map<Var, MaskGeometry>>();
  const sources: MaskSource[] = [];
  inputs.forEach((t, i) => {
    const ctx = t._trace;
    if (!ctx || !ctx.active || !t._var || !p.inputs[i]) return;
    let known = masks.get(ctx);
    if (!known) masks.set(ctx, (known = patchMasksOf(ctx)));
    const g = known.get(t._var);
    if (g) sources.push({ v: p.inputs[i]!, g });
  });
  return sparsifyMasked(p, sources, { plainAutodiff: mode === 'jvp', convRoute: envRoute() });
}

setForwardRewrites([...getForwardRewrites().filter((r) => r.name !== MASKED_SPARSE), { name: MASKED_SPARSE, run: sparseForwardRewrite }]);
