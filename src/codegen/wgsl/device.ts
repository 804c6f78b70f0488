/// <reference types="@webgpu/types" />
/**
 * The WGSL device: nexgrad's Device interface over a WgslRuntime. Arrays live in pooled GPU
 * buffers and read back asynchronously only; compile() turns a planned KernelGraph into a
 * WgslExecutable; the capabilities come from the adapter's limits, so fusion splits kernels to
 * its storage-buffer limit and refuses f64.
 */
import type { DType } from '../../ir/dtype.js';
import type { DeviceArray } from '../../ir/device_array.js';
import { NexgradError } from '../../ir/errors.js';
import type { HostArray } from '../../ir/host.js';
import type { Shape } from '../../ir/shape.js';
import type { Device, DeviceCaps, MemoryPlan } from '../kernel/device.js';
import { type KernelGraph, kernelIO, type SExpr, printSExpr } from '../kernel/kernel_graph.js';
import type { GpuTarget } from '../lower/gpu/kernel_code.js';
import { rewriteKernel } from '../lower/kernel_rewrite.js';
import { WgslArray } from './array.js';
import { createWgslDialect, WGSL_NATIVE } from './dialect.js';
import { WgslExecutable, type WgslContext } from './executable.js';
import { storageBytes, toStorage } from './host_data.js';
import type { WgslRuntime } from './runtime.js';

export interface WgslDevice extends Device {
  readonly runtime: WgslRuntime;
  /** Kernels are shaped for a CPU-emulated adapter (see GpuTarget.emulated). */
  readonly emulated: boolean;
  /** Whether f16 buffers hold f16 (the adapter has shader-f16). */
  readonly f16: boolean;
}

/** What fusion and the lowering must respect on this adapter. */
export function wgslCaps(rt: WgslRuntime, f16: boolean): DeviceCaps {
  const l = rt.limits;
  return Object.freeze({
    // every binding a generated kernel declares is a graph buffer, except an argsort's two
    // scratch buffers (a sort binds four in all): nothing needs reserving
    maxStorageBuffers: l.maxStorageBuffersPerShaderStage,
    dtypes: new Set<DType>(['f32', 'f16', 'bf16', 'i32', 'u32', 'bool']),
    elementBytes: { f32: 4, f64: 8, f16: f16 ? 2 : 4, bf16: 4, i32: 4, u32: 4, bool: 4 },
    maxWorkgroupSize: Math.min(l.maxComputeInvocationsPerWorkgroup, l.maxComputeWorkgroupSizeX),
    maxSharedMemoryBytes: l.maxComputeWorkgroupStorageSize,
    maxBufferBytes: Math.min(l.maxBufferSize, l.maxStorageBufferBindingSize),
    recomputeCostLimit: 6,
    // LayerNorm statistics computed by the GEMM that normalises its rows (the shared GPU GEMM's
    // row-statistics pre-pass); reducing epilogues stay off: the GPU GEMM serialises an image's
    // rows within one workgroup for them, which pays only at large batches
    prologueStats: true,
  });
}

/** The first f64 value a graph computes or stores, described with the kernel that does. */
export function findF64(g: KernelGraph): string | undefined {
  for (const [i, buf] of g.inputs.entries()) if (g.buffers[buf]?.dtype === 'f64') return `input ${i} of the program`;
  for (const k of g.kernels) {
    let found: SExpr | undefined;
    rewriteKernel(k, (e) => {
      if (!found && e.dtype === 'f64') found = e;
      return e;
    });
    if (found) return `kernel ${k.name} (${printSExpr(found).slice(0, 160)})`;
    const { reads, writes } = kernelIO(k);
    const bad = [...reads, ...writes].find((b) => g.buffers[b]?.dtype === 'f64');
    if (bad !== undefined) return `kernel ${k.name} (buffer ${bad})`;
  }
  for (const o of g.outputs) if (o.dtype === 'f64') return 'an output of the program';
  return undefined;
}

/** Adapters that emulate a GPU on the CPU, by the name their driver reports. */
const EMULATED_ADAPTER = /swiftshader|llvmpipe|lavapipe|microsoft basic render|\bwarp\b/i;

export interface WgslDeviceOptions {
  /** Emit for a CPU-emulated adapter (default: from the adapter's name, see GpuTarget.emulated). */
  readonly emulated?: boolean;
}

export function createWgslDevice(rt: WgslRuntime, features: ReadonlySet<string>, opts: WgslDeviceOptions = {}): WgslDevice {
  const f16 = features.has('shader-f16');
  const caps = wgslCaps(rt, f16);
  const emulated = opts.emulated ?? EMULATED_ADAPTER.test(rt.adapterInfo);
  const target: GpuTarget = {
    dialect: createWgslDialect({ f16 }),
    native: WGSL_NATIVE,
    maxWorkgroupSize: caps.maxWorkgroupSize,
    maxSharedBytes: caps.maxSharedMemoryBytes,
    emulated,
  };
  const own = (a: DeviceArray, what: string): WgslArray => {
    if (!(a instanceof WgslArray) || a.device !== device) throw new NexgradError(`wgsl ${what}: the array lives on the '${a.device.name}' device, not on this WGSL device`);
    return a;
  };
  const alloc = (dtype: DType, shape: Shape): WgslArray => new WgslArray(device, dtype, [...shape], rt.alloc(shape.reduce((p, s) => p * s, 1) * storageBytes(dtype, f16)), rt, f16);
  const upload = (host: HostArray): WgslArray => {
    if (host.dtype === 'f64') throw new NexgradError(`wgsl: cannot put an f64[${host.shape.join(',')}] array on the WGSL device (WGSL has no f64); cast it to f32 first`);
    const a = alloc(host.dtype, host.shape);
    rt.upload(a.buffer, toStorage(host, f16));
    return a;
  };
  const l = rt.limits;
  const device: WgslDevice = {
    name: 'wgsl',
    syncRead: false,
    id: `wgsl:${rt.adapterInfo}:f16=${f16}:sb${l.maxStorageBuffersPerShaderStage}:wg${caps.maxWorkgroupSize}:sh${caps.maxSharedMemoryBytes}${emulated ? ':emulated' : ''}`,
    caps,
    runtime: rt,
    f16,
    emulated,
    alloc: (dtype, shape) => {
      const a = alloc(dtype, shape);
      if (a.buffer.bytes > 0) rt.upload(a.buffer, new Uint8Array(Math.ceil(a.buffer.bytes / 4) * 4).subarray(0, a.buffer.bytes));
      return a;
    },
    upload,
    read: (a) => own(a, 'read').read(),
    free: (a) => own(a, 'free').release(),
    copy: (a) => {
      const src = own(a, 'copy');
      const dst = alloc(src.dtype, src.shape);
      const bytes = Math.ceil(src.byteLength / 4) * 4;
      if (bytes > 0) rt.beginCall('copy').copy(src.buffer, dst.buffer, bytes).submit();
      return dst;
    },
    sync: () => rt.sync(),
    compile(graph: KernelGraph, plan: MemoryPlan) {
      const f64 = findF64(graph);
      if (f64) throw new NexgradError(`wgsl: ${f64} is f64, which WGSL does not have; compute in f32 (cast f64 inputs and constants) to run on the 'wgsl' backend`);
      const ctx: WgslContext = { rt, device, f16, target };
      return new WgslExecutable(graph, plan, ctx);
    },
  };
  return device;
}
