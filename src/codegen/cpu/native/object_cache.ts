/**
 * The on-disk cache of compiled shared objects (kernel graphs and the addon itself), keyed by a
 * sha256 of the source, the compiler's identity and the flags. Files are untrusted input (a
 * shared cache directory, one restored from elsewhere): an object is used only when the
 * directory is private (ours, mode 0700, not a link), the object and its record are regular
 * files we own that nobody else can write, the object is under the size cap, the record names
 * the key and the object's sha256, and the bytes match it. The verified bytes are then copied
 * to a fresh private file, which is what gets loaded, so nothing can swap the file between the
 * check and dlopen. Writes are atomic (temporary name + rename); the directory is trimmed to a
 * size cap, least recently used first. Anything wrong is a one-line warning and a recompile.
 */
import { nodeModule } from '../../../ir/node_builtins.js';
import { cacheMaxBytes, privateDir as privateDirWith, readPrivateFile, warnOnce, writeFileAtomic } from '../../../ir/private_files.js';

export { warnOnce };

const MAX_OBJECT_BYTES = 64 * 2 ** 20;
const FORMAT = 'nexgrad-cpu-object-1';

const node = () => {
  const fs = nodeModule('fs');
  const path = nodeModule('path');
  const os = nodeModule('os');
  const crypto = nodeModule('crypto');
  return fs && path && os && crypto ? { fs, path, os, crypto } : undefined;
};

export function sha256Hex(...parts: (string | Uint8Array)[]): string {
  const h = node()!.crypto.createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
}

/** The directory for compiled objects (NEXGRAD_CACHE_DIR or ~/.cache/nexgrad, then cpu-native). */
export function objectCacheDir(): string | undefined {
  const n = node();
  if (!n) return undefined;
  const base = process.env.NEXGRAD_CACHE_DIR ?? n.path.join(process.env.XDG_CACHE_HOME ?? n.path.join(n.os.homedir(), '.cache'), 'nexgrad');
  return n.path.join(base, 'cpu-native');
}

/** Whether `dir` is (made) a private directory closed to others; the reason when not. */
export function privateDir(dir: string): true | string {
  return privateDirWith(dir, 0o077);
}

const paths = (dir: string, key: string, ext: string): { obj: string; rec: string } => {
  if (!/^[0-9a-f]{64}$/.test(key)) throw new Error('cpu-native cache: malformed key');
  const { path } = node()!;
  return { obj: path.join(dir, `${key}.${ext}`), rec: path.join(dir, `${key}.json`) };
};

/**
 * The verified object under `key`, copied to a fresh private file ready to load (the caller
 * loads it; the copy lives in `dir`/load), or undefined when missing or discarded.
 */
export function readObject(dir: string, key: string, ext: string): string | undefined {
  const { fs, path } = node()!;
  const { obj, rec } = paths(dir, key, ext);
  const discard = (why: string): undefined => {
    warnOnce(`obj:${obj}:${why}`, `discarding compiled CPU object ${obj}: ${why}; recompiling`);
    for (const f of [obj, rec]) {
      try {
        fs.unlinkSync(f);
      } catch {
        /* not ours to remove, or gone */
      }
    }
    return undefined;
  };
  const recBytes = readPrivateFile(rec, 4096);
  if (recBytes === '') return undefined;
  if (typeof recBytes === 'string') return discard(recBytes);
  let record: { format?: unknown; key?: unknown; sha256?: unknown; size?: unknown };
  try {
    record = JSON.parse(new TextDecoder().decode(recBytes)) as typeof record;
  } catch {
    return discard('its record is not JSON');
  }
  if (record === null || typeof record !== 'object' || record.format !== FORMAT) return discard('unknown record format');
  if (record.key !== key) return discard('its record belongs to another object');
  const bytes = readPrivateFile(obj, MAX_OBJECT_BYTES);
  if (bytes === '') return discard('the object is missing');
  if (typeof bytes === 'string') return discard(bytes);
  if (record.size !== bytes.length || record.sha256 !== sha256Hex(bytes)) return discard('its bytes do not match their digest');
  const loadDir = path.join(dir, 'load');
  const ok = privateDir(loadDir);
  if (ok !== true) return discard(`no private directory to load from (${ok})`);
  const copy = path.join(loadDir, `${key}-${process.pid}-${Math.random().toString(36).slice(2)}.${ext}`);
  fs.writeFileSync(copy, bytes, { mode: 0o500, flag: 'wx' });
  const now = new Date();
  try {
    fs.utimesSync(rec, now, now);
  } catch {
    /* the LRU order is a hint */
  }
  return copy;
}

/** Stores a freshly compiled object under `key` (atomic), then trims the directory. */
export function writeObject(dir: string, key: string, ext: string, bytes: Uint8Array): void {
  const { obj, rec } = paths(dir, key, ext);
  try {
    writeFileAtomic(obj, bytes, 0o600);
    writeFileAtomic(rec, JSON.stringify({ format: FORMAT, key, sha256: sha256Hex(bytes), size: bytes.length }), 0o600);
    trimObjects(dir);
  } catch (e) {
    warnOnce(`write:${dir}`, `could not write to the CPU object cache at ${dir}: ${(e as Error).message}`);
  }
}


/** Removes least recently used objects until the directory holds at most the cap. */
export function trimObjects(dir: string, max = cacheMaxBytes()): void {
  const { fs, path } = node()!;
  const entries: { key: string; files: string[]; size: number; mtime: number }[] = [];
  // one listing, grouped by key (a listing per record made every compile quadratic in the entries)
  const names = fs.readdirSync(dir);
  const byKey = new Map<string, string[]>();
  for (const f of names) {
    if (f.includes('.tmp-')) continue;
    const k = /^([0-9a-f]{64})/.exec(f)?.[1];
    if (k) byKey.set(k, [...(byKey.get(k) ?? []), f]);
  }
  for (const name of names) {
    const m = /^([0-9a-f]{64})\.json$/.exec(name);
    if (!m) continue;
    const files = (byKey.get(m[1]!) ?? []).map((f) => path.join(dir, f));
    let size = 0;
    let mtime = 0;
    for (const f of files) {
      const st = fs.lstatSync(f);
      size += st.size;
      if (f.endsWith('.json')) mtime = st.mtimeMs;
    }
    entries.push({ key: m[1]!, files, size, mtime });
  }
  let total = entries.reduce((a, e) => a + e.size, 0);
  entries.sort((a, b) => a.mtime - b.mtime);
  for (const e of entries) {
    if (total <= max) break;
    for (const f of e.files) fs.unlinkSync(f);
    total -= e.size;
  }
}
