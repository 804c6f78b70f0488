/** Helpers for the data tests: temporary folders and IDX / CIFAR files written byte by byte. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `nexgrad-${prefix}-`));
}

/** An IDX file of unsigned bytes: 00 00 08 rank, big-endian dims, data. */
export function idxBytes(dims: readonly number[], data: ArrayLike<number>, opts: { type?: number; magic0?: number } = {}): Uint8Array {
  const head = new Uint8Array(4 + 4 * dims.length);
  head[0] = opts.magic0 ?? 0;
  head[2] = opts.type ?? 0x08;
  head[3] = dims.length;
  const view = new DataView(head.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  const out = new Uint8Array(head.length + data.length);
  out.set(head);
  out.set(Uint8Array.from(data), head.length);
  return out;
}

export function gzip(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(zlib.gzipSync(bytes));
}

/** Writes an MNIST-layout split (images and labels) into dir, gzipped or not. */
export function writeMnistSplit(dir: string, stem: 'train' | 't10k', images: Uint8Array, labels: Uint8Array, h: number, w: number, gz: boolean): void {
  const n = labels.length;
  const put = (name: string, bytes: Uint8Array): void => fs.writeFileSync(path.join(dir, gz ? `${name}.gz` : name), gz ? gzip(bytes) : bytes);
  put(`${stem}-images-idx3-ubyte`, idxBytes([n, h, w], images));
  put(`${stem}-labels-idx1-ubyte`, idxBytes([n], labels));
}

/** Deterministic pseudo-random bytes (an LCG: test data, not a reference). */
export function bytes(n: number, seed: number, mod = 256): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s >>> 24) % mod;
  }
  return out;
}
