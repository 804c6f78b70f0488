/**
 * ng.io: safetensors files <-> Tensors. loadSafetensors gives a record of dotted names to
 * Tensors (use nn.unflattenParams for a nested tree); saveSafetensors writes any pytree of
 * Tensors under dotted names, atomically.
 *
 * dtypes: nexgrad holds f64, f32, f16, bf16, i32, u32 and bool, so the file's dtypes map by
 * one table (SAFE_DTYPE_MAP, also used by convnextv2.loadCheckpoint): floats to the same float,
 * signed integers to i32, unsigned integers to u32, BOOL to bool. Widening (I8, I16, U8, U16) is
 * exact; I64 and U64 values must fit in i32 / u32, else the load fails naming the tensor, the
 * element and the value. Nothing wraps silently.
 */
import type { DType, HostData } from '../ir/dtype.js';
import { fromHost } from '../ir/ops.js';
import { shapeProblem } from '../ir/shape.js';
import type { Tensor } from '../ir/tensor.js';
import {
  type ReadLimits,
  parseSafetensors,
  readSafetensors,
  type SafeData,
  type SafeDType,
  type SafeTensor,
  SafetensorsError,
  writeSafetensors,
} from './safetensors.js';
import { forbiddenSegment, namedLeaves } from './tree_paths.js';

export { SafetensorsError, DEFAULT_READ_LIMITS, type ReadLimits } from './safetensors.js';

interface DTypeRule {
  /** The nexgrad dtype a file dtype loads as. */
  readonly dtype: DType;
  /** Inclusive value range when the file dtype is wider than `dtype` (I64, U64). */
  readonly range?: readonly [number, number];
}

const I32_RANGE = [-(2 ** 31), 2 ** 31 - 1] as const;
const U32_RANGE = [0, 2 ** 32 - 1] as const;

/** The one mapping from safetensors dtypes to nexgrad dtypes (see the file comment). */
export const SAFE_DTYPE_MAP: Readonly<Record<SafeDType, DTypeRule>> = Object.freeze({
  F64: { dtype: 'f64' },
  F32: { dtype: 'f32' },
  F16: { dtype: 'f16' },
  BF16: { dtype: 'bf16' },
  I64: { dtype: 'i32', range: I32_RANGE },
  I32: { dtype: 'i32' },
  I16: { dtype: 'i32' },
  I8: { dtype: 'i32' },
  U64: { dtype: 'u32', range: U32_RANGE },
  U32: { dtype: 'u32' },
  U16: { dtype: 'u32' },
  U8: { dtype: 'u32' },
  BOOL: { dtype: 'bool' },
});

/** The safetensors dtype each nexgrad dtype is written as. */
export const NEXGRAD_TO_SAFE: Readonly<Record<DType, SafeDType>> = Object.freeze({
  f64: 'F64', f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32', u32: 'U32', bool: 'BOOL',
});

/** The host array class of each nexgrad dtype (f16/bf16 are held widened in a Float32Array). */
const HOST_OF: Readonly<Record<DType, { from(xs: ArrayLike<number>): HostData; name: string }>> = {
  f64: Float64Array, f32: Float32Array, f16: Float32Array, bf16: Float32Array,
  i32: Int32Array, u32: Uint32Array, bool: Uint8Array,
};

/**
 * The first element of `data` outside `range` (or not an integer), as [index, value], or
 * undefined when all fit. Used for the range-checked narrowings.
 */
export function firstOutOfRange(data: ArrayLike<number>, range: readonly [number, number]): [number, number] | undefined {
  const [lo, hi] = range;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!(v >= lo && v <= hi) || !Number.isInteger(v)) return [i, v];
  }
  return undefined;
}

/** The inclusive range of an integer nexgrad dtype, or undefined for floats. */
export function intRange(dtype: DType): readonly [number, number] | undefined {
  if (dtype === 'i32') return I32_RANGE;
  if (dtype === 'u32') return U32_RANGE;
  if (dtype === 'bool') return [0, 1];
  return undefined;
}

/**
 * The nexgrad dtype and host data of a safetensors tensor, by SAFE_DTYPE_MAP. `fail` makes the
 * error for a value outside the target range (it gets the problem text).
 */
export function hostDataOf(t: SafeTensor, fail: (problem: string) => Error): { dtype: DType; data: HostData } {
  const rule = SAFE_DTYPE_MAP[t.dtype];
  if (rule.range) {
    const bad = firstOutOfRange(t.data, rule.range);
    if (bad) {
      throw fail(`${t.dtype} element ${bad[0]} is ${bad[1]}, outside the ${rule.dtype} range [${rule.range[0]}, ${rule.range[1]}] nexgrad loads ${t.dtype} as`);
    }
  }
  const host = HOST_OF[rule.dtype];
  const data: SafeData = t.data;
  // The reader already gives the right class for F64/F32/F16/BF16/I32/U32/BOOL (often a view).
  const same = (data as { constructor: unknown }).constructor === host;
  return { dtype: rule.dtype, data: same ? (data as HostData) : host.from(data) };
}

/**
 * A tensor of one entry. `bytes` are the caller's: data that views them is copied, so a loaded
 * tensor never shares memory with the caller's buffer or with another load of the same bytes
 * (donating one would change the other).
 */
function toTensor(name: string, t: SafeTensor, source: string | undefined, bytes: Uint8Array | undefined): Tensor {
  // The file format allows dimensions up to 2^53 (in an empty tensor); a nexgrad tensor does not.
  const bad = shapeProblem(t.shape);
  if (bad !== undefined) throw new SafetensorsError(`shape ${JSON.stringify(t.shape)} cannot be a nexgrad tensor: ${bad}`, { file: source, tensor: name });
  const { dtype, data } = hostDataOf(t, (p) => new SafetensorsError(p, { file: source, tensor: name }));
  return fromHost(dtype, t.shape, bytes && data.buffer === bytes.buffer ? data.slice() : data);
}

export interface LoadSafetensorsOptions {
  /** Caps on the header (see ReadLimits). */
  limits?: ReadLimits;
}

/**
 * Reads a safetensors file (path or bytes) into a null-prototype record {name: Tensor}, dtypes
 * mapped by SAFE_DTYPE_MAP. A name with a `__proto__`, `constructor` or `prototype` segment is
 * refused (SafetensorsError): such names exist to attack code that walks dotted names.
 */
export function loadSafetensors(pathOrBytes: string | Uint8Array, opts?: LoadSafetensorsOptions): Record<string, Tensor>;
/** In a browser: the body of a fetch() Response. */
export function loadSafetensors(response: Response, opts?: LoadSafetensorsOptions): Promise<Record<string, Tensor>>;
export function loadSafetensors(src: string | Uint8Array | Response, opts: LoadSafetensorsOptions = {}): Record<string, Tensor> | Promise<Record<string, Tensor>> {
  if (typeof Response !== 'undefined' && src instanceof Response) {
    if (!src.ok) return Promise.reject(new SafetensorsError(`the response is HTTP ${src.status} ${src.statusText}`, { file: src.url }));
    return src.arrayBuffer().then((b) => loadBytesOrPath(new Uint8Array(b), opts, false));
  }
  return loadBytesOrPath(src as string | Uint8Array, opts, true);
}

function loadBytesOrPath(pathOrBytes: string | Uint8Array, opts: LoadSafetensorsOptions, callerBytes: boolean): Record<string, Tensor> {
  const source = typeof pathOrBytes === 'string' ? pathOrBytes : undefined;
  const bytes = typeof pathOrBytes === 'string' || !callerBytes ? undefined : pathOrBytes;
  const file = typeof pathOrBytes === 'string' ? readSafetensors(pathOrBytes, opts.limits) : parseSafetensors(pathOrBytes, undefined, opts.limits);
  const out = Object.create(null) as Record<string, Tensor>;
  for (const name of file.tensors.keys()) {
    const seg = forbiddenSegment(name);
    if (seg !== undefined) {
      throw new SafetensorsError(`the name has a ${JSON.stringify(seg)} segment, which nexgrad refuses in tensor names (prototype pollution)`, { file: source, tensor: name });
    }
  }
  for (const [name, t] of file.tensors) out[name] = toTensor(name, t, source, bytes);
  return out;
}

/**
 * Writes the Tensor leaves of `tree` under their dotted names (atomic write). Like every nexgrad
 * writer, refuses .pt/.pth/.bin/.ckpt names (they mean PyTorch pickles).
 */
export function saveSafetensors(path: string, tree: unknown, metadata: Record<string, string> = {}): void {
  const record = new Map<string, SafeTensor>();
  for (const { name, tensor } of namedLeaves(tree, 'saveSafetensors')) {
    const seg = forbiddenSegment(name);
    if (seg !== undefined) {
      throw new SafetensorsError(`the name has a ${JSON.stringify(seg)} segment, which nexgrad refuses in tensor names (its loaders would refuse the file)`, { file: path, tensor: name });
    }
    const data = tensor.dataSync();
    record.set(name, { dtype: NEXGRAD_TO_SAFE[tensor.dtype], shape: [...tensor.shape], data: data as SafeData });
  }
  writeSafetensors(path, record, metadata);
}
