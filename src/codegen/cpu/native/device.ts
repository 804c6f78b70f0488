/**
 * The native CPU device: kernel graphs compiled to C (emit_c.ts, gemm_c.ts), built with the
 * system compiler into shared objects (toolchain.ts, cached on disk) and run through the addon
 * (addon.ts) with its thread pool. Arrays are host typed arrays, as on the JavaScript device.
 */
import { HostArray } from '../../../ir/host.js';
import type { DeviceArray } from '../../../ir/device_array.js';
import { type Device, CPU_CAPS } from '../../kernel/device.js';
import { type CpuAddon, cpuAddon } from './addon.js';
import { NativeExecutable } from './executable.js';
import { type Toolchain, toolchain } from './toolchain.js';

export interface NativeSupport {
  readonly tc: Toolchain;
  readonly addon: CpuAddon;
}

/** The compiler and the addon, or why the native path cannot run here. */
export function nativeSupport(): NativeSupport | string {
  const tc = toolchain();
  if (typeof tc === 'string') return tc;
  const addon = cpuAddon(tc);
  if (typeof addon === 'string') return addon;
  return { tc, addon };
}

export interface NativeDeviceOptions {
  readonly threads: number;
  readonly profile?: boolean;
}

export function createNativeCpuDevice(support: NativeSupport, opts: NativeDeviceOptions): Device {
  const threads = Math.max(1, Math.floor(opts.threads));
  const own = (a: DeviceArray): HostArray => {
    if (!(a instanceof HostArray)) throw new Error(`cpu: an array of the '${a.device.name}' device is not a host array`);
    return a;
  };
  return {
    name: 'cpu',
    syncRead: true,
    id: `cpu:native-${support.tc.isa}:${threads}thread${threads > 1 ? 's' : ''}`,
    caps: CPU_CAPS,
    alloc: (dtype, shape) => HostArray.zeros(dtype, shape),
    upload: (host) => host,
    read: (a) => Promise.resolve(own(a)),
    free: () => {},
    copy: (a) => {
      const h = own(a);
      return new HostArray(h.dtype, [...h.shape], h.data.slice());
    },
    sync: () => Promise.resolve(),
    compile: (graph, plan) => new NativeExecutable(graph, plan, support.addon, support.tc, threads, opts.profile ?? false),
  };
}
