/**
 * PyTorch float64 reference vectors from ../shared/refs (relative to the repo root), as Tensors:
 * float data as f64, I64 (labels) as i32.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as ops from '../../src/ir/ops.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { readSafetensors } from '../../src/nn/safetensors.js';

export const REFS_DIR = fileURLToPath(new URL('../../../shared/refs/', import.meta.url));

export function refsPath(name: string): string {
  return `${REFS_DIR}${name}.safetensors`;
}

export function haveRefs(name: string): boolean {
  return existsSync(refsPath(name));
}

export interface Refs {
  get(key: string): Tensor;
  has(key: string): boolean;
  keys(): string[];
  /** Entries whose name starts with `prefix`, with the prefix removed. */
  withPrefix(prefix: string): [string, Tensor][];
  metadata: Record<string, string>;
}

const cache = new Map<string, Refs>();

export function loadRefs(name: string): Refs {
  const hit = cache.get(name);
  if (hit) return hit;
  const file = readSafetensors(refsPath(name));
  const tensors = new Map<string, Tensor>();
  for (const [k, t] of file.tensors) {
    let x: Tensor;
    switch (t.dtype) {
      case 'F64':
      case 'F32':
      case 'F16':
      case 'BF16':
        x = ops.fromHost('f64', t.shape, Float64Array.from(t.data));
        break;
      case 'I64':
      case 'I32':
      case 'I16':
      case 'I8':
      case 'U8':
      case 'U16':
        x = ops.fromHost('i32', t.shape, Int32Array.from(t.data));
        break;
      default:
        throw new Error(`refs ${name}: unsupported dtype ${t.dtype} for ${k}`);
    }
    tensors.set(k, x);
  }
  const refs: Refs = {
    get(key) {
      const t = tensors.get(key);
      if (!t) throw new Error(`refs ${name}: no key ${JSON.stringify(key)}`);
      return t;
    },
    has: (key) => tensors.has(key),
    keys: () => [...tensors.keys()],
    withPrefix: (prefix) => [...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]),
    metadata: file.metadata,
  };
  cache.set(name, refs);
  return refs;
}

/**
 * Relative error max|a - b| / max|b| (max-norm relative error), computed in float64; shapes
 * must match. Returns Infinity on a NaN.
 */
export function relErr(a: Tensor, b: Tensor): number {
  if (a.shape.join() !== b.shape.join()) throw new Error(`relErr: shapes differ: [${a.shape}] vs [${b.shape}]`);
  const x = a.dataSync();
  const y = b.dataSync();
  let num = 0;
  let den = 0;
  for (let i = 0; i < x.length; i++) {
    const d = Math.abs(x[i]! - y[i]!);
    if (Number.isNaN(d)) return Infinity;
    if (d > num) num = d;
    const m = Math.abs(y[i]!);
    if (m > den) den = m;
  }
  return den === 0 ? num : num / den;
}

/** A copy cast to another float dtype (used to run the f64 refs in f32). */
export function castTo(t: Tensor, dtype: 'f32' | 'f64'): Tensor {
  return ops.cast(t, dtype);
}
