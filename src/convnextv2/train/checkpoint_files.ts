/**
 * Training checkpoints: one safetensors file per save holding the whole training state
 * (model, EMA, optimizer moments and step, PRNG key) plus, in its metadata, the step, the run's
 * configuration and the data order, and a SHA-256 of every tensor's bytes. Files are written
 * atomically (temporary name, then rename), so a kill at any moment leaves the previous files
 * whole; the last two are kept. A truncated or altered file is refused on load with a message
 * naming the file and the problem.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NexgradError } from '../../ir/errors.js';
import { treeFlatten, treeUnflatten } from '../../ir/pytree.js';
import type { DType } from '../../ir/dtype.js';
import { fromHost } from '../../ir/ops.js';
import type { Tensor } from '../../ir/tensor.js';
import { readSafetensors, type SafeData, type SafeDType, type SafeTensor, writeSafetensors } from '../../nn/safetensors.js';
import { namedLeaves } from '../../nn/tree_paths.js';

export const FORMAT = 'nexgrad-train/1';
const META_KEY = 'nexgrad.train';
const DIGEST_KEY = 'nexgrad.sha256';
const NAME_RE = /^checkpoint-(\d{8})\.safetensors$/;

/** A checkpoint that cannot be used: the file, and what is wrong with it. */
export class CheckpointFileError extends NexgradError {
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`checkpoint ${file}: ${problem}`);
    this.name = 'CheckpointFileError';
    this.file = file;
  }
}

const SAFE_OF: Readonly<Record<DType, SafeDType>> = { f64: 'F64', f32: 'F32', f16: 'F16', bf16: 'BF16', i32: 'I32', u32: 'U32', bool: 'BOOL' };
const DTYPE_OF: Readonly<Partial<Record<SafeDType, DType>>> = { F64: 'f64', F32: 'f32', F16: 'f16', BF16: 'bf16', I32: 'i32', U32: 'u32', BOOL: 'bool' };

/** The file name of the checkpoint after `step` steps. */
export function checkpointName(step: number): string {
  return `checkpoint-${String(step).padStart(8, '0')}.safetensors`;
}

/** Checkpoints in `dir`, newest (highest step) first. */
export function listCheckpoints(dir: string): { file: string; step: number }[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((f) => [f, NAME_RE.exec(f)] as const)
    .filter(([, m]) => m !== null)
    .map(([f, m]) => ({ file: path.join(dir, f), step: Number(m![1]) }))
    .sort((a, b) => b.step - a.step);
}

/** Removes all but the newest `keep` checkpoints, and temporary files of interrupted writes. */
export function pruneCheckpoints(dir: string, keep = 2): void {
  for (const c of listCheckpoints(dir).slice(keep)) fs.rmSync(c.file, { force: true });
  for (const f of fs.readdirSync(dir)) if (/^checkpoint-\d{8}\.safetensors\.tmp-/.test(f)) fs.rmSync(path.join(dir, f), { force: true });
}

function digestOf(tensors: ReadonlyMap<string, SafeTensor>): string {
  const h = createHash('sha256');
  for (const name of [...tensors.keys()].sort()) {
    const t = tensors.get(name)!;
    h.update(`${name}|${t.dtype}|${t.shape.join(',')}|`);
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return h.digest('hex');
}

function safeData(dtype: SafeDType, d: ArrayLike<number>): SafeData {
  switch (dtype) {
    case 'F64': return d instanceof Float64Array ? d : Float64Array.from(d);
    case 'I32': return d instanceof Int32Array ? d : Int32Array.from(d);
    case 'U32': return d instanceof Uint32Array ? d : Uint32Array.from(d);
    case 'BOOL': return d instanceof Uint8Array ? d : Uint8Array.from(d);
    default: return d instanceof Float32Array ? d : Float32Array.from(d);
  }
}

/**
 * Writes `tree` (a pytree of tensors, named by dotted paths) and `meta` to `file` atomically.
 * Values are read with `await t.data()`, so tensors on any device can be saved.
 */
export async function saveTrainCheckpoint(file: string, tree: unknown, meta: Record<string, unknown>): Promise<void> {
  const tensors = new Map<string, SafeTensor>();
  for (const { name, tensor } of namedLeaves(tree, 'saveTrainCheckpoint')) {
    const dtype = SAFE_OF[tensor.dtype];
    tensors.set(name, { dtype, shape: [...tensor.shape], data: safeData(dtype, await tensor.data()) });
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(file, tensors, { [META_KEY]: JSON.stringify({ format: FORMAT, ...meta }), [DIGEST_KEY]: digestOf(tensors) });
}

export interface LoadedCheckpoint<T> {
  tree: T;
  meta: Record<string, unknown>;
}

/** Reads the metadata of a training checkpoint (checked: whole file, digest, format). */
export function readTrainCheckpoint(file: string): { tensors: Map<string, SafeTensor>; meta: Record<string, unknown> } {
  if (!fs.existsSync(file)) throw new CheckpointFileError(file, 'no such file');
  let parsed;
  try {
    parsed = readSafetensors(file);
  } catch (e) {
    throw new CheckpointFileError(file, `cannot be read (${e instanceof Error ? e.message : String(e)}); it may be truncated or corrupt`);
  }
  const metaText = parsed.metadata[META_KEY];
  if (metaText === undefined) throw new CheckpointFileError(file, `is not a nexgrad training checkpoint (no "${META_KEY}" metadata); pass model files with --init, training checkpoints with --resume`);
  let meta: unknown;
  try {
    meta = JSON.parse(metaText);
  } catch {
    throw new CheckpointFileError(file, `its "${META_KEY}" metadata is not valid JSON`);
  }
  if (meta === null || typeof meta !== 'object' || Array.isArray(meta) || (meta as { format?: unknown }).format !== FORMAT) {
    throw new CheckpointFileError(file, `has an unknown format (expected ${FORMAT})`);
  }
  const want = parsed.metadata[DIGEST_KEY];
  const got = digestOf(parsed.tensors);
  if (want !== got) throw new CheckpointFileError(file, `its tensors do not match the SHA-256 recorded when it was written (the file is corrupt)`);
  return { tensors: parsed.tensors, meta: meta as Record<string, unknown> };
}

/**
 * Loads a checkpoint into a tree with `template`'s structure, names, dtypes and shapes; a file
 * that does not fit is refused with a one-line summary, then the first differences.
 */
export function loadTrainCheckpoint<T>(file: string, template: T): LoadedCheckpoint<T> {
  const { tensors, meta } = readTrainCheckpoint(file);
  const want = namedLeaves(template, 'loadTrainCheckpoint');
  const wanted = new Set(want.map((l) => l.name));
  const missing: string[] = [];
  const shapes: string[] = [];
  const values: Tensor[] = [];
  for (const { name, tensor } of want) {
    const t = tensors.get(name);
    if (!t) {
      missing.push(name);
      continue;
    }
    const dt = DTYPE_OF[t.dtype];
    if (dt !== tensor.dtype || t.shape.length !== tensor.ndim || t.shape.some((d, i) => d !== tensor.shape[i])) {
      shapes.push(`${name}: file ${t.dtype}[${t.shape.join(',')}], run ${tensor.dtype}[${tensor.shape.join(',')}]`);
      continue;
    }
    values.push(fromHost(dt, t.shape, t.data.slice() as never));
  }
  const unexpected = [...tensors.keys()].filter((k) => !wanted.has(k));
  if (missing.length || shapes.length || unexpected.length) {
    const summary = `does not fit this run: ${missing.length} missing, ${unexpected.length} unexpected, ${shapes.length} mismatched tensors`;
    const details = [
      ...missing.slice(0, 3).map((n) => `missing ${n}`),
      ...unexpected.slice(0, 3).map((n) => `unexpected ${n}`),
      ...shapes.slice(0, 3),
    ];
    throw new CheckpointFileError(file, `${summary}\n  ${details.join('\n  ')}`);
  }
  const { def } = treeFlatten(template, 'loadTrainCheckpoint', 'template');
  return { tree: treeUnflatten<T>(def, values), meta };
}
