/**
 * One kernel of a KernelGraph as CUDA modules: the dtype edge cases rewritten for CUDA
 * (lowerExprs with the operations CUDA has natively), the kernel's bindings, then its code:
 * matmuls and the GEMM paths of convolutions on bf16/f16 operands (and f32 ones with the tf32
 * option) take the tensor-core GEMM (mma_gemm.ts); every other kernel the dialect-generic GPU
 * layer (src/codegen/lower/gpu) prints with the CUDA GpuDialect.
 */
import type { DType } from '../../ir/dtype.js';
import { NexgradError } from '../../ir/errors.js';
import { type Kernel, kernelIO } from '../kernel/kernel_graph.js';
import { convGeometry, convPath, gemmSpecOf, gemmSpecOfTransposed } from '../lower/conv_geometry.js';
import { lowerExprs } from '../lower/expr_rules.js';
import { type GemmSpec, matmulSpec } from '../lower/gemm_spec.js';
import type { GpuBinding } from '../lower/gpu/dialect.js';
import type { GpuBuffers, GpuKernelCode, GpuTarget } from '../lower/gpu/kernel_code.js';
import { CUDA_NATIVE } from './dialect.js';
import type { CudaGpuDialect } from './gpu_dialect.js';
import { emitMmaGemm, mmaKindFor } from './mma_gemm.js';

export interface CudaTarget extends GpuTarget {
  readonly dialect: CudaGpuDialect;
  /** Run f32 GEMMs on tensor cores as tf32 (10-bit mantissas; off by default). */
  readonly tf32: boolean;
}

/**
 * The storage bindings of a kernel: every buffer it reads or writes, buffers sharing a storage
 * (a donated input and its in-place output) in one binding, written ones read_write, those an
 * accumulating store adds into marked atomic.
 */
export function kernelBindings(k: Kernel, buffers: GpuBuffers): GpuBinding[] {
  const { reads, writes } = kernelIO(k);
  const outs = k.kind === 'loop' ? [...k.outerOutputs, ...k.rowOutputs] : k.kind === 'sort' ? [] : k.outputs;
  const atomic = new Set(outs.filter((o) => o.accumulate).map((o) => o.buf));
  const written = new Set(writes);
  const groups = new Map<number, { bufs: number[]; written: boolean; atomic: boolean }>();
  for (const buf of [...new Set([...reads, ...writes])].sort((a, b) => a - b)) {
    const s = buffers.storageOf(buf);
    let g = groups.get(s);
    if (!g) groups.set(s, (g = { bufs: [], written: false, atomic: false }));
    g.bufs.push(buf);
    g.written ||= written.has(buf);
    g.atomic ||= atomic.has(buf);
  }
  return [...groups.values()].map((g) => {
    const dtype = buffers.dtypeOf(g.bufs[0]!);
    const other = g.bufs.find((b) => buffers.dtypeOf(b) !== dtype);
    if (other !== undefined) throw new NexgradError(`cuda codegen: kernel ${k.name} binds buffers ${g.bufs.join(', ')} of one storage with different dtypes (${dtype}, ${buffers.dtypeOf(other)})`);
    return { kind: 'buffer', bufs: g.bufs, dtype, access: g.written ? 'read_write' : 'read', atomic: g.atomic };
  });
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

/** The layer's printer for the kernels the tensor-core GEMM does not take. */
export type LayerEmitter = (kernel: Kernel, target: GpuTarget, bindings: readonly GpuBinding[], buffers: GpuBuffers) => GpuKernelCode;

let layer: LayerEmitter = (kernel) => {
  throw new NexgradError(`cuda codegen: kernel ${kernel.name} (${kernel.kind}) needs the GPU kernel layer (src/codegen/lower/gpu), which this build lacks`);
};

/** @internal installs the GPU layer's emitter (done where the layer is imported). */
export function setLayerEmitter(e: LayerEmitter): void {
  layer = e;
}

/** The CUDA code of one kernel of a planned graph. */
export function emitCudaKernel(kernel: Kernel, target: CudaTarget, buffers: GpuBuffers): GpuKernelCode {
  const low = lowerExprs(kernel, CUDA_NATIVE);
  const bindings = kernelBindings(low, buffers);
  const spec = gemmOf(low);
  const kind = spec && mmaKindFor(spec.dtype, target.tf32);
  if (spec && kind) {
    return emitMmaGemm({ spec, kind, dialect: target.dialect.forKernel(bindings), bindings, dtypeOf: buffers.dtypeOf });
  }
  return layer(low, target, bindings, buffers);
}

/** Element dtypes the CUDA kernels handle. */
export const CUDA_DTYPES: ReadonlySet<DType> = new Set<DType>(['f32', 'f64', 'f16', 'bf16', 'i32', 'u32', 'bool']);
