/**
 * A kernel graph compiled to one native shared object and run through the addon. Buffers are
 * the same host typed arrays as on the JavaScript path (DeviceArray = HostArray): inputs are
 * the caller's arrays, consts the graph's values, temporaries views of arena storages (one
 * ArrayBuffer per MemoryPlan storage, made on the first run), outputs aliasing a donated input
 * reuse its array and other outputs get a fresh array per call; so eager/jit semantics and
 * donation are those of the JavaScript executable (device.ts).
 */
import { castScalar, type DType, type HostData } from '../../../ir/dtype.js';
import { HostArray, noteInPlaceWrite } from '../../../ir/host.js';
import { nodeModule } from '../../../ir/node_builtins.js';
import { sizeOf } from '../../../ir/shape.js';
import type { DeviceArray } from '../../../ir/device_array.js';
import type { MemoryPlan } from '../../kernel/device.js';
import { type KernelGraph, kernelIO } from '../../kernel/kernel_graph.js';
import type { CpuExecutable, CpuRunStats } from '../device.js';
import { typedCtor } from '../host_arrays.js';
import type { CpuAddon } from './addon.js';
import { emitGraphC } from './graph_c.js';
import { compileObject, type Toolchain } from './toolchain.js';

function hostData(a: HostArray, d: DType): HostData {
  const C = typedCtor(d);
  return a.data instanceof C ? a.data : C.from(a.data as ArrayLike<number>);
}

/** User + system CPU time of the process, in milliseconds. */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Estimated work (flops-ish) below which a graph is compiled at -O1. */
const SMALL_GRAPH_WORK = 2e7;

export class NativeExecutable implements CpuExecutable {
  readonly kernelCount: number;
  readonly sources: readonly string[];
  readonly kernelNames: readonly string[];
  readonly splitKernels: number[] = [];
  kernelTimes: Float64Array | null;
  lastRun: CpuRunStats = { allocatedBytes: 0, stagedBytes: 0 };
  /** Whether the object came from the disk cache, and the C source (for NEXGRAD_DUMP and tests). */
  readonly fromCache: boolean;
  readonly cSource: string;

  private readonly handle: number;
  private readonly B: (HostData | null)[];
  private readonly dtypes: Map<number, DType>;
  private readonly sizes: Map<number, number>;
  private initialized = false;

  constructor(
    private readonly graph: KernelGraph,
    private readonly plan: MemoryPlan,
    private readonly addon: CpuAddon,
    tc: Toolchain,
    readonly threads: number,
    profile: boolean,
  ) {
    this.dtypes = new Map(graph.buffers.map((b) => [b.id, b.dtype]));
    this.sizes = new Map(graph.buffers.map((b) => [b.id, b.size]));
    // inputs that are not donated and constants: nothing in the graph writes them (GEMMs cache their packed B)
    const donated = new Set([...plan.outputAliases.values()].map((i) => graph.inputs[i]));
    const written = new Set(graph.kernels.flatMap((k) => kernelIO(k).writes));
    const stable = new Set([...graph.inputs.filter((b) => !donated.has(b)), ...graph.consts.map((c) => c.buf)].filter((b) => !written.has(b)));
    const g = emitGraphC(graph, stable);
    this.cSource = g.source;
    this.kernelCount = graph.kernels.length;
    this.kernelNames = g.kernels.map((k) => k.name);
    this.sources = g.kernels.map((k) => k.source);
    this.kernelTimes = profile ? new Float64Array(this.kernelCount) : null;
    // graphs with little work (tests, small eager regions) compile at -O1: gcc's -O3 costs
    // seconds on big expression DAGs and would not pay back
    const work = g.kernels.reduce((a, k) => a + k.total * k.workPerItem, 0);
    // NEXGRAD_CPU_EXTRA_CFLAGS: more compiler flags for the kernel objects (experiments; part of the cache key)
    const extra = (process.env.NEXGRAD_CPU_EXTRA_CFLAGS ?? '').split(/\s+/).filter((f) => /^-[A-Za-z0-9=_.,-]+$/.test(f));
    const obj = compileObject(tc, g.source, { extraFlags: [...(work < SMALL_GRAPH_WORK ? ['-O1'] : []), ...extra] });
    this.fromCache = obj.cached;
    try {
      this.handle = addon.load(obj.path);
    } finally {
      // NEXGRAD_KEEP_OBJECTS: leave the loaded copy on disk, so that a profiler (perf) can name its functions
      if (!process.env.NEXGRAD_KEEP_OBJECTS) nodeModule('fs')?.rmSync(obj.path, { force: true });
    }
    g.kernels.forEach((k, i) => {
      if (threads > 1 && (k.splittable || k.selfSplit) && k.total * k.workPerItem >= 200000 && (k.selfSplit || k.total >= 2)) this.splitKernels.push(i);
    });
    const maxId = graph.buffers.reduce((m, b) => Math.max(m, b.id), -1);
    this.B = new Array<HostData | null>(maxId + 1).fill(null);
    for (const c of graph.consts) {
      const d = this.dtypes.get(c.buf);
      if (!d) throw new Error(`cpu-native: const for unknown buffer ${c.buf}`);
      this.B[c.buf] = hostData(c.value, d);
    }
  }

  private dtypeOf(buf: number): DType {
    const d = this.dtypes.get(buf);
    if (!d) throw new Error(`cpu-native: unknown buffer ${buf}`);
    return d;
  }

  private isFreshOutput(buf: number): boolean {
    return this.graph.outputs.some((o) => o.kind === 'buffer' && o.buf === buf);
  }

  /** First run: the arena storages and their views. */
  private init(): number {
    const { graph, plan } = this;
    let bytes = 0;
    const need = [...plan.storageBytes];
    graph.buffers.forEach((b) => {
      const s = plan.storageOf[b.id] ?? -1;
      if (s >= 0) need[s] = Math.max(need[s] ?? 0, b.size * typedCtor(b.dtype).BYTES_PER_ELEMENT);
    });
    const storages = need.map((n) => {
      const sz = Math.max(64, Math.ceil(n / 64) * 64);
      bytes += sz;
      return new ArrayBuffer(sz);
    });
    const inputSet = new Set(graph.inputs);
    const constSet = new Set(graph.consts.map((c) => c.buf));
    for (const b of graph.buffers) {
      const s = plan.storageOf[b.id] ?? -1;
      const C = typedCtor(b.dtype);
      if (s >= 0) this.B[b.id] = new C(storages[s]!, 0, b.size);
      else if (!inputSet.has(b.id) && !constSet.has(b.id) && !plan.outputAliases.has(b.id) && !this.isFreshOutput(b.id)) {
        this.B[b.id] = new C(b.size);
        bytes += b.size * C.BYTES_PER_ELEMENT;
      }
    }
    this.initialized = true;
    return bytes;
  }

  run(arrays: readonly DeviceArray[]): HostArray[] {
    const inputs = arrays as readonly HostArray[];
    const { graph, plan } = this;
    if (inputs.length !== graph.inputs.length) throw new Error(`cpu-native: expected ${graph.inputs.length} inputs, got ${inputs.length}`);
    let allocated = this.initialized ? 0 : this.init();
    if (plan.outputAliases.size > 0) noteInPlaceWrite();
    const B = this.B;
    graph.inputs.forEach((buf, i) => {
      const a = inputs[i]!;
      const n = this.sizes.get(buf)!;
      if (a.data.length !== n) throw new Error(`cpu-native: input ${i} has ${a.data.length} elements, expected ${n} (${this.dtypeOf(buf)})`);
      const data = hostData(a, this.dtypeOf(buf));
      if (data !== a.data) allocated += data.byteLength;
      B[buf] = data;
    });
    const fresh = new Set<HostData>();
    for (const o of graph.outputs) {
      if (o.kind !== 'buffer') continue;
      const alias = plan.outputAliases.get(o.buf);
      if (alias !== undefined) B[o.buf] = B[graph.inputs[alias]!]!;
      else if ((plan.storageOf[o.buf] ?? -1) < 0 && !graph.inputs.includes(o.buf) && !graph.consts.some((c) => c.buf === o.buf)) {
        if (!fresh.has(B[o.buf] as HostData)) {
          const arr = new (typedCtor(this.dtypeOf(o.buf)))(this.sizes.get(o.buf)!);
          allocated += arr.byteLength;
          B[o.buf] = arr;
          fresh.add(arr);
        }
      }
    }
    const times = this.kernelTimes;
    if (times) {
      // NEXGRAD_PROFILE_CLOCK=cpu: the process's CPU time instead of wall time (on a shared machine a
      // kernel's wall time counts the time other processes held the cores)
      const clock = process.env.NEXGRAD_PROFILE_CLOCK === 'cpu' ? cpuMs : () => performance.now();
      for (let i = 0; i < this.kernelCount; i++) {
        const t0 = clock();
        this.addon.run(this.handle, B, this.threads, i, i + 1);
        times[i]! += clock() - t0;
      }
    } else this.addon.run(this.handle, B, this.threads, 0, this.kernelCount);
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
      if (!data) throw new Error(`cpu-native: output buffer ${o.buf} was never bound`);
      const n = sizeOf(o.shape);
      const donated = plan.outputAliases.has(o.buf);
      const own = fresh.has(data) || donated;
      if (!own || returned.has(data) || (!donated && inputArrays.has(data)) || data.length !== n) {
        const copy = new (typedCtor(o.dtype))(n);
        copy.set(data.length === n ? (data as ArrayLike<number> as Float64Array) : (data.subarray(0, n) as Float64Array));
        allocated += copy.byteLength;
        data = copy;
      }
      returned.add(data);
      return new HostArray(o.dtype, [...o.shape], data);
    });
    this.lastRun = { allocatedBytes: allocated, stagedBytes: 0 };
    return results;
  }
}
