/**
 * The Tensor: an array on a device (a HostArray on the CPU, a buffer on a GPU), or a tracer (a
 * variable of an active trace). Both have the same methods; each method is a thin wrapper over
 * the functional ops in ops.ts. A concrete tensor holds its DeviceArray until it is disposed or
 * garbage-collected (see device_array.ts for ownership and donation).
 */
import type { DType, HostData } from './dtype.js';
import { asyncOnlyError, type DeviceArray, resolveDevice } from './device_array.js';
import { NexgradError } from './errors.js';
import type { HostArray } from './host.js';
import * as ops from './ops.js';
import type { AbstractValue, Var } from './program.js';
import { sizeOf, type Shape } from './shape.js';
import type { TraceContext } from './trace.js';

export type TensorLike = Tensor | number | boolean;

/** Releases a tensor's array when the tensor is garbage-collected without dispose(). */
const finalizer = typeof FinalizationRegistry !== 'undefined' ? new FinalizationRegistry<DeviceArray>((a) => a.release()) : undefined;

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

export class Tensor {
  private __array: DeviceArray | undefined;
  /** @internal the trace this tracer belongs to */
  readonly _trace: TraceContext | undefined;
  /** @internal this tracer's variable */
  readonly _var: Var | undefined;
  readonly shape: Shape;
  readonly dtype: DType;

  private constructor(shape: Shape, dtype: DType, array?: DeviceArray, trace?: TraceContext, v?: Var) {
    this.shape = shape;
    this.dtype = dtype;
    this.__array = array;
    this._trace = trace;
    this._var = v;
    if (array) {
      array.retain();
      finalizer?.register(this, array, this);
    }
  }

  /** @internal a tensor holding a device array (a HostArray is the CPU's kind). */
  static _wrap(a: DeviceArray): Tensor {
    return new Tensor(a.shape, a.dtype, a);
  }

  /** @internal */
  static _concrete(h: HostArray): Tensor {
    return Tensor._wrap(h);
  }

  /** @internal */
  static _traced(ctx: TraceContext, v: Var): Tensor {
    return new Tensor(v.aval.shape, v.aval.dtype, undefined, ctx, v);
  }

  /** @internal the device array (undefined for a tracer); throws when donated or disposed. */
  get _array(): DeviceArray | undefined {
    this.__array?.checkUsable('tensor');
    return this.__array;
  }

  /** @internal the host array of a CPU tensor (undefined for tracers and other devices). */
  get _host(): HostArray | undefined {
    const a = this._array;
    return a && a.device.name === 'cpu' ? (a as HostArray) : undefined;
  }

  /** The name of the device the tensor lives on ('cpu', 'wgsl', 'cuda'); undefined for a tracer. */
  get device(): string | undefined {
    return this.__array?.device.name;
  }

  get isDonated(): boolean {
    return this.__array?.donated ?? false;
  }
  get isDisposed(): boolean {
    return this.__array?.freed ?? false;
  }

  get aval(): AbstractValue {
    return { shape: this.shape, dtype: this.dtype };
  }
  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return sizeOf(this.shape);
  }
  /** True for a tracer inside trace/jit/grad. */
  get isTracer(): boolean {
    return this._trace !== undefined;
  }

  private array(what: string): DeviceArray {
    if (!this.__array) {
      throw new NexgradError(
        `${what}: this tensor ${this.dtype}[${this.shape.join(',')}] is being traced and has no value yet; ` +
          `values are only available outside trace/jit/grad`,
      );
    }
    this.__array.checkUsable(what);
    return this.__array;
  }

  /** @internal the host array now (a CPU tensor's own; a copy from devices that read synchronously). */
  _hostSync(what: string): HostArray {
    const a = this.array(what);
    if (!a.device.syncRead) throw asyncOnlyError(what, a.device);
    return a.readSync();
  }

  /** The elements in row-major order (f16/bf16 as Float32Array, bool as Uint8Array), from any device. */
  async data(): Promise<HostData> {
    const a = this.array('data');
    const h = await a.read();
    return (h === a ? h.data.slice() : h.data) as HostData;
  }
  /** The elements now; only on devices that read synchronously (the CPU), else use `await t.data()`. */
  dataSync(): HostData {
    return this._hostSync('dataSync').data.slice() as HostData;
  }
  /** The single element of a size-1 tensor. */
  item(): number {
    const h = this._hostSync('item');
    if (h.size !== 1) throw new NexgradError(`item: tensor has shape [${this.shape.join(',')}], expected one element`);
    return h.data[0]!;
  }
  /** Nested arrays of numbers. */
  tolist(): unknown {
    const h = this._hostSync('tolist');
    const rec = (dim: number, off: number): unknown => {
      if (dim === h.shape.length) return h.data[off];
      const stride = sizeOf(h.shape.slice(dim + 1));
      return Array.from({ length: h.shape[dim]! }, (_, i) => rec(dim + 1, off + i * stride));
    };
    return rec(0, 0);
  }

  /** This tensor on another backend (the same tensor when it is already there). */
  to(backend: string): Tensor {
    const a = this.array('to');
    if (a.device.name === backend) return this;
    const target = resolveDevice(backend);
    if (!a.device.syncRead) throw asyncOnlyError(`to('${backend}')`, a.device);
    return Tensor._wrap(target.upload(a.readSync()));
  }

  /** Releases the tensor's device memory now (further use is an error). Idempotent. */
  dispose(): void {
    const a = this.__array;
    if (!a || a.freed) return;
    finalizer?.unregister(this);
    a.release();
  }

  toString(): string {
    if (this.isTracer) return `Tracer(${this.dtype}[${this.shape.join(',')}])`;
    const a = this.__array!;
    if (a.donated || a.freed) return `Tensor(${this.dtype}[${this.shape.join(',')}], ${a.donated ? 'donated' : 'disposed'})`;
    if (!a.device.syncRead) return `Tensor(${this.dtype}[${this.shape.join(',')}] on ${a.device.name})`;
    return `Tensor(${this.dtype}[${this.shape.join(',')}], ${JSON.stringify(this.tolist())})`;
  }

  /** console.log(t) prints like String(t). */
  [INSPECT](): string {
    return this.toString();
  }

  // elementwise binary
  add(o: TensorLike): Tensor { return ops.add(this, o); }
  sub(o: TensorLike): Tensor { return ops.sub(this, o); }
  mul(o: TensorLike): Tensor { return ops.mul(this, o); }
  div(o: TensorLike): Tensor { return ops.div(this, o); }
  pow(o: TensorLike): Tensor { return ops.pow(this, o); }
  rem(o: TensorLike): Tensor { return ops.rem(this, o); }
  maximum(o: TensorLike): Tensor { return ops.maximum(this, o); }
  minimum(o: TensorLike): Tensor { return ops.minimum(this, o); }
  eq(o: TensorLike): Tensor { return ops.equal(this, o); }
  ne(o: TensorLike): Tensor { return ops.notEqual(this, o); }
  lt(o: TensorLike): Tensor { return ops.less(this, o); }
  le(o: TensorLike): Tensor { return ops.lessEqual(this, o); }
  gt(o: TensorLike): Tensor { return ops.greater(this, o); }
  ge(o: TensorLike): Tensor { return ops.greaterEqual(this, o); }
  logicalAnd(o: TensorLike): Tensor { return ops.logicalAnd(this, o); }
  logicalOr(o: TensorLike): Tensor { return ops.logicalOr(this, o); }
  // elementwise unary
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  log1p(): Tensor { return ops.log1p(this); }
  expm1(): Tensor { return ops.expm1(this); }
  sin(): Tensor { return ops.sin(this); }
  cos(): Tensor { return ops.cos(this); }
  tanh(): Tensor { return ops.tanh(this); }
  sigmoid(): Tensor { return ops.sigmoid(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  rsqrt(): Tensor { return ops.rsqrt(this); }
  erf(): Tensor { return ops.erf(this); }
  abs(): Tensor { return ops.abs(this); }
  sign(): Tensor { return ops.sign(this); }
  floor(): Tensor { return ops.floor(this); }
  ceil(): Tensor { return ops.ceil(this); }
  round(): Tensor { return ops.round(this); }
  square(): Tensor { return ops.square(this); }
  reciprocal(): Tensor { return ops.reciprocal(this); }
  relu(): Tensor { return ops.relu(this); }
  logicalNot(): Tensor { return ops.logicalNot(this); }
  cast(dtype: DType): Tensor { return ops.cast(this, dtype); }
  // reductions
  sum(axes?: number | readonly number[], keepdims = false): Tensor { return ops.sum(this, axes, keepdims); }
  mean(axes?: number | readonly number[], keepdims = false): Tensor { return ops.mean(this, axes, keepdims); }
  max(axes?: number | readonly number[], keepdims = false): Tensor { return ops.max(this, axes, keepdims); }
  min(axes?: number | readonly number[], keepdims = false): Tensor { return ops.min(this, axes, keepdims); }
  variance(axes?: number | readonly number[], keepdims = false, ddof = 0): Tensor { return ops.variance(this, axes, keepdims, ddof); }
  argmax(axis = -1, keepdims = false): Tensor { return ops.argmax(this, axis, keepdims); }
  argsort(axis = -1, descending = false): Tensor { return ops.argsort(this, axis, descending); }
  // shape
  reshape(shape: readonly number[]): Tensor { return ops.reshape(this, shape); }
  transpose(perm?: readonly number[]): Tensor { return ops.transpose(this, perm); }
  broadcastTo(shape: readonly number[]): Tensor { return ops.broadcastTo(this, shape); }
  expandDims(axis: number): Tensor { return ops.expandDims(this, axis); }
  squeeze(axes?: number | readonly number[]): Tensor { return ops.squeeze(this, axes); }
  flatten(): Tensor { return ops.reshape(this, [-1]); }
  slice(starts: readonly number[], ends: readonly number[], strides?: readonly number[]): Tensor { return ops.slice(this, starts, ends, strides); }
  pad(widths: readonly (readonly [number, number])[], value = 0): Tensor { return ops.pad(this, widths, value); }
  flip(axes: number | readonly number[]): Tensor { return ops.flip(this, axes); }
  take(indices: Tensor, axis = 0): Tensor { return ops.take(this, indices, axis); }
  takeAlongAxis(indices: Tensor, axis = -1): Tensor { return ops.takeAlongAxis(this, indices, axis); }
  // contractions
  matmul(o: Tensor): Tensor { return ops.matmul(this, o); }
}
