/**
 * jit's disk cache: where entries live, their key (the program, the backend and device, the
 * donation, and a fingerprint of the compiler's own code), and reading and writing them.
 */
import { nodeModule } from '../ir/node_builtins.js';
import { cacheMaxBytes, privateDir, readPrivateFile, warnOnce, writeFileAtomic } from '../ir/private_files.js';

export { cacheMaxBytes };
import type { MemoryPlan } from '../codegen/kernel/device.js';
import type { KernelGraph } from '../codegen/kernel/kernel_graph.js';
import { deserializeLowered, serializeLowered } from '../codegen/kernel/serialize.js';
import type { HostArray } from '../ir/host.js';
import type { Program } from '../ir/program.js';

// Node's modules, looked up when used (the disk cache is off where they are missing: a browser)
const node = () => {
  const fs = nodeModule('fs');
  const path = nodeModule('path');
  const os = nodeModule('os');
  const crypto = nodeModule('crypto');
  const url = nodeModule('url');
  return fs && path && os && crypto && url ? { fs, path, os, crypto, url } : undefined;
};
const sha256 = () => node()!.crypto.createHash('sha256');

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
  const n = node();
  if (!n) return (fingerprint = `${COMPILER_VERSION}-no-disk`);
  const { fs, path } = n;
  const h = sha256().update(COMPILER_VERSION);
  try {
    const here = path.dirname(n.url.fileURLToPath(import.meta.url));
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

/** The default cache directory, or undefined where there is no file system (a browser). */
export function defaultCacheDir(): string | undefined {
  const n = node();
  if (!n) return undefined;
  return process.env.NEXGRAD_CACHE_DIR ?? n.path.join(process.env.XDG_CACHE_HOME ?? n.path.join(n.os.homedir(), '.cache'), 'nexgrad');
}

function programHash(p: Program): string {
  const h = sha256();
  h.update(p.toString());
  for (const c of p.consts) h.update(new Uint8Array(c.value.data.buffer, c.value.data.byteOffset, c.value.data.byteLength));
  return h.digest('hex');
}

/** The cache key of a program compiled for a device with the given donated input positions. */
export function cacheKey(program: Program, backend: string, deviceId: string, donated: readonly number[]): string {
  return sha256().update([programHash(program), backend, deviceId, compilerFingerprint(), donated.join(',')].join('|')).digest('hex');
}

/**
 * The disk cache is untrusted input (a shared NEXGRAD_CACHE_DIR, a cache restored from CI,
 * another user's directory). An entry is used only when: the directory is ours and not
 * writable by others (created 0700); the file is a regular file we own, not writable by
 * others, under the size cap (opened without following links, so /dev/zero, a FIFO or a
 * symlink is never read); its header names the expected key and the sha256 of its payload;
 * and the payload passes the field-by-field validation of serialize.ts. Anything else is
 * discarded with a one-line warning and recompiled. The cache is trimmed to a size cap
 * (NEXGRAD_CACHE_MAX_BYTES, default 512 MiB), least recently used entries first.
 */
const MAX_ENTRY_BYTES = 256 * 2 ** 20;
const HEADER = 'nexgrad-cache-1';

/** Checks (creating it 0700 if missing) that `dir` is a private directory; false (with one warning) if not. */
export function usableCacheDir(dir: string): boolean {
  if (!node()) return false;
  const ok = privateDir(dir, 0o022);
  if (ok !== true) warnOnce(`dir:${dir}`, `the jit disk cache at ${dir} is not used: ${ok}`);
  return ok === true;
}

/** Where an entry lives; `key` is a hex digest, so nothing else reaches the path. */
function entryPath(dir: string, key: string): string {
  if (!/^[0-9a-f]{64}$/.test(key)) throw new Error('jit cache: malformed key');
  return node()!.path.join(dir, `${key}.json`);
}

/** The cached graph and plan under `key`, or undefined (missing, or discarded with a warning). */
export function readCached(dir: string, key: string, consts: readonly HostArray[]): { graph: KernelGraph; plan: MemoryPlan } | undefined {
  const file = entryPath(dir, key);
  const bytes = readPrivateFile(file, MAX_ENTRY_BYTES);
  if (bytes === '') return undefined;
  const { fs } = node()!;
  const discard = (why: string): undefined => {
    warnOnce(`entry:${file}:${why}`, `discarding jit cache entry ${file}: ${why}; recompiling`);
    try {
      fs.unlinkSync(file);
    } catch {
      /* not ours to remove */
    }
    return undefined;
  };
  if (typeof bytes === 'string') return discard(bytes);
  const text = new TextDecoder().decode(bytes);
  const nl = text.indexOf('\n');
  let header: { format?: unknown; key?: unknown; sha256?: unknown };
  try {
    header = JSON.parse(nl < 0 ? text : text.slice(0, nl)) as typeof header;
  } catch {
    return discard('its header is not JSON');
  }
  const payload = text.slice(nl + 1);
  if (header.format !== HEADER) return discard('unknown format');
  if (header.key !== key) return discard('it belongs to another program');
  if (header.sha256 !== sha256().update(payload).digest('hex')) return discard('its contents do not match their digest');
  try {
    const entry = deserializeLowered(payload, consts);
    const now = new Date();
    fs.utimesSync(file, now, now); // least recently used goes first when trimming
    return entry;
  } catch (e) {
    return discard((e as Error).message);
  }
}

/** Removes the least recently used entries until the directory holds at most `max` bytes. */
export function trimCache(dir: string, max = cacheMaxBytes()): void {
  const { fs, path } = node()!;
  const entries: { file: string; size: number; mtime: number }[] = [];
  for (const name of fs.readdirSync(dir)) {
    if (!/^[0-9a-f]{64}\.json$/.test(name)) continue;
    const file = path.join(dir, name);
    const st = fs.lstatSync(file);
    if (st.isFile()) entries.push({ file, size: st.size, mtime: st.mtimeMs });
  }
  let total = entries.reduce((a, e) => a + e.size, 0);
  entries.sort((a, b) => a.mtime - b.mtime);
  for (const e of entries) {
    if (total <= max) break;
    fs.unlinkSync(e.file);
    total -= e.size;
  }
}

export function writeCached(dir: string, key: string, graph: KernelGraph, plan: MemoryPlan): void {
  try {
    const payload = serializeLowered(graph, plan);
    const header = JSON.stringify({ format: HEADER, key, sha256: sha256().update(payload).digest('hex') });
    writeFileAtomic(entryPath(dir, key), `${header}\n${payload}`);
    trimCache(dir);
  } catch (e) {
    warnOnce(`write:${dir}`, `could not write to the jit disk cache at ${dir}: ${(e as Error).message}`);
  }
}
