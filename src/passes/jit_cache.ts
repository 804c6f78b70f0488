/**
 * jit's disk cache: where entries live, their key (the program, the backend and device, the
 * donation, and a fingerprint of the compiler's own code), and reading and writing them.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MemoryPlan } from '../codegen/kernel/device.js';
import type { KernelGraph } from '../codegen/kernel/kernel_graph.js';
import { deserializeLowered, serializeLowered } from '../codegen/kernel/serialize.js';
import type { Program } from '../ir/program.js';

/** Bumped whenever the cached format changes. */
export const COMPILER_VERSION = 'nexgrad-0.1.0-k3';

let fingerprint: string | undefined;

/**
 * A hash of the compiler's own code (every file under src/passes and src/codegen, every
 * backend included), part of every disk-cache key: a changed compiler never reads graphs an
 * older one wrote.
 */
export function compilerFingerprint(): string {
  if (fingerprint) return fingerprint;
  const h = createHash('sha256').update(COMPILER_VERSION);
  try {
    const here = path.dirname(fileURLToPath(import.meta.url));
    for (const dir of [here, path.join(here, '..', 'codegen')]) {
      const files = (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith('.d.ts')).sort();
      for (const f of files) h.update(f).update(fs.readFileSync(path.join(dir, f)));
    }
  } catch {
    h.update(String(Date.now())); // sources not readable: never share cache entries
  }
  fingerprint = h.digest('hex').slice(0, 16);
  return fingerprint;
}

export function defaultCacheDir(): string {
  return process.env.NEXGRAD_CACHE_DIR ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'nexgrad');
}

function programHash(p: Program): string {
  const h = createHash('sha256');
  h.update(p.toString());
  for (const c of p.consts) h.update(Buffer.from(c.value.data.buffer, c.value.data.byteOffset, c.value.data.byteLength));
  return h.digest('hex');
}

/** The cache key of a program compiled for a device with the given donated input positions. */
export function cacheKey(program: Program, backend: string, deviceId: string, donated: readonly number[]): string {
  return createHash('sha256').update([programHash(program), backend, deviceId, compilerFingerprint(), donated.join(',')].join('|')).digest('hex');
}

function writeAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
}

/** The cached graph and plan under `key`, or undefined (missing or unreadable: recompiled). */
export function readCached(dir: string, key: string): { graph: KernelGraph; plan: MemoryPlan } | undefined {
  const file = path.join(dir, `${key}.json`);
  if (!fs.existsSync(file)) return undefined;
  try {
    return deserializeLowered(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined; // a corrupt cache file is recompiled and overwritten
  }
}

export function writeCached(dir: string, key: string, graph: KernelGraph, plan: MemoryPlan): void {
  try {
    writeAtomic(path.join(dir, `${key}.json`), serializeLowered(graph, plan));
  } catch {
    /* a read-only cache directory only costs recompiles */
  }
}
