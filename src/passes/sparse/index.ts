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
 * and reaches it as a captured tracer; the hook looks the tracer's producer up in the enclosing
 * trace, so a mask from `fcmae.patch_mask` there still counts.
 */
import { getForwardRewrites, setForwardRewrites } from '../../autodiff/api.js';
import type { Program } from '../../ir/program.js';
import type { Tensor } from '../../ir/tensor.js';
import { geometryOf, PATCH_MASK_REGION } from './geometry.js';
import { type MaskSource, sparsifyMasked } from './sparsify.js';

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

/** The patch-mask geometry of a tracer made by a `fcmae.patch_mask` region of its trace, if any. */
function producedPatchMask(t: Tensor): ReturnType<typeof geometryOf> {
  const ctx = t._trace;
  const v = t._var;
  if (!ctx || !v || !ctx.active) return undefined;
  // the mask is typically made just before the differentiated function is called: scan backwards
  for (let k = ctx.eqns.length - 1; k >= 0; k--) {
    const e = ctx.eqns[k]!;
    if (!e.outputs.includes(v)) continue;
    if (e.prim !== 'region' || e.params.name !== PATCH_MASK_REGION) return undefined;
    return geometryOf(e.params.attrs, v.aval.shape);
  }
  return undefined;
}

/** The forward rewrite autodiff applies: inputs that are patch masks of an enclosing trace count as mask sources. */
export function sparseForwardRewrite(p: Program, inputs: readonly Tensor[], mode: 'vjp' | 'jvp' = 'vjp'): Program {
  const sources: MaskSource[] = [];
  inputs.forEach((t, i) => {
    const g = t._trace ? producedPatchMask(t) : undefined;
    if (g && p.inputs[i]) sources.push({ v: p.inputs[i]!, g });
  });
  return sparsifyMasked(p, sources, { plainAutodiff: mode === 'jvp', convRoute: envRoute() });
}

setForwardRewrites([...getForwardRewrites().filter((r) => r.name !== MASKED_SPARSE), { name: MASKED_SPARSE, run: sparseForwardRewrite }]);
