/**
 * A planned KernelGraph compiled for a CUDA device: every kernel's module compiled once (NVRTC
 * in parallel, cubins cached in memory and on disk), and `run`, which launches the kernels in
 * order on the runtime's stream and returns the outputs as device arrays.
 *
 * Storage: inputs are the caller's buffers; consts are uploaded at compile time; temporaries
 * live in arena storages (one device buffer per MemoryPlan storage, allocated on the first run
 * and reused by every later one); an output aliasing a donated input is written into that
 * input's buffer; other outputs get a fresh buffer per call.
 *
 * CUDA graphs (option `graphs`, default on): the second call records the launches as a graph
 * and later calls replay it. A graph holds pointers, so in graph mode the kernels read the
 * inputs from buffers the executable owns (each call copies its arguments there on the device,
 * skipping an argument that is the same array as last time: arrays never change) and write
 * fresh outputs there (copied to new buffers for the caller); donated inputs are updated in
 * place, and a call whose donated buffers differ from the recorded ones records again.
 */
import type { DType } from '../../ir/dtype.js';
import { NexgradError } from '../../ir/errors.js';
import type { DeviceArray } from '../../ir/device_array.js';
import { HostArray } from '../../ir/host.js';
import type { Executable, MemoryPlan, RunStats } from '../kernel/device.js';
import type { KernelGraph } from '../kernel/kernel_graph.js';
import type { GpuKernelCode } from '../lower/gpu/kernel_code.js';
import { type KernelArg, nodeBuiltin } from './native.js';
import { type CudaGraph, type CudaKernel, type CudaRuntime, type DeviceBuffer } from './runtime.js';
import { type CudaTarget, emitCudaKernel } from './kernels.js';
import { storageBytes, toStorage } from './storage.js';

/** What the executable needs from its device: its runtime, and arrays of its kind. */
export interface CudaArrayHost {
  readonly runtime: CudaRuntime;
  /** A device array owning `buffer`. */
  wrap(buffer: DeviceBuffer, dtype: DType, shape: readonly number[]): DeviceArray;
  /** The buffer of an array of this device (throws for another device's array). */
  bufferOf(a: DeviceArray, what: string): DeviceBuffer;
}

export interface CudaExecutableOptions {
  /** Record the launches as a CUDA graph from the second call on (default true). */
  readonly graphs?: boolean;
  /** NVRTC threads for the module compiles (default: one per core, at most 16). */
  readonly compileThreads?: number;
  /** Extra NVRTC options (e.g. -lineinfo). */
  readonly nvrtcOptions?: readonly string[];
}

/** NVRTC threads: one per core (a cold training-step compile is hundreds of kernels), at most 16. */
function defaultCompileThreads(): number {
  const os = nodeBuiltin<typeof import('node:os')>('os');
  return Math.max(1, Math.min(16, os?.availableParallelism?.() ?? 4));
}

/** Storage keys: arena storages are 0.., the others offset by kind. */
const INPUT = 1 << 24;
const CONST = 2 << 24;
const FRESH = 3 << 24;
const PRIVATE = 4 << 24;

/** The largest grid x (2^31 - 1); larger counts fold into y and z. */
const MAX_GRID_X = 2147483647;
const MAX_GRID_YZ = 65535;

/**
 * Where each buffer of a planned graph lives, as a storage key: arena storage s is s; inputs,
 * consts, fresh outputs and unplaced buffers are offset by kind; an output updated in place
 * takes its donated input's key. Buffers with one key share one binding in a kernel.
 */
export function storageKeys(g: KernelGraph, plan: MemoryPlan): number[] {
  const keys = new Array<number>(g.buffers.length).fill(-1);
  const inputPos = new Map(g.inputs.map((b, i) => [b, i]));
  const consts = new Set(g.consts.map((c) => c.buf));
  const outputs = new Set(g.outputs.flatMap((o) => (o.kind === 'buffer' ? [o.buf] : [])));
  for (const b of g.buffers) {
    const s = plan.storageOf[b.id] ?? -1;
    const alias = plan.outputAliases.get(b.id);
    if (s >= 0) keys[b.id] = s;
    else if (inputPos.has(b.id)) keys[b.id] = INPUT + inputPos.get(b.id)!;
    else if (consts.has(b.id)) keys[b.id] = CONST + b.id;
    else if (alias !== undefined) keys[b.id] = INPUT + alias;
    else if (outputs.has(b.id)) keys[b.id] = FRESH + b.id;
    else keys[b.id] = PRIVATE + b.id;
  }
  return keys;
}

/** The CUDA code of every kernel of a planned graph (code generation only: no device needed). */
export function emitGraphKernels(g: KernelGraph, plan: MemoryPlan, target: CudaTarget): GpuKernelCode[] {
  const dtypes = new Map(g.buffers.map((b) => [b.id, b.dtype]));
  const sizes = new Map(g.buffers.map((b) => [b.id, b.size]));
  const keys = storageKeys(g, plan);
  const dtypeOf = (buf: number): DType => {
    const d = dtypes.get(buf);
    if (d === undefined) throw new NexgradError(`cuda: the graph has no buffer ${buf}`);
    return d;
  };
  return g.kernels.map((k) => emitCudaKernel(k, target, { dtypeOf, sizeOf: (b) => sizes.get(b) ?? 0, storageOf: (b) => keys[b]! }));
}

export function foldGrid(groups: number): [number, number, number] {
  if (groups <= MAX_GRID_X) return [groups, 1, 1];
  const y = Math.ceil(groups / MAX_GRID_X);
  if (y > MAX_GRID_YZ) throw new NexgradError(`cuda: ${groups} blocks are more than one launch can have`);
  return [Math.ceil(groups / y), y, 1];
}

interface Launch {
  readonly kernel: CudaKernel;
  readonly grid: [number, number, number];
  readonly block: [number, number, number];
  /** Per argument: a storage key (pointer), a scratch index, or an int parameter. */
  readonly args: readonly ({ readonly storage: number } | { readonly scratch: number } | { readonly i32: number })[];
}

export class CudaExecutable implements Executable {
  readonly kernelCount: number;
  readonly sources: readonly string[];
  readonly codes: readonly GpuKernelCode[];
  lastRun: RunStats = { allocatedBytes: 0 };
  /** How the last call ran: launched directly, recorded as a graph, or replayed. */
  lastMode: 'direct' | 'record' | 'replay' = 'direct';

  private readonly rt: CudaRuntime;
  private readonly launches: Launch[] = [];
  private readonly keyOf: number[];
  private readonly dtypeOf: (buf: number) => DType;
  private readonly ptr = new Map<number, bigint>();
  private readonly consts = new Map<number, DeviceBuffer>();
  private arena: DeviceBuffer[] | undefined;
  private scratch: DeviceBuffer[] = [];
  private readonly graphs: boolean;
  private calls = 0;
  private graph: CudaGraph | undefined;
  /** Graph mode: the executable's buffers for non-donated inputs and fresh outputs, by storage key. */
  private slots = new Map<number, DeviceBuffer>();
  private slotFilledFrom = new Map<number, DeviceArray>();
  private recordedDonated: bigint[] = [];

  constructor(
    private readonly host: CudaArrayHost,
    private readonly graph_: KernelGraph,
    private readonly plan: MemoryPlan,
    target: CudaTarget,
    opts: CudaExecutableOptions = {},
  ) {
    this.rt = host.runtime;
    this.graphs = opts.graphs ?? true;
    const g = graph_;
    const dtypes = new Map(g.buffers.map((b) => [b.id, b.dtype]));
    this.dtypeOf = (buf) => {
      const d = dtypes.get(buf);
      if (d === undefined) throw new NexgradError(`cuda: the graph has no buffer ${buf}`);
      return d;
    };
    this.keyOf = storageKeys(g, plan);
    this.codes = emitGraphKernels(g, plan, target);
    this.kernelCount = g.kernels.length;
    this.sources = this.codes.map((c) => c.source);
    const modules = this.rt.compileModulesSync(
      this.codes.map((c) => ({ source: c.source, label: c.name })),
      opts.nvrtcOptions ?? [],
      opts.compileThreads ?? defaultCompileThreads(),
    );
    this.codes.forEach((c, i) => {
      for (const d of c.dispatches) {
        const args: Launch['args'][number][] = c.bindings.map((b) => (b.kind === 'buffer' ? { storage: this.keyOf[b.bufs[0]!]! } : { scratch: b.index }));
        d.params.forEach((p) => args.push({ i32: p }));
        this.launches.push({ kernel: this.rt.functionOf(modules[i]!, d.entry), grid: foldGrid(d.groups), block: [c.workgroupSize, 1, 1], args });
      }
    });
    for (const c of g.consts) {
      const buf = this.rt.upload(toStorage(c.value.dtype === this.dtypeOf(c.buf) ? c.value : new HostArray(this.dtypeOf(c.buf), [...c.value.shape], c.value.data)));
      this.consts.set(c.buf, buf);
      this.ptr.set(CONST + c.buf, buf.ptr);
    }
  }

  private bytesOf(buf: number): number {
    return Math.max(4, storageBytes(this.dtypeOf(buf), this.graph_.buffers[buf]!.size));
  }

  /** First call: arena storages, private buffers and scratch. Returns the bytes allocated. */
  private allocateArena(): number {
    const g = this.graph_;
    let bytes = 0;
    const need = [...this.plan.storageBytes];
    for (const b of g.buffers) {
      const s = this.plan.storageOf[b.id] ?? -1;
      if (s >= 0) need[s] = Math.max(need[s] ?? 0, this.bytesOf(b.id));
    }
    this.arena = need.map((n, s) => {
      const buf = this.rt.alloc(Math.max(4, n));
      this.ptr.set(s, buf.ptr);
      bytes += buf.bytes;
      return buf;
    });
    for (const b of g.buffers) {
      if (this.keyOf[b.id]! !== PRIVATE + b.id) continue;
      const buf = this.rt.alloc(this.bytesOf(b.id));
      this.ptr.set(PRIVATE + b.id, buf.ptr);
      bytes += buf.bytes;
    }
    const scratchBytes: number[] = [];
    for (const c of this.codes) for (const b of c.bindings) if (b.kind === 'scratch') scratchBytes[b.index] = Math.max(scratchBytes[b.index] ?? 0, b.bytes);
    this.scratch = scratchBytes.map((n) => this.rt.alloc(Math.max(4, n ?? 4)));
    bytes += this.scratch.reduce((a, b) => a + b.bytes, 0);
    return bytes;
  }

  private launchAll(): void {
    for (const l of this.launches) {
      const args: KernelArg[] = l.args.map((a) => {
        if ('i32' in a) return { i32: a.i32 };
        if ('scratch' in a) return { ptr: this.scratch[a.scratch]!.ptr };
        const p = this.ptr.get(a.storage);
        if (p === undefined) throw new NexgradError(`cuda: kernel ${l.kernel.name} reads a storage with no buffer (key ${a.storage})`);
        return { ptr: p };
      });
      this.rt.launch(l.kernel, l.grid, l.block, args);
    }
  }

  run(inputs: readonly DeviceArray[]): DeviceArray[] {
    const g = this.graph_;
    if (inputs.length !== g.inputs.length) throw new NexgradError(`cuda: expected ${g.inputs.length} inputs, got ${inputs.length}`);
    let allocated = 0;
    if (!this.arena) allocated += this.allocateArena();
    const buffers = inputs.map((a, i) => {
      const buf = this.host.bufferOf(a, `input ${i}`);
      const want = storageBytes(this.dtypeOf(g.inputs[i]!), g.buffers[g.inputs[i]!]!.size);
      if (buf.bytes < want || a.dtype !== this.dtypeOf(g.inputs[i]!)) {
        throw new NexgradError(`cuda: input ${i} is ${a.dtype}[${a.shape.join(',')}], expected ${this.dtypeOf(g.inputs[i]!)} with ${g.buffers[g.inputs[i]!]!.size} elements`);
      }
      return buf;
    });
    const donatedPos = new Set(this.plan.outputAliases.values());
    const useGraph = this.graphs && this.calls >= 1 && this.launches.length > 0;
    this.calls++;
    // outputs written into fresh buffers: the caller's (direct) or the executable's slots (graph)
    const fresh = new Map<number, DeviceBuffer>();
    for (const o of g.outputs) {
      if (o.kind !== 'buffer' || this.keyOf[o.buf] !== FRESH + o.buf || fresh.has(o.buf)) continue;
      fresh.set(o.buf, this.rt.alloc(this.bytesOf(o.buf)));
      allocated += this.bytesOf(o.buf);
    }
    if (!useGraph) {
      buffers.forEach((b, i) => this.ptr.set(INPUT + i, b.ptr));
      for (const [buf, b] of fresh) this.ptr.set(FRESH + buf, b.ptr);
      this.launchAll();
      this.lastMode = 'direct';
    } else {
      allocated += this.runGraph(inputs, buffers, donatedPos, fresh);
    }
    this.lastRun = { allocatedBytes: allocated };
    return this.results(inputs, buffers, fresh, donatedPos);
  }

  /** Graph mode: arguments into slots, replay (recording first where needed), outputs copied out. */
  private runGraph(inputs: readonly DeviceArray[], buffers: readonly DeviceBuffer[], donatedPos: ReadonlySet<number>, fresh: ReadonlyMap<number, DeviceBuffer>): number {
    const g = this.graph_;
    let allocated = 0;
    const slot = (key: number, bytes: number): DeviceBuffer => {
      let s = this.slots.get(key);
      if (!s) {
        s = this.rt.alloc(bytes);
        allocated += s.bytes;
        this.slots.set(key, s);
      }
      return s;
    };
    buffers.forEach((b, i) => {
      if (donatedPos.has(i)) {
        this.ptr.set(INPUT + i, b.ptr);
        return;
      }
      const s = slot(INPUT + i, b.bytes);
      if (this.slotFilledFrom.get(INPUT + i) !== inputs[i]) {
        this.rt.copy(s, b, storageBytes(this.dtypeOf(g.inputs[i]!), g.buffers[g.inputs[i]!]!.size));
        this.slotFilledFrom.set(INPUT + i, inputs[i]!);
      }
      this.ptr.set(INPUT + i, s.ptr);
    });
    for (const buf of fresh.keys()) this.ptr.set(FRESH + buf, slot(FRESH + buf, this.bytesOf(buf)).ptr);
    const donated = [...donatedPos].sort((a, b) => a - b).map((i) => buffers[i]!.ptr);
    if (!this.graph || donated.some((p, i) => p !== this.recordedDonated[i])) {
      this.graph?.dispose();
      this.graph = this.rt.record(() => this.launchAll());
      this.recordedDonated = donated;
      this.lastMode = 'record';
    } else this.lastMode = 'replay';
    this.graph.replay();
    for (const [buf, b] of fresh) this.rt.copy(b, this.slots.get(FRESH + buf)!, this.bytesOf(buf));
    return allocated;
  }

  /** The outputs as arrays the caller owns: each distinct, never an input unless donated, never a const. */
  private results(inputs: readonly DeviceArray[], buffers: readonly DeviceBuffer[], fresh: ReadonlyMap<number, DeviceBuffer>, donatedPos: ReadonlySet<number>): DeviceArray[] {
    const g = this.graph_;
    const handed = new Set<DeviceBuffer>();
    return g.outputs.map((o) => {
      if (o.kind === 'literal') {
        const h = HostArray.scalar(o.value, o.dtype);
        return this.host.wrap(this.rt.upload(toStorage(h)), o.dtype, []);
      }
      const key = this.keyOf[o.buf]!;
      const bytes = storageBytes(o.dtype, g.buffers[o.buf]!.size);
      let own: DeviceBuffer | undefined = fresh.get(o.buf);
      if (key >= INPUT && key < CONST && donatedPos.has(key - INPUT) && this.plan.outputAliases.get(o.buf) === key - INPUT) own = buffers[key - INPUT];
      if (!own || handed.has(own)) {
        const src = own ?? this.bufferOfKey(key, inputs, buffers);
        own = this.rt.alloc(Math.max(4, bytes));
        this.rt.copy(own, src, bytes);
      }
      handed.add(own);
      return this.host.wrap(own, o.dtype, o.shape);
    });
  }

  private bufferOfKey(key: number, inputs: readonly DeviceArray[], buffers: readonly DeviceBuffer[]): DeviceBuffer {
    if (key < INPUT) return this.arena![key]!;
    if (key < CONST) return buffers[key - INPUT]!;
    if (key < FRESH) return this.consts.get(key - CONST)!;
    throw new NexgradError(`cuda: an output with storage key ${key} has no buffer (inputs: ${inputs.length})`);
  }
}
