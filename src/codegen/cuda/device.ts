/**
 * The CUDA Device: arrays in device memory (the runtime's caching allocator), uploads and
 * reads (asynchronous, and synchronous through a blocking copy: CUDA allows it), and
 * executables that run planned kernel graphs on the runtime's stream (executable.ts).
 *
 * Capabilities: every dtype (f16/bf16 stored in 2 bytes, bool in 1); no practical limit on the
 * buffers one kernel binds (kernel parameters hold 4 KiB of pointers); threads per block and
 * shared memory per block from the device's properties; prologue statistics (on the SIMT GEMM).
 */
import type { DType } from '../../ir/dtype.js';
import { NexgradError } from '../../ir/errors.js';
import { type ArrayDevice, DeviceArray } from '../../ir/device_array.js';
import type { HostArray } from '../../ir/host.js';
import { sizeOf, type Shape } from '../../ir/shape.js';
import type { Device, DeviceCaps, MemoryPlan } from '../kernel/device.js';
import type { KernelGraph } from '../kernel/kernel_graph.js';
import { CUDA_ELEMENT_BYTES, CUDA_NATIVE } from './dialect.js';
import { type CudaArrayHost, CudaExecutable, type CudaExecutableOptions } from './executable.js';
import { CUDA_GPU_DIALECT } from './gpu_dialect.js';
import { CUDA_DTYPES, type CudaTarget } from './kernels.js';
import type { CudaDeviceProperties } from './native.js';
import type { CudaRuntime, DeviceBuffer } from './runtime.js';
import { fromStorage, stagingFor, storageBytes, toStorage } from './storage.js';

export interface CudaDeviceOptions extends CudaExecutableOptions {
  /** Run f32 matmuls and convolutions on tensor cores as tf32 (default false: exact f32). */
  readonly tf32?: boolean;
  /** The backend name arrays report (default 'cuda'). */
  readonly name?: string;
}

/** An array in CUDA device memory. */
export class CudaArray extends DeviceArray {
  readonly size: number;
  constructor(
    readonly device: ArrayDevice,
    private readonly rt: CudaRuntime,
    readonly buffer: DeviceBuffer,
    readonly dtype: DType,
    readonly shape: Shape,
  ) {
    super();
    this.size = sizeOf(shape);
  }

  get byteLength(): number {
    return storageBytes(this.dtype, this.size);
  }

  async read(): Promise<HostArray> {
    this.checkUsable('read');
    const staged = stagingFor(this.dtype, this.size);
    if (this.size > 0) await this.rt.read(this.buffer, staged);
    return fromStorage(this.dtype, this.shape, staged);
  }

  readSync(): HostArray {
    this.checkUsable('readSync');
    const staged = stagingFor(this.dtype, this.size);
    if (this.size > 0) this.rt.readSync(this.buffer, staged);
    return fromStorage(this.dtype, this.shape, staged);
  }

  protected freeMemory(): void {
    if (!this.buffer.freed) this.rt.free(this.buffer);
  }
}

/** The device properties the capabilities and the kernels depend on. */
export type CudaCapsSource = Pick<CudaDeviceProperties, 'maxThreadsPerBlock' | 'maxSharedMemoryPerBlock' | 'totalMemory'>;

/** An H100/H200 (sm_90), for code generation without a device (the CI compile check). */
export const SM90_PROPERTIES: CudaCapsSource = Object.freeze({ maxThreadsPerBlock: 1024, maxSharedMemoryPerBlock: 49152, totalMemory: 80 * 2 ** 30 });

/** The capabilities of a CUDA device (see the file comment). */
export function cudaCaps(p: CudaCapsSource): DeviceCaps {
  return Object.freeze({
    maxStorageBuffers: 256,
    dtypes: CUDA_DTYPES,
    elementBytes: CUDA_ELEMENT_BYTES,
    maxWorkgroupSize: p.maxThreadsPerBlock,
    maxSharedMemoryBytes: p.maxSharedMemoryPerBlock,
    maxBufferBytes: p.totalMemory,
    // arithmetic is cheap next to memory traffic on a GPU: recompute more before storing
    recomputeCostLimit: 12,
    // LayerNorm statistics computed by the GEMM that normalises its rows: such a matmul runs on
    // the shared SIMT GEMM (its row-statistics pre-pass), the tensor-core GEMM having none
    // (kernels.ts gemmPath). Reducing epilogues stay off as on WGSL: the SIMT GEMM serialises an
    // image's rows within one block for them, which pays only at large batches
    prologueStats: true,
  });
}

/** The code-generation target of a device with these capabilities. */
export function cudaTarget(caps: DeviceCaps, tf32: boolean): CudaTarget {
  return { dialect: CUDA_GPU_DIALECT, native: CUDA_NATIVE, maxWorkgroupSize: Math.min(1024, caps.maxWorkgroupSize), maxSharedBytes: caps.maxSharedMemoryBytes, tf32 };
}

/** A Device over an open CudaRuntime. */
export function createCudaDevice(rt: CudaRuntime, opts: CudaDeviceOptions = {}): Device & { readonly runtime: CudaRuntime } {
  const name = opts.name ?? 'cuda';
  const info: ArrayDevice = Object.freeze({ name, syncRead: true });
  const caps = cudaCaps(rt.device);
  const target = cudaTarget(caps, opts.tf32 ?? false);
  const wrap = (buffer: DeviceBuffer, dtype: DType, shape: readonly number[]): CudaArray => new CudaArray(info, rt, buffer, dtype, [...shape]);
  const own = (a: DeviceArray, what: string): CudaArray => {
    if (!(a instanceof CudaArray) || a.device !== info) throw new NexgradError(`${name}: ${what} is an array of the '${a.device.name}' device, not of this one`);
    return a;
  };
  const host: CudaArrayHost = {
    runtime: rt,
    wrap,
    bufferOf: (a, what) => {
      const c = own(a, what);
      c.checkUsable(`${name}: ${what}`);
      return c.buffer;
    },
  };
  const alloc = (dtype: DType, shape: Shape): CudaArray => {
    const bytes = storageBytes(dtype, sizeOf(shape));
    const buffer = rt.alloc(Math.max(4, bytes));
    if (bytes > 0) rt.zero(buffer, bytes);
    return wrap(buffer, dtype, shape);
  };
  return {
    name,
    syncRead: true,
    runtime: rt,
    id: `cuda:${rt.device.name}:${rt.arch}${target.tf32 ? ':tf32' : ''}`,
    caps,
    alloc,
    upload: (h) => {
      const bytes = toStorage(h);
      const buffer = rt.alloc(Math.max(4, bytes.byteLength));
      if (bytes.byteLength > 0) rt.upload(bytes, buffer);
      return wrap(buffer, h.dtype, h.shape);
    },
    read: (a) => own(a, 'read').read(),
    free: (a) => own(a, 'free').release(),
    copy: (a) => {
      const src = own(a, 'copy');
      const out = alloc(src.dtype, src.shape);
      if (src.byteLength > 0) rt.copy(out.buffer, src.buffer, src.byteLength);
      return out;
    },
    sync: () => rt.sync(),
    compile: (graph: KernelGraph, plan: MemoryPlan) => {
      for (const b of graph.buffers) if (!caps.dtypes.has(b.dtype)) throw new NexgradError(`${name}: buffer ${b.id} has dtype ${b.dtype}, which this device does not hold`);
      return new CudaExecutable(host, graph, plan, target, opts);
    },
  };
}
