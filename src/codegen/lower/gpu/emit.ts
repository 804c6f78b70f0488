/**
 * One kernel of a KernelGraph -> a GPU module, for any GpuDialect: the edge-case rewrites of
 * ../expr_rules.ts, loads clamped into their buffers (../safe_loads.ts), the kernel's bindings,
 * then the emitter of its kind.
 */
import type { Kernel } from '../../kernel/kernel_graph.js';
import { lowerExprs } from '../expr_rules.js';
import { kernelBindings } from './bindings.js';
import { emitConvKernel } from './conv.js';
import { emitContext } from './emit_context.js';
import type { GpuBuffers, GpuKernelCode, GpuTarget } from './kernel_code.js';
import { emitLoopKernel } from './loop.js';
import { emitGemm } from './matmul.js';
import { matmulSpec } from '../gemm_spec.js';
import { clampLoads } from '../safe_loads.js';
import { emitSortKernel } from './sort.js';

export function emitGpuKernel(kernel: Kernel, target: GpuTarget, buffers: GpuBuffers): GpuKernelCode {
  const k = clampLoads(lowerExprs(kernel, { native: target.native }), buffers.sizeOf);
  const bindings = kernelBindings(k, buffers);
  if (k.kind === 'sort') return emitSortKernel(k, target, bindings);
  const ctx = emitContext(k.name, target, bindings, buffers.dtypeOf);
  switch (k.kind) {
    case 'loop':
      return emitLoopKernel(k, ctx);
    case 'matmul':
      return emitGemm(matmulSpec(k), ctx);
    case 'conv':
      return emitConvKernel(k, ctx);
  }
}
