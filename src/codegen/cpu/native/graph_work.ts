/**
 * A rough work estimate of a kernel graph (flops-ish), before any code is generated: the auto
 * CPU dialect runs graphs below a threshold on the JavaScript path, where a gcc run (~0.1-0.5 s)
 * would cost more than it could save (tests, small eager regions), and compiles the rest.
 */
import type { Kernel, KernelGraph } from '../../kernel/kernel_graph.js';

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

function kernelWork(k: Kernel): number {
  switch (k.kind) {
    case 'loop':
      return prod(k.outer) * Math.max(1, prod(k.row)) * Math.max(1, k.reductions.length + k.outerOutputs.length + k.rowOutputs.length);
    case 'matmul':
      return 2 * k.batch * k.m * k.n * k.k;
    case 'conv':
      // output elements x (contraction per output, bounded by the rhs size)
      return 2 * prod(k.outShape) * Math.max(1, prod(k.rhs.shape) / Math.max(1, k.outShape[k.params.dims.out[1]!] ?? 1));
    case 'sort':
      return prod(k.shape) * Math.log2(k.shape[k.axis]! + 1) * 4;
  }
}

export function graphWork(g: KernelGraph): number {
  return g.kernels.reduce((a, k) => a + kernelWork(k), 0);
}

/** Graphs under this much work stay on the JavaScript path in auto mode. */
export const NATIVE_MIN_WORK = 2e7;
