/**
 * Files that are untrusted input and must stay ours: the jit disk cache and the native CPU
 * object cache share these rules. A directory is used only when it is (made) ours, not a link,
 * and closed to others; a file is read only when it is a regular file we own that nobody else
 * can write, under a size cap, opened without following links and without blocking (a FIFO
 * neither hangs nor is read); writes are atomic (a fresh temporary name, then rename).
 */
import { nodeModule } from './node_builtins.js';

const myUid = (): number | undefined => (typeof process.getuid === 'function' ? process.getuid() : undefined);

const warned = new Set<string>();

/** Prints `nexgrad: message` once per key for the life of the process. */
export function warnOnce(key: string, message: string): void {
  if (warned.has(key)) return;
  warned.add(key);
  console.warn(`nexgrad: ${message}`);
}

/**
 * Whether `dir` is (made, 0700) a private directory: ours, not a link, and with none of the
 * `closed` mode bits set (0o022: nobody else may write; 0o077: nobody else may use it at all).
 * Returns true or the reason.
 */
export function privateDir(dir: string, closed: number): true | string {
  const fs = nodeModule('fs');
  if (!fs) return 'no file system';
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    const uid = myUid();
    if (!st.isDirectory()) return 'it is not a directory';
    if (uid !== undefined && st.uid !== uid) return `it belongs to another user (uid ${st.uid})`;
    if (st.mode & closed) return `others can ${closed & 0o055 ? 'use' : 'write to'} it (mode ${(st.mode & 0o777).toString(8)}); chmod 700 it`;
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.R_OK);
    return true;
  } catch (e) {
    return (e as Error).message;
  }
}

/** The bytes of a private regular file under `cap` bytes; '' when it does not exist; the reason otherwise. */
export function readPrivateFile(file: string, cap: number): Uint8Array | string {
  const fs = nodeModule('fs')!;
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? '' : `cannot open it (${code})`;
  }
  try {
    const st = fs.fstatSync(fd);
    const uid = myUid();
    if (!st.isFile()) return 'it is not a regular file';
    if (uid !== undefined && st.uid !== uid) return `it belongs to another user (uid ${st.uid})`;
    if (st.mode & 0o022) return 'others can write to it';
    if (st.size > cap) return `it is larger than ${cap} bytes`;
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const n = fs.readSync(fd, buf, off, st.size - off, off);
      if (n <= 0) break;
      off += n;
    }
    return off === st.size ? buf : 'it changed while being read';
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes `file` atomically with `mode` (a fresh temporary name in its directory, then rename). */
export function writeFileAtomic(file: string, data: Uint8Array | string, mode = 0o600): void {
  const fs = nodeModule('fs')!;
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    fs.writeFileSync(tmp, data, { mode, flag: 'wx' });
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

/** The size cap of each on-disk cache directory: NEXGRAD_CACHE_MAX_BYTES, default 512 MiB. */
export function cacheMaxBytes(): number {
  const v = typeof process !== 'undefined' ? process.env.NEXGRAD_CACHE_MAX_BYTES : undefined;
  const n = v === undefined ? NaN : Number(v);
  return Number.isFinite(n) && n >= 0 ? n : 512 * 2 ** 20;
}
