/**
 * One kernel of a KernelGraph as CUDA modules: the dtype edge cases rewritten for CUDA
 * (lowerExprs with the operations CUDA has natively), the kernel's bindings, then its code:
 * matmuls and the GEMM paths of convolutions on bf16/f16 operands (and f32 ones with the tf32
 * option) take the tensor-core GEMM (mma_gemm.ts), unless they use prologue statistics or
 * reducing epilogues, which only the shared SIMT GEMM implements (a per-kernel fallback, so the
 * device can declare prologueStats); every other kernel the dialect-generic GPU layer
 * (src/codegen/lower/gpu) prints with the CUDA GpuDialect.
 */
import type { DType } from '../../ir/dtype.js';
import { NexgradError } from '../../ir/errors.js';
import type { Kernel } from '../kernel/kernel_graph.js';
import { convGeometry, convPath, gemmSpecOf, gemmSpecOfTransposed } from '../lower/conv_geometry.js';
import { lowerExprs } from '../lower/expr_rules.js';
import { type GemmSpec, matmulSpec, usesReducingFeatures } from '../lower/gemm_spec.js';
import { kernelBindings } from '../lower/gpu/bindings.js';
import { emitGpuKernel } from '../lower/gpu/emit.js';
import { clampLoads } from '../lower/safe_loads.js';
import type { GpuBuffers, GpuKernelCode, GpuTarget } from '../lower/gpu/kernel_code.js';
import { CUDA_NATIVE } from './dialect.js';
import type { CudaGpuDialect } from './gpu_dialect.js';
import { emitMmaGemm, mmaKindFor } from './mma_gemm.js';

export interface CudaTarget extends GpuTarget {
  readonly dialect: CudaGpuDialect;
  /** Run f32 GEMMs on tensor cores as tf32 (10-bit mantissas; off by default). */
  readonly tf32: boolean;
}

/** The GEMM a (lowered) matmul or GEMM-path convolution computes, if it is one. */
export function gemmOf(k: Kernel): GemmSpec | undefined {
  if (k.kind === 'matmul') return matmulSpec(k);
  if (k.kind !== 'conv') return undefined;
  const path = convPath(k);
  if (path === 'gemm') return gemmSpecOf(k, convGeometry(k));
  if (path === 'gemm_transposed') return gemmSpecOfTransposed(k, convGeometry(k));
  return undefined;
}

/**
 * Which GEMM a spec runs on: the tensor-core one for bf16/f16 operands (f32 with tf32) without
 * row statistics or reducing outputs; the shared SIMT GEMM otherwise.
 */
export function gemmPath(spec: GemmSpec, target: Pick<CudaTarget, 'tf32'>): 'mma' | 'simt' {
  return mmaKindFor(spec.dtype, target.tf32) !== undefined && !usesReducingFeatures(spec) ? 'mma' : 'simt';
}

/** The CUDA code of one kernel of a planned graph. */
export function emitCudaKernel(kernel: Kernel, target: CudaTarget, buffers: GpuBuffers): GpuKernelCode {
  const f64 = f64Accumulation(kernel);
  if (f64) throw new NexgradError(`cuda: kernel ${kernel.name} computes ${f64}, which the CUDA backend does not accumulate in f64 yet; compute it in f32 (cast the operands) or run it on the 'cpu' backend`);
  // every subexpression is evaluated (a select's untaken side too): loads clamped into their buffers
  const low = clampLoads(lowerExprs(kernel, { native: CUDA_NATIVE }), buffers.sizeOf);
  const spec = gemmOf(low);
  const kind = spec && gemmPath(spec, target) === 'mma' ? mmaKindFor(spec.dtype, target.tf32) : undefined;
  if (spec && kind) {
    const bindings = kernelBindings(low, buffers);
    return emitMmaGemm({ spec, kind, dialect: target.dialect.forKernel(bindings), bindings, dtypeOf: buffers.dtypeOf });
  }
  // the layer lowers the kernel itself
  return emitGpuKernel(kernel, target, buffers);
}

/** Element dtypes CUDA buffers and registers hold. */
export const CUDA_DTYPES: ReadonlySet<DType> = new Set<DType>(['f32', 'f64', 'f16', 'bf16', 'i32', 'u32', 'bool']);

/**
 * What of a kernel would need f64 accumulators or comparisons, which the GPU layer keeps in f32
 * registers (WGSL has none): an f64 reduction, matmul, convolution or sort. f64 elementwise
 * work (loads, arithmetic in double registers, stores) is exact and allowed.
 */
export function f64Accumulation(k: Kernel): string | undefined {
  switch (k.kind) {
    case 'loop': {
      const r = k.reductions.find((x) => x.dtype === 'f64' || x.expr.dtype === 'f64');
      return r ? `its ${r.op} reduction of f64 values` : undefined;
    }
    case 'matmul':
    case 'conv':
      return k.dtype === 'f64' ? `an f64 ${k.kind === 'conv' ? 'convolution' : 'matmul'}` : undefined;
    case 'sort':
      return k.dtype === 'f64' ? 'an argsort of f64 values' : undefined;
  }
}
