/**
 * A planned KernelGraph compiled for the WGSL device: one GPU module per kernel (the
 * dialect-generic emitters of ../lower/gpu over the WGSL dialect), pipelines created at compile
 * time, and per call one command encoder: every kernel's dispatches in order, copies for the
 * outputs that must not alias an input or each other, one submit, no readback.
 *
 * Storage: inputs are the caller's buffers; temporaries live in arena buffers (one per memory
 * plan storage, allocated on the first call and reused by every later one); consts are
 * uploaded once; an output aliasing a donated input is that input's buffer (updated in place);
 * other outputs get a fresh pooled buffer per call, handed to the caller.
 */
import type { DType } from '../../ir/dtype.js';
import type { DeviceArray } from '../../ir/device_array.js';
import { NexgradError } from '../../ir/errors.js';
import { HostArray } from '../../ir/host.js';
import type { Executable, MemoryPlan, RunStats } from '../kernel/device.js';
import type { KernelGraph } from '../kernel/kernel_graph.js';
import { emitGpuKernel } from '../lower/gpu/emit.js';
import type { GpuBinding } from '../lower/gpu/dialect.js';
import type { GpuKernelCode, GpuTarget } from '../lower/gpu/kernel_code.js';
import { WgslArray } from './array.js';
import { storageBytes, toStorage } from './host_data.js';
import type { CallRecorder, WgslBuffer, WgslPipeline, WgslRuntime } from './runtime.js';

/** What an executable needs from its device. */
export interface WgslContext {
  readonly rt: WgslRuntime;
  readonly device: WgslArray['device'];
  readonly f16: boolean;
  readonly target: GpuTarget;
}

const roundUp4 = (n: number): number => Math.ceil(n / 4) * 4;

export class WgslExecutable implements Executable {
  readonly kernelCount: number;
  readonly sources: readonly string[];
  lastRun: RunStats = { allocatedBytes: 0 };

  private readonly codes: readonly GpuKernelCode[];
  private readonly pipelines: readonly (readonly WgslPipeline[])[];
  private readonly dtypes: readonly DType[];
  private readonly sizes: readonly number[];
  private arena: WgslBuffer[] | null = null;
  /** Consts, buffers the plan left unplaced, and kernel scratch: allocated on the first call. */
  private own = new Map<number, WgslBuffer>();
  private scratch: WgslBuffer[][] = [];
  private readonly fresh: ReadonlySet<number>;

  constructor(
    private readonly graph: KernelGraph,
    private readonly plan: MemoryPlan,
    private readonly ctx: WgslContext,
  ) {
    const maxId = graph.buffers.reduce((m, b) => Math.max(m, b.id), -1);
    const dt: DType[] = new Array(maxId + 1);
    const sz: number[] = new Array(maxId + 1).fill(0);
    for (const b of graph.buffers) {
      dt[b.id] = b.dtype;
      sz[b.id] = b.size;
    }
    this.dtypes = dt;
    this.sizes = sz;
    const storage = storageKeys(graph, plan);
    this.codes = graph.kernels.map((k) => emitGpuKernel(k, ctx.target, { dtypeOf: (b) => this.dtypeOf(b), sizeOf: (b) => this.sizes[b] ?? 0, storageOf: (b) => storage.get(b) ?? b }));
    this.pipelines = this.codes.map((c) => c.dispatches.map((d) => ctx.rt.pipelineNow(c.source, d.entry, c.name)));
    this.kernelCount = graph.kernels.length;
    this.sources = this.codes.map((c) => c.source);
    const inputs = new Set(graph.inputs);
    const consts = new Set(graph.consts.map((c) => c.buf));
    this.fresh = new Set(
      graph.outputs.flatMap((o) => (o.kind === 'buffer' && !plan.outputAliases.has(o.buf) && (plan.storageOf[o.buf] ?? -1) < 0 && !inputs.has(o.buf) && !consts.has(o.buf) ? [o.buf] : [])),
    );
  }

  private dtypeOf(buf: number): DType {
    const d = this.dtypes[buf];
    if (!d) throw new NexgradError(`wgsl: kernel graph refers to unknown buffer ${buf}`);
    return d;
  }

  private bytesOf(buf: number): number {
    return this.sizes[buf]! * storageBytes(this.dtypeOf(buf), this.ctx.f16);
  }

  /** First call: arena, consts, buffers the plan did not place, kernel scratch. */
  private init(): number {
    const { rt, f16 } = this.ctx;
    let bytes = 0;
    const need = [...this.plan.storageBytes];
    for (const b of this.graph.buffers) {
      const s = this.plan.storageOf[b.id] ?? -1;
      if (s >= 0) need[s] = Math.max(need[s] ?? 0, this.bytesOf(b.id));
    }
    this.arena = need.map((n) => {
      bytes += n;
      return rt.alloc(n);
    });
    for (const c of this.graph.consts) {
      const buf = rt.alloc(this.bytesOf(c.buf));
      rt.upload(buf, toStorage(new HostArray(this.dtypeOf(c.buf), [this.sizes[c.buf]!], c.value.data), f16));
      this.own.set(c.buf, buf);
      bytes += buf.bytes;
    }
    const inputs = new Set(this.graph.inputs);
    for (const b of this.graph.buffers) {
      const placed = inputs.has(b.id) || this.own.has(b.id) || (this.plan.storageOf[b.id] ?? -1) >= 0 || this.plan.outputAliases.has(b.id) || this.fresh.has(b.id);
      if (!placed) {
        this.own.set(b.id, rt.alloc(this.bytesOf(b.id)));
        bytes += this.bytesOf(b.id);
      }
    }
    this.scratch = this.codes.map((c) => c.bindings.flatMap((b) => (b.kind === 'scratch' ? [rt.alloc(b.bytes)] : [])));
    bytes += this.scratch.flat().reduce((a, b) => a + b.bytes, 0);
    return bytes;
  }

  run(arrays: readonly DeviceArray[]): DeviceArray[] {
    const { B, fresh, allocated } = this.bind(arrays);
    let bytes = allocated;
    const rec = this.ctx.rt.beginCall(this.graph.kernels[0]?.name ?? 'call');
    this.codes.forEach((c, ki) => this.record(rec, c, ki, B));
    const results = this.results(rec, B, fresh, (n) => (bytes += n));
    rec.submit();
    this.lastRun = { allocatedBytes: bytes };
    return results;
  }

  /**
   * Milliseconds each kernel takes on the device, for benchmarks: runs the graph on `arrays` as
   * run() does, but each kernel in a call of its own, waited for before the next.
   */
  async profile(arrays: readonly DeviceArray[]): Promise<{ name: string; ms: number }[]> {
    const rt = this.ctx.rt;
    const { B, fresh } = this.bind(arrays);
    await rt.sync();
    const times: { name: string; ms: number }[] = [];
    for (const [ki, c] of this.codes.entries()) {
      const t0 = performance.now();
      const rec = rt.beginCall(c.name);
      this.record(rec, c, ki, B);
      rec.submit();
      await rt.sync();
      times.push({ name: c.name, ms: performance.now() - t0 });
    }
    for (const b of fresh) rt.release(b);
    return times;
  }

  /** The storage of every buffer for one call: inputs, arena, consts, donated and fresh outputs. */
  private bind(arrays: readonly DeviceArray[]): { B: Map<number, WgslBuffer>; fresh: Set<WgslBuffer>; allocated: number } {
    const { graph, plan, ctx } = this;
    const { rt } = ctx;
    if (arrays.length !== graph.inputs.length) throw new NexgradError(`wgsl: expected ${graph.inputs.length} inputs, got ${arrays.length}`);
    let allocated = this.arena ? 0 : this.init();
    const B = new Map<number, WgslBuffer>(this.own);
    graph.inputs.forEach((buf, i) => {
      const a = arrays[i]!;
      if (!(a instanceof WgslArray) || a.device !== ctx.device) throw new NexgradError(`wgsl: input ${i} is an array of the '${a.device.name}' device, not of this WGSL device`);
      if (a.dtype !== this.dtypeOf(buf) || a.size !== this.sizes[buf]) {
        throw new NexgradError(`wgsl: input ${i} is ${a.dtype}[${a.shape.join(',')}], the compiled graph expects ${this.dtypeOf(buf)} with ${this.sizes[buf]} elements`);
      }
      a.checkUsable(`wgsl: input ${i}`);
      B.set(buf, a.buffer);
    });
    this.graph.buffers.forEach((b) => {
      const s = plan.storageOf[b.id] ?? -1;
      if (s >= 0) B.set(b.id, this.arena![s]!);
    });
    const fresh = new Set<WgslBuffer>();
    for (const o of graph.outputs) {
      if (o.kind !== 'buffer') continue;
      const alias = plan.outputAliases.get(o.buf);
      if (alias !== undefined) B.set(o.buf, B.get(graph.inputs[alias]!)!);
      else if (this.fresh.has(o.buf) && !B.has(o.buf)) {
        const buf = rt.alloc(this.bytesOf(o.buf));
        allocated += buf.bytes;
        B.set(o.buf, buf);
        fresh.add(buf);
      }
    }
    return { B, fresh, allocated };
  }

  private record(rec: CallRecorder, c: GpuKernelCode, ki: number, B: ReadonlyMap<number, WgslBuffer>): void {
    const buffers = c.bindings.map((b: GpuBinding) => {
      if (b.kind === 'scratch') return this.scratch[ki]![b.index]!;
      const buf = B.get(b.bufs[0]!);
      if (!buf) throw new NexgradError(`wgsl: kernel ${c.name} binds buffer ${b.bufs[0]}, which has no storage`);
      return buf;
    });
    c.dispatches.forEach((d, di) => {
      const uniform = c.paramCount > 0 ? Uint32Array.from({ length: Math.max(4, c.paramCount) }, (_, i) => d.params[i] ?? 0) : undefined;
      rec.dispatch(this.pipelines[ki]![di]!, buffers, d.groups, uniform);
    });
  }

  /** The output arrays: each distinct, never an input (unless donated) nor a const; copies recorded where needed. */
  private results(rec: CallRecorder, B: ReadonlyMap<number, WgslBuffer>, fresh: Set<WgslBuffer>, alloc: (bytes: number) => void): DeviceArray[] {
    const { rt, f16, device } = this.ctx;
    const handed = new Set<WgslBuffer>();
    return this.graph.outputs.map((o) => {
      if (o.kind === 'literal') {
        const h = HostArray.scalar(o.value, o.dtype);
        const buf = rt.alloc(storageBytes(o.dtype, f16));
        rt.upload(buf, toStorage(h, f16));
        alloc(buf.bytes);
        return new WgslArray(device, o.dtype, [], buf, rt, f16);
      }
      let buf = B.get(o.buf)!;
      const own = fresh.has(buf) || this.plan.outputAliases.has(o.buf);
      if (!own || handed.has(buf)) {
        const copy = rt.alloc(this.bytesOf(o.buf));
        rec.copy(buf, copy, roundUp4(this.bytesOf(o.buf)));
        alloc(copy.bytes);
        buf = copy;
      }
      handed.add(buf);
      return new WgslArray(device, o.dtype, [...o.shape], buf, rt, f16);
    });
  }
}

/**
 * For each buffer, a key shared by the buffers stored together: an arena storage's first
 * buffer, and a donated input for the output that updates it in place.
 */
function storageKeys(graph: KernelGraph, plan: MemoryPlan): Map<number, number> {
  const keys = new Map<number, number>();
  const arena = new Map<number, number>();
  for (const b of graph.buffers) {
    const s = plan.storageOf[b.id] ?? -1;
    if (s < 0) continue;
    if (!arena.has(s)) arena.set(s, b.id);
    keys.set(b.id, arena.get(s)!);
  }
  for (const [out, pos] of plan.outputAliases) keys.set(out, graph.inputs[pos]!);
  return keys;
}
