/**
 * What the GPU emitters hand a device runtime: per kernel one module source, its bindings in
 * order, and the dispatches to record (in order, each a 1-D workgroup count and its u32
 * parameters); and what they need to know about the target.
 */
import type { DType } from '../../../ir/dtype.js';
import type { NativeOp } from '../expr_rules.js';
import type { GpuBinding, GpuDialect } from './dialect.js';

export interface GpuDispatch {
  /** The entry point to run. */
  readonly entry: string;
  /** Workgroups (1-D; the runtime folds large counts into y and z). */
  readonly groups: number;
  /** Values of the module's u32 parameters for this dispatch (`paramCount` of them). */
  readonly params: readonly number[];
}

export interface GpuKernelCode {
  readonly name: string;
  readonly source: string;
  readonly workgroupSize: number;
  readonly bindings: readonly GpuBinding[];
  readonly paramCount: number;
  /** Run in order; a kernel with nothing to do has none. */
  readonly dispatches: readonly GpuDispatch[];
}

/** The device a kernel is emitted for. */
export interface GpuTarget {
  readonly dialect: GpuDialect;
  /** Operations the dialect prints itself (their expr_rules rewrite is skipped). */
  readonly native: ReadonlySet<NativeOp>;
  /** Threads per workgroup the emitters may use (at most; they pick powers of two). */
  readonly maxWorkgroupSize: number;
  /** Bytes of workgroup-shared memory one kernel may declare. */
  readonly maxSharedBytes: number;
  /**
   * The device is a GPU emulated on the CPU (SwiftShader, llvmpipe, WARP): a few cores run
   * every thread and a barrier suspends each of them, so the emulators prefer shapes without
   * barriers (a reduction takes one thread per output whenever there are a few outputs).
   */
  readonly emulated?: boolean;
}

/** Where each buffer of the graph is stored, as the emitters need it. */
export interface GpuBuffers {
  /** Element dtype of every graph buffer. */
  readonly dtypeOf: (buf: number) => DType;
  /** Elements of every graph buffer. */
  readonly sizeOf: (buf: number) => number;
  /**
   * The storage a buffer lives in (buffers of one kernel that share a storage share a
   * binding); buffers with their own storage may return their own id.
   */
  readonly storageOf: (buf: number) => number;
}
