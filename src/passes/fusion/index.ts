/**
 * Fusion: Program (regions inlined, simplified) -> KernelGraph, in named phases:
 *   1. materialise  which values get a buffer (structural rules, then the device's cost rule)
 *   2. epilogues    what each matmul/convolution anchor applies as it stores its result
 *   3. prologues    matmul operands computed while the GEMM packs them
 *   4. build        one kernel per materialised value, inlined values as scalar expressions
 * The kernel-graph passes after it (merging loop kernels over one space, keeping within the
 * device's buffer limit) are listed in pipeline.ts.
 */
import { UNLIMITED_CAPS, type DeviceCaps } from '../../codegen/kernel/device.js';
import { graphCost } from '../../codegen/kernel/cost.js';
import type { GraphOutput, KernelGraph } from '../../codegen/kernel/kernel_graph.js';
import type { Program } from '../../ir/program.js';
import { Literal } from '../../ir/program.js';
import type { Origins } from '../inline.js';
import { findEpilogues, findPrologues } from './anchors.js';
import { KernelBuilder } from './build.js';
import { applyCostRule, structuralMaterialisation } from './materialise.js';
import { ProgramView } from './program_view.js';
import { attachReducing, findReducingEpilogues } from './reducing.js';
import { findExtraOutputs } from './extra_outputs.js';
import { splitToBufferLimit } from '../buffer_limit.js';
import { NexgradError } from '../../ir/errors.js';

export function fuse(p: Program, origins: Origins = new Map(), caps: DeviceCaps = UNLIMITED_CAPS): KernelGraph {
  const view = new ProgramView(p);
  const plain = build(view, origins, caps, false)!;
  if (!caps.reducingEpilogues) return plain;
  // Reducing epilogues pay when the reduction's re-read goes away; where the reduced value is
  // needed elsewhere anyway (a training step's backward) they can cost a kernel: keep the graph
  // with them only when it is no worse in kernels and moves fewer bytes.
  const reducing = build(view, origins, caps, true);
  if (!reducing) return plain;
  const a = graphCost(plain);
  const b = graphCost(reducing);
  const better = reducing.kernels.length <= plain.kernels.length && b.bytesRead + b.bytesWritten < a.bytesRead + a.bytesWritten;
  return better && withinBufferLimit(reducing, caps) ? reducing : plain;
}

/**
 * Whether the buffer-limit pass can bring every kernel under the device's limit: an anchor that
 * accumulates reductions or stores extra outputs reading many buffers may not split (its
 * epilogue reads the accumulator), and then the graph without them is used.
 */
function withinBufferLimit(g: KernelGraph, caps: DeviceCaps): boolean {
  if (!Number.isFinite(caps.maxStorageBuffers)) return true;
  try {
    splitToBufferLimit(g, caps);
    return true;
  } catch (e) {
    if (e instanceof NexgradError) return false;
    throw e;
  }
}

/** The phases, with reducing epilogues and extra outputs or without (undefined when none apply). */
function build(view: ProgramView, origins: Origins, caps: DeviceCaps, withReducing: boolean): KernelGraph | undefined {
  const p = view.program;
  let M = structuralMaterialisation(view);
  applyCostRule(view, M, caps.recomputeCostLimit);
  let ep = findEpilogues(view, M);
  if (withReducing) {
    // Reductions accumulated by anchors have buffers of their own from the start, so the cost
    // rule sees what they make cheap (GRN's norm is recomputed from its sum of squares, not stored).
    findExtraOutputs(view, M, ep);
    const found = findReducingEpilogues(view, M, ep);
    if (found.length === 0 && ep.extras.size === 0) return undefined;
    M = structuralMaterialisation(view);
    for (const f of found) M.add(f.r);
    applyCostRule(view, M, caps.recomputeCostLimit);
    ep = findEpilogues(view, M);
    findExtraOutputs(view, M, ep);
    attachReducing(ep, findReducingEpilogues(view, M, ep));
  }
  findPrologues(view, M, ep);
  const b = new KernelBuilder(view, M, ep, origins, caps);
  const inputs = p.inputs.map((v) => b.newBuf(v, 'input'));
  const consts = p.consts.map((c) => ({ buf: b.newBuf(c.v, 'const'), value: c.value }));
  b.buildAll();
  const outputs: GraphOutput[] = p.outputs.map((a) => {
    if (a instanceof Literal) return { kind: 'literal', value: a.value, dtype: a.dtype };
    return { kind: 'buffer', buf: b.ensureBuilt(a), shape: a.aval.shape, dtype: a.aval.dtype };
  });
  return { buffers: b.buffers, kernels: b.kernels, inputs, outputs, consts };
}

export { OP_COST } from './materialise.js';
