/**
 * A device runtime over the CUDA addon: buffers from the caching allocator, NVRTC compiles
 * cached in memory and on disk, module/function caches, launches, async reads, and CUDA
 * graphs recorded from a call and replayed.
 *
 * Node's modules are reached lazily (nodeBuiltin), so importing this file costs nothing in a
 * browser bundle; only CudaRuntime.open() needs Node and the addon.
 */
import { NexgradError } from '../../ir/errors.js';
import {
  type CaptureMode,
  type CudaAddon,
  type CudaDeviceProperties,
  type CudaMemoryStats,
  type KernelArg,
  loadCudaAddon,
  nodeBuiltin,
  packKernelArgs,
} from './native.js';

type Fs = typeof import('node:fs');
type Path = typeof import('node:path');
type Crypto = typeof import('node:crypto');

function node<T>(id: 'fs' | 'path' | 'crypto' | 'os'): T {
  const module = nodeBuiltin<T>(id);
  if (module === undefined) throw new NexgradError(`CUDA runtime: node:${id} is not available (Node.js >= 20.16 is required)`);
  return module;
}

const MAGIC = 'NGCUBIN1';
const HEADER_BYTES = MAGIC.length + 32;
const KEY_PATTERN = /^[0-9a-f]{64}$/;

export type CubinCacheRead = { readonly cubin: Uint8Array } | { readonly miss: string };

/**
 * Cubins on disk, one file per key: "NGCUBIN1", sha256(key || cubin), the cubin. The folder is
 * untrusted: an entry is used only if it is a regular file (no links), within the size cap, and
 * its digest binds it to the key it is read under; anything else is a miss, never an error.
 */
export class CubinDiskCache {
  constructor(
    readonly dir: string,
    readonly maxBytes: number = 64 * 1024 * 1024,
  ) {}

  /** The cache key of one compile: everything that changes the cubin. */
  static key(source: string, arch: string, nvrtcVersion: string, options: readonly string[]): string {
    const hash = node<Crypto>('crypto').createHash('sha256');
    // Length-prefixed fields, so no two field lists serialise alike.
    for (const field of [source, arch, nvrtcVersion, ...options]) hash.update(`${field.length}:${field};`);
    return hash.digest('hex');
  }

  private file(key: string): string {
    if (!KEY_PATTERN.test(key)) throw new NexgradError(`CubinDiskCache: malformed key '${key.slice(0, 80)}'`);
    return node<Path>('path').join(this.dir, `${key}.cubin`);
  }

  private digest(key: string, cubin: Uint8Array): Buffer {
    return node<Crypto>('crypto').createHash('sha256').update(key).update(cubin).digest();
  }

  read(key: string): CubinCacheRead {
    const fs = node<Fs>('fs');
    const file = this.file(key);
    let fd: number;
    try {
      // O_NOFOLLOW: a link planted in the folder is refused rather than followed.
      fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return { miss: code === 'ENOENT' ? 'absent' : `unreadable (${code ?? 'error'})` };
    }
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) return { miss: 'not a regular file' };
      if (stat.size > this.maxBytes + HEADER_BYTES) return { miss: `larger than the ${this.maxBytes}-byte cap` };
      if (stat.size <= HEADER_BYTES) return { miss: 'truncated' };
      const bytes = Buffer.alloc(stat.size);
      let filled = 0;
      while (filled < bytes.length) {
        const n = fs.readSync(fd, bytes, filled, bytes.length - filled, filled);
        if (n === 0) return { miss: 'truncated' };
        filled += n;
      }
      if (bytes.subarray(0, MAGIC.length).toString('latin1') !== MAGIC) return { miss: 'bad magic' };
      const cubin = bytes.subarray(HEADER_BYTES);
      if (!this.digest(key, cubin).equals(bytes.subarray(MAGIC.length, HEADER_BYTES))) return { miss: 'digest mismatch' };
      return { cubin: new Uint8Array(cubin) };
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Writes atomically (temporary name, then rename), so readers see a whole entry or none. */
  write(key: string, cubin: Uint8Array): void {
    if (cubin.length > this.maxBytes) return;
    const fs = node<Fs>('fs');
    const final = this.file(key);
    const temp = `${final}.${process.pid}.${node<Crypto>('crypto').randomBytes(6).toString('hex')}.tmp`;
    fs.mkdirSync(this.dir, { recursive: true });
    try {
      fs.writeFileSync(temp, Buffer.concat([Buffer.from(MAGIC, 'latin1'), this.digest(key, cubin), cubin]), { flag: 'wx' });
      fs.renameSync(temp, final);
    } catch (error) {
      fs.rmSync(temp, { force: true });
      throw error;
    }
  }
}

/** $NEXGRAD_CACHE_DIR, else $XDG_CACHE_HOME/nexgrad or ~/.cache/nexgrad (as jit's cache). */
export function defaultCudaCacheDir(): string {
  const path = node<Path>('path');
  const os = node<typeof import('node:os')>('os');
  const root = process.env.NEXGRAD_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'nexgrad');
  return path.join(root, 'cuda');
}

/** A device allocation from a CudaRuntime (a block of the caching allocator). */
export class DeviceBuffer {
  #freed = false;
  constructor(
    readonly ptr: bigint,
    readonly bytes: number,
  ) {}
  get freed(): boolean {
    return this.#freed;
  }
  /** @internal */
  markFreed(): void {
    this.#freed = true;
  }
}

export interface CudaKernel {
  readonly name: string;
  readonly fn: number;
  readonly module: number;
  /** The cubin cache key. */
  readonly key: string;
  /** Where the cubin came from on this compile call. */
  readonly origin: 'memory' | 'disk' | 'nvrtc';
  /** NVRTC's warnings when compiled now. */
  readonly log: string;
}

/** A recorded call: its launches as one CUDA graph. Buffers it uses must outlive it. */
export class CudaGraph {
  #disposed = false;
  constructor(
    private readonly runtime: CudaRuntime,
    readonly id: number,
    readonly nodes: number,
  ) {}
  replay(): void {
    if (this.#disposed) throw new NexgradError('CudaGraph.replay: the graph was disposed');
    this.runtime.addon.launchGraph(this.id, this.runtime.stream);
  }
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.runtime.addon.destroyGraph(this.id);
  }
}

/** A loaded module (compileModulesSync). */
export interface CudaModule {
  readonly key: string;
  readonly module: number;
  readonly origin: 'memory' | 'disk' | 'nvrtc';
  readonly log: string;
}

export interface CudaRuntimeOptions {
  readonly ordinal?: number;
  /** Cubin cache folder, or false for none. Default: defaultCudaCacheDir(). */
  readonly cacheDir?: string | false;
  /** Target architecture, e.g. 'sm_90a' for wgmma; default the device's sm_XX. */
  readonly arch?: string;
}

interface LoadedModule {
  readonly module: number;
  readonly key: string;
  readonly origin: 'disk' | 'nvrtc';
  readonly log: string;
}

export class CudaRuntime {
  readonly stream: number;
  readonly arch: string;
  readonly nvrtcVersion: string;
  readonly diskCache: CubinDiskCache | undefined;
  private readonly modules = new Map<string, Promise<LoadedModule>>();
  /** Modules loaded so far by key (both paths), for synchronous lookups. */
  private readonly loaded = new Map<string, LoadedModule>();
  private readonly functions = new Map<string, number>();
  private readonly graphs = new Set<CudaGraph>();
  private capturing = false;
  private disposed = false;

  private constructor(
    /** @internal */ readonly addon: CudaAddon,
    readonly device: CudaDeviceProperties,
    nvrtcVersion: string,
    options: CudaRuntimeOptions,
  ) {
    this.nvrtcVersion = nvrtcVersion;
    this.arch = options.arch ?? device.arch;
    const dir = options.cacheDir === undefined ? defaultCudaCacheDir() : options.cacheDir;
    this.diskCache = dir === false ? undefined : new CubinDiskCache(dir);
    this.stream = addon.createStream();
  }

  /** Opens a device; throws NexgradError "CUDA unavailable: <why>" where it cannot. */
  static open(options: CudaRuntimeOptions = {}): CudaRuntime {
    const loaded = loadCudaAddon();
    if ('reason' in loaded) throw new NexgradError(`CUDA unavailable: ${loaded.reason}`);
    const status = loaded.addon.status();
    if (!status.available) throw new NexgradError(`CUDA unavailable: ${status.reason}`);
    const device = loaded.addon.open(options.ordinal ?? 0);
    return new CudaRuntime(loaded.addon, device, status.nvrtcVersion, options);
  }

  private live(what: string): void {
    if (this.disposed) throw new NexgradError(`CudaRuntime.${what}: the runtime was disposed`);
  }

  alloc(bytes: number): DeviceBuffer {
    this.live('alloc');
    return new DeviceBuffer(this.addon.alloc(bytes, this.stream), bytes);
  }

  /** Returns the block to the allocator's cache (reused in stream order). */
  free(buffer: DeviceBuffer): void {
    this.live('free');
    if (buffer.freed) throw new NexgradError(`CudaRuntime.free: buffer 0x${buffer.ptr.toString(16)} was already freed`);
    this.addon.free(buffer.ptr, this.stream);
    buffer.markFreed();
  }

  /** Copies host bytes to a new buffer (or `into`); `data` may be reused as soon as this returns. */
  upload(data: ArrayBufferView, into?: DeviceBuffer): DeviceBuffer {
    this.live('upload');
    if (this.capturing) throw new NexgradError('CudaRuntime.upload: cannot copy from the host while recording a graph');
    const buffer = into ?? this.alloc(data.byteLength);
    if (data.byteLength > buffer.bytes) {
      throw new NexgradError(`CudaRuntime.upload: ${data.byteLength} bytes do not fit a ${buffer.bytes}-byte buffer`);
    }
    this.addon.copyHostToDevice(buffer.ptr, data, this.stream);
    return buffer;
  }

  /** Reads a buffer (all of `into`'s bytes, default the whole buffer) once queued work is done. */
  async read<T extends ArrayBufferView = Uint8Array>(buffer: DeviceBuffer, into?: T): Promise<T> {
    this.live('read');
    if (this.capturing) throw new NexgradError('CudaRuntime.read: cannot copy to the host while recording a graph');
    const out = into ?? (new Uint8Array(buffer.bytes) as unknown as T);
    if (out.byteLength > buffer.bytes) {
      throw new NexgradError(`CudaRuntime.read: ${out.byteLength} bytes requested from a ${buffer.bytes}-byte buffer`);
    }
    await this.addon.copyDeviceToHost(buffer.ptr, out, this.stream);
    return out;
  }

  /** Reads a buffer now, blocking until queued work is done (synchronous reads only). */
  readSync<T extends ArrayBufferView = Uint8Array>(buffer: DeviceBuffer, into?: T): T {
    this.live('readSync');
    if (this.capturing) throw new NexgradError('CudaRuntime.readSync: cannot copy to the host while recording a graph');
    const out = into ?? (new Uint8Array(buffer.bytes) as unknown as T);
    if (out.byteLength > buffer.bytes) {
      throw new NexgradError(`CudaRuntime.readSync: ${out.byteLength} bytes requested from a ${buffer.bytes}-byte buffer`);
    }
    this.addon.copyDeviceToHostSync(buffer.ptr, out, this.stream);
    return out;
  }

  /** Copies `bytes` bytes between device buffers in stream order. */
  copy(dst: DeviceBuffer, src: DeviceBuffer, bytes: number = Math.min(dst.bytes, src.bytes)): void {
    this.live('copy');
    if (bytes > dst.bytes || bytes > src.bytes) throw new NexgradError(`CudaRuntime.copy: ${bytes} bytes do not fit (source ${src.bytes}, destination ${dst.bytes})`);
    this.addon.copyDeviceToDevice(dst.ptr, src.ptr, bytes, this.stream);
  }

  /** Fills a buffer's first `bytes` bytes with zeros in stream order. */
  zero(buffer: DeviceBuffer, bytes: number = buffer.bytes): void {
    this.live('zero');
    this.addon.memset(buffer.ptr, 0, bytes, this.stream);
  }

  /** Resolves when everything queued so far has run (never blocks the event loop). */
  sync(): Promise<void> {
    this.live('sync');
    return this.addon.synchronize(this.stream);
  }

  /**
   * Compiles `source` (extern "C" kernels) and returns kernel `name`: from memory, else the
   * disk cache, else NVRTC (on a worker thread). Compile errors carry NVRTC's log.
   */
  async compile(source: string, name: string, options: readonly string[] = []): Promise<CudaKernel> {
    this.live('compile');
    const key = CubinDiskCache.key(source, this.arch, this.nvrtcVersion, options);
    let loading = this.modules.get(key);
    const cached = loading !== undefined;
    if (loading === undefined) {
      loading = this.loadModule(key, source, name, options);
      this.modules.set(key, loading);
      loading.catch(() => this.modules.delete(key));
    }
    const loaded = await loading;
    const functionKey = `${loaded.module}:${name}`;
    let fn = this.functions.get(functionKey);
    if (fn === undefined) {
      fn = this.addon.getFunction(loaded.module, name);
      this.functions.set(functionKey, fn);
    }
    return { name, fn, module: loaded.module, key, origin: cached ? 'memory' : loaded.origin, log: cached ? '' : loaded.log };
  }

  private async loadModule(key: string, source: string, name: string, options: readonly string[]): Promise<LoadedModule> {
    const fromDisk = this.diskCache?.read(key);
    if (fromDisk !== undefined && 'cubin' in fromDisk) return this.remember({ module: this.addon.loadModule(fromDisk.cubin, name), key, origin: 'disk', log: '' });
    const compiled = await this.addon.compile(source, name, [`-arch=${this.arch}`, ...options]);
    this.writeCache(key, compiled.cubin);
    return this.remember({ module: this.addon.loadModule(compiled.cubin, name), key, origin: 'nvrtc', log: compiled.log });
  }

  private remember(m: LoadedModule): LoadedModule {
    this.loaded.set(m.key, m);
    return m;
  }

  /** A cache that cannot be written only costs a recompile next time. */
  private writeCache(key: string, cubin: Uint8Array): void {
    try {
      this.diskCache?.write(key, cubin);
    } catch {
      /* read-only or full cache folder */
    }
  }

  /**
   * Compiles and loads several modules now (a jit compile is synchronous): each from memory,
   * else the disk cache, else NVRTC, the NVRTC misses on up to `threads` threads at once.
   * A compile error is a NexgradError naming the module and carrying NVRTC's log.
   */
  compileModulesSync(items: readonly { readonly source: string; readonly label: string }[], options: readonly string[] = [], threads = 4): CudaModule[] {
    this.live('compileModulesSync');
    const keys = items.map((it) => CubinDiskCache.key(it.source, this.arch, this.nvrtcVersion, options));
    const out: (CudaModule | undefined)[] = keys.map((key) => {
      const hit = this.loaded.get(key);
      return hit ? { key, module: hit.module, origin: 'memory', log: '' } : undefined;
    });
    const misses: number[] = [];
    keys.forEach((key, i) => {
      if (out[i]) return;
      const fromDisk = this.diskCache?.read(key);
      if (fromDisk !== undefined && 'cubin' in fromDisk) {
        const m = this.remember({ module: this.addon.loadModule(fromDisk.cubin, items[i]!.label), key, origin: 'disk', log: '' });
        this.modules.set(key, Promise.resolve(m));
        out[i] = { key, module: m.module, origin: 'disk', log: '' };
      } else if (!misses.some((j) => keys[j] === key)) misses.push(i);
    });
    if (misses.length) {
      const results = this.addon.compileManySync(misses.map((i) => ({ source: items[i]!.source, name: items[i]!.label })), [`-arch=${this.arch}`, ...options], threads);
      results.forEach((r, j) => {
        const i = misses[j]!;
        if ('error' in r) {
          const err = new NexgradError(`CUDA compile of ${items[i]!.label} failed: ${r.error.message}`);
          Object.assign(err, { log: r.error.log ?? '', source: items[i]!.source });
          throw err;
        }
        this.writeCache(keys[i]!, r.cubin);
        const m = this.remember({ module: this.addon.loadModule(r.cubin, items[i]!.label), key: keys[i]!, origin: 'nvrtc', log: r.log });
        this.modules.set(keys[i]!, Promise.resolve(m));
        out[i] = { key: keys[i]!, module: m.module, origin: 'nvrtc', log: r.log };
      });
    }
    // duplicates of a miss share its module
    return out.map((m, i) => m ?? { ...out[keys.indexOf(keys[i]!)]!, origin: 'memory', log: '' });
  }

  /** Kernel `name` of a loaded module. */
  functionOf(m: CudaModule, name: string): CudaKernel {
    this.live('functionOf');
    const functionKey = `${m.module}:${name}`;
    let fn = this.functions.get(functionKey);
    if (fn === undefined) {
      fn = this.addon.getFunction(m.module, name);
      this.functions.set(functionKey, fn);
    }
    return { name, fn, module: m.module, key: m.key, origin: m.origin, log: m.log };
  }

  launch(kernel: CudaKernel, grid: readonly number[], block: readonly number[], args: readonly KernelArg[], sharedBytes = 0): void {
    this.live('launch');
    const { signature, data } = packKernelArgs(args);
    this.addon.launch(kernel.fn, grid, block, sharedBytes, this.stream, signature, data);
  }

  /** Records the launches `body` queues as a graph (nothing runs now); replay() runs them. */
  record(body: () => void, mode: CaptureMode = 'relaxed'): CudaGraph {
    this.live('record');
    if (this.capturing) throw new NexgradError('CudaRuntime.record: already recording');
    this.addon.beginCapture(this.stream, mode);
    this.capturing = true;
    try {
      body();
    } catch (error) {
      this.capturing = false;
      try {
        this.addon.destroyGraph(this.addon.endCapture(this.stream).graph);
      } catch {
        /* the body's error is the one to report */
      }
      throw error;
    }
    this.capturing = false;
    const captured = this.addon.endCapture(this.stream);
    const graph = new CudaGraph(this, captured.graph, captured.nodes);
    this.graphs.add(graph);
    return graph;
  }

  /** Device milliseconds of the work `body` queues, from events around it. */
  async time(body: () => void): Promise<number> {
    this.live('time');
    const start = this.addon.createEvent(true);
    const end = this.addon.createEvent(true);
    try {
      this.addon.recordEvent(start, this.stream);
      body();
      this.addon.recordEvent(end, this.stream);
      await this.sync();
      return this.addon.eventElapsedMs(start, end);
    } finally {
      this.addon.destroyEvent(start);
      this.addon.destroyEvent(end);
    }
  }

  memoryStats(): CudaMemoryStats {
    return this.addon.memoryStats();
  }

  /** Restarts the allocator's peak-bytes count at the bytes in use now. */
  resetPeak(): void {
    this.addon.resetPeak();
  }

  /** Gives cached device blocks and staging buffers back to the driver; returns bytes freed. */
  trim(): number {
    return this.addon.trim();
  }

  /** Waits for queued work, then releases graphs, modules and the stream. Buffers stay with the caller. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    await this.sync();
    this.disposed = true;
    for (const graph of this.graphs) graph.dispose();
    const unloaded = new Set<number>();
    for (const loading of this.modules.values()) {
      const loaded = await loading.catch(() => undefined);
      if (loaded !== undefined && !unloaded.has(loaded.module)) {
        unloaded.add(loaded.module);
        this.addon.unloadModule(loaded.module);
      }
    }
    for (const m of this.loaded.values()) if (!unloaded.has(m.module)) this.addon.unloadModule(m.module);
    this.modules.clear();
    this.loaded.clear();
    this.functions.clear();
    this.addon.destroyStream(this.stream);
  }
}
