/**
 * The pass pipeline: named Program -> Program passes, each verified by the IR checker, then
 * fusion into a KernelGraph and memory planning. NEXGRAD_DUMP=ir,passes,kernels prints stages.
 */
import { type DeviceCaps, type MemoryPlan, UNLIMITED_CAPS } from '../codegen/kernel/device.js';
import { type KernelGraph, printKernelGraph } from '../codegen/kernel/kernel_graph.js';
import type { Program } from '../ir/program.js';
import { checkProgram } from './check.js';
import { fuse } from './fusion/index.js';
import { inlineRegions, type Origins } from './inline.js';
import { layoutNHWC } from './layout.js';
import { patchifyConvs } from './patchify.js';
import { type DonationInfo, planMemory } from './memory.js';
import { mergeLoopKernels } from './merge_phases.js';
import { splitToBufferLimit } from './buffer_limit.js';
import { dropDeadStores } from './dead_stores.js';
import { simplify } from './simplify.js';
import { foldConstants } from './const_fold.js';
import { sparsePass } from './sparse/index.js';

export interface Pass {
  readonly name: string;
  readonly run: (p: Program, origins: Origins) => Program;
}

export const PASSES: readonly Pass[] = [
  // before inlining: it matches regions (the patch mask, layer_norm, masked_grn, ...)
  { name: 'masked-sparse', run: (p) => sparsePass(p) },
  { name: 'inline', run: (p, o) => inlineRegions(p, o) },
  { name: 'simplify', run: (p, o) => simplify(p, o) },
  { name: 'fold-constants', run: (p, o) => foldConstants(p, o) },
  { name: 'layout', run: (p, o) => layoutNHWC(p, o) },
  { name: 'patchify', run: (p, o) => patchifyConvs(p, o) },
  { name: 'simplify-2', run: (p, o) => simplify(p, o) },
];

/** Passes over the kernel graph, after fusion, given the device's capabilities. */
export interface KernelPass {
  readonly name: string;
  readonly run: (g: KernelGraph, caps: DeviceCaps) => KernelGraph;
}

export const KERNEL_PASSES: readonly KernelPass[] = [
  { name: 'merge-loop-kernels', run: mergeLoopKernels },
  { name: 'dead-stores', run: (g) => dropDeadStores(g) },
  { name: 'buffer-limit', run: splitToBufferLimit },
];

export function dumpStages(): Set<string> {
  const v = typeof process !== 'undefined' ? process.env.NEXGRAD_DUMP : undefined;
  return new Set((v ?? '').split(',').map((s) => s.trim()).filter(Boolean));
}

export interface Lowered {
  readonly program: Program;
  readonly optimized: Program;
  readonly graph: KernelGraph;
  readonly plan: MemoryPlan;
}

export function runPasses(p: Program, origins: Origins = new Map(), log: (s: string) => void = () => {}, passes: readonly Pass[] = PASSES): Program {
  checkProgram(p, 'input');
  let cur = p;
  for (const pass of passes) {
    cur = pass.run(cur, origins);
    checkProgram(cur, pass.name);
    log(`--- after ${pass.name} (${cur.eqns.length} equations)\n${cur.toString()}`);
  }
  return cur;
}

export function lower(p: Program, donation?: DonationInfo, caps: DeviceCaps = UNLIMITED_CAPS): Lowered {
  const dump = dumpStages();
  const log = (s: string): void => {
    if (dump.has('passes')) console.error(s);
  };
  if (dump.has('ir')) console.error(`--- traced program\n${p.toString()}`);
  const origins: Origins = new Map();
  const optimized = runPasses(p, origins, log);
  let graph = fuse(optimized, origins, caps);
  for (const pass of KERNEL_PASSES) {
    graph = pass.run(graph, caps);
    if (dump.has('passes')) console.error(`--- after ${pass.name} (${graph.kernels.length} kernels)`);
  }
  const plan = planMemory(graph, donation, caps);
  if (dump.has('kernels')) console.error(`--- kernel graph (${graph.kernels.length} kernels)\n${printKernelGraph(graph)}`);
  return { program: p, optimized, graph, plan };
}
