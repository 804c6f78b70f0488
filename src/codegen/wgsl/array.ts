/**
 * A tensor's elements on the WGSL device: one pooled storage buffer of the runtime. Reads are
 * asynchronous only (WebGPU maps buffers with mapAsync); releasing the array returns its
 * buffer to the pool.
 */
import type { DType } from '../../ir/dtype.js';
import { type ArrayDevice, asyncOnlyError, DeviceArray } from '../../ir/device_array.js';
import type { HostArray } from '../../ir/host.js';
import type { Shape } from '../../ir/shape.js';
import { fromStorage, storageBytes } from './host_data.js';
import type { WgslBuffer, WgslRuntime } from './runtime.js';

export class WgslArray extends DeviceArray {
  readonly size: number;
  constructor(
    readonly device: ArrayDevice,
    readonly dtype: DType,
    readonly shape: Shape,
    /** @internal */ readonly buffer: WgslBuffer,
    private readonly rt: WgslRuntime,
    private readonly f16: boolean,
  ) {
    super();
    this.size = shape.reduce((a, b) => a * b, 1);
  }

  get byteLength(): number {
    return this.size * storageBytes(this.dtype, this.f16);
  }

  async read(): Promise<HostArray> {
    this.checkUsable('read');
    const bytes = await this.rt.read(this.buffer, this.byteLength);
    return fromStorage(bytes, this.dtype, this.shape, this.f16);
  }

  readSync(): HostArray {
    throw asyncOnlyError('readSync', this.device);
  }

  protected freeMemory(): void {
    // a destroyed runtime has freed every buffer already
    if (this.buffer.live && !this.rt.isDestroyed) this.rt.release(this.buffer);
  }
}
