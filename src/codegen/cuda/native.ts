/**
 * The CUDA addon (native/, built by `npm run build:native`): loading it lazily, its typed
 * surface, and kernel argument packing.
 *
 * Nothing here touches Node at import time: the library must import in a browser bundle, so
 * Node's modules are reached through process.getBuiltinModule inside the functions that need
 * them, and the addon itself is only required when loadCudaAddon() is first called.
 */

/** What the addon's status() reports; `reason` is '' when available. */
export interface CudaStatus {
  readonly available: boolean;
  readonly reason: string;
  readonly driverOk: boolean;
  readonly driverReason: string;
  readonly driverVersion: number;
  readonly deviceCount: number;
  /** The driver library opened (or tried): libcuda.so.1 or $NEXGRAD_CUDA_LIBCUDA. */
  readonly libcuda: string;
  readonly nvrtcOk: boolean;
  readonly nvrtcReason: string;
  /** "major.minor", or '' when NVRTC is missing. */
  readonly nvrtcVersion: string;
  readonly libnvrtc: string;
}

export interface CudaDeviceProperties {
  readonly ordinal: number;
  readonly name: string;
  readonly computeCapability: readonly [number, number];
  /** "sm_90" for compute capability 9.0. */
  readonly arch: string;
  readonly totalMemory: number;
  readonly multiprocessorCount: number;
  readonly maxThreadsPerBlock: number;
  readonly maxSharedMemoryPerBlock: number;
  readonly maxSharedMemoryPerBlockOptin: number;
  readonly maxSharedMemoryPerMultiprocessor: number;
  readonly maxRegistersPerBlock: number;
  readonly warpSize: number;
  readonly l2CacheSize: number;
  readonly maxGridDimX: number;
}

export interface CudaMemoryStats {
  /** Bucket bytes handed out and not freed. */
  readonly bytesInUse: number;
  /** Bucket bytes kept on the allocator's free lists. */
  readonly bytesCached: number;
  readonly peakBytesInUse: number;
  /** cuMemAlloc calls so far (cache misses that reached the driver). */
  readonly driverAllocations: number;
  readonly cacheHits: number;
  readonly cacheMisses: number;
  /** Page-locked staging bytes kept for copies. */
  readonly pinnedBytesCached: number;
}

export interface CompiledCubin {
  readonly cubin: Uint8Array;
  /** NVRTC's log (warnings); errors arrive as a rejected promise whose `log` holds them. */
  readonly log: string;
}

export type CaptureMode = 'relaxed' | 'thread_local' | 'global';

/** Stream, event, module, function and graph handles are small integer ids; 0 is the default stream. */
export type StreamId = number;

/**
 * The addon's functions. Device pointers are bigints. Failures throw Errors whose message names
 * the call, the CUDA/NVRTC error name (also in `.code`) and the kernel where there is one.
 */
export interface CudaAddon {
  status(): CudaStatus;
  deviceCount(): number;
  deviceProperties(ordinal?: number): CudaDeviceProperties;
  /** Retains the device's primary context; one device per process. */
  open(ordinal?: number): CudaDeviceProperties;
  /** The allocator's bucket for a request of `bytes`. */
  bucketSize(bytes: number): number;

  alloc(bytes: number, stream?: StreamId): bigint;
  free(ptr: bigint, stream?: StreamId): void;
  memoryStats(): CudaMemoryStats;
  /** Frees every cached device block and pinned staging buffer; returns the bytes freed. */
  trim(): number;
  resetPeak(): void;
  /** Copies now into pinned staging (src may be reused at once), to the device in stream order. */
  copyHostToDevice(dst: bigint, src: ArrayBufferView | ArrayBuffer, stream?: StreamId): void;
  /** Fills all of `dst` once the stream reaches the copy. */
  copyDeviceToHost(src: bigint, dst: ArrayBufferView | ArrayBuffer, stream?: StreamId): Promise<void>;
  /** Fills all of `dst` now, blocking until the stream reaches the copy (synchronous reads). */
  copyDeviceToHostSync(src: bigint, dst: ArrayBufferView | ArrayBuffer, stream?: StreamId): void;
  copyDeviceToDevice(dst: bigint, src: bigint, bytes: number, stream?: StreamId): void;
  memset(dst: bigint, byte: number, bytes: number, stream?: StreamId): void;
  memset32(dst: bigint, word: number, count: number, stream?: StreamId): void;

  createStream(): StreamId;
  destroyStream(stream: StreamId): void;
  synchronize(stream?: StreamId): Promise<void>;
  /** Blocks the thread: short waits only. */
  synchronizeSync(stream?: StreamId): void;
  createEvent(timing?: boolean): number;
  destroyEvent(event: number): void;
  recordEvent(event: number, stream?: StreamId): void;
  eventQuery(event: number): boolean;
  eventSynchronize(event: number): void;
  eventElapsedMs(start: number, end: number): number;

  /** Compiles on a worker thread; adds -arch=sm_XX of the open device unless options name one. */
  compile(source: string, name: string, options?: readonly string[]): Promise<CompiledCubin>;
  compileSync(source: string, name: string, options?: readonly string[]): CompiledCubin;
  /**
   * Compiles every source on up to `threads` threads (default 4) and returns when all are done;
   * a failure is an entry `{error}` holding the Error compile() would reject with.
   */
  compileManySync(
    sources: readonly { readonly source: string; readonly name: string }[],
    options?: readonly string[],
    threads?: number,
  ): (CompiledCubin | { readonly error: Error & { code?: string; log?: string; kernel?: string } })[];
  loadModule(cubin: Uint8Array, label?: string): number;
  unloadModule(module: number): void;
  getFunction(module: number, name: string): number;
  functionInfo(fn: number): { name: string; paramSizes: number[] | null };
  setMaxDynamicSharedMemory(fn: number, bytes: number): void;
  launch(
    fn: number,
    grid: readonly number[],
    block: readonly number[],
    sharedBytes: number,
    stream: StreamId,
    signature: string,
    args: Uint8Array,
  ): void;

  beginCapture(stream: StreamId, mode?: CaptureMode): void;
  endCapture(stream: StreamId): { graph: number; nodes: number };
  launchGraph(graph: number, stream?: StreamId): void;
  destroyGraph(graph: number): void;
}

/** A kernel argument: a device pointer, or a 32-bit scalar of the kernel parameter's type. */
export type KernelArg =
  | { readonly ptr: bigint }
  | { readonly i32: number }
  | { readonly u32: number }
  | { readonly f32: number };

/**
 * Packs arguments for CudaAddon.launch: one signature character and one 8-byte slot each
 * ('p' u64 pointer, 'i' int32, 'u' uint32, 'f' float32 in the slot's low 4 bytes).
 */
export function packKernelArgs(args: readonly KernelArg[]): { signature: string; data: Uint8Array } {
  const data = new Uint8Array(args.length * 8);
  const view = new DataView(data.buffer);
  let signature = '';
  args.forEach((arg, i) => {
    const at = i * 8;
    if ('ptr' in arg) {
      if (typeof arg.ptr !== 'bigint' || arg.ptr < 0n || arg.ptr >= 1n << 64n) {
        throw new RangeError(`packKernelArgs: argument ${i} is not a 64-bit device pointer`);
      }
      view.setBigUint64(at, arg.ptr, true);
      signature += 'p';
    } else if ('i32' in arg) {
      if (!Number.isInteger(arg.i32) || arg.i32 < -(2 ** 31) || arg.i32 >= 2 ** 31) {
        throw new RangeError(`packKernelArgs: argument ${i} (${arg.i32}) is not an int32`);
      }
      view.setInt32(at, arg.i32, true);
      signature += 'i';
    } else if ('u32' in arg) {
      if (!Number.isInteger(arg.u32) || arg.u32 < 0 || arg.u32 >= 2 ** 32) {
        throw new RangeError(`packKernelArgs: argument ${i} (${arg.u32}) is not a uint32`);
      }
      view.setUint32(at, arg.u32, true);
      signature += 'u';
    } else if ('f32' in arg) {
      view.setFloat32(at, arg.f32, true);
      signature += 'f';
    } else {
      throw new TypeError(`packKernelArgs: argument ${i} must be {ptr}, {i32}, {u32} or {f32}`);
    }
  });
  return { signature, data };
}

/** Node's built-in modules without a static import (absent in browsers: undefined). */
export function nodeBuiltin<T>(id: 'fs' | 'path' | 'module' | 'url' | 'crypto' | 'os'): T | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  return proc?.getBuiltinModule?.(`node:${id}`) as T | undefined;
}

const ADDON_RELATIVE = ['native', 'build', 'Release', 'nexgrad_cuda.node'];

/**
 * The addon's path: $NEXGRAD_CUDA_ADDON, else native/build/Release/nexgrad_cuda.node in the
 * package root, found by walking up from this module (src/ under vitest, dist/src/ when built).
 */
function addonPath(): { path: string } | { reason: string } {
  const fs = nodeBuiltin<typeof import('node:fs')>('fs');
  const path = nodeBuiltin<typeof import('node:path')>('path');
  const url = nodeBuiltin<typeof import('node:url')>('url');
  if (fs === undefined || path === undefined || url === undefined) {
    return { reason: 'the CUDA addon needs Node.js >= 20.16 (process.getBuiltinModule)' };
  }
  const override = process.env.NEXGRAD_CUDA_ADDON;
  if (override !== undefined && override !== '') {
    return fs.existsSync(override) ? { path: override } : { reason: `the CUDA addon ${override} ($NEXGRAD_CUDA_ADDON) does not exist` };
  }
  let dir = path.dirname(url.fileURLToPath(import.meta.url));
  for (let up = 0; up < 6; up++) {
    if (fs.existsSync(path.join(dir, 'native', 'binding.gyp'))) {
      const file = path.join(dir, ...ADDON_RELATIVE);
      if (fs.existsSync(file)) return { path: file };
      return { reason: `the CUDA addon is not built (${file} is missing; run npm run build:native where the CUDA headers are)` };
    }
    dir = path.dirname(dir);
  }
  return { reason: 'the CUDA addon is not built (no native/ folder beside this package)' };
}

let loaded: { addon: CudaAddon } | { reason: string } | undefined;

/** The addon, loaded once; or why it cannot be loaded. Never throws. */
export function loadCudaAddon(): { addon: CudaAddon } | { reason: string } {
  if (loaded !== undefined) return loaded;
  const found = addonPath();
  if ('reason' in found) {
    loaded = found;
    return loaded;
  }
  try {
    const nodeModule = nodeBuiltin<typeof import('node:module')>('module')!;
    const url = nodeBuiltin<typeof import('node:url')>('url')!;
    const requireAddon = nodeModule.createRequire(url.pathToFileURL(found.path).href);
    loaded = { addon: requireAddon(found.path) as CudaAddon };
  } catch (error) {
    loaded = { reason: `the CUDA addon failed to load: ${(error as Error).message}` };
  }
  return loaded;
}

export type CudaAvailability = { readonly available: true } | { readonly available: false; readonly reason: string };

/** Whether the CUDA backend can run here, and if not why (no driver, no device, NVRTC missing, addon not built). */
export function cudaAvailability(): CudaAvailability {
  const result = loadCudaAddon();
  if ('reason' in result) return { available: false, reason: result.reason };
  const status = result.addon.status();
  return status.available ? { available: true } : { available: false, reason: status.reason };
}

/** "CUDA unavailable: <why>" (for the backend registry's errors), or undefined when available. */
export function cudaUnavailableMessage(): string | undefined {
  const availability = cudaAvailability();
  return availability.available ? undefined : `CUDA unavailable: ${availability.reason}`;
}
