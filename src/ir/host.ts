/** A dense host array: dtype, shape and a row-major typed array; the CPU's kind of DeviceArray. */
import { allocHost, castScalar, type DType, type HostData } from './dtype.js';
import { type ArrayDevice, DeviceArray } from './device_array.js';
import { sizeOf, type Shape } from './shape.js';

/** The host: arrays on it read synchronously. */
export const HOST_DEVICE: ArrayDevice = Object.freeze({ name: 'cpu', syncRead: true });

export class HostArray extends DeviceArray {
  constructor(
    readonly dtype: DType,
    readonly shape: Shape,
    readonly data: HostData,
  ) {
    super();
    if (data.length !== sizeOf(shape)) {
      throw new Error(`HostArray: data length ${data.length} does not match shape [${shape.join(',')}]`);
    }
  }

  get device(): ArrayDevice {
    return HOST_DEVICE;
  }

  get size(): number {
    return this.data.length;
  }

  get byteLength(): number {
    return this.data.byteLength;
  }

  read(): Promise<HostArray> {
    return Promise.resolve(this);
  }

  readSync(): HostArray {
    return this;
  }

  /** Host memory belongs to the garbage collector. */
  protected freeMemory(): void {}

  static zeros(dtype: DType, shape: Shape, wide = false): HostArray {
    return new HostArray(dtype, [...shape], allocHost(dtype, sizeOf(shape), wide));
  }

  static scalar(value: number, dtype: DType): HostArray {
    const a = HostArray.zeros(dtype, []);
    a.data[0] = castScalar(value, dtype);
    return a;
  }

  /** True when floats are stored in float64 (reference mode) although dtype is narrower. */
  get wide(): boolean {
    return this.data instanceof Float64Array && this.dtype !== 'f64';
  }
}

/** Rounds every element of a float array in place to its dtype's precision. */
export function roundInPlace(a: HostArray): HostArray {
  if (a.wide || a.dtype === 'f64' || a.dtype === 'f32') return a; // typed array already rounds f32
  const d = a.data;
  for (let i = 0; i < d.length; i++) d[i] = castScalar(d[i]!, a.dtype);
  return a;
}

/**
 * How many times an executable has written into arrays its caller passed (donated inputs are
 * updated in place). Host arrays are otherwise never written after they are made (`tensor`
 * copies its input, `dataSync` returns a copy), so a cache keyed by a HostArray's identity
 * (the WebAssembly GEMM's packed weights, codegen/cpu/device.ts) is current while this count
 * is unchanged.
 */
let inPlaceWrites = 0;
export function noteInPlaceWrite(): void {
  inPlaceWrites++;
}
export function inPlaceWriteCount(): number {
  return inPlaceWrites;
}
