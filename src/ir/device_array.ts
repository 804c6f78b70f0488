/**
 * Where a tensor's elements live: a DeviceArray is one buffer on one device. The CPU's kind is
 * the HostArray (./host.ts); GPU backends (src/codegen/<backend>) implement their own. The IR
 * layer knows devices only through this file: a name, whether they read back synchronously,
 * and how to put host data on them (the resolver the backend registry installs from above).
 *
 * Ownership: every Tensor holding an array retains it; the array's device memory is released
 * when the last holder is disposed or garbage-collected (the Tensor's FinalizationRegistry).
 * Donation moves the memory to a jitted function's output: the donated array (and every Tensor
 * that aliases it) becomes unusable, and releasing it frees nothing.
 */
import type { DType } from './dtype.js';
import { NexgradError } from './errors.js';
import type { Shape } from './shape.js';
import type { HostArray } from './host.js';

/** What the IR needs to know about a device. */
export interface ArrayDevice {
  /** The backend name: 'cpu', 'wgsl', 'cuda', or a registered one. */
  readonly name: string;
  /** Whether arrays on it can be read synchronously (`t.dataSync()`). */
  readonly syncRead: boolean;
}

/** A device the runtime can put host data on (Tensor.to, devicePut, eager dispatch). */
export interface RuntimeDevice extends ArrayDevice {
  /** A copy of `host` on this device (for the CPU: the host array itself). */
  upload(host: HostArray): DeviceArray;
}

interface Accounting {
  bytes: number;
  arrays: number;
}

const accounts = new Map<string, Accounting>();

function account(device: string): Accounting {
  let a = accounts.get(device);
  if (!a) {
    a = { bytes: 0, arrays: 0 };
    accounts.set(device, a);
  }
  return a;
}

/** Bytes and arrays held by live tensors on a device (for leak tests and reports). */
export function liveMemory(device: string): { bytes: number; arrays: number } {
  const a = accounts.get(device);
  return { bytes: a?.bytes ?? 0, arrays: a?.arrays ?? 0 };
}

export abstract class DeviceArray {
  abstract readonly device: ArrayDevice;
  abstract readonly dtype: DType;
  abstract readonly shape: Shape;
  /** Elements. */
  abstract readonly size: number;
  /** Bytes of device memory the array occupies. */
  abstract readonly byteLength: number;
  /** A host copy of the elements; every device supports it. */
  abstract read(): Promise<HostArray>;
  /** The elements on the host now; throws on devices without synchronous reads. */
  abstract readSync(): HostArray;
  /** Frees the device memory (called once, when the last holder lets go). */
  protected abstract freeMemory(): void;

  private refs = 0;
  private state: 'live' | 'donated' | 'freed' = 'live';

  get donated(): boolean {
    return this.state === 'donated';
  }
  get freed(): boolean {
    return this.state === 'freed';
  }

  /** @internal a Tensor starts holding this array. */
  retain(): void {
    if (this.refs++ === 0 && this.state === 'live') {
      const a = account(this.device.name);
      a.bytes += this.byteLength;
      a.arrays++;
    }
  }

  /** @internal a Tensor stops holding this array; the last one frees it. */
  release(): void {
    if (this.refs <= 0) return;
    if (--this.refs > 0 || this.state !== 'live') return;
    const a = account(this.device.name);
    a.bytes -= this.byteLength;
    a.arrays--;
    this.state = 'freed';
    this.freeMemory();
  }

  /** @internal the memory now belongs to a jitted function's output. */
  markDonated(): void {
    if (this.state !== 'live') return;
    if (this.refs > 0) {
      const a = account(this.device.name);
      a.bytes -= this.byteLength;
      a.arrays--;
    }
    this.state = 'donated';
  }

  /** Throws unless the array can be used (not donated, not freed). */
  checkUsable(what: string): void {
    if (this.state === 'donated') {
      throw new NexgradError(
        `${what}: this tensor ${this.dtype}[${this.shape.join(',')}] was donated to a jitted function and its buffer reused; use the function's result instead`,
      );
    }
    if (this.state === 'freed') {
      throw new NexgradError(`${what}: this tensor ${this.dtype}[${this.shape.join(',')}] was disposed`);
    }
  }
}

/** The error for a synchronous read on a device that only reads asynchronously. */
export function asyncOnlyError(what: string, device: ArrayDevice): NexgradError {
  return new NexgradError(`${what}: this tensor lives on the '${device.name}' device, which reads back asynchronously; use \`await t.data()\` (or \`await ng.devicePutAsync(t, 'cpu')\`)`);
}

// ---------------------------------------------------------------------------------------
// the device registry seen from the IR (installed by src/passes/backends.ts)

let resolver: ((name: string) => RuntimeDevice) | undefined;
let defaultBackend = 'cpu';

/** @internal installed by the backend registry: the runtime device of a backend name. */
export function setDeviceResolver(r: (name: string) => RuntimeDevice): void {
  resolver = r;
}

export function resolveDevice(name: string): RuntimeDevice {
  if (!resolver) throw new NexgradError(`no backend registry is installed; import nexgrad's public entry point to use '${name}'`);
  return resolver(name);
}

/** The backend new tensors and host-only eager operations go to. */
export function getDefaultBackend(): string {
  return defaultBackend;
}

/** @internal use ng.setDefaultBackend (it checks the backend is available). */
export function setDefaultBackendName(name: string): void {
  defaultBackend = name;
}
