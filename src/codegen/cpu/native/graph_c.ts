/**
 * A whole kernel graph as one C translation unit: the prelude (runtime_c.ts), every kernel's
 * range function, and `ng_run(B, rt, first, last)` running kernels [first, last) in order,
 * splittable ones through the thread pool (ng_parallel decides from the kernel's work).
 */
import type { KernelGraph } from '../../kernel/kernel_graph.js';
import { clampLoads } from '../../lower/safe_loads.js';
import { bufferDtypes } from '../emit.js';
import type { CKernelCode } from './c_common.js';
import { emitKernelC } from './emit_c.js';
import { C_PRELUDE } from './runtime_c.js';

export interface GraphC {
  readonly source: string;
  readonly kernels: readonly CKernelCode[];
}

/** `stable`: buffers the caller never writes between calls (inputs not donated, constants). */
export function emitGraphC(graph: KernelGraph, stable: ReadonlySet<number> = new Set()): GraphC {
  const dtypes = bufferDtypes(graph);
  // loads that can leave their buffer (a select's discarded branch over padding) read clamped
  // indices: C evaluates hoisted loads unconditionally, and an out-of-range read is undefined
  const sizes = new Map(graph.buffers.map((b) => [b.id, b.size]));
  const sizeOf = (b: number) => sizes.get(b) ?? 0;
  const kernels = graph.kernels.map((k, i) => emitKernelC(clampLoads(k, sizeOf), i, dtypes, stable));
  const cases = kernels.map((c, i) => {
    if (c.total === 0) return `    case ${i}: break;`;
    const call = c.splittable && c.total >= 2 ? `ng_parallel_parts(rt, ${c.total}, ${c.workPerItem}, ${c.fn}, (void*)B, ${c.partsPerThread ?? 4});` : `${c.fn}((void*)B, 0, ${c.total});`;
    return `    case ${i}: ${call} break;`;
  });
  const run = ['void ng_run(void** B, const ng_rt* rt, int64_t first, int64_t last) {', '  NG_RT = rt;', '  for (int64_t i = first; i < last; i++) switch (i) {', ...cases, '    default: break;', '  }', '}'];
  return { source: [C_PRELUDE, ...kernels.map((k) => `/* ${k.name} */\n${k.source}`), ...run, ''].join('\n'), kernels };
}
