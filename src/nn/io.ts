/**
 * ng.io: safetensors files <-> Tensors. loadSafetensors gives a record of dotted names to
 * Tensors (use nn.unflattenParams for a nested tree); saveSafetensors writes any pytree of
 * Tensors under dotted names, atomically.
 */
import type { DType } from '../ir/dtype.js';
import { NexgradError } from '../ir/errors.js';
import { fromHost } from '../ir/ops.js';
import type { Tensor } from '../ir/tensor.js';
import { parseSafetensors, readSafetensors, type SafeDType, type SafeTensor, writeSafetensors } from './safetensors.js';
import { namedLeaves } from './tree_paths.js';

const TO_DTYPE: Partial<Record<SafeDType, DType>> = { F64: 'f64', F32: 'f32', F16: 'f16', BF16: 'bf16', I32: 'i32', U32: 'u32', BOOL: 'bool', U8: 'bool' };
const FROM_DTYPE: Record<DType, SafeDType> = { f64: 'F64', f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32', u32: 'U32', bool: 'BOOL' };

function toTensor(name: string, t: SafeTensor): Tensor {
  const dt = TO_DTYPE[t.dtype];
  if (dt) {
    const data = dt === 'f16' || dt === 'bf16' ? Float32Array.from(t.data as ArrayLike<number>) : t.data;
    return fromHost(dt, t.shape, data as never);
  }
  if (t.dtype === 'I64' || t.dtype === 'I8' || t.dtype === 'I16' || t.dtype === 'U16') return fromHost('i32', t.shape, Int32Array.from(t.data as ArrayLike<number>));
  throw new NexgradError(`loadSafetensors: tensor "${name}" has dtype ${t.dtype}, which nexgrad cannot hold`);
}

/** Reads a safetensors file (path or bytes) into {name: Tensor}. I64 becomes i32 (values checked by the reader). */
export function loadSafetensors(pathOrBytes: string | Uint8Array): Record<string, Tensor> {
  const file = typeof pathOrBytes === 'string' ? readSafetensors(pathOrBytes) : parseSafetensors(pathOrBytes);
  const out: Record<string, Tensor> = {};
  for (const [name, t] of file.tensors) out[name] = toTensor(name, t);
  return out;
}

/** Writes the Tensor leaves of `tree` under their dotted names (atomic write). */
export function saveSafetensors(path: string, tree: unknown, metadata: Record<string, string> = {}): void {
  const record: Record<string, SafeTensor> = {};
  for (const { name, tensor } of namedLeaves(tree, 'saveSafetensors')) {
    const data = tensor.dataSync();
    record[name] = { dtype: FROM_DTYPE[tensor.dtype], shape: [...tensor.shape], data: data as never };
  }
  writeSafetensors(path, record, metadata);
}
