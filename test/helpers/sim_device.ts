/**
 * A simulated accelerator for runtime tests: its arrays live in "device memory" the host cannot
 * read synchronously (like WebGPU), every host<->device copy is counted, and kernels run on the
 * CPU backend underneath. It checks the runtime contract (device-resident tensors, async reads,
 * no hidden round trips) on machines without a GPU.
 */
import { UNLIMITED_CAPS, type Device, type Executable } from '../../src/codegen/kernel/device.js';
import { cpuDevice } from '../../src/codegen/cpu/device.js';
import { asyncOnlyError, type ArrayDevice, DeviceArray } from '../../src/ir/device_array.js';
import { HostArray } from '../../src/ir/host.js';
import type { DType } from '../../src/ir/dtype.js';
import type { Shape } from '../../src/ir/shape.js';

export interface SimCounters {
  uploads: number;
  reads: number;
  allocs: number;
  frees: number;
  runs: number;
}

const copyHost = (h: HostArray): HostArray => new HostArray(h.dtype, [...h.shape], h.data.slice());

export function createSimDevice(name = 'sim'): { device: Device; counters: SimCounters } {
  const counters: SimCounters = { uploads: 0, reads: 0, allocs: 0, frees: 0, runs: 0 };
  const info: ArrayDevice = { name, syncRead: false };

  class SimArray extends DeviceArray {
    constructor(readonly inner: HostArray) {
      super();
      counters.allocs++;
    }
    get device(): ArrayDevice {
      return info;
    }
    get dtype(): DType {
      return this.inner.dtype;
    }
    get shape(): Shape {
      return this.inner.shape;
    }
    get size(): number {
      return this.inner.size;
    }
    get byteLength(): number {
      return this.inner.byteLength;
    }
    read(): Promise<HostArray> {
      counters.reads++;
      return Promise.resolve(copyHost(this.inner));
    }
    readSync(): HostArray {
      throw asyncOnlyError('readSync', info);
    }
    protected freeMemory(): void {
      counters.frees++;
    }
  }

  const inner = (a: DeviceArray): HostArray => {
    if (!(a instanceof SimArray)) throw new Error(`${name}: an array of the '${a.device.name}' device was passed to it`);
    return a.inner;
  };

  const device: Device = {
    name,
    syncRead: false,
    id: `${name}:1`,
    caps: UNLIMITED_CAPS,
    alloc: (dtype, shape) => new SimArray(HostArray.zeros(dtype, shape)),
    upload: (h) => {
      counters.uploads++;
      return new SimArray(copyHost(h));
    },
    read: (a) => a.read(),
    free: (a) => a.release(),
    copy: (a) => new SimArray(copyHost(inner(a))),
    sync: () => Promise.resolve(),
    compile(graph, plan): Executable {
      const exec = cpuDevice.compile(graph, plan);
      return {
        run: (inputs) => {
          counters.runs++;
          return exec.run(inputs.map(inner)).map((h) => new SimArray(h as HostArray));
        },
        get lastRun() {
          return exec.lastRun;
        },
        kernelCount: exec.kernelCount,
        sources: exec.sources,
      };
    },
  };
  return { device, counters };
}
