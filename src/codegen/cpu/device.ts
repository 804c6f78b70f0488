/**
 * The CPU device: compiles a planned KernelGraph into JavaScript functions (plus WebAssembly SIMD
 * micro-kernels for GEMMs and depthwise convolutions) and runs them over typed arrays.
 *
 * Storage: inputs are the caller's arrays; consts the graph's values; temporaries live in arena
 * storages (one ArrayBuffer per MemoryPlan storage, allocated on the first run, with every
 * buffer's typed-array view created then and cached); outputs aliasing a donated input reuse
 * its array; other outputs get a fresh typed array per call. After the first call a run
 * allocates nothing but its fresh outputs.
 *
 * Threads (option `threads`, default 1): kernels with enough work have their range split
 * between the main thread and worker threads (threads.ts). Every buffer then lives in a
 * SharedArrayBuffer: the arena, consts and fresh outputs are allocated shared, and inputs that
 * are not shared are copied into shared staging arrays on each call (outputs of a threaded
 * executable are shared, so feeding them back costs nothing).
 */
import { nodeModule } from '../../ir/node_builtins.js';
import { NexgradError } from '../../ir/errors.js';
import { createNativeCpuDevice, nativeSupport } from './native/device.js';
import { graphWork, NATIVE_MIN_WORK } from './native/graph_work.js';
import { castScalar, type DType, type HostData, roundBf16, roundF16 } from '../../ir/dtype.js';
import { HostArray, noteInPlaceWrite } from '../../ir/host.js';
import { erf } from '../../ir/hostmath.js';
import { sizeOf } from '../../ir/shape.js';
import type { DeviceArray } from '../../ir/device_array.js';
import { type Device, type Executable, type MemoryPlan, type RunStats, CPU_CAPS } from '../kernel/device.js';
import type { KernelGraph } from '../kernel/kernel_graph.js';
import { bufferDtypes, emitKernel, type EmitOptions, type JsKernelCode, type KernelCode } from './emit.js';
import { fastErf } from './math.js';
import { typedCtor } from './host_arrays.js';
import { workerPool, type WorkerPool } from './threads.js';
import { InputVersions, keptB, planKeptB } from './packed_b_cache.js';
import { type GemmFn, instantiateDwRow, instantiateFunc, instantiateGemm, instantiateGemmFused, instantiateWgRow, makeMemory, type WasmMemory } from './wasm.js';

/** The helpers generated code receives as `H` (erf: see math.ts; EXACT_HELPERS uses the host's). */
export const HELPERS = Object.freeze({ erf: fastErf, roundF16, roundBf16 });
export const EXACT_HELPERS = Object.freeze({ erf, roundF16, roundBf16 });

export { typedCtor };

/** Bytes per element of the host storage of a dtype. */
export const hostBytes = (d: DType): number => typedCtor(d).BYTES_PER_ELEMENT;

type KernelFn = (start: number, end: number, ...args: unknown[]) => void;

export interface CpuDeviceOptions extends EmitOptions {
  /** Use the host's erf (series; ~3x slower) instead of the table-driven one (agrees to ~4e-15). */
  readonly exactErf?: boolean;
  /**
   * Record per-kernel time (ms) in `Executable.kernelTimes`: wall time, or with 'cpu' the
   * process's CPU time (user + system; on a loaded machine it counts only what the kernels ran,
   * not the time other processes held the cores; with one thread it is the kernel's own).
   */
  readonly profile?: boolean | 'cpu';
  /**
   * Threads per kernel (main thread included); 1 (default) runs everything on the calling
   * thread; 'auto' uses os.availableParallelism(). Not combined with exactErf.
   */
  readonly threads?: number | 'auto';
  /** Minimum estimated work (flops-ish) for splitting a kernel across threads. */
  readonly splitMinWork?: number;
  /** Emulate a device's storage-buffer limit (tests of the buffer-limit pass); default none. */
  readonly maxStorageBuffers?: number;
}

export interface CpuRunStats extends RunStats {
  /** Bytes of non-shared inputs copied into shared staging (threaded executables). */
  readonly stagedBytes: number;
}

export interface CpuExecutable extends Executable {
  readonly lastRun: CpuRunStats;
  /** Accumulated milliseconds per kernel (when compiled with profile: true). */
  readonly kernelTimes: Float64Array | null;
  readonly kernelNames: readonly string[];
  /** Threads the executable splits kernels across (1: none). */
  readonly threads: number;
  /** Indices of the kernels whose range is split across threads (known after the first run). */
  readonly splitKernels: readonly number[];
}

/** Builds the kernel function from generated source. */
export function instantiateKernel(code: JsKernelCode, helpers: typeof HELPERS = HELPERS): KernelFn {
  const make = new Function('H', 'T', code.source) as (h: typeof HELPERS, t: readonly unknown[]) => KernelFn;
  return make(helpers, code.tables);
}

interface Step {
  readonly run: () => void;
}

const isShared = (d: HostData): boolean => typeof SharedArrayBuffer !== 'undefined' && d.buffer instanceof SharedArrayBuffer;

function newArray(d: DType, n: number, shared: boolean): HostData {
  const C = typedCtor(d);
  return shared ? new C(new SharedArrayBuffer(Math.max(n, 1) * C.BYTES_PER_ELEMENT) as unknown as ArrayBuffer, 0, n) : new C(n);
}

function hostData(a: HostArray, d: DType): HostData {
  const C = typedCtor(d);
  return a.data instanceof C ? a.data : C.from(a.data as ArrayLike<number>);
}

const DEFAULT_SPLIT_MIN_WORK = 400_000;

/** Hardware threads: Node's count, the browser's, or 1. */
function availableParallelism(): number {
  const os = nodeModule('os');
  if (os) return os.availableParallelism();
  return (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
}

class CpuExecutableImpl implements CpuExecutable {
  readonly kernelCount: number;
  readonly sources: readonly string[];
  readonly kernelNames: readonly string[];
  readonly threads: number;
  readonly splitKernels: number[] = [];
  kernelTimes: Float64Array | null;
  lastRun: CpuRunStats = { allocatedBytes: 0, stagedBytes: 0 };

  private readonly B: (HostData | null)[];
  private readonly dtypes: Map<number, DType>;
  private readonly sizes: Map<number, number>;
  private readonly codes: KernelCode[];
  private readonly fns: (KernelFn | null)[];
  private steps: Step[] = [];
  private initialized = false;
  private readonly shared: boolean;
  private pool: WorkerPool | null = null;
  private execId = 0;
  private posted: (HostData | null)[] = [];
  private staging: (HostData | null)[] = [];
  private readonly versions: InputVersions;

  constructor(
    private readonly graph: KernelGraph,
    private readonly plan: MemoryPlan,
    private readonly opts: CpuDeviceOptions,
  ) {
    this.versions = new InputVersions(graph.inputs.length);
    this.dtypes = bufferDtypes(graph);
    this.sizes = new Map(graph.buffers.map((b) => [b.id, b.size]));
    const maxId = graph.buffers.reduce((m, b) => Math.max(m, b.id), -1);
    this.B = new Array<HostData | null>(maxId + 1).fill(null);
    this.codes = graph.kernels.map((k) => emitKernel(k, this.dtypes, opts));
    this.fns = this.codes.map((c) => (c.kind === 'js' ? instantiateKernel(c, opts.exactErf ? EXACT_HELPERS : HELPERS) : null));
    this.kernelCount = graph.kernels.length;
    this.sources = this.codes.map((c) => c.source);
    this.kernelNames = this.codes.map((c) => c.name);
    this.kernelTimes = opts.profile ? new Float64Array(this.kernelCount) : null;
    const want = opts.threads === 'auto' ? availableParallelism() : Math.max(1, Math.floor(opts.threads ?? 1));
    const splittable = this.codes.some((c) => c.kind === 'js' && c.splittable && c.total >= 2);
    this.threads = want > 1 && !opts.exactErf && typeof SharedArrayBuffer !== 'undefined' && splittable ? want : 1;
    this.shared = this.threads > 1;
    for (const c of graph.consts) {
      const d = this.dtypes.get(c.buf);
      if (!d) throw new Error(`cpu: const for unknown buffer ${c.buf}`);
      let data = hostData(c.value, d);
      if (this.shared && !isShared(data)) {
        const s = newArray(d, data.length, true);
        s.set(data as Float64Array);
        data = s;
      }
      this.B[c.buf] = data;
    }
  }

  private dtypeOf(buf: number): DType {
    const d = this.dtypes.get(buf);
    if (!d) throw new Error(`cpu: unknown buffer ${buf}`);
    return d;
  }

  /** First run: arena storages, their views, scratch, the wasm memory and the call steps. */
  private init(): number {
    let bytes = 0;
    const { graph, plan } = this;
    // arena
    const need = [...plan.storageBytes];
    graph.buffers.forEach((b) => {
      const s = plan.storageOf[b.id] ?? -1;
      if (s >= 0) need[s] = Math.max(need[s] ?? 0, b.size * hostBytes(b.dtype));
    });
    const storages = need.map((n) => {
      const sz = Math.max(8, Math.ceil(n / 8) * 8);
      bytes += sz;
      return this.shared ? new SharedArrayBuffer(sz) : new ArrayBuffer(sz);
    });
    const inputSet = new Set(graph.inputs);
    const constSet = new Set(graph.consts.map((c) => c.buf));
    for (const b of graph.buffers) {
      const s = plan.storageOf[b.id] ?? -1;
      const C = typedCtor(b.dtype);
      if (s >= 0) {
        this.B[b.id] = new C(storages[s]! as ArrayBuffer, 0, b.size);
      } else if (!inputSet.has(b.id) && !constSet.has(b.id) && !plan.outputAliases.has(b.id) && !this.isFreshOutput(b.id)) {
        // a buffer the plan did not place: private storage
        this.B[b.id] = newArray(b.dtype, b.size, this.shared);
        bytes += b.size * C.BYTES_PER_ELEMENT;
      }
    }
    // scratch pools: slot i of each type is shared by all kernels (they run one at a time)
    const pool = new Map<string, number>();
    let wasmBytes = 0;
    for (const c of this.codes) {
      if (c.kind !== 'js') continue;
      c.scratch.forEach((s, i) => {
        if (s.wasmByteOffset !== undefined) return;
        const key = `${s.type}:${i}`;
        pool.set(key, Math.max(pool.get(key) ?? 0, s.size));
      });
      if (c.wasm) wasmBytes = Math.max(wasmBytes, c.wasm.bytes);
    }
    const pools = new Map<string, Float64Array | Float32Array | Int32Array>();
    for (const [key, size] of pool) {
      const type = key.split(':')[0];
      const arr = type === 'f64' ? new Float64Array(size) : type === 'f32' ? new Float32Array(size) : new Int32Array(size);
      bytes += arr.byteLength;
      pools.set(key, arr);
    }
    let mem: WasmMemory | null = null;
    let gemm: GemmFn | null = null;
    // packed weights kept across calls, behind the scratch (packed_b_cache.ts)
    const kept = wasmBytes > 0 ? planKeptB(this.codes, graph, plan, wasmBytes) : { regions: [], end: 0 };
    if (wasmBytes > 0) {
      mem = makeMemory(kept.end);
      bytes += mem.buffer.byteLength;
    }
    const keptOf = new Map(kept.regions.map((r) => [r.kernel, keptB(mem!, r, this.versions)]));
    const wasmFn = (c: JsKernelCode): unknown => {
      if (!c.wasm || !mem) return undefined;
      if (c.wasm.kind === 'gemm_f32') return c.wasm.epilogue || c.wasm.prologue || c.wasm.bPrologue ? instantiateGemmFused(mem, c.wasm) : (gemm ??= instantiateGemm(mem));
      if (c.wasm.kind === 'dwrow') return instantiateDwRow(mem, c.wasm.cfg);
      if (c.wasm.kind === 'rowloop') return instantiateFunc(mem, c.wasm.func);
      return instantiateWgRow(mem, c.wasm.cfg);
    };
    if (this.shared) {
      this.pool = workerPool(this.threads - 1);
      this.execId = this.pool.compile({ codes: this.codes.map((c) => (c.kind === 'js' ? c : null)), pools: pool, wasmBytes }, this);
      bytes += (this.threads - 1) * ([...pools.values()].reduce((a, p) => a + p.byteLength, 0) + wasmBytes);
    }
    const minWork = this.opts.splitMinWork ?? DEFAULT_SPLIT_MIN_WORK;
    // steps
    this.steps = this.codes.map((c, ki) => {
      const fn = this.fns[ki]!;
      const scratch = c.scratch.map((s, i) => {
        if (s.wasmByteOffset !== undefined) {
          const C = s.type === 'f64' ? Float64Array : s.type === 'f32' ? Float32Array : Int32Array;
          return new C(mem!.buffer as ArrayBuffer, s.wasmByteOffset, s.size);
        }
        return pools.get(`${s.type}:${i}`)!;
      });
      const bufIds = c.bufs;
      const B = this.B;
      const total = c.total;
      const extra = [...scratch, ...(c.bCache ? [keptOf.get(ki) ?? null] : []), ...(c.wasm ? [wasmFn(c)] : [])];
      const args = new Array<unknown>(2 + bufIds.length + extra.length);
      extra.forEach((e, i) => (args[2 + bufIds.length + i] = e));
      if (total === 0) return { run: () => {} };
      const nb = bufIds.length;
      const call = (start: number, end: number): void => {
        args[0] = start;
        args[1] = end;
        for (let i = 0; i < nb; i++) args[2 + i] = B[bufIds[i]!];
        fn.apply(null, args as [number, number, ...unknown[]]);
      };
      const pool = this.pool;
      const T = this.threads;
      if (pool && c.splittable && total >= 2 && total * c.workPerItem >= minWork) {
        const parts = Math.min(T, total);
        this.splitKernels.push(ki);
        const cuts = Array.from({ length: parts + 1 }, (_, i) => Math.round((i * total) / parts));
        return {
          run: () => {
            // a broken pool (a dead worker, threads.ts) leaves the whole range to this thread
            if (pool.broken) return call(0, total);
            for (let w = 1; w < parts; w++) pool.dispatch(w - 1, ki, cuts[w]!, cuts[w + 1]!);
            call(0, cuts[1]!);
            for (let w = 1; w < parts; w++) if (!pool.wait(w - 1)) call(cuts[w]!, cuts[w + 1]!);
          },
        };
      }
      return { run: () => call(0, total) };
    });
    this.posted = new Array<HostData | null>(this.B.length).fill(null);
    this.staging = new Array<HostData | null>(graph.inputs.length).fill(null);
    this.initialized = true;
    return bytes;
  }

  private isFreshOutput(buf: number): boolean {
    return this.graph.outputs.some((o) => o.kind === 'buffer' && o.buf === buf);
  }

  run(arrays: readonly DeviceArray[]): HostArray[] {
    const inputs = arrays as readonly HostArray[];
    const { graph, plan } = this;
    if (inputs.length !== graph.inputs.length) throw new Error(`cpu: expected ${graph.inputs.length} inputs, got ${inputs.length}`);
    let allocated = 0;
    let staged = 0;
    if (!this.initialized) allocated += this.init();
    this.versions.update(inputs);
    if (plan.outputAliases.size > 0) noteInPlaceWrite();
    const B = this.B;
    const shared = this.shared;
    // bind inputs (threaded: non-shared inputs go through shared staging arrays)
    const stagedFrom: (HostData | null)[] = shared ? new Array<HostData | null>(inputs.length).fill(null) : [];
    graph.inputs.forEach((buf, i) => {
      const a = inputs[i]!;
      const d = this.dtypeOf(buf);
      const n = this.sizes.get(buf)!;
      if (a.data.length !== n) throw new Error(`cpu: input ${i} has ${a.data.length} elements, expected ${n} (${d})`);
      let data = hostData(a, d);
      if (data !== a.data) allocated += data.byteLength;
      if (shared && !isShared(data)) {
        let st = this.staging[i];
        if (!st) {
          st = newArray(d, n, true);
          this.staging[i] = st;
          allocated += st.byteLength;
        }
        st.set(data as Float64Array);
        staged += st.byteLength;
        stagedFrom[i] = a.data;
        data = st;
      }
      B[buf] = data;
    });
    // bind outputs
    const fresh = new Set<HostData>();
    for (const o of graph.outputs) {
      if (o.kind !== 'buffer') continue;
      const alias = plan.outputAliases.get(o.buf);
      if (alias !== undefined) {
        B[o.buf] = B[graph.inputs[alias]!]!;
      } else if ((plan.storageOf[o.buf] ?? -1) < 0 && !graph.inputs.includes(o.buf) && !graph.consts.some((c) => c.buf === o.buf)) {
        if (!fresh.has(B[o.buf] as HostData)) {
          const arr = newArray(this.dtypeOf(o.buf), this.sizes.get(o.buf)!, shared);
          allocated += arr.byteLength;
          B[o.buf] = arr;
          fresh.add(arr);
        }
      }
    }
    // run
    const pool = this.pool;
    if (pool) {
      const bind: [number, HostData][] = [];
      for (let id = 0; id < B.length; id++) {
        const arr = B[id];
        if (arr && arr !== this.posted[id]) {
          bind.push([id, arr]);
          this.posted[id] = arr;
        }
      }
      pool.begin(this.execId, bind);
    }
    try {
      const times = this.kernelTimes;
      if (times && this.opts.profile === 'cpu') {
        for (let i = 0; i < this.steps.length; i++) {
          const t0 = process.cpuUsage();
          this.steps[i]!.run();
          const d = process.cpuUsage(t0);
          times[i]! += (d.user + d.system) / 1000;
        }
      } else if (times) {
        for (let i = 0; i < this.steps.length; i++) {
          const t0 = performance.now();
          this.steps[i]!.run();
          times[i]! += performance.now() - t0;
        }
      } else {
        for (const s of this.steps) s.run();
      }
    } finally {
      if (pool) pool.end();
    }
    // results: each returned array distinct, never a caller's input (unless donated) or a const
    const returned = new Set<HostData>();
    const inputArrays = new Set<HostData>(inputs.map((a) => a.data));
    const results = graph.outputs.map((o) => {
      if (o.kind === 'literal') {
        const a = HostArray.scalar(castScalar(o.value, o.dtype), o.dtype);
        allocated += a.data.byteLength;
        return a;
      }
      let data = B[o.buf];
      if (!data) throw new Error(`cpu: output buffer ${o.buf} was never bound`);
      const n = sizeOf(o.shape);
      const aliasPos = plan.outputAliases.get(o.buf);
      const donated = aliasPos !== undefined;
      if (donated && shared && stagedFrom[aliasPos]) {
        // a donated input that went through staging: update the caller's array in place
        const orig = stagedFrom[aliasPos]!;
        (orig as Float64Array).set(data as Float64Array);
        data = orig;
      }
      const own = fresh.has(data) || donated;
      if (!own || returned.has(data) || (!donated && inputArrays.has(data)) || data.length !== n) {
        const copy = newArray(o.dtype, n, shared);
        copy.set(data.length === n ? (data as ArrayLike<number> as Float64Array) : (data.subarray(0, n) as Float64Array));
        allocated += copy.byteLength;
        data = copy;
      }
      returned.add(data);
      return new HostArray(o.dtype, [...o.shape], data);
    });
    this.lastRun = { allocatedBytes: allocated, stagedBytes: staged };
    return results;
  }
}

/** A CPU device with options (WebAssembly SIMD kernels on by default, one thread, profiling off). */
export function createCpuDevice(opts: CpuDeviceOptions = {}): Device {
  const wasm = opts.wasm ?? true;
  const threads = opts.threads === 'auto' ? availableParallelism() : Math.max(1, Math.floor(opts.threads ?? 1));
  const own = (a: DeviceArray): HostArray => {
    if (!(a instanceof HostArray)) throw new Error(`cpu: an array of the '${a.device.name}' device is not a host array`);
    return a;
  };
  return {
    name: 'cpu',
    syncRead: true,
    id: `cpu:js${wasm ? '+wasm-simd' : ''}${opts.exactErf ? ':exact-erf' : ''}:${threads}thread${threads > 1 ? 's' : ''}${opts.maxStorageBuffers ? `:max${opts.maxStorageBuffers}buffers` : ''}`,
    caps: opts.maxStorageBuffers ? { ...CPU_CAPS, maxStorageBuffers: opts.maxStorageBuffers } : CPU_CAPS,
    alloc: (dtype, shape) => HostArray.zeros(dtype, shape),
    upload: (host) => host,
    read: (a) => Promise.resolve(own(a)),
    free: () => {},
    copy: (a) => {
      const h = own(a);
      return new HostArray(h.dtype, [...h.shape], h.data.slice());
    },
    sync: () => Promise.resolve(),
    compile(graph: KernelGraph, plan: MemoryPlan): CpuExecutable {
      return new CpuExecutableImpl(graph, plan, opts);
    },
  };
}

/** Which CPU dialect: NEXGRAD_CPU=wasm (JavaScript + WebAssembly) or native (C), default native where it can run. */
export type CpuDialect = 'wasm' | 'native' | 'auto';

function envDialect(): CpuDialect {
  const v = typeof process !== 'undefined' ? process.env.NEXGRAD_CPU : undefined;
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'wasm' || v === 'native') return v;
  throw new NexgradError(`NEXGRAD_CPU must be 'wasm', 'native' or 'auto', got ${JSON.stringify(v)}`);
}

/** NEXGRAD_CPU_THREADS as a thread count (undefined when unset); a bad value is a NexgradError naming it. */
export function envThreads(): number | undefined {
  const t = typeof process !== 'undefined' ? process.env.NEXGRAD_CPU_THREADS : undefined;
  if (!t) return undefined;
  if (t === 'auto') return availableParallelism();
  const n = Number(t);
  if (!(Number.isInteger(n) && n >= 1)) throw new NexgradError(`NEXGRAD_CPU_THREADS must be a positive integer or 'auto', got ${JSON.stringify(t)}`);
  return n;
}

let nativeNotice = false;

/**
 * The native device for `threads` (compile failures of a graph fall back to the WebAssembly
 * executable with a one-line notice), or undefined with a one-line notice when the native path
 * cannot run here (no compiler, the addon did not build).
 */
function nativeOrNotice(threads: number, forced: boolean): Device | undefined {
  // auto mode keeps graphs with little work on the JavaScript path (a compile would not pay)
  const support = nativeSupport();
  if (typeof support === 'string') {
    if ((forced || nodeModule('child_process')) && !nativeNotice) {
      nativeNotice = true;
      console.warn(`nexgrad: the native CPU backend is not available (${support}); using WebAssembly`);
    }
    return undefined;
  }
  const native = createNativeCpuDevice(support, { threads });
  const fallback = createCpuDevice({ threads: 1 });
  return {
    ...native,
    compile(graph: KernelGraph, plan: MemoryPlan): Executable {
      if (!forced && graphWork(graph) < NATIVE_MIN_WORK) return fallback.compile(graph, plan);
      try {
        return native.compile(graph, plan);
      } catch (e) {
        const msg = (e as Error).message.split('\n').slice(0, 3).join(' | ');
        console.warn(`nexgrad: a kernel graph did not compile natively (${msg}); running it with WebAssembly`);
        return fallback.compile(graph, plan);
      }
    },
  };
}

/**
 * The CPU device for a dialect and thread count: NEXGRAD_CPU (wasm | native | auto, default
 * auto) picks the dialect; auto and native use the native C path where a compiler exists and
 * the addon builds, else WebAssembly (with a one-line notice); auto runs graphs with little
 * work (graph_work.ts) on the JavaScript path, native compiles every graph. Threads default to
 * NEXGRAD_CPU_THREADS, else 1 for WebAssembly and all cores for native.
 */
export function cpuDeviceFor(threads?: number, dialect: CpuDialect = envDialect()): Device {
  const t = threads ?? envThreads();
  if (dialect !== 'wasm') {
    const d = nativeOrNotice(t ?? Math.min(availableParallelism(), 8), dialect === 'native');
    if (d) return d;
  }
  return createCpuDevice({ threads: t ?? 1 });
}

/** A device that picks its implementation (cpuDeviceFor) when first used, so importing nexgrad never compiles or probes anything. */
function lazyCpuDevice(): Device {
  let dev: Device | undefined;
  const get = (): Device => (dev ??= cpuDeviceFor());
  return {
    name: 'cpu',
    syncRead: true,
    get id() {
      return get().id;
    },
    get caps() {
      return get().caps;
    },
    alloc: (dtype, shape) => get().alloc(dtype, shape),
    upload: (host) => get().upload(host),
    read: (a) => get().read(a),
    free: (a) => get().free(a),
    copy: (a) => get().copy(a),
    compile: (graph, plan) => get().compile(graph, plan),
    sync: () => get().sync(),
  };
}

/** The default CPU device (see cpuDeviceFor). */
export const cpuDevice: Device = lazyCpuDevice();
