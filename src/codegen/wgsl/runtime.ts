/// <reference types="@webgpu/types" />
/**
 * The WebGPU runtime under the WGSL backend, over any GPUDevice: a size-bucketed buffer pool,
 * a pipeline cache keyed by WGSL source, one command encoder per jitted call (recorded, then
 * encoded and submitted at once), asynchronous readback through pooled staging buffers, and the
 * device's limits checked before anything reaches the driver.
 *
 * Device errors are asynchronous in WebGPU: each call runs inside error scopes whose results are
 * recorded with the call's kernel names and thrown by the next runtime call (device loss stays
 * thrown). No `node:*` imports: this file goes into the browser bundle.
 */
import { NexgradError } from '../../ir/errors.js';
import { acquireGpu, readLimits, type AcquireOptions, type GpuLimits } from './gpu.js';
import { reflectBindings, type BindingInfo } from './bindings.js';
import { foldWorkgroups } from './workgroups.js';

/** GPUBufferUsage / GPUShaderStage / GPUMapMode values (fixed by the spec; Node has no globals). */
const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
const STAGE_COMPUTE = 0x4;
const MAP_READ = 0x1;

/** An error the device reported for a call (validation, out of memory, internal) or device loss. */
export class WgslDeviceError extends NexgradError {
  constructor(message: string, readonly kernels: readonly string[]) {
    super(message);
    this.name = 'WgslDeviceError';
  }
}

const roundUp = (n: number, k: number): number => Math.ceil(n / k) * k;

/** Bucket sizes: multiples of 16 bytes, four steps per power of two (at most 25% slack). */
export function bucketBytes(bytes: number): number {
  const b = Math.max(16, roundUp(bytes, 16));
  const step = Math.max(16, 2 ** Math.floor(Math.log2(b)) / 4);
  return roundUp(b, step);
}

interface Slot {
  readonly id: number;
  readonly gpu: GPUBuffer;
  readonly capacity: number;
}

/**
 * A buffer handed out by alloc(); `bytes` is what was asked for, capacity what it holds. A
 * dispatch binds the whole capacity, so WGSL's arrayLength() sees the capacity: kernels take
 * their sizes from the uniform.
 */
export class WgslBuffer {
  /** @internal */ live = true;
  /** @internal */ constructor(readonly slot: Slot, readonly bytes: number, readonly owner: WgslRuntime) {}
  get gpuBuffer(): GPUBuffer {
    return this.slot.gpu;
  }
  get capacity(): number {
    return this.slot.capacity;
  }
}

export interface PoolStats {
  readonly liveBytes: number;
  readonly pooledBytes: number;
  readonly peakLiveBytes: number;
  readonly liveBuffers: number;
  readonly pooledBuffers: number;
  /** Buffers created on the device (a pool miss) and handed out again (a hit). */
  readonly created: number;
  readonly reused: number;
  readonly pipelines: number;
  readonly bindGroups: number;
}

/** Free lists by capacity; destroys what would grow the pooled bytes past the cap. */
class SlotPool {
  private readonly free = new Map<number, Slot[]>();
  private nextId = 1;
  live = 0;
  liveCount = 0;
  pooled = 0;
  pooledCount = 0;
  peak = 0;
  created = 0;
  reused = 0;
  constructor(
    private readonly device: GPUDevice,
    private readonly usage: number,
    private readonly label: string,
    private readonly maxPooledBytes: number,
    private readonly onDestroy: (slot: Slot) => void,
  ) {}

  take(capacity: number): Slot {
    const list = this.free.get(capacity);
    let slot = list?.pop();
    if (slot) {
      this.pooled -= capacity;
      this.pooledCount--;
      this.reused++;
    } else {
      slot = { id: this.nextId++, gpu: this.device.createBuffer({ size: capacity, usage: this.usage, label: this.label }), capacity };
      this.created++;
    }
    this.live += capacity;
    this.liveCount++;
    this.peak = Math.max(this.peak, this.live);
    return slot;
  }

  give(slot: Slot): void {
    this.live -= slot.capacity;
    this.liveCount--;
    if (this.pooled + slot.capacity > this.maxPooledBytes) return this.destroy(slot);
    let list = this.free.get(slot.capacity);
    if (!list) this.free.set(slot.capacity, (list = []));
    list.push(slot);
    this.pooled += slot.capacity;
    this.pooledCount++;
  }

  trim(): void {
    for (const list of this.free.values()) for (const slot of list) this.destroy(slot);
    this.free.clear();
    this.pooled = 0;
    this.pooledCount = 0;
  }

  private destroy(slot: Slot): void {
    this.onDestroy(slot);
    slot.gpu.destroy();
  }
}

/** A compiled kernel and the bindings its source declares. */
export interface WgslPipeline {
  readonly id: number;
  readonly name: string;
  readonly entryPoint: string;
  readonly gpu: GPUComputePipeline;
  /** Storage bindings in the order a dispatch passes its buffers. */
  readonly storage: readonly BindingInfo[];
  readonly uniform: BindingInfo | null;
  /** @internal */ readonly layout: GPUBindGroupLayout;
  /** @internal */ readonly owner: WgslRuntime;
}

interface DispatchCmd {
  readonly kind: 'dispatch';
  readonly pipeline: WgslPipeline;
  readonly buffers: readonly WgslBuffer[];
  readonly groups: readonly [number, number, number];
  readonly uniform: Uint8Array | null;
}
interface CopyCmd {
  readonly kind: 'copy';
  readonly src: WgslBuffer;
  readonly dst: WgslBuffer;
  readonly srcOffset: number;
  readonly dstOffset: number;
  readonly bytes: number;
}
type Command = DispatchCmd | CopyCmd;

/** The commands of one jitted call; nothing reaches the device until submit(). */
export class CallRecorder {
  /** @internal */ readonly commands: Command[] = [];
  private submitted = false;
  /** @internal */ constructor(private readonly rt: WgslRuntime, readonly name: string) {}

  /**
   * Dispatches `pipeline` with its storage buffers in binding order. `workgroups` is either
   * [x, y, z] (each within maxComputeWorkgroupsPerDimension) or a 1-D count that is folded into
   * y and z when it is larger (see kernels/conventions.ts). `uniform` fills the kernel's
   * uniform binding.
   */
  dispatch(pipeline: WgslPipeline, buffers: readonly WgslBuffer[], workgroups: number | readonly [number, number, number], uniform?: ArrayBufferView): this {
    this.expectOpen();
    const groups = this.rt.checkDispatch(pipeline, buffers, workgroups, uniform);
    const bytes = uniform ? new Uint8Array(uniform.buffer, uniform.byteOffset, uniform.byteLength).slice() : null;
    this.commands.push({ kind: 'dispatch', pipeline, buffers: [...buffers], groups, uniform: bytes });
    return this;
  }

  /** Copies `bytes` from src to dst (offsets and size multiples of 4). */
  copy(src: WgslBuffer, dst: WgslBuffer, bytes: number, srcOffset = 0, dstOffset = 0): this {
    this.expectOpen();
    this.rt.checkCopy(this.name, src, dst, bytes, srcOffset, dstOffset);
    if (bytes > 0) this.commands.push({ kind: 'copy', src, dst, bytes, srcOffset, dstOffset });
    return this;
  }

  /** Encodes every recorded command into one command buffer and submits it. */
  submit(): void {
    this.expectOpen();
    this.submitted = true;
    this.rt.submitCall(this);
  }

  private expectOpen(): void {
    if (this.submitted) throw new NexgradError(`wgsl call "${this.name}": already submitted; begin a new call`);
  }
}

export interface RuntimeOptions {
  /** Pooled (released, not destroyed) bytes kept for reuse; beyond this, released buffers are destroyed. */
  readonly maxPooledBytes?: number;
  /** Destroy the device in destroy() (set by WgslRuntime.create). */
  readonly ownsDevice?: boolean;
  readonly adapterInfo?: string;
  /**
   * Tighter limits than the device's (never looser), e.g. WebGPU's defaults (8 storage buffers
   * per stage) to check that kernels stay portable to any adapter.
   */
  readonly limits?: Partial<GpuLimits>;
}

const MAX_BIND_GROUPS = 8192;

export class WgslRuntime {
  readonly limits: GpuLimits;
  readonly adapterInfo: string;
  private readonly pool: SlotPool;
  private readonly staging: SlotPool;
  private readonly pipelines = new Map<string, Promise<WgslPipeline>>();
  private readonly readyPipelines = new Map<string, WgslPipeline>();
  private readonly modules = new Map<string, { gpu: GPUShaderModule; ok: Promise<boolean> }>();
  private pipelineCount = 0;
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bindGroupsOfSlot = new Map<number, string[]>();
  private uniformBuffer: GPUBuffer | null = null;
  private uniformGeneration = 0;
  private readonly inflight = new Set<Promise<void>>();
  private pendingError: WgslDeviceError | null = null;
  private pendingCompileError = false;
  /** Shader modules whose compilation messages have not arrived yet. */
  private moduleChecks = 0;
  private lostError: WgslDeviceError | null = null;
  private lastCall: { name: string; kernels: string[] } = { name: '(none)', kernels: [] };
  private destroyed = false;

  /** Whether destroy() ran (every buffer is gone then). */
  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Acquires a device (gpu.ts) and builds a runtime that owns it. */
  static async create(opts: AcquireOptions & RuntimeOptions = {}): Promise<WgslRuntime> {
    const gpu = await acquireGpu(opts);
    return new WgslRuntime(gpu.device, { ...opts, ownsDevice: opts.ownsDevice ?? true, adapterInfo: gpu.adapterInfo });
  }

  constructor(readonly device: GPUDevice, private readonly opts: RuntimeOptions = {}) {
    this.limits = tightenLimits(readLimits(device.limits), opts.limits ?? {});
    this.adapterInfo = opts.adapterInfo ?? 'unknown adapter';
    const maxPooled = opts.maxPooledBytes ?? 512 * 2 ** 20;
    this.pool = new SlotPool(device, USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST, 'nexgrad storage', maxPooled, (s) => this.forgetSlot(s));
    this.staging = new SlotPool(device, USAGE.MAP_READ | USAGE.COPY_DST, 'nexgrad readback', 64 * 2 ** 20, () => {});
    device.addEventListener('uncapturederror', (ev) => {
      const e = (ev as GPUUncapturedErrorEvent).error;
      ev.preventDefault?.();
      this.recordError('uncaptured', e?.message ?? String(e), this.lastCall);
    });
    void device.lost.then((info) => {
      if (this.destroyed) return;
      const { name, kernels } = this.lastCall;
      this.lostError = new WgslDeviceError(`wgsl: the GPU device was lost (${info.reason}): ${info.message}; the last call was "${name}" (kernels ${kernels.join(', ') || 'none'})`, kernels);
    });
  }

  // ---- buffers -------------------------------------------------------------------------

  /** A storage buffer of at least `bytes` (16-byte aligned) from the pool. */
  alloc(bytes: number): WgslBuffer {
    this.throwPending();
    if (!Number.isInteger(bytes) || bytes < 0) throw new NexgradError(`wgsl alloc: size must be a non-negative integer, got ${bytes}`);
    if (bytes > this.limits.maxBufferSize) {
      throw new NexgradError(`wgsl alloc: ${bytes} bytes is above the device's maxBufferSize (${this.limits.maxBufferSize})`);
    }
    // A bucket never pushes a buffer that fits the binding limit past it.
    let capacity = bucketBytes(bytes);
    const cap = Math.min(this.limits.maxBufferSize, this.limits.maxStorageBufferBindingSize);
    if (capacity > cap && roundUp(bytes, 16) <= cap) capacity = roundUp(bytes, 16);
    return new WgslBuffer(this.pool.take(capacity), bytes, this);
  }

  /** Returns a buffer to the pool. Commands already submitted that use it are unaffected. */
  release(buf: WgslBuffer): void {
    this.expectLive('release', buf);
    buf.live = false;
    this.pool.give(buf.slot);
  }

  /** Writes `data` at byte `offset` (a multiple of 4); takes effect before the next submitted call. */
  upload(buf: WgslBuffer, data: ArrayBufferView, offset = 0): void {
    this.throwPending();
    this.expectLive('upload', buf);
    const n = data.byteLength;
    if (!Number.isInteger(offset) || offset < 0 || offset % 4 !== 0 || offset + n > buf.bytes) {
      throw new NexgradError(`wgsl upload: ${n} bytes at offset ${offset} do not fit a ${buf.bytes}-byte buffer (offset must be a multiple of 4)`);
    }
    let bytes = new Uint8Array(data.buffer, data.byteOffset, n);
    if (n % 4 !== 0) {
      // writeBuffer moves whole words; a ragged tail is only allowed where the padding lands
      // in the buffer's slack beyond its requested size.
      if (offset + n !== buf.bytes) throw new NexgradError(`wgsl upload: ${n} bytes is not a multiple of 4 and does not end the buffer`);
      const padded = new Uint8Array(roundUp(n, 4));
      padded.set(bytes);
      bytes = padded;
    }
    if (bytes.byteLength > 0) this.device.queue.writeBuffer(buf.slot.gpu, offset, bytes);
  }

  stats(): PoolStats {
    const p = this.pool;
    return {
      liveBytes: p.live,
      pooledBytes: p.pooled,
      peakLiveBytes: p.peak,
      liveBuffers: p.liveCount,
      pooledBuffers: p.pooledCount,
      created: p.created,
      reused: p.reused,
      pipelines: this.pipelineCount,
      bindGroups: this.bindGroups.size,
    };
  }

  /** Destroys the pooled (released) buffers. */
  trim(): void {
    this.pool.trim();
    this.staging.trim();
  }

  // ---- pipelines -----------------------------------------------------------------------

  /**
   * The compute pipeline for `source`'s `entryPoint`, compiled once per (source, entry point).
   * Compile errors throw with the kernel name and each message's line.
   */
  pipeline(source: string, entryPoint = 'main', name = entryPoint): Promise<WgslPipeline> {
    this.throwPending();
    const key = `${entryPoint}\u0000${source}`;
    let p = this.pipelines.get(key);
    if (!p) {
      p = this.compile(source, entryPoint, name);
      this.pipelines.set(key, p);
      p.catch(() => this.pipelines.delete(key));
    }
    return p;
  }

  private async compile(source: string, entryPoint: string, name: string): Promise<WgslPipeline> {
    const bindings = reflectBindings(source, name);
    const storage = bindings.filter((b) => b.kind !== 'uniform');
    if (storage.length > this.limits.maxStorageBuffersPerShaderStage) {
      throw new NexgradError(`wgsl kernel "${name}": ${storage.length} storage buffers, above this device's maxStorageBuffersPerShaderStage (${this.limits.maxStorageBuffersPerShaderStage})`);
    }
    const device = this.device;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: source, label: name });
    const scope = device.popErrorScope();
    const info = await module.getCompilationInfo();
    const moduleError = await scope;
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length > 0) throw new NexgradError(compileErrorMessage(name, source, errors));
    if (moduleError) throw new NexgradError(`wgsl kernel "${name}": shader module rejected: ${moduleError.message}`);
    const layout = this.bindGroupLayout(name, bindings);
    let gpu: GPUComputePipeline;
    try {
      gpu = await device.createComputePipelineAsync({
        label: name,
        layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint },
      });
    } catch (e) {
      throw new NexgradError(`wgsl kernel "${name}": pipeline creation failed for entry point "${entryPoint}": ${e instanceof Error ? e.message : String(e)}`);
    }
    const uniform = bindings.find((b) => b.kind === 'uniform') ?? null;
    return { id: ++this.pipelineCount, name, entryPoint, gpu, storage, uniform, layout, owner: this };
  }

  /**
   * The compute pipeline for `source`'s `entryPoint`, created now without waiting for the
   * compiler (a jitted call records its dispatches synchronously). Compile errors are checked in
   * the background and thrown by the next runtime call, naming the kernel and each message's
   * line. Cached per (source, entry point); one shader module per source.
   */
  pipelineNow(source: string, entryPoint = 'main', name = entryPoint): WgslPipeline {
    this.throwPending();
    const key = `${entryPoint}\u0000${source}`;
    const hit = this.readyPipelines.get(key);
    if (hit) return hit;
    const bindings = reflectBindings(source, name);
    const storage = bindings.filter((b) => b.kind !== 'uniform');
    if (storage.length > this.limits.maxStorageBuffersPerShaderStage) {
      throw new NexgradError(`wgsl kernel "${name}": ${storage.length} storage buffers, above this device's maxStorageBuffersPerShaderStage (${this.limits.maxStorageBuffersPerShaderStage})`);
    }
    const device = this.device;
    let module = this.modules.get(source);
    if (!module) {
      device.pushErrorScope('validation');
      const created = device.createShaderModule({ code: source, label: name });
      const scope = device.popErrorScope();
      // resolves true when the module compiled (its messages name the kernel and lines otherwise)
      this.moduleChecks++;
      const ok = Promise.all([created.getCompilationInfo(), scope]).finally(() => this.moduleChecks--).then(([info, moduleError]) => {
        const errors = info.messages.filter((m) => m.type === 'error');
        if (errors.length > 0) this.recordCompileError(compileErrorMessage(name, source, errors), name);
        else if (moduleError) this.recordCompileError(`wgsl kernel "${name}": shader module rejected: ${moduleError.message}`, name);
        return errors.length === 0 && !moduleError;
      });
      this.watch(ok, name);
      module = { gpu: created, ok };
      this.modules.set(source, module);
    }
    const layout = this.bindGroupLayout(name, bindings);
    device.pushErrorScope('validation');
    const gpu = device.createComputePipeline({ label: name, layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module: module.gpu, entryPoint } });
    // a pipeline error after a module error repeats it: report the module's
    const pipelineError = Promise.all([module.ok, device.popErrorScope()]).then(([moduleOk, e]) =>
      e && moduleOk ? this.recordCompileError(`wgsl kernel "${name}": pipeline creation failed for entry point "${entryPoint}": ${e.message}`, name) : undefined,
    );
    this.watch(pipelineError, name);
    const uniform = bindings.find((b) => b.kind === 'uniform') ?? null;
    const p: WgslPipeline = { id: ++this.pipelineCount, name, entryPoint, gpu, storage, uniform, layout, owner: this };
    this.readyPipelines.set(key, p);
    return p;
  }

  private bindGroupLayout(name: string, bindings: readonly BindingInfo[]): GPUBindGroupLayout {
    return this.device.createBindGroupLayout({
      label: name,
      entries: bindings.map((b) => ({
        binding: b.binding,
        visibility: STAGE_COMPUTE,
        buffer: b.kind === 'uniform' ? { type: 'uniform', hasDynamicOffset: true } : { type: b.kind === 'read' ? 'read-only-storage' : 'storage' },
      })),
    });
  }

  private watch(p: Promise<unknown>, kernel: string): void {
    const done: Promise<void> = p.then(
      () => undefined,
      (e: unknown) => this.recordCompileError(`wgsl kernel "${kernel}": ${e instanceof Error ? e.message : String(e)}`, kernel),
    );
    this.inflight.add(done);
    void done.finally(() => this.inflight.delete(done));
  }

  /** A compile error replaces a pending call error (which it caused: "invalid due to a previous error"). */
  private recordCompileError(message: string, kernel: string): void {
    if (this.pendingCompileError || this.destroyed) return;
    this.pendingError = new WgslDeviceError(message, [kernel]);
    this.pendingCompileError = true;
  }

  // ---- calls ---------------------------------------------------------------------------

  /** Starts recording one call (one command encoder, one submit). */
  beginCall(name = 'call'): CallRecorder {
    this.throwPending();
    return new CallRecorder(this, name);
  }

  /** @internal Validates a dispatch; returns its [x, y, z] workgroup counts. */
  checkDispatch(p: WgslPipeline, buffers: readonly WgslBuffer[], workgroups: number | readonly [number, number, number], uniform?: ArrayBufferView): [number, number, number] {
    const what = `wgsl kernel "${p.name}"`;
    if (p.owner !== this) throw new NexgradError(`${what}: the pipeline belongs to another runtime`);
    if (buffers.length !== p.storage.length) {
      throw new NexgradError(`${what}: takes ${p.storage.length} storage buffers (${p.storage.map((b) => b.name).join(', ')}), the dispatch gave ${buffers.length}`);
    }
    buffers.forEach((buf, i) => {
      const b = p.storage[i]!;
      if (buf.owner !== this || !buf.live) throw new NexgradError(`${what}: buffer for binding ${b.binding} ("${b.name}") is ${buf.live ? 'from another runtime' : 'released'}`);
      if (buf.capacity > this.limits.maxStorageBufferBindingSize) {
        throw new NexgradError(`${what}: buffer for binding ${b.binding} ("${b.name}") is ${buf.capacity} bytes, above maxStorageBufferBindingSize (${this.limits.maxStorageBufferBindingSize})`);
      }
      const j = buffers.findIndex((o) => o.slot === buf.slot);
      if (j !== i && (b.kind === 'read_write' || p.storage[j]!.kind === 'read_write')) {
        throw new NexgradError(`${what}: one buffer is bound to "${p.storage[j]!.name}" and "${b.name}" and written through one of them`);
      }
    });
    if (p.uniform && !uniform) throw new NexgradError(`${what}: declares uniform "${p.uniform.name}" but the dispatch passed none`);
    if (!p.uniform && uniform) throw new NexgradError(`${what}: declares no uniform binding but the dispatch passed one`);
    if (p.uniform && uniform) {
      const need = p.uniform.uniformBytes;
      if (uniform.byteLength % 4 !== 0 || (need !== undefined && uniform.byteLength < need) || uniform.byteLength > this.limits.maxUniformBufferBindingSize) {
        throw new NexgradError(`${what}: uniform "${p.uniform.name}" (${p.uniform.type}) needs ${need ?? 'a multiple of 4'} bytes, the dispatch passed ${uniform.byteLength}`);
      }
    }
    return this.workgroupCounts(what, workgroups);
  }

  private workgroupCounts(what: string, workgroups: number | readonly [number, number, number]): [number, number, number] {
    const limit = this.limits.maxComputeWorkgroupsPerDimension;
    if (typeof workgroups === 'number') return foldWorkgroups(workgroups, limit);
    if (workgroups.length !== 3 || workgroups.some((n) => !Number.isInteger(n) || n < 0)) {
      throw new NexgradError(`${what}: workgroups must be [x, y, z] of non-negative integers, got [${workgroups.join(', ')}]`);
    }
    const over = workgroups.findIndex((n) => n > limit);
    if (over >= 0) {
      throw new NexgradError(`${what}: ${workgroups[over]} workgroups in ${'xyz'[over]} is above maxComputeWorkgroupsPerDimension (${limit}); dispatch a 1-D count to have it folded`);
    }
    return [workgroups[0], workgroups[1], workgroups[2]];
  }

  /** @internal */
  checkCopy(call: string, src: WgslBuffer, dst: WgslBuffer, bytes: number, srcOffset: number, dstOffset: number): void {
    for (const b of [src, dst]) this.expectLive(`copy in call "${call}"`, b);
    const ok = [bytes, srcOffset, dstOffset].every((n) => Number.isInteger(n) && n >= 0 && n % 4 === 0);
    if (!ok || srcOffset + bytes > src.capacity || dstOffset + bytes > dst.capacity) {
      throw new NexgradError(`wgsl copy in call "${call}": ${bytes} bytes from offset ${srcOffset} of a ${src.bytes}-byte buffer to offset ${dstOffset} of a ${dst.bytes}-byte buffer (sizes and offsets must be multiples of 4)`);
    }
    if (src.slot === dst.slot) throw new NexgradError(`wgsl copy in call "${call}": source and destination are the same buffer`);
  }

  /** @internal Encodes and submits a recorded call inside error scopes. */
  submitCall(rec: CallRecorder): void {
    this.throwPending();
    for (const c of rec.commands) {
      const bufs = c.kind === 'copy' ? [c.src, c.dst] : c.buffers;
      const kernel = c.kind === 'copy' ? 'a copy' : `kernel "${c.pipeline.name}"`;
      if (bufs.some((b) => !b.live)) throw new NexgradError(`wgsl call "${rec.name}": a buffer of ${kernel} was released before the call was submitted`);
    }
    const dispatches = rec.commands.filter((c): c is DispatchCmd => c.kind === 'dispatch');
    const kernels = [...new Set(dispatches.map((d) => d.pipeline.name))];
    this.lastCall = { name: rec.name, kernels };
    const align = this.limits.minUniformBufferOffsetAlignment;
    let uniformBytes = 0;
    for (const d of dispatches) if (d.uniform) uniformBytes = roundUp(uniformBytes, align) + d.uniform.byteLength;
    const uniforms = uniformBytes > 0 ? this.uniformStaging(uniformBytes) : null;
    const device = this.device;
    device.pushErrorScope('internal');
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder({ label: rec.name });
    let pass: GPUComputePassEncoder | null = null;
    let offset = 0;
    for (const c of rec.commands) {
      if (c.kind === 'copy') {
        pass?.end();
        pass = null;
        enc.copyBufferToBuffer(c.src.slot.gpu, c.srcOffset, c.dst.slot.gpu, c.dstOffset, c.bytes);
        continue;
      }
      let dynamicOffsets: number[] = [];
      if (c.uniform) {
        offset = roundUp(offset, align);
        uniforms!.set(c.uniform, offset);
        dynamicOffsets = [offset];
        offset += c.uniform.byteLength;
      }
      if (c.groups[0] * c.groups[1] * c.groups[2] === 0) continue;
      pass ??= enc.beginComputePass({ label: rec.name });
      pass.setPipeline(c.pipeline.gpu);
      pass.setBindGroup(0, this.bindGroup(c), dynamicOffsets);
      pass.dispatchWorkgroups(c.groups[0], c.groups[1], c.groups[2]);
    }
    pass?.end();
    if (uniforms) device.queue.writeBuffer(this.uniformBuffer!, 0, uniforms);
    device.queue.submit([enc.finish()]);
    this.watchScopes(['validation', 'out-of-memory', 'internal'], { name: rec.name, kernels });
  }

  /** A staging array for this call's uniforms; grows the device uniform buffer when needed. */
  private uniformStaging(bytes: number): Uint8Array {
    const size = roundUp(bytes, 16);
    if (!this.uniformBuffer || this.uniformBuffer.size < size) {
      // Bind groups name the uniform buffer, so the ones built on the old buffer are dropped.
      // Submitted calls keep using the old buffer until they finish (destroy waits for them).
      this.uniformBuffer?.destroy();
      this.uniformBuffer = this.device.createBuffer({ size: Math.max(65536, 2 ** Math.ceil(Math.log2(size))), usage: USAGE.UNIFORM | USAGE.COPY_DST, label: 'nexgrad uniforms' });
      this.uniformGeneration++;
      for (const [key] of this.bindGroups) if (key.includes('|u')) this.bindGroups.delete(key);
    }
    return new Uint8Array(size);
  }

  private bindGroup(c: DispatchCmd): GPUBindGroup {
    const p = c.pipeline;
    const window = c.uniform ? roundUp(Math.max(c.uniform.byteLength, p.uniform!.uniformBytes ?? 0), 4) : 0;
    const key = `${p.id}:${c.buffers.map((b) => b.slot.id).join(',')}${c.uniform ? `|u${this.uniformGeneration}:${window}` : ''}`;
    let bg = this.bindGroups.get(key);
    if (bg) return bg;
    if (this.bindGroups.size >= MAX_BIND_GROUPS) {
      this.bindGroups.clear();
      this.bindGroupsOfSlot.clear();
    }
    const entries: GPUBindGroupEntry[] = c.buffers.map((b, i) => ({ binding: p.storage[i]!.binding, resource: { buffer: b.slot.gpu } }));
    if (p.uniform) entries.push({ binding: p.uniform.binding, resource: { buffer: this.uniformBuffer!, offset: 0, size: window } });
    bg = this.device.createBindGroup({ label: p.name, layout: p.layout, entries });
    this.bindGroups.set(key, bg);
    for (const b of c.buffers) {
      let keys = this.bindGroupsOfSlot.get(b.slot.id);
      if (!keys) this.bindGroupsOfSlot.set(b.slot.id, (keys = []));
      keys.push(key);
    }
    return bg;
  }

  /** A destroyed buffer's bind groups must not be used again. */
  private forgetSlot(slot: Slot): void {
    for (const key of this.bindGroupsOfSlot.get(slot.id) ?? []) this.bindGroups.delete(key);
    this.bindGroupsOfSlot.delete(slot.id);
  }

  // ---- readback and errors -------------------------------------------------------------

  /** Reads `bytes` from byte `offset` of `buf` once every call submitted before has run. */
  async read(buf: WgslBuffer, bytes = buf.bytes, offset = 0): Promise<ArrayBuffer> {
    this.throwPending();
    this.expectLive('read', buf);
    if (!Number.isInteger(bytes) || !Number.isInteger(offset) || bytes < 0 || offset < 0 || offset + bytes > buf.bytes) {
      throw new NexgradError(`wgsl read: ${bytes} bytes at offset ${offset} are outside a ${buf.bytes}-byte buffer`);
    }
    if (bytes === 0) return new ArrayBuffer(0);
    const start = offset - (offset % 4);
    const size = roundUp(offset + bytes, 4) - start;
    const slot = this.staging.take(bucketBytes(size));
    const context = { name: 'read', kernels: this.lastCall.kernels };
    this.device.pushErrorScope('validation');
    const enc = this.device.createCommandEncoder({ label: 'nexgrad read' });
    enc.copyBufferToBuffer(buf.slot.gpu, start, slot.gpu, 0, size);
    this.device.queue.submit([enc.finish()]);
    this.watchScopes(['validation'], context);
    try {
      await slot.gpu.mapAsync(MAP_READ, 0, size);
    } catch (e) {
      await this.settle();
      this.throwPending();
      throw new WgslDeviceError(`wgsl read: mapping the staging buffer failed: ${e instanceof Error ? e.message : String(e)}`, context.kernels);
    }
    const out = slot.gpu.getMappedRange(0, size).slice(offset - start, offset - start + bytes);
    slot.gpu.unmap();
    this.staging.give(slot);
    await this.settle();
    this.throwPending();
    return out;
  }

  /** Waits for every submitted call, then throws any error the device reported for them. */
  async sync(): Promise<void> {
    this.throwPending();
    await this.device.queue.onSubmittedWorkDone();
    await this.settle();
    this.throwPending();
  }

  /** Frees every buffer and pipeline (and the device when the runtime acquired it). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.trim();
    this.uniformBuffer?.destroy();
    this.bindGroups.clear();
    this.pipelines.clear();
    this.readyPipelines.clear();
    this.modules.clear();
    if (this.opts.ownsDevice) this.device.destroy();
  }

  private async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  private watchScopes(filters: readonly GPUErrorFilter[], context: { name: string; kernels: string[] }): void {
    const pops = filters.map((f) => this.device.popErrorScope().then((e) => (e ? this.recordError(f, e.message, context) : undefined)));
    const done: Promise<void> = Promise.all(pops).then(
      () => undefined,
      (e: unknown) => this.recordError('scope', e instanceof Error ? e.message : String(e), context),
    );
    this.inflight.add(done);
    void done.finally(() => this.inflight.delete(done));
  }

  private recordError(kind: string, message: string, context: { name: string; kernels: string[] }): void {
    if (this.pendingError || this.destroyed) return;
    const kernels = context.kernels.length > 0 ? `kernel${context.kernels.length > 1 ? 's' : ''} ${context.kernels.map((k) => `"${k}"`).join(', ')}` : 'no kernels';
    this.pendingError = new WgslDeviceError(`wgsl: ${kind} error in call "${context.name}" (${kernels}): ${message.trim()}`, context.kernels);
  }

  private throwPending(): void {
    if (this.destroyed) throw new NexgradError('wgsl: the runtime was destroyed');
    if (this.lostError) throw this.lostError;
    const e = this.pendingError;
    // an invalid pipeline's call error while its module's check is still running: the module's
    // compile error (its cause) follows, and read()/sync() wait for it
    if (e && !this.pendingCompileError && this.moduleChecks > 0 && /invalid due to a previous error/.test(e.message)) return;
    if (e) {
      this.pendingError = null;
      this.pendingCompileError = false;
      throw e;
    }
  }

  private expectLive(what: string, buf: WgslBuffer): void {
    if (buf.owner !== this) throw new NexgradError(`wgsl ${what}: the buffer belongs to another runtime`);
    if (!buf.live) throw new NexgradError(`wgsl ${what}: the buffer was released`);
  }
}

function tightenLimits(device: GpuLimits, wanted: Partial<GpuLimits>): GpuLimits {
  const out: Record<string, number> = { ...device };
  for (const [name, v] of Object.entries(wanted) as [keyof GpuLimits, number][]) {
    if (!(name in device)) throw new NexgradError(`wgsl runtime: unknown limit "${name}"`);
    // alignments tighten upwards, everything else downwards
    const looser = name.startsWith('min') ? v < device[name] : v > device[name];
    if (!Number.isInteger(v) || v <= 0 || looser) throw new NexgradError(`wgsl runtime: limit ${name}=${v} is looser than the device's ${device[name]}`);
    out[name] = v;
  }
  return out as GpuLimits;
}

/** "kernel X: shader compile error at line L:C: message" plus the offending source line. */
function compileErrorMessage(name: string, source: string, errors: readonly GPUCompilationMessage[]): string {
  const lines = source.split('\n');
  const parts = errors.map((m) => {
    const text = lines[m.lineNum - 1];
    return `  line ${m.lineNum}:${m.linePos}: ${m.message}${text !== undefined ? `\n    ${text.trim()}` : ''}`;
  });
  return `wgsl kernel "${name}": shader compile error${errors.length > 1 ? 's' : ''}:\n${parts.join('\n')}`;
}
