/**
 * The Tensor: a concrete host array, or a tracer (a variable of an active trace). Both have the
 * same methods; each method is a thin wrapper over the functional ops in ops.ts.
 */
import type { DType, HostData } from './dtype.js';
import { NexgradError } from './errors.js';
import type { HostArray } from './host.js';
import * as ops from './ops.js';
import type { AbstractValue, Var } from './program.js';
import { sizeOf, type Shape } from './shape.js';
import type { TraceContext } from './trace.js';

export type TensorLike = Tensor | number | boolean;

export class Tensor {
  private __host: HostArray | undefined;
  private __donated = false;
  /** @internal the trace this tracer belongs to */
  readonly _trace: TraceContext | undefined;
  /** @internal this tracer's variable */
  readonly _var: Var | undefined;
  readonly shape: Shape;
  readonly dtype: DType;

  private constructor(shape: Shape, dtype: DType, host?: HostArray, trace?: TraceContext, v?: Var) {
    this.shape = shape;
    this.dtype = dtype;
    this.__host = host;
    this._trace = trace;
    this._var = v;
  }

  /** @internal */
  static _concrete(h: HostArray): Tensor {
    return new Tensor(h.shape, h.dtype, h);
  }

  /** @internal */
  static _traced(ctx: TraceContext, v: Var): Tensor {
    return new Tensor(v.aval.shape, v.aval.dtype, undefined, ctx, v);
  }

  /** @internal concrete data (host), when not a tracer */
  get _host(): HostArray | undefined {
    if (this.__donated) {
      throw new NexgradError(
        `this tensor ${this.dtype}[${this.shape.join(',')}] was donated to a jitted function and its buffer reused; use the function's result instead`,
      );
    }
    return this.__host;
  }

  /** @internal marks a donated input: its storage now belongs to an output. */
  _markDonated(): void {
    this.__donated = true;
  }

  get isDonated(): boolean {
    return this.__donated;
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

  private host(what: string): HostArray {
    if (!this._host) {
      throw new NexgradError(
        `${what}: this tensor ${this.dtype}[${this.shape.join(',')}] is being traced and has no value yet; ` +
          `values are only available outside trace/jit/grad`,
      );
    }
    return this._host;
  }

  /** The elements in row-major order (f16/bf16 as Float32Array, bool as Uint8Array). */
  async data(): Promise<HostData> {
    return this.dataSync();
  }
  dataSync(): HostData {
    return this.host('dataSync').data.slice() as HostData;
  }
  /** The single element of a size-1 tensor. */
  item(): number {
    const h = this.host('item');
    if (h.size !== 1) throw new NexgradError(`item: tensor has shape [${this.shape.join(',')}], expected one element`);
    return h.data[0]!;
  }
  /** Nested arrays of numbers. */
  tolist(): unknown {
    const h = this.host('tolist');
    const rec = (dim: number, off: number): unknown => {
      if (dim === h.shape.length) return h.data[off];
      const stride = sizeOf(h.shape.slice(dim + 1));
      return Array.from({ length: h.shape[dim]! }, (_, i) => rec(dim + 1, off + i * stride));
    };
    return rec(0, 0);
  }
  toString(): string {
    if (!this._host) return `Tracer(${this.dtype}[${this.shape.join(',')}])`;
    return `Tensor(${this.dtype}[${this.shape.join(',')}], ${JSON.stringify(this.tolist())})`;
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
