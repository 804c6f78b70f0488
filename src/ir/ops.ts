/**
 * Functional tensor operations: the user-facing API over primitives. Numpy-style
 * broadcasting happens here and is made explicit (broadcast_in_dim); primitives never
 * broadcast. Bad input raises an OpError naming the op, the shapes and the caller's site.
 *
 * Shapes: every shape that enters here is checked (non-negative integers, at most MAX_ELEMENTS
 * elements, see shape.ts). Weak scalars: a JS number combined with tensors takes their dtype, as
 * JAX's weakly typed Python scalars do, except that a non-integer number (0.5, NaN, Infinity)
 * with integer or bool tensors promotes the operation to f32 (JAX's default float dtype without
 * x64), an integer number outside an integer dtype's range is an error (JAX's OverflowError),
 * and an integer other than 0 and 1 with bool tensors promotes to i32. Two tensors of different
 * dtypes are an error (cast one explicitly).
 */
import { allocHost, castScalar, DTYPES, type DType, type HostData, isDType, isFloat, roundBf16, roundF16 } from './dtype.js';
import { getDefaultBackend, resolveDevice } from './device_array.js';
import { OpError } from './errors.js';
import { HostArray } from './host.js';
import type { ConvDims } from './primitive.js';
import { broadcastShapes, fmtShape, MAX_ELEMENTS, type Shape, shapeProblem, sizeOf } from './shape.js';
import { Tensor, type TensorLike } from './tensor.js';
import { bind1, traceFlat } from './trace.js';

// ---------------------------------------------------------------------------------------
// creation

type Nested = number | boolean | readonly Nested[];

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as Nested;
  }
  return shape;
}

function dtypeOfTyped(d: ArrayLike<number>): DType | undefined {
  if (d instanceof Float64Array) return 'f64';
  if (d instanceof Float32Array) return 'f32';
  if (d instanceof Int32Array) return 'i32';
  if (d instanceof Uint32Array) return 'u32';
  if (d instanceof Uint8Array) return 'bool';
  return undefined;
}

export interface TensorOptions {
  dtype?: DType;
  shape?: readonly number[];
}

/** Makes a concrete tensor from a number, nested arrays or a typed array. */
export function tensor(data: Nested | ArrayLike<number>, opts: TensorOptions = {}): Tensor {
  checkOptions('tensor', opts, TENSOR_OPTION_KEYS);
  if (opts.dtype !== undefined && !isDType(opts.dtype)) {
    throw new OpError('tensor', `unknown dtype ${JSON.stringify(opts.dtype)}; expected one of f32, f64, f16, bf16, i32, u32, bool`);
  }
  let flat: ArrayLike<number>;
  let shape: number[];
  let dtype: DType | undefined = opts.dtype;
  if (typeof data === 'number' || typeof data === 'boolean') {
    flat = [Number(data)];
    shape = [];
    dtype ??= typeof data === 'boolean' ? 'bool' : 'f32';
  } else if (ArrayBuffer.isView(data)) {
    flat = data as ArrayLike<number>;
    shape = [flat.length];
    dtype ??= dtypeOfTyped(flat) ?? 'f32';
  } else if (Array.isArray(data)) {
    shape = inferShape(data as Nested);
    const out: number[] = [];
    let allBool = true;
    const walk = (x: Nested, dim: number): void => {
      if (dim === shape.length) {
        if (typeof x !== 'number' && typeof x !== 'boolean') {
          throw new OpError('tensor', `ragged or non-numeric nested array (expected shape ${fmtShape(shape)})`);
        }
        if (typeof x === 'number') allBool = false;
        out.push(Number(x));
        return;
      }
      if (!Array.isArray(x) || x.length !== shape[dim]) {
        throw new OpError('tensor', `ragged nested array: expected length ${shape[dim]} at depth ${dim} (shape ${fmtShape(shape)})`);
      }
      for (const y of x) walk(y as Nested, dim + 1);
    };
    walk(data as Nested, 0);
    flat = out;
    // nested JS booleans make a bool tensor, as numpy/JAX arrays of Python bools do
    dtype ??= allBool && out.length > 0 ? 'bool' : 'f32';
  } else {
    throw new OpError('tensor', `cannot make a tensor from ${data === null ? 'null' : typeof data}`);
  }
  if (flat.length > MAX_ELEMENTS) throw new OpError('tensor', `${flat.length} elements are more than the ${MAX_ELEMENTS} a tensor may have`);
  if (opts.shape !== undefined) {
    checkShape('tensor', opts.shape);
    if (sizeOf(opts.shape) !== flat.length) {
      throw new OpError('tensor', `shape ${fmtShape(opts.shape)} holds ${sizeOf(opts.shape)} elements but ${flat.length} were given`);
    }
    shape = [...opts.shape];
  }
  const buf = allocHost(dtype, flat.length);
  for (let i = 0; i < flat.length; i++) buf[i] = castScalar(flat[i]!, dtype);
  return placed(new HostArray(dtype, shape, buf));
}

/** New tensors go to the default backend (ng.setDefaultBackend); on the CPU host data is used as is. */
function placed(h: HostArray): Tensor {
  const backend = getDefaultBackend();
  return Tensor._wrap(backend === 'cpu' ? h : resolveDevice(backend).upload(h));
}

/** The typed array that holds each dtype on the host (f16 and bf16 widened to f32). */
const HOST_CLASS: Readonly<Record<DType, string>> = {
  f64: 'Float64Array', f32: 'Float32Array', f16: 'Float32Array', bf16: 'Float32Array',
  i32: 'Int32Array', u32: 'Uint32Array', bool: 'Uint8Array',
};

/** Why element values do not belong to `dtype` (bool not 0/1, f16/bf16 not representable). */
function hostValueProblem(dtype: DType, data: HostData): string | undefined {
  const round = dtype === 'f16' ? roundF16 : dtype === 'bf16' ? roundBf16 : undefined;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (dtype === 'bool' && v > 1) return `bool element ${i} is ${v}; bool data must be 0 or 1`;
    if (round && v === v && round(v) !== v) return `${dtype} element ${i} (${v}) is not a ${dtype} value; round it first (cast from f32)`;
  }
  return undefined;
}

/**
 * Wraps an existing host array (without copying on the CPU). The array must be the dtype's host class
 * (f64 Float64Array; f32, f16, bf16 Float32Array; i32 Int32Array; u32 Uint32Array; bool
 * Uint8Array of 0/1) with exactly as many elements as the shape holds.
 */
export function fromHost(dtype: DType, shape: readonly number[], data: HostData): Tensor {
  const op = 'fromHost';
  if (!isDType(dtype)) throw new OpError(op, `unknown dtype ${JSON.stringify(dtype)}; expected one of ${Object.keys(DTYPES).join(', ')}`);
  checkShape(op, shape);
  const tag: unknown = ArrayBuffer.isView(data) ? (data as unknown as Record<symbol, unknown>)[Symbol.toStringTag] : undefined;
  if (tag !== HOST_CLASS[dtype]) {
    throw new OpError(op, `${dtype} data must be a ${HOST_CLASS[dtype]}, got ${tag ?? (data === null ? 'null' : Array.isArray(data) ? 'an array' : typeof data)}`);
  }
  const n = sizeOf(shape);
  if (data.length !== n) throw new OpError(op, `data has ${data.length} elements but shape ${fmtShape(shape)} holds ${n}`);
  const bad = hostValueProblem(dtype, data);
  if (bad !== undefined) throw new OpError(op, bad);
  return placed(new HostArray(dtype, [...shape], data));
}

function checkDType(op: string, dtype: unknown): DType {
  if (!isDType(dtype)) throw new OpError(op, `unknown dtype ${JSON.stringify(dtype)}; expected one of ${Object.keys(DTYPES).join(', ')}`);
  return dtype;
}

export function scalar(value: number, dtype: DType = 'f32'): Tensor {
  checkDType('scalar', dtype);
  if (typeof value !== 'number' && typeof value !== 'boolean') throw new OpError('scalar', `value must be a number, got ${value === null ? 'null' : typeof value}`);
  return placed(HostArray.scalar(Number(value), dtype));
}

export function full(shape: readonly number[], value: number, dtype: DType = 'f32'): Tensor {
  checkShape('full', shape);
  checkDType('full', dtype);
  if (typeof value !== 'number' && typeof value !== 'boolean') throw new OpError('full', `value must be a number, got ${value === null ? 'null' : typeof value}`);
  return broadcastTo(scalar(value, dtype), shape);
}
export function zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  checkShape('zeros', shape);
  return full(shape, 0, dtype);
}
export function ones(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  checkShape('ones', shape);
  return full(shape, 1, dtype);
}
export function zerosLike(x: Tensor): Tensor {
  return zeros(x.shape, x.dtype);
}
export function onesLike(x: Tensor): Tensor {
  return ones(x.shape, x.dtype);
}

export function iota(shape: readonly number[], dim: number, dtype: DType = 'i32'): Tensor {
  checkShape('iota', shape);
  checkDType('iota', dtype);
  return bind1('iota', [], { shape: [...shape], dim: normAxis('iota', dim, shape.length, shape), dtype });
}

/** arange(stop) or arange(start, stop, step). */
export function arange(start: number, stop?: number, step = 1, dtype: DType = 'i32'): Tensor {
  if (stop === undefined) [start, stop] = [0, start];
  for (const [what, v] of [['start', start], ['stop', stop], ['step', step]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new OpError('arange', `${what} must be a finite number, got ${typeof v === 'number' ? v : v === null ? 'null' : typeof v}`);
  }
  if (step === 0) throw new OpError('arange', 'step must not be 0');
  checkDType('arange', dtype);
  const n = Math.max(0, Math.ceil((stop - start) / step));
  if (n > MAX_ELEMENTS) throw new OpError('arange', `arange(${start}, ${stop}, ${step}) has ${n} elements, more than the ${MAX_ELEMENTS} a tensor may have`);
  let r = iota([n], 0, dtype);
  if (step !== 1) r = mul(r, step);
  if (start !== 0) r = add(r, start);
  return r;
}

/** Refuses a shape with a negative, fractional or non-number entry, or too many elements. */
export function checkShape(op: string, shape: unknown): asserts shape is readonly number[] {
  const why = shapeProblem(shape);
  if (why !== undefined) {
    const shown = Array.isArray(shape) ? fmtShape(shape as number[]) : JSON.stringify(shape) ?? typeof shape;
    throw new OpError(op, `invalid shape ${shown}: ${why}`);
  }
}

const TENSOR_OPTION_KEYS: ReadonlySet<string> = new Set(['dtype', 'shape']);
const CONV_OPTION_KEYS: ReadonlySet<string> = new Set(['strides', 'padding', 'dilation', 'lhsDilation', 'groups', 'layout', 'kernelLayout']);

/**
 * Refuses an options argument that is not an object, or that has a key the op does not know
 * (a misspelt option, e.g. `stride` for `strides`, would otherwise be silently ignored).
 */
export function checkOptions(op: string, opts: unknown, known: ReadonlySet<string>): void {
  if (opts === undefined) return;
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) {
    throw new OpError(op, `options must be an object, got ${opts === null ? 'null' : Array.isArray(opts) ? 'an array' : typeof opts}`);
  }
  for (const k of Object.keys(opts)) {
    if (!known.has(k)) throw new OpError(op, `unknown option ${JSON.stringify(k)}; the options are ${[...known].join(', ')}`);
  }
}

// ---------------------------------------------------------------------------------------
// argument checks

export function asTensor(op: string, x: unknown, like?: Tensor, pos = 1): Tensor {
  if (x instanceof Tensor) return x;
  // a number stays on the host: eager ops move it to their other operands' device
  if (typeof x === 'number' || typeof x === 'boolean') return Tensor._wrap(HostArray.scalar(Number(x), like?.dtype ?? (typeof x === 'boolean' ? 'bool' : 'f32')));
  const what = x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x;
  throw new OpError(op, `argument ${pos} is ${what}, expected a Tensor or a number`);
}

export function normAxis(op: string, axis: number, ndim: number, shape?: Shape): number {
  if (!Number.isInteger(axis) || axis < -ndim || axis >= Math.max(ndim, 0) + (ndim === 0 ? 0 : 0)) {
    const s = shape ? ` for shape ${fmtShape(shape)}` : '';
    throw new OpError(op, `axis ${axis} is out of range${s} (rank ${ndim})`);
  }
  return axis < 0 ? axis + ndim : axis;
}

function normAxes(op: string, axes: number | readonly number[] | undefined, x: Tensor): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  if (typeof axes !== 'number' && !Array.isArray(axes)) {
    throw new OpError(op, `axes must be a number, an array of numbers, or undefined for all axes; got ${axes === null ? 'null' : typeof axes}`);
  }
  const list = typeof axes === 'number' ? [axes] : [...axes];
  const out = list.map((a) => normAxis(op, a, x.ndim, x.shape));
  if (new Set(out).size !== out.length) throw new OpError(op, `repeated axis in ${JSON.stringify(list)} for shape ${fmtShape(x.shape)}`);
  return out.sort((a, b) => a - b);
}

function requireFloat(op: string, x: Tensor): void {
  if (!isFloat(x.dtype)) throw new OpError(op, `expected a floating-point tensor, got ${x.dtype}${fmtShape(x.shape)}`);
}

// ---------------------------------------------------------------------------------------
// broadcasting

export function broadcastTo(x: Tensor, shape: readonly number[]): Tensor {
  checkShape('broadcastTo', shape);
  if (x.ndim === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
  const off = shape.length - x.ndim;
  if (off < 0 || !x.shape.every((d, i) => d === 1 || d === shape[off + i])) {
    throw new OpError('broadcastTo', `cannot broadcast shape ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  return bind1('broadcast_in_dim', [x], { shape: [...shape], dims: x.shape.map((_, i) => off + i) });
}

/**
 * The dtype an op computes in when JS numbers (weak scalars) meet tensors of dtype `dt` (see
 * the file comment): `dt`, f32 for a non-integer number with integer/bool tensors, i32 for an
 * integer other than 0/1 with bool tensors. An integer out of an integer dtype's range throws.
 */
function weakScalarDType(op: string, dt: DType, args: readonly TensorLike[]): DType {
  if (isFloat(dt)) return dt;
  const nums = args.filter((a): a is number => typeof a === 'number');
  if (nums.some((v) => !Number.isInteger(v))) return 'f32';
  if (dt === 'bool') return nums.some((v) => v !== 0 && v !== 1) ? 'i32' : 'bool';
  const [lo, hi] = dt === 'i32' ? [-(2 ** 31), 2 ** 31 - 1] : [0, 2 ** 32 - 1];
  const bad = nums.find((v) => v < lo || v > hi);
  if (bad !== undefined) throw new OpError(op, `the number ${bad} does not fit in ${dt} (range [${lo}, ${hi}]); cast the tensor to a wider dtype first`);
  return dt;
}

/** Converts operands to tensors of one dtype and one (broadcast) shape. */
function coerce(op: string, args: readonly TensorLike[]): Tensor[] {
  args.forEach((a, i) => {
    if (!(a instanceof Tensor) && typeof a !== 'number' && typeof a !== 'boolean') asTensor(op, a, undefined, i + 1); // throws, naming the position
  });
  const given = args.filter((a): a is Tensor => a instanceof Tensor);
  const dts = new Set(given.map((t) => t.dtype));
  if (dts.size > 1) {
    throw new OpError(
      op,
      `dtypes differ: ${given.map((t) => `${t.dtype}${fmtShape(t.shape)}`).join(' and ')}; cast one operand explicitly`,
    );
  }
  const dt = given.length > 0 ? weakScalarDType(op, given[0]!.dtype, args) : args.every((a) => typeof a === 'boolean') ? 'bool' : 'f32';
  const ts = args.map((a) => (a instanceof Tensor ? (a.dtype === dt ? a : cast(a, dt)) : scalar(Number(a), dt)));
  let shape: number[] | null = [...ts[0]!.shape];
  for (const t of ts.slice(1)) {
    shape = broadcastShapes(shape!, t.shape);
    if (!shape) {
      throw new OpError(op, `shapes ${ts.map((t) => fmtShape(t.shape)).join(' and ')} cannot be broadcast together`);
    }
  }
  return ts.map((t) => broadcastTo(t, shape!));
}

function binary(prim: 'add' | 'sub' | 'mul' | 'div' | 'max' | 'min' | 'pow' | 'rem', op: string, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = coerce(op, [a, b]);
  if (x!.dtype === 'bool' && prim !== 'max' && prim !== 'min') throw new OpError(op, `not defined for bool tensors ${fmtShape(x!.shape)}`);
  return bind1(prim, [x!, y!], {});
}

export const add = (a: TensorLike, b: TensorLike): Tensor => binary('add', 'add', a, b);
export const sub = (a: TensorLike, b: TensorLike): Tensor => binary('sub', 'sub', a, b);
export const mul = (a: TensorLike, b: TensorLike): Tensor => binary('mul', 'mul', a, b);
export const div = (a: TensorLike, b: TensorLike): Tensor => binary('div', 'div', a, b);
export const maximum = (a: TensorLike, b: TensorLike): Tensor => binary('max', 'maximum', a, b);
export const minimum = (a: TensorLike, b: TensorLike): Tensor => binary('min', 'minimum', a, b);
export const rem = (a: TensorLike, b: TensorLike): Tensor => binary('rem', 'rem', a, b);
export function pow(a: TensorLike, b: TensorLike): Tensor {
  if (typeof b === 'number' && a instanceof Tensor && (isFloat(a.dtype) || Number.isInteger(b))) {
    if (b === 1) return a;
    if (b === 2) return mul(a, a);
    if (b === 0.5) return sqrt(a);
    if (b === -0.5) return rsqrt(a);
  }
  const [x, y] = coerce('pow', [a, b]);
  requireFloat('pow', x!);
  return bind1('pow', [x!, y!], {});
}

function compare(prim: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge', op: string, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = coerce(op, [a, b]);
  return bind1(prim, [x!, y!], {});
}
export const equal = (a: TensorLike, b: TensorLike): Tensor => compare('eq', 'equal', a, b);
export const notEqual = (a: TensorLike, b: TensorLike): Tensor => compare('ne', 'notEqual', a, b);
export const less = (a: TensorLike, b: TensorLike): Tensor => compare('lt', 'less', a, b);
export const lessEqual = (a: TensorLike, b: TensorLike): Tensor => compare('le', 'lessEqual', a, b);
export const greater = (a: TensorLike, b: TensorLike): Tensor => compare('gt', 'greater', a, b);
export const greaterEqual = (a: TensorLike, b: TensorLike): Tensor => compare('ge', 'greaterEqual', a, b);

function logical(prim: 'and' | 'or' | 'xor', op: string, a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = coerce(op, [a, b]);
  if (isFloat(x!.dtype)) throw new OpError(op, `expected bool or integer tensors, got ${x!.dtype}${fmtShape(x!.shape)}`);
  return bind1(prim, [x!, y!], {});
}
export const logicalAnd = (a: TensorLike, b: TensorLike): Tensor => logical('and', 'logicalAnd', a, b);
export const logicalOr = (a: TensorLike, b: TensorLike): Tensor => logical('or', 'logicalOr', a, b);
export const bitwiseXor = (a: TensorLike, b: TensorLike): Tensor => logical('xor', 'bitwiseXor', a, b);
export function shiftRightLogical(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = coerce('shiftRightLogical', [a, b]);
  if (x!.dtype !== 'u32' && x!.dtype !== 'i32') throw new OpError('shiftRightLogical', `expected an integer tensor, got ${x!.dtype}`);
  return bind1('shift_right_logical', [x!, y!], {});
}
export function shiftLeft(a: TensorLike, b: TensorLike): Tensor {
  const [x, y] = coerce('shiftLeft', [a, b]);
  if (x!.dtype !== 'u32' && x!.dtype !== 'i32') throw new OpError('shiftLeft', `expected an integer tensor, got ${x!.dtype}`);
  return bind1('shift_left', [x!, y!], {});
}

/** where(cond, a, b): a where cond is true, else b; all three broadcast together. */
export function where(cond: TensorLike, a: TensorLike, b: TensorLike): Tensor {
  const c = asTensor('where', cond, undefined, 1);
  if (c.dtype !== 'bool') throw new OpError('where', `condition must be bool, got ${c.dtype}${fmtShape(c.shape)}`);
  const [x, y] = coerce('where', [a, b]);
  const shape = broadcastShapes(c.shape, x!.shape);
  if (!shape) throw new OpError('where', `condition ${fmtShape(c.shape)} and values ${fmtShape(x!.shape)} cannot be broadcast together`);
  return bind1('select', [broadcastTo(c, shape), broadcastTo(x!, shape), broadcastTo(y!, shape)], {});
}

// ---------------------------------------------------------------------------------------
// unary

type UnaryPrim = 'neg' | 'exp' | 'log' | 'log1p' | 'expm1' | 'sin' | 'cos' | 'tanh' | 'logistic' | 'sqrt' | 'rsqrt' | 'erf' | 'floor' | 'ceil' | 'round';
function unaryFloat(prim: UnaryPrim, op: string, x: Tensor): Tensor {
  x = asTensor(op, x);
  if (prim !== 'neg') requireFloat(op, x);
  return bind1(prim, [x], {});
}
export const neg = (x: Tensor): Tensor => unaryFloat('neg', 'neg', x);
export const exp = (x: Tensor): Tensor => unaryFloat('exp', 'exp', x);
export const log = (x: Tensor): Tensor => unaryFloat('log', 'log', x);
export const log1p = (x: Tensor): Tensor => unaryFloat('log1p', 'log1p', x);
export const expm1 = (x: Tensor): Tensor => unaryFloat('expm1', 'expm1', x);
export const sin = (x: Tensor): Tensor => unaryFloat('sin', 'sin', x);
export const cos = (x: Tensor): Tensor => unaryFloat('cos', 'cos', x);
export const tanh = (x: Tensor): Tensor => unaryFloat('tanh', 'tanh', x);
export const sigmoid = (x: Tensor): Tensor => unaryFloat('logistic', 'sigmoid', x);
export const sqrt = (x: Tensor): Tensor => unaryFloat('sqrt', 'sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unaryFloat('rsqrt', 'rsqrt', x);
export const erf = (x: Tensor): Tensor => unaryFloat('erf', 'erf', x);
export const floor = (x: Tensor): Tensor => unaryFloat('floor', 'floor', x);
export const ceil = (x: Tensor): Tensor => unaryFloat('ceil', 'ceil', x);
export const round = (x: Tensor): Tensor => unaryFloat('round', 'round', x);
export const abs = (x: Tensor): Tensor => bind1('abs', [asTensor('abs', x)], {});
export const sign = (x: Tensor): Tensor => bind1('sign', [asTensor('sign', x)], {});
export const square = (x: Tensor): Tensor => mul(x, x);
export const reciprocal = (x: Tensor): Tensor => div(1, x);
export const relu = (x: Tensor): Tensor => maximum(x, 0);
export function logicalNot(x: Tensor): Tensor {
  x = asTensor('logicalNot', x);
  if (isFloat(x.dtype)) throw new OpError('logicalNot', `expected a bool or integer tensor, got ${x.dtype}`);
  return bind1('not', [x], {});
}

export function cast(x: Tensor, dtype: DType): Tensor {
  x = asTensor('cast', x);
  if (!isDType(dtype)) throw new OpError('cast', `unknown dtype ${JSON.stringify(dtype)}`);
  if (x.dtype === dtype) return x;
  return bind1('cast', [x], { dtype });
}

/** Stops gradients: the value of x, treated as a constant by autodiff. */
export function stopGradient(x: Tensor): Tensor {
  return bind1('region', [x], { name: 'stop_gradient', attrs: {}, body: identityProgram(x) });
}
// stop_gradient is a region the autodiff drivers recognise by name (see src/autodiff).
function identityProgram(x: Tensor) {
  return traceFlat((a) => [a], [x.aval]).program;
}

// ---------------------------------------------------------------------------------------
// reductions

function keep(x: Tensor, r: Tensor, axes: number[], keepdims: boolean): Tensor {
  if (!keepdims) return r;
  return reshape(r, x.shape.map((d, i) => (axes.includes(i) ? 1 : d)));
}

export function sum(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  x = asTensor('sum', x);
  const ax = normAxes('sum', axes, x);
  if (x.dtype === 'bool') x = cast(x, 'i32');
  return keep(x, ax.length ? bind1('reduce_sum', [x], { axes: ax }) : x, ax, keepdims);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  x = asTensor('mean', x);
  requireFloat('mean', x);
  const ax = normAxes('mean', axes, x);
  const n = ax.reduce((a, i) => a * x.shape[i]!, 1);
  return div(sum(x, ax, keepdims), n);
}

export function max(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  x = asTensor('max', x);
  const ax = normAxes('max', axes, x);
  return keep(x, ax.length ? bind1('reduce_max', [x], { axes: ax }) : x, ax, keepdims);
}

export function min(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  x = asTensor('min', x);
  const ax = normAxes('min', axes, x);
  return keep(x, ax.length ? bind1('reduce_min', [x], { axes: ax }) : x, ax, keepdims);
}

export function variance(x: Tensor, axes?: number | readonly number[], keepdims = false, ddof = 0): Tensor {
  const ax = normAxes('variance', axes, x);
  const n = ax.reduce((a, i) => a * x.shape[i]!, 1);
  const d = sub(x, mean(x, ax, true));
  return div(sum(mul(d, d), ax, keepdims), n - ddof);
}

export function argmax(x: Tensor, axis = -1, keepdims = false): Tensor {
  x = asTensor('argmax', x);
  const a = normAxis('argmax', axis, x.ndim, x.shape);
  return keep(x, bind1('argmax', [x], { axis: a }), [a], keepdims);
}

export function argsort(x: Tensor, axis = -1, descending = false): Tensor {
  x = asTensor('argsort', x);
  return bind1('argsort', [x], { axis: normAxis('argsort', axis, x.ndim, x.shape), descending });
}

/**
 * log(sum(exp(x))) over `axes`, shifted by the maximum for stability. As in JAX, a maximum that
 * is not finite is replaced by 0 for the shift, so all -inf gives -inf (not NaN: -inf - -inf)
 * and an +inf entry gives +inf.
 */
export function logSumExp(x: Tensor, axes?: number | readonly number[], keepdims = false): Tensor {
  x = asTensor('logSumExp', x);
  requireFloat('logSumExp', x);
  const ax = normAxes('logSumExp', axes, x);
  const mx = max(x, ax, true);
  const m = stopGradient(where(less(abs(mx), Infinity), mx, 0));
  const r = add(log(sum(exp(sub(x, m)), ax, true)), m);
  return keepdims ? r : reshape(r, x.shape.filter((_, i) => !ax.includes(i)));
}

// ---------------------------------------------------------------------------------------
// shape ops

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  x = asTensor('reshape', x);
  if (!Array.isArray(shape)) throw new OpError('reshape', `the target shape must be an array of integers, got ${shape === null ? 'null' : typeof shape}`);
  const holes = shape.filter((d) => d === -1).length;
  if (holes > 1 || !shape.every((d) => Number.isInteger(d) && d >= -1)) {
    throw new OpError('reshape', `invalid target shape ${fmtShape(shape)} for ${fmtShape(x.shape)}`);
  }
  let target = [...shape];
  if (holes === 1) {
    const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    if (known === 0 || x.size % known !== 0) throw new OpError('reshape', `cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)}`);
    target = shape.map((d) => (d === -1 ? x.size / known : d));
  }
  checkShape('reshape', target);
  if (sizeOf(target) !== x.size) {
    throw new OpError('reshape', `cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(target)} (${sizeOf(target)} elements)`);
  }
  if (target.length === x.ndim && target.every((d, i) => d === x.shape[i])) return x;
  return bind1('reshape', [x], { shape: target });
}

export function transpose(x: Tensor, perm?: readonly number[]): Tensor {
  x = asTensor('transpose', x);
  if (perm !== undefined && !Array.isArray(perm)) throw new OpError('transpose', `perm must be an array of axes, got ${perm === null ? 'null' : typeof perm}`);
  const p = perm ? perm.map((a) => normAxis('transpose', a, x.ndim, x.shape)) : x.shape.map((_, i) => x.ndim - 1 - i);
  if (p.length !== x.ndim || new Set(p).size !== p.length) {
    throw new OpError('transpose', `permutation ${JSON.stringify(perm)} is not a permutation of the ${x.ndim} axes of ${fmtShape(x.shape)}`);
  }
  if (p.every((a, i) => a === i)) return x;
  return bind1('transpose', [x], { perm: p });
}

/** Moves axis `from` to position `to`. */
export function moveAxis(x: Tensor, from: number, to: number): Tensor {
  const f = normAxis('moveAxis', from, x.ndim, x.shape);
  const t = normAxis('moveAxis', to, x.ndim, x.shape);
  const rest = x.shape.map((_, i) => i).filter((i) => i !== f);
  rest.splice(t, 0, f);
  return transpose(x, rest);
}

export function expandDims(x: Tensor, axis: number): Tensor {
  const a = normAxis('expandDims', axis, x.ndim + 1, x.shape);
  const s = [...x.shape];
  s.splice(a, 0, 1);
  return reshape(x, s);
}

export function squeeze(x: Tensor, axes?: number | readonly number[]): Tensor {
  const ax = axes === undefined ? x.shape.flatMap((d, i) => (d === 1 ? [i] : [])) : normAxes('squeeze', axes, x);
  for (const a of ax) if (x.shape[a] !== 1) throw new OpError('squeeze', `axis ${a} of ${fmtShape(x.shape)} has size ${x.shape[a]}, not 1`);
  return reshape(x, x.shape.filter((_, i) => !ax.includes(i)));
}

export function slice(x: Tensor, starts: readonly number[], ends: readonly number[], strides?: readonly number[]): Tensor {
  x = asTensor('slice', x);
  const st = strides ?? x.shape.map(() => 1);
  for (const [what, v] of [['starts', starts], ['ends', ends], ['strides', st]] as const) {
    if (!Array.isArray(v) || !v.every((d) => Number.isInteger(d))) throw new OpError('slice', `${what} must be an array of integers, got ${JSON.stringify(v) ?? typeof v}`);
  }
  if (starts.length !== x.ndim || ends.length !== x.ndim || st.length !== x.ndim) {
    throw new OpError('slice', `starts/ends/strides must have one entry per axis of ${fmtShape(x.shape)}`);
  }
  const s = starts.map((v, i) => (v < 0 ? v + x.shape[i]! : v));
  const e = ends.map((v, i) => (v < 0 ? v + x.shape[i]! : Math.min(v, x.shape[i]!)));
  for (let i = 0; i < x.ndim; i++) {
    if (!(s[i]! >= 0 && s[i]! <= e[i]! && e[i]! <= x.shape[i]!) || !(st[i]! >= 1)) {
      throw new OpError('slice', `axis ${i}: [${starts[i]}:${ends[i]}:${st[i]}] is out of range for shape ${fmtShape(x.shape)}`);
    }
  }
  if (s.every((v) => v === 0) && e.every((v, i) => v === x.shape[i]) && st.every((v) => v === 1)) return x;
  return bind1('slice', [x], { start: s, limit: e, strides: [...st] });
}

export function pad(x: Tensor, widths: readonly (readonly [number, number])[], value = 0): Tensor {
  x = asTensor('pad', x);
  if (!Array.isArray(widths) || !widths.every((w) => Array.isArray(w) && w.length === 2 && Number.isInteger(w[0]) && Number.isInteger(w[1]))) {
    throw new OpError('pad', `widths must be an array of (lo, hi) integer pairs, got ${JSON.stringify(widths) ?? typeof widths}`);
  }
  if (typeof value !== 'number') throw new OpError('pad', `value must be a number, got ${value === null ? 'null' : typeof value}`);
  if (widths.length !== x.ndim) throw new OpError('pad', `expected ${x.ndim} (lo, hi) pairs for shape ${fmtShape(x.shape)}, got ${widths.length}`);
  if (widths.every(([l, h]) => l === 0 && h === 0)) return x;
  checkShape('pad', x.shape.map((d, i) => d + widths[i]![0] + widths[i]![1]));
  return bind1('pad', [x], { lo: widths.map((w) => w[0]), hi: widths.map((w) => w[1]), interior: widths.map(() => 0), value });
}

export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0) throw new OpError('concat', 'expected a non-empty array of tensors');
  const ts = xs.map((t, i) => asTensor('concat', t, undefined, i + 1));
  const a = normAxis('concat', axis, ts[0]!.ndim, ts[0]!.shape);
  for (const t of ts) {
    if (t.dtype !== ts[0]!.dtype || t.ndim !== ts[0]!.ndim || t.shape.some((d, i) => i !== a && d !== ts[0]!.shape[i])) {
      throw new OpError('concat', `operands ${ts.map((u) => `${u.dtype}${fmtShape(u.shape)}`).join(', ')} do not match outside axis ${a}`);
    }
  }
  if (ts.length === 1) return ts[0]!;
  checkShape('concat', ts[0]!.shape.map((d, i) => (i === a ? ts.reduce((n, t) => n + t.shape[a]!, 0) : d)));
  return bind1('concatenate', ts, { axis: a });
}

export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (!Array.isArray(xs) || xs.length === 0) throw new OpError('stack', 'expected a non-empty array of tensors');
  return concat(xs.map((t) => expandDims(t, axis < 0 ? axis + t.ndim + 1 : axis)), axis);
}

export function flip(x: Tensor, axes: number | readonly number[]): Tensor {
  const ax = normAxes('flip', axes, x);
  return ax.length ? bind1('rev', [x], { axes: ax }) : x;
}

function requireIndices(op: string, idx: Tensor): void {
  if (!(idx instanceof Tensor)) throw new OpError(op, `indices must be an i32/u32 Tensor, got ${idx === null ? 'null' : Array.isArray(idx) ? 'an array' : typeof idx}`);
  if (idx.dtype !== 'i32' && idx.dtype !== 'u32') throw new OpError(op, `indices must be i32 or u32, got ${idx.dtype}${fmtShape(idx.shape)}`);
}

/** take(x, idx, axis): x indexed along axis by an integer tensor of any shape. */
export function take(x: Tensor, indices: Tensor, axis = 0): Tensor {
  requireIndices('take', indices);
  return bind1('gather', [x, indices], { axis: normAxis('take', axis, x.ndim, x.shape), batchDims: 0 });
}

/** Numpy take_along_axis: idx has x's rank and matches x outside `axis`. */
export function takeAlongAxis(x: Tensor, indices: Tensor, axis = -1): Tensor {
  requireIndices('takeAlongAxis', indices);
  const a = normAxis('takeAlongAxis', axis, x.ndim, x.shape);
  if (indices.ndim !== x.ndim || indices.shape.some((d, i) => i !== a && d !== x.shape[i])) {
    throw new OpError('takeAlongAxis', `indices ${fmtShape(indices.shape)} must match x ${fmtShape(x.shape)} outside axis ${a}`);
  }
  const last = x.ndim - 1;
  const xm = moveAxis(x, a, last);
  const im = moveAxis(indices, a, last);
  const r = bind1('gather', [xm, im], { axis: last, batchDims: last });
  return moveAxis(r, last, a);
}

/** scatterAdd(x, idx, updates, axis): the transpose of take. */
export function scatterAdd(x: Tensor, indices: Tensor, updates: Tensor, axis = 0): Tensor {
  requireIndices('scatterAdd', indices);
  return bind1('scatter_add', [x, indices, updates], { axis: normAxis('scatterAdd', axis, x.ndim, x.shape), batchDims: 0 });
}

export function oneHot(labels: Tensor, numClasses: number, dtype: DType = 'f32'): Tensor {
  requireIndices('oneHot', labels);
  if (!Number.isSafeInteger(numClasses) || numClasses < 0) throw new OpError('oneHot', `numClasses must be a non-negative integer, got ${numClasses}`);
  const classes = iota([...labels.shape, numClasses], labels.ndim, labels.dtype);
  return cast(equal(expandDims(labels, -1), classes), dtype);
}

// ---------------------------------------------------------------------------------------
// contractions

export function dotGeneral(
  a: Tensor,
  b: Tensor,
  contracting: readonly [readonly number[], readonly number[]],
  batch: readonly [readonly number[], readonly number[]] = [[], []],
): Tensor {
  return bind1('dot_general', [a, b], { contracting: [[...contracting[0]], [...contracting[1]]], batch: [[...batch[0]], [...batch[1]]] });
}

/** Numpy matmul: batch dims broadcast; 1-D operands are promoted and the added axis removed. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  a = asTensor('matmul', a, undefined, 1);
  b = asTensor('matmul', b, undefined, 2);
  if (a.ndim === 0 || b.ndim === 0) throw new OpError('matmul', `operands must have at least one axis, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  if (a.dtype !== b.dtype) throw new OpError('matmul', `dtypes differ: ${a.dtype}${fmtShape(a.shape)} and ${b.dtype}${fmtShape(b.shape)}`);
  const a2 = a.ndim === 1 ? reshape(a, [1, a.shape[0]!]) : a;
  const b2 = b.ndim === 1 ? reshape(b, [b.shape[0]!, 1]) : b;
  const k1 = a2.shape[a2.ndim - 1]!;
  const k2 = b2.shape[b2.ndim - 2]!;
  if (k1 !== k2) throw new OpError('matmul', `inner dimensions differ: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)} (${k1} vs ${k2})`);
  const ba = a2.shape.slice(0, -2);
  const bb = b2.shape.slice(0, -2);
  const bs = broadcastShapes(ba, bb);
  if (!bs) throw new OpError('matmul', `batch dimensions of ${fmtShape(a.shape)} and ${fmtShape(b.shape)} cannot be broadcast`);
  let r: Tensor;
  if (bb.length === 0 && ba.length > 0) {
    // (..., m, k) @ (k, n): contract without batching b.
    r = dotGeneral(a2, b2, [[a2.ndim - 1], [0]]);
  } else {
    const A = broadcastTo(a2, [...bs, ...a2.shape.slice(-2)]);
    const B = broadcastTo(b2, [...bs, ...b2.shape.slice(-2)]);
    const bd = bs.map((_, i) => i);
    r = dotGeneral(A, B, [[bs.length + 1], [bs.length]], [bd, bd]);
  }
  if (a.ndim === 1) r = squeeze(r, r.ndim - 2);
  if (b.ndim === 1) r = squeeze(r, r.ndim - 1);
  return r;
}

export interface ConvOptions {
  strides?: number | readonly number[];
  /** 'VALID', 'SAME', a number for every side, or (lo, hi) per spatial axis. */
  padding?: 'VALID' | 'SAME' | number | readonly (readonly [number, number])[];
  dilation?: number | readonly number[];
  /** Input dilation (for transposed convolutions). */
  lhsDilation?: number | readonly number[];
  groups?: number;
  /** Activation layout, default NCHW. */
  layout?: 'NCHW' | 'NHWC';
  /** Kernel layout, default OIHW. */
  kernelLayout?: 'OIHW' | 'HWIO';
}

/** A window option: one integer >= min for both spatial axes, or a pair of them. */
function convPair(what: string, v: unknown, dflt: number, min: number): number[] {
  if (v === undefined) return [dflt, dflt];
  const pair = typeof v === 'number' ? [v, v] : Array.isArray(v) ? [...(v as unknown[])] : undefined;
  if (!pair || pair.length !== 2 || !pair.every((k) => Number.isInteger(k) && (k as number) >= min)) {
    throw new OpError('conv2d', `${what} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(v) ?? typeof v}`);
  }
  return pair as number[];
}

/** padding as (lo, hi) per spatial axis; 'SAME' needs the input and kernel geometry. */
function convPadding(p: unknown, inSizes: number[], kernel: number[], strides: number[], dil: number[]): [number, number][] {
  const mode = typeof p === 'string' ? p.toUpperCase() : p;
  if (mode === 'VALID') return [[0, 0], [0, 0]];
  if (mode === 'SAME') {
    return kernel.map((k, i) => {
      const outSize = Math.ceil(inSizes[i]! / strides[i]!);
      const total = Math.max(0, (outSize - 1) * strides[i]! + (k - 1) * dil[i]! + 1 - inSizes[i]!);
      return [Math.floor(total / 2), total - Math.floor(total / 2)] as [number, number];
    });
  }
  if (typeof p === 'number' && Number.isInteger(p) && p >= 0) return [[p, p], [p, p]];
  const isPair = (q: unknown): q is [number, number] => Array.isArray(q) && q.length === 2 && q.every((v) => Number.isInteger(v));
  if (Array.isArray(p) && p.length === 2 && p.every(isPair)) return p.map((q) => [q[0], q[1]] as [number, number]);
  throw new OpError('conv2d', `padding must be 'VALID', 'SAME', a non-negative integer or two (lo, hi) integer pairs, got ${JSON.stringify(p) ?? typeof p}`);
}

function oneOf<T extends string>(what: string, v: unknown, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new OpError('conv2d', `${what} must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${JSON.stringify(v) ?? typeof v}`);
  }
  return v as T;
}

/** A 2-D convolution (cross-correlation, as in PyTorch and JAX). */
export function conv2d(x: Tensor, w: Tensor, opts: ConvOptions = {}): Tensor {
  x = asTensor('conv2d', x, undefined, 1);
  w = asTensor('conv2d', w, undefined, 2);
  checkOptions('conv2d', opts, CONV_OPTION_KEYS);
  if (x.ndim !== 4 || w.ndim !== 4) throw new OpError('conv2d', `expected 4-D input and kernel, got ${fmtShape(x.shape)} and ${fmtShape(w.shape)}`);
  const layout = oneOf('layout', opts.layout, ['NCHW', 'NHWC'] as const, 'NCHW');
  const klayout = oneOf('kernelLayout', opts.kernelLayout, ['OIHW', 'HWIO'] as const, 'OIHW');
  const groups = opts.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new OpError('conv2d', `groups must be a positive integer, got ${JSON.stringify(groups) ?? typeof groups}`);
  const dims: ConvDims = {
    lhs: layout === 'NCHW' ? [0, 1, 2, 3] : [0, 3, 1, 2],
    out: layout === 'NCHW' ? [0, 1, 2, 3] : [0, 3, 1, 2],
    rhs: klayout === 'OIHW' ? [0, 1, 2, 3] : [3, 2, 0, 1],
  };
  const strides = convPair('strides', opts.strides, 1, 1);
  const dil = convPair('dilation', opts.dilation, 1, 1);
  const ldil = convPair('lhsDilation', opts.lhsDilation, 1, 1);
  const kernel = [w.shape[dims.rhs[2]!]!, w.shape[dims.rhs[3]!]!];
  const inSizes = [x.shape[dims.lhs[2]!]!, x.shape[dims.lhs[3]!]!];
  const padding = convPadding(opts.padding ?? 'VALID', inSizes, kernel, strides, dil);
  return bind1('conv_general', [x, w], {
    windowStrides: strides,
    padding,
    lhsDilation: ldil,
    rhsDilation: dil,
    featureGroupCount: groups,
    batchGroupCount: 1,
    dims,
  });
}
