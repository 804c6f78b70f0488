/** The backends jit can compile for, and why one is unavailable. */
import type { Device } from '../codegen/kernel/device.js';
import { cpuDevice, createCpuDevice } from '../codegen/cpu/device.js';
import { NexgradError } from '../ir/errors.js';

export type BackendName = 'cpu' | 'wgsl' | 'cuda';

type Probe = () => Device | string;

/** Each entry returns a Device, or the reason it is not available. Later backends register here. */
/** NEXGRAD_CPU_THREADS=N (or 'auto') splits CPU kernels across worker threads; default 1. */
function cpuProbe(): () => Device {
  const t = typeof process !== 'undefined' ? process.env.NEXGRAD_CPU_THREADS : undefined;
  if (!t || t === '1') return () => cpuDevice;
  const threads = t === 'auto' ? 'auto' : Number(t);
  if (threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1)) {
    throw new NexgradError(`NEXGRAD_CPU_THREADS must be a positive integer or 'auto', got ${JSON.stringify(t)}`);
  }
  let dev: Device | undefined;
  return () => (dev ??= createCpuDevice({ threads }));
}

const BACKENDS: Record<BackendName, Probe> = {
  cpu: cpuProbe(),
  wgsl: () => 'the WebGPU (WGSL) backend is not built yet in this version of nexgrad',
  cuda: () => 'the CUDA backend is not built yet in this version of nexgrad',
};

export function registerBackend(name: BackendName, probe: Probe): void {
  BACKENDS[name] = probe;
}

export function availableBackends(): BackendName[] {
  return (Object.keys(BACKENDS) as BackendName[]).filter((b) => typeof BACKENDS[b]() !== 'string');
}

export function getDevice(name: BackendName): Device {
  const probe = BACKENDS[name];
  if (!probe) throw new NexgradError(`unknown backend ${JSON.stringify(name)}; expected one of ${Object.keys(BACKENDS).join(', ')}`);
  const r = probe();
  if (typeof r === 'string') throw new NexgradError(`backend '${name}' is not available: ${r}. Available: ${availableBackends().join(', ')}`);
  return r;
}
