/**
 * The CPU device: compiles a planned KernelGraph into JavaScript functions (plus WebAssembly SIMD
 * GEMM micro-kernels) and runs them over typed arrays.
 *
 * Storage: inputs are the caller's arrays; consts the graph's values; temporaries live in arena
 * storages (one ArrayBuffer per MemoryPlan storage, allocated on the first run, with every
 * buffer's typed-array view created then and cached); outputs aliasing a donated input reuse
 * its array; other outputs get a fresh typed array per call. After the first call a run
 * allocates nothing but its fresh outputs (host kernels, which call the reference
 * implementation, allocate their own temporaries: reported separately as hostTempBytes).
 */
import { castScalar, type DType, type HostData } from '../../ir/dtype.js';
import { HostArray } from '../../ir/host.js';
import { erf } from '../../ir/hostmath.js';
import { roundBf16, roundF16 } from '../../ir/dtype.js';
import { PRIMS } from '../../ir/primitives/index.js';
import type { PrimName } from '../../ir/primitive.js';
import { sizeOf } from '../../ir/shape.js';
import type { Device, Executable, MemoryPlan, RunStats } from '../device.js';
import type { HostKernel, KernelGraph } from '../kernel.js';
import { bufferDtypes, emitKernel, type EmitOptions, type JsKernelCode, type KernelCode } from './emit.js';
import { fastErf } from './math.js';
import { type GemmFn, instantiateDwRow, instantiateGemm, instantiateWgRow, makeMemory, type WasmMemory } from './wasm.js';

/** Round half to even, as the host's `round`. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The helpers generated code receives as `H` (erf: see math.ts; EXACT_HELPERS uses the host's). */
export const HELPERS = Object.freeze({ erf: fastErf, roundF16, roundBf16, roundEven });
export const EXACT_HELPERS = Object.freeze({ erf, roundF16, roundBf16, roundEven });

type TypedCtor = Float32ArrayConstructor | Float64ArrayConstructor | Int32ArrayConstructor | Uint32ArrayConstructor | Uint8ArrayConstructor;

export function typedCtor(d: DType): TypedCtor {
  switch (d) {
    case 'f32':
    case 'f16':
    case 'bf16':
      return Float32Array;
    case 'f64':
      return Float64Array;
    case 'i32':
      return Int32Array;
    case 'u32':
      return Uint32Array;
    case 'bool':
      return Uint8Array;
  }
}

/** Bytes per element of the host storage of a dtype. */
export const hostBytes = (d: DType): number => typedCtor(d).BYTES_PER_ELEMENT;

type KernelFn = (start: number, end: number, ...args: unknown[]) => void;

export interface CpuDeviceOptions extends EmitOptions {
  /** Use the host's erf (series; ~3x slower) instead of the table-driven one (agrees to ~4e-15). */
  readonly exactErf?: boolean;
  /** Record per-kernel wall time (ms) in `Executable.kernelTimes`. */
  readonly profile?: boolean;
}

export interface CpuRunStats extends RunStats {
  /** Temporaries allocated by host kernels (reference implementations) during the call. */
  readonly hostTempBytes: number;
}

export interface CpuExecutable extends Executable {
  readonly lastRun: CpuRunStats;
  /** Accumulated milliseconds per kernel (when compiled with profile: true). */
  readonly kernelTimes: Float64Array | null;
  readonly kernelNames: readonly string[];
}

/** Builds the kernel function from generated source. */
export function instantiateKernel(code: JsKernelCode, helpers: typeof HELPERS = HELPERS): KernelFn {
  const make = new Function('H', 'T', code.source) as (h: typeof HELPERS, t: readonly unknown[]) => KernelFn;
  return make(helpers, code.tables);
}

interface Step {
  readonly run: () => void;
}

function hostData(a: HostArray, d: DType): HostData {
  const C = typedCtor(d);
  return a.data instanceof C ? a.data : C.from(a.data as ArrayLike<number>);
}

class CpuExecutableImpl implements CpuExecutable {
  readonly kernelCount: number;
  readonly sources: readonly string[];
  readonly kernelNames: readonly string[];
  kernelTimes: Float64Array | null;
  lastRun: CpuRunStats = { allocatedBytes: 0, hostTempBytes: 0 };

  private readonly B: (HostData | null)[];
  private readonly dtypes: Map<number, DType>;
  private readonly sizes: Map<number, number>;
  private readonly codes: KernelCode[];
  private readonly fns: (KernelFn | null)[];
  private readonly args: unknown[][] = [];
  private steps: Step[] = [];
  private initialized = false;
  private hostTemp = 0;

  constructor(
    private readonly graph: KernelGraph,
    private readonly plan: MemoryPlan,
    private readonly opts: CpuDeviceOptions,
  ) {
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
    for (const c of graph.consts) {
      const d = this.dtypes.get(c.buf);
      if (!d) throw new Error(`cpu: const for unknown buffer ${c.buf}`);
      this.B[c.buf] = hostData(c.value, d);
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
      const sz = Math.ceil(n / 8) * 8;
      bytes += sz;
      return new ArrayBuffer(sz);
    });
    const inputSet = new Set(graph.inputs);
    const constSet = new Set(graph.consts.map((c) => c.buf));
    for (const b of graph.buffers) {
      const s = plan.storageOf[b.id] ?? -1;
      const C = typedCtor(b.dtype);
      if (s >= 0) {
        this.B[b.id] = new C(storages[s]!, 0, b.size);
      } else if (!inputSet.has(b.id) && !constSet.has(b.id) && !plan.outputAliases.has(b.id) && !this.isFreshOutput(b.id)) {
        // a buffer the plan did not place: private storage
        this.B[b.id] = new C(b.size);
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
    if (wasmBytes > 0) {
      mem = makeMemory(wasmBytes);
      bytes += mem.buffer.byteLength;
    }
    const wasmFn = (c: JsKernelCode): unknown => {
      if (!c.wasm || !mem) return undefined;
      if (c.wasm.kind === 'gemm_f32') return (gemm ??= instantiateGemm(mem));
      if (c.wasm.kind === 'dwrow') return instantiateDwRow(mem, c.wasm.cfg);
      return instantiateWgRow(mem, c.wasm.cfg);
    };
    // steps
    this.steps = this.codes.map((c, ki) => {
      if (c.kind === 'host') return { run: () => this.runHost(c.kernel) };
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
      const extra = [...scratch, ...(c.wasm ? [wasmFn(c)] : [])];
      const args = new Array<unknown>(2 + bufIds.length + extra.length);
      args[0] = 0;
      args[1] = total;
      extra.forEach((e, i) => (args[2 + bufIds.length + i] = e));
      this.args.push(args);
      if (total === 0) return { run: () => {} };
      const nb = bufIds.length;
      return {
        run: () => {
          for (let i = 0; i < nb; i++) args[2 + i] = B[bufIds[i]!];
          fn.apply(null, args as [number, number, ...unknown[]]);
        },
      };
    });
    this.initialized = true;
    return bytes;
  }

  private isFreshOutput(buf: number): boolean {
    return this.graph.outputs.some((o) => o.kind === 'buffer' && o.buf === buf);
  }

  private runHost(k: HostKernel): void {
    const prim = PRIMS[k.prim as PrimName] as unknown as { impl: (i: HostArray[], p: unknown, c: { wide: boolean }) => HostArray[] };
    const ins = k.inputs.map((i) => {
      const data = this.B[i.buf];
      if (!data) throw new Error(`cpu: host kernel ${k.name} reads unbound buffer ${i.buf}`);
      const n = sizeOf(i.shape);
      return new HostArray(i.dtype, [...i.shape], data.length === n ? data : data.subarray(0, n));
    });
    const res = prim.impl(ins, k.params, { wide: false });
    k.outputs.forEach((o, j) => {
      const dst = this.B[o.buf];
      const r = res[j];
      if (!dst || !r) throw new Error(`cpu: host kernel ${k.name}: missing output ${j}`);
      this.hostTemp += r.data.byteLength;
      if (dst.length === r.data.length) (dst as Float64Array).set(r.data as ArrayLike<number>);
      else for (let i = 0; i < r.data.length; i++) dst[i] = r.data[i]!;
    });
  }

  run(inputs: readonly HostArray[]): HostArray[] {
    const { graph, plan } = this;
    if (inputs.length !== graph.inputs.length) throw new Error(`cpu: expected ${graph.inputs.length} inputs, got ${inputs.length}`);
    let allocated = 0;
    this.hostTemp = 0;
    if (!this.initialized) allocated += this.init();
    const B = this.B;
    // bind inputs
    graph.inputs.forEach((buf, i) => {
      const a = inputs[i]!;
      const d = this.dtypeOf(buf);
      const n = this.sizes.get(buf)!;
      if (a.data.length !== n) throw new Error(`cpu: input ${i} has ${a.data.length} elements, expected ${n} (${d})`);
      const data = hostData(a, d);
      if (data !== a.data) allocated += data.byteLength;
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
        const C = typedCtor(this.dtypeOf(o.buf));
        if (!fresh.has(B[o.buf] as HostData)) {
          const arr = new C(this.sizes.get(o.buf)!);
          allocated += arr.byteLength;
          B[o.buf] = arr;
          fresh.add(arr);
        }
      }
    }
    // run
    const times = this.kernelTimes;
    if (times) {
      for (let i = 0; i < this.steps.length; i++) {
        const t0 = performance.now();
        this.steps[i]!.run();
        times[i]! += performance.now() - t0;
      }
    } else {
      for (const s of this.steps) s.run();
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
      const donated = plan.outputAliases.has(o.buf);
      const own = fresh.has(data) || donated;
      if (!own || returned.has(data) || (!donated && inputArrays.has(data)) || data.length !== n) {
        const C = typedCtor(o.dtype);
        const copy = new C(n);
        copy.set(data.length === n ? (data as ArrayLike<number> as Float64Array) : (data.subarray(0, n) as Float64Array));
        allocated += copy.byteLength;
        data = copy;
      }
      returned.add(data);
      return new HostArray(o.dtype, [...o.shape], data);
    });
    this.lastRun = { allocatedBytes: allocated, hostTempBytes: this.hostTemp };
    return results;
  }
}

/** A CPU device with options (WebAssembly SIMD GEMM on by default, profiling off). */
export function createCpuDevice(opts: CpuDeviceOptions = {}): Device {
  const wasm = opts.wasm ?? true;
  return {
    name: 'cpu',
    id: `cpu:js${wasm ? '+wasm-simd' : ''}${opts.exactErf ? ':exact-erf' : ''}:1thread`,
    compile(graph: KernelGraph, plan: MemoryPlan): CpuExecutable {
      return new CpuExecutableImpl(graph, plan, opts);
    },
  };
}

export const cpuDevice: Device = createCpuDevice();
