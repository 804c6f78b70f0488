/**
 * The interface every backend implements: a device that holds arrays (alloc, free, write, read)
 * and compiles planned KernelGraphs into executables that run on its arrays (compile, run, sync),
 * plus the capabilities fusion must respect.
 */
import type { DType } from '../../ir/dtype.js';
import type { DeviceArray, RuntimeDevice } from '../../ir/device_array.js';
import type { HostArray } from '../../ir/host.js';
import type { Shape } from '../../ir/shape.js';
import type { KernelGraph } from './kernel_graph.js';

/**
 * Where each buffer lives. Inputs live in the caller's arrays; temporaries share arena
 * storages (liveness-based reuse); an output either aliases a donated input's storage (updated
 * in place) or gets fresh storage per call (it is handed to the caller).
 */
export interface MemoryPlan {
  /** For each buffer id: its storage index, or -1 for inputs, consts and fresh outputs. */
  readonly storageOf: readonly number[];
  /** Byte size of each arena storage. */
  readonly storageBytes: readonly number[];
  /** Output buffer id -> input position whose (donated) storage it reuses. */
  readonly outputAliases: ReadonlyMap<number, number>;
  /** Peak bytes of the arena plus inputs and outputs, for reports. */
  readonly peakBytes: number;
}

export interface RunStats {
  /** Bytes allocated by this call (fresh outputs; the arena on the first call). */
  readonly allocatedBytes: number;
}

export interface Executable {
  /**
   * Runs the graph on arrays of this device (one per graph input, in order) and returns the
   * outputs, also on this device. An input whose position the memory plan aliases to an output
   * (a donated input) is overwritten; the caller marks it donated.
   */
  run(inputs: readonly DeviceArray[]): DeviceArray[];
  readonly lastRun: RunStats;
  readonly kernelCount: number;
  /** Generated source per kernel (for NEXGRAD_DUMP=kernels). */
  readonly sources: readonly string[];
}

/** What fusion and the lowering must respect on a device. */
export interface DeviceCaps {
  /** The most storage buffers one kernel may bind (WebGPU's default is 8; the CPU has no limit). */
  readonly maxStorageBuffers: number;
  /** Element types its buffers can hold; a program using another is refused with a named error. */
  readonly dtypes: ReadonlySet<DType>;
  /** Bytes one element of each dtype occupies in its buffers (the CPU keeps f16/bf16 in f32). */
  readonly elementBytes: Readonly<Record<DType, number>>;
  /** Threads per workgroup / block. */
  readonly maxWorkgroupSize: number;
  /** Workgroup / shared memory per kernel, bytes. */
  readonly maxSharedMemoryBytes: number;
  /** The largest buffer one kernel may bind, bytes. */
  readonly maxBufferBytes: number;
  /**
   * The recompute cost model: a value several kernels need is recomputed in each when its
   * per-element cost (fusion's op costs) is at most this, else stored once.
   */
  readonly recomputeCostLimit: number;
  /**
   * The GEMM computes per-row statistics of its A prologue (ExprOperand.stats: LayerNorm's mean
   * and variance before the first pointwise matmul), so fusion need not give them a kernel.
   */
  readonly prologueStats?: boolean;
  /**
   * The GEMM can zero and accumulate reducing epilogue outputs (KernelOutput.init 'zero' with
   * MatmulKernel.reduceRows: GRN's sum of squares in the first pointwise matmul's epilogue).
   */
  readonly reducingEpilogues?: boolean;
}

export interface Device extends RuntimeDevice {
  /** A description for cache keys (e.g. cpu:js+wasm-simd:1thread). */
  readonly id: string;
  readonly caps: DeviceCaps;
  /**
   * A GPU emulated on this machine's CPU (SwiftShader, llvmpipe): correct, but slower than the
   * CPU backend, so automatic backend choice passes it over.
   */
  readonly emulated?: boolean;
  /** A zero-filled array on this device. */
  alloc(dtype: DType, shape: Shape): DeviceArray;
  /** A copy of `host` on this device (for the CPU, `host` itself). */
  upload(host: HostArray): DeviceArray;
  /** A host copy of an array of this device. */
  read(a: DeviceArray): Promise<HostArray>;
  /** Frees an array's memory now (the runtime normally does this when no tensor holds it). */
  free(a: DeviceArray): void;
  /** A device-side copy (for donation of an input passed twice). */
  copy(a: DeviceArray): DeviceArray;
  compile(graph: KernelGraph, plan: MemoryPlan): Executable;
  /** Resolves when all work submitted so far has finished. */
  sync(): Promise<void>;
}

/** The capabilities of a device without limits (the CPU: typed arrays, f16/bf16 held in Float32Arrays). */
export const UNLIMITED_CAPS: DeviceCaps = Object.freeze({
  maxStorageBuffers: Infinity,
  dtypes: new Set<DType>(['f32', 'f64', 'f16', 'bf16', 'i32', 'u32', 'bool']),
  elementBytes: { f32: 4, f64: 8, f16: 4, bf16: 4, i32: 4, u32: 4, bool: 1 },
  maxWorkgroupSize: Infinity,
  maxSharedMemoryBytes: Infinity,
  maxBufferBytes: Infinity,
  recomputeCostLimit: 6,
});

/** The CPU's capabilities: unlimited, and its GEMMs (JavaScript and C) run row statistics and reducing epilogues. */
export const CPU_CAPS: DeviceCaps = Object.freeze({ ...UNLIMITED_CAPS, prologueStats: true, reducingEpilogues: true });
