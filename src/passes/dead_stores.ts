/**
 * A kernel-graph pass: drops stores nothing reads. Merging loop kernels (merge_phases.ts)
 * recomputes a merged kernel's value where the later kernel read it, but keeps its store, which
 * is dead when no other kernel reads that buffer (in a training step, LayerNorm backward's
 * intermediate gradient, a whole activation written for nothing). A temporary that no kernel
 * reads and the graph does not return loses its stores; a kernel left without outputs goes, and
 * that repeats until nothing changes.
 */
import { type Kernel, type KernelGraph, kernelIO, type KernelOutput } from '../codegen/kernel/kernel_graph.js';

/** The kernel without its stores into `dead` buffers, or undefined when none is left. */
function withoutDead(k: Kernel, dead: (buf: number) => boolean): Kernel | undefined {
  const keep = (os: readonly KernelOutput[]): KernelOutput[] => os.filter((o) => !dead(o.buf));
  switch (k.kind) {
    case 'loop': {
      const outerOutputs = keep(k.outerOutputs);
      const rowOutputs = keep(k.rowOutputs);
      if (outerOutputs.length + rowOutputs.length === 0) return undefined;
      return outerOutputs.length === k.outerOutputs.length && rowOutputs.length === k.rowOutputs.length ? k : { ...k, outerOutputs, rowOutputs };
    }
    case 'matmul':
    case 'conv': {
      const outputs = keep(k.outputs);
      if (outputs.length === 0) return undefined;
      if (outputs.length === k.outputs.length) return k;
      // a matmul's reducing outputs come with reduceRows, and only with them
      if (k.kind === 'matmul' && k.reduceRows !== undefined && !outputs.some((o) => o.init === 'zero')) {
        const { reduceRows: _, ...rest } = k;
        return { ...rest, outputs };
      }
      return { ...k, outputs };
    }
    case 'sort':
      return dead(k.output) ? undefined : k;
  }
}

export function dropDeadStores(g: KernelGraph): KernelGraph {
  const returned = new Set(g.outputs.flatMap((o) => (o.kind === 'buffer' ? [o.buf] : [])));
  let kernels = g.kernels;
  for (;;) {
    const read = new Set(kernels.flatMap((k) => kernelIO(k).reads));
    const dead = (buf: number): boolean => g.buffers[buf]?.kind === 'temp' && !returned.has(buf) && !read.has(buf);
    const next = kernels.flatMap((k) => withoutDead(k, dead) ?? []);
    if (next.length === kernels.length && next.every((k, i) => k === kernels[i])) return kernels === g.kernels ? g : { ...g, kernels };
    kernels = next;
  }
}
