/**
 * The backend registry: which devices jit and the eager runtime can use, why one is not
 * available, the default backend, and moving tensors between devices.
 */
import type { Device } from '../codegen/kernel/device.js';
import { cpuDevice, envThreads } from '../codegen/cpu/device.js';
import { createCudaDevice } from '../codegen/cuda/device.js';
import { cudaUnavailableMessage } from '../codegen/cuda/native.js';
import { CudaRuntime } from '../codegen/cuda/runtime.js';
import { createWgslDevice } from '../codegen/wgsl/device.js';
import { acquireGpu } from '../codegen/wgsl/gpu.js';
import { WgslRuntime } from '../codegen/wgsl/runtime.js';
import { getDefaultBackend as defaultName, setDefaultBackendName, setDeviceResolver } from '../ir/device_array.js';
import { NexgradError } from '../ir/errors.js';
import { treeFlatten, treeUnflatten } from '../ir/pytree.js';
import { Tensor } from '../ir/tensor.js';

export type BackendName = 'cpu' | 'wgsl' | 'cuda' | (string & {});

export interface BackendEntry {
  /** The device, or the reason it is not available (e.g. "no CUDA driver"). */
  readonly probe: () => Device | string;
  /** Asynchronous set-up (requesting a GPU adapter); `probe` reflects its outcome afterwards. */
  readonly init?: () => Promise<void>;
}

/**
 * The CPU device (cpuDeviceFor: the native C dialect where it builds, else WebAssembly), with
 * NEXGRAD_CPU_THREADS=N (or 'auto') threads. The variable is checked when the CPU device is
 * first needed, so a bad value is an error there, not at import.
 */
function cpuEntry(): BackendEntry {
  let dev: Device | undefined;
  return {
    probe: () => {
      if (dev) return dev;
      envThreads(); // checks the variable here, where the device is first needed
      // cpuDevice reads NEXGRAD_CPU_THREADS itself; a device made here with createCpuDevice
      // would be the WebAssembly path whatever NEXGRAD_CPU says.
      return (dev = cpuDevice);
    },
  };
}

/**
 * The WebGPU backend: `init` acquires a GPU once (navigator.gpu in browsers, Dawn in Node);
 * until then, or when that failed, `probe` gives the reason (no navigator.gpu, no Vulkan
 * driver, adapter request failed ...).
 */
function wgslEntry(): BackendEntry {
  let dev: Device | undefined;
  let reason = "the WebGPU device is acquired asynchronously: call `await ng.init('wgsl')` first";
  let pending: Promise<void> | undefined;
  return {
    probe: () => dev ?? reason,
    init: () =>
      (pending ??= (async () => {
        try {
          const gpu = await acquireGpu();
          dev = createWgslDevice(new WgslRuntime(gpu.device, { ownsDevice: true, adapterInfo: gpu.adapterInfo }), gpu.features);
        } catch (e) {
          reason = e instanceof Error ? e.message.replace(/^wgsl: /, '') : String(e);
        }
      })()),
  };
}

/**
 * The CUDA device, opened on first use (a CUDA context is created then): the reason it is not
 * available otherwise ("CUDA unavailable: no CUDA driver: ..."). NEXGRAD_CUDA_TF32=1 runs f32
 * matmuls and convolutions on tensor cores as tf32; NEXGRAD_CUDA_GRAPHS=0 launches every call
 * directly instead of replaying a CUDA graph.
 */
function cudaEntry(): BackendEntry {
  let state: Device | string | undefined;
  const open = (): Device | string => {
    if (state !== undefined) return state;
    const why = cudaUnavailableMessage();
    if (why !== undefined) return (state = why);
    const env = typeof process !== 'undefined' ? process.env : {};
    try {
      state = createCudaDevice(CudaRuntime.open(), { tf32: env.NEXGRAD_CUDA_TF32 === '1', graphs: env.NEXGRAD_CUDA_GRAPHS !== '0' });
    } catch (e) {
      state = e instanceof Error ? e.message : String(e);
    }
    return state;
  };
  return { probe: open, init: async () => void open() };
}

const BACKENDS = new Map<string, BackendEntry>([
  ['cpu', cpuEntry()],
  ['wgsl', wgslEntry()],
  ['cuda', cudaEntry()],
]);

/** Adds or replaces a backend (later backends, and test devices, register here). */
export function registerBackend(name: BackendName, entry: BackendEntry | (() => Device | string)): void {
  BACKENDS.set(name, typeof entry === 'function' ? { probe: entry } : entry);
}

/** The backends whose device is available now (after `await ng.init()` for asynchronous ones). */
export function availableBackends(): BackendName[] {
  return [...BACKENDS.keys()].filter((b) => typeof BACKENDS.get(b)!.probe() !== 'string');
}

/** Why each unavailable backend is unavailable. */
export function unavailableReasons(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, e] of BACKENDS) {
    const r = e.probe();
    if (typeof r === 'string') out[name] = r;
  }
  return out;
}

/**
 * Sets up the asynchronous backends (a GPU adapter, a CUDA context) among `names` (default:
 * all) and returns the available backends afterwards. A backend that fails to set up stays
 * unavailable with its reason; init never throws for it.
 */
export async function init(...names: BackendName[]): Promise<BackendName[]> {
  const which = names.length ? names : [...BACKENDS.keys()];
  for (const n of which) {
    const e = BACKENDS.get(n);
    if (!e) throw new NexgradError(`init: unknown backend ${JSON.stringify(n)}; expected one of ${[...BACKENDS.keys()].join(', ')}`);
    if (e.init) await e.init();
  }
  return availableBackends();
}

export function getDevice(name: BackendName): Device {
  const entry = BACKENDS.get(name);
  if (!entry) throw new NexgradError(`unknown backend ${JSON.stringify(name)}; expected one of ${[...BACKENDS.keys()].join(', ')}`);
  const r = entry.probe();
  if (typeof r === 'string') throw new NexgradError(`backend '${name}' is not available: ${r}. Available: ${availableBackends().join(', ')}`);
  return r;
}

setDeviceResolver(getDevice);

/** Where new tensors go and where operations without operands run. */
export function setDefaultBackend(name: BackendName): void {
  getDevice(name); // throws, naming the reason, when unavailable
  setDefaultBackendName(name);
}

export function getDefaultBackend(): BackendName {
  return defaultName();
}

/**
 * The tensors of `tree` on `backend` (tensors already there are returned as they are). From a
 * device that only reads back asynchronously, use devicePutAsync.
 */
export function devicePut<T>(tree: T, backend: BackendName): T {
  getDevice(backend);
  const { leaves, def } = treeFlatten(tree, 'devicePut');
  return treeUnflatten<T>(def, leaves.map((t) => t.to(backend)));
}

/** devicePut from any device, reading back asynchronously where it must. */
export async function devicePutAsync<T>(tree: T, backend: BackendName): Promise<T> {
  const device = getDevice(backend);
  const { leaves, def } = treeFlatten(tree, 'devicePutAsync');
  const moved = await Promise.all(
    leaves.map(async (t) => {
      const a = t._array!;
      if (a.device.name === backend) return t;
      return Tensor._wrap(device.upload(await a.read()));
    }),
  );
  return treeUnflatten<T>(def, moved);
}
