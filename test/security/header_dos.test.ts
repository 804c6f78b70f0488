/**
 * Header denial of service (issue 8, item 3). Before the fix, inside the 100 MB header cap,
 * 6.87M metadata keys took 61 s and 4 GB, 1.6M empty tensors 20 s and 2.6 GB, and a shape of
 * 47M dimensions 1.65 GB; `loadSafetensors('/dev/zero')` killed the process and a FIFO hung it.
 * Now a structural scan refuses such headers before JSON.parse runs (ReadLimits), and only
 * regular files are read. The files here are scaled down but exceed the limits the same way;
 * times and memory are bounded generously (CI machines are slow and shared).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSafetensors, SafetensorsError } from '../../src/nn/io.js';
import { DEFAULT_READ_LIMITS, parseSafetensors, readSafetensors } from '../../src/nn/safetensors.js';

/** A file whose header is exactly `json` (space-padded to 8) followed by `data` bytes. */
function fileOf(json: string, data = 0): Uint8Array {
  const h = Buffer.from(json, 'utf8');
  const padded = Math.ceil(h.length / 8) * 8;
  const out = new Uint8Array(8 + padded + data);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(h, 8);
  out.fill(0x20, 8 + h.length, 8 + padded);
  return out;
}

/** Runs f, returning its error (or undefined), the seconds it took and the heap+buffer growth. */
function measure(f: () => unknown): { err: unknown; seconds: number; grownBytes: number } {
  globalThis.gc?.();
  const m0 = process.memoryUsage();
  const t0 = performance.now();
  let err: unknown;
  let peak = 0;
  try {
    f();
  } catch (e) {
    err = e;
  }
  const m1 = process.memoryUsage();
  peak = Math.max(0, m1.heapUsed - m0.heapUsed) + Math.max(0, m1.arrayBuffers - m0.arrayBuffers);
  return { err, seconds: (performance.now() - t0) / 1000, grownBytes: peak };
}

function expectRefused(r: { err: unknown }, re: RegExp): void {
  expect(r.err).toBeInstanceOf(SafetensorsError);
  expect((r.err as Error).message).toMatch(re);
}

const emptyEntry = (name: string, dtype = 'F32'): string => `${JSON.stringify(name)}:{"dtype":"${dtype}","shape":[0],"data_offsets":[0,0]}`;

describe('header caps', () => {
  it('too many metadata keys is refused before JSON.parse builds them', () => {
    const n = 300_000; // ~6 MB of header: 73x the default limit
    const parts: string[] = [];
    for (let i = 0; i < n; i++) parts.push(`"k${i}":"v"`);
    const file = fileOf(`{"__metadata__":{${parts.join(',')}}}`);
    const r = measure(() => parseSafetensors(file, 'meta.safetensors'));
    expectRefused(r, /^meta\.safetensors: header has an object with more than 4096 keys \(limits\.maxMetadataKeys\)/);
    expect(r.seconds).toBeLessThan(1);
    expect(r.grownBytes).toBeLessThan(4 * file.length + 32e6);
  });

  it('too many tensor entries is refused; at the limit the file parses in bounded time and memory', () => {
    // 4x the limit: refused by the scan, before JSON.parse
    const names = Array.from({ length: 4 * DEFAULT_READ_LIMITS.maxTensors }, (_, i) => `t${i}`);
    const big = fileOf(`{${names.map((n) => emptyEntry(n)).join(',')}}`);
    const r = measure(() => parseSafetensors(big));
    expectRefused(r, /header has more than 65536 tensor entries \(limits\.maxTensors\)/);
    expect(r.seconds).toBeLessThan(1);
    expect(r.grownBytes).toBeLessThan(2 * big.length + 16e6);
    // one over the limit (the scan allows one more top-level key for __metadata__)
    const oneOver = fileOf(`{${names.slice(0, DEFAULT_READ_LIMITS.maxTensors + 1).map((n) => emptyEntry(n)).join(',')}}`);
    expect(() => parseSafetensors(oneOver)).toThrow(/65537 tensor entries, more than the limit of 65536 \(limits\.maxTensors\)/);

    const atLimit = fileOf(`{${names.slice(0, DEFAULT_READ_LIMITS.maxTensors).map((n) => emptyEntry(n)).join(',')}}`);
    let count = 0;
    const ok = measure(() => (count = parseSafetensors(atLimit).tensors.size));
    expect(ok.err).toBeUndefined();
    expect(count).toBe(DEFAULT_READ_LIMITS.maxTensors);
    // ~3.6 MB of header; worst case about 1 KB per entry on top of the file
    expect(ok.grownBytes).toBeLessThan(4 * atLimit.length + 1024 * DEFAULT_READ_LIMITS.maxTensors);
    expect(ok.seconds).toBeLessThan(5);
  });

  it('a raised limit admits more entries', () => {
    const names = Array.from({ length: 70_000 }, (_, i) => `t${i}`);
    const file = fileOf(`{${names.map((n) => emptyEntry(n)).join(',')}}`);
    expect(() => parseSafetensors(file)).toThrow(/maxTensors/);
    expect(parseSafetensors(file, undefined, { maxTensors: 100_000 }).tensors.size).toBe(70_000);
    expect(() => parseSafetensors(file, undefined, { maxTensors: 0 })).toThrow(/limits\.maxTensors must be a positive integer/);
  });

  it('a shape of millions of dimensions is refused without building the array', () => {
    const dims = 5_000_000; // 10 MB of "1,"
    const file = fileOf(`{"w":{"dtype":"F32","shape":[${'1,'.repeat(dims - 1)}1],"data_offsets":[0,4]}}`, 4);
    const r = measure(() => parseSafetensors(file, 'rank.safetensors'));
    expectRefused(r, /rank\.safetensors: header has an array of more than 64 items: shapes may have at most 64 dimensions/);
    expect(r.seconds).toBeLessThan(1);
    expect(r.grownBytes).toBeLessThan(2 * file.length + 16e6);
  });

  it('rank 64 is read; rank 65 is refused naming the tensor', () => {
    const shape = (r: number): string => `[${Array(r).fill(1).join(',')}]`;
    const ok = parseSafetensors(fileOf(`{"w":{"dtype":"F32","shape":${shape(64)},"data_offsets":[0,4]}}`, 4));
    expect(ok.tensors.get('w')!.shape.length).toBe(64);
    // 65 items pass the scan only with a raised array cap; the entry check still names the tensor
    expect(() => parseSafetensors(fileOf(`{"w":{"dtype":"F32","shape":${shape(65)},"data_offsets":[0,4]}}`, 4))).toThrow(/more than 64 items/);
  });

  it('headers nested deeper than a safetensors header can be are refused', () => {
    const deep = fileOf(`{"w":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}}`, 4);
    expect(() => parseSafetensors(deep)).toThrow(/nests deeper than a safetensors header can/);
    const bomb = fileOf(`{"__metadata__":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`);
    const r = measure(() => parseSafetensors(bomb));
    expectRefused(r, /nests deeper/);
    expect(r.seconds).toBeLessThan(1);
  });

  it('the scan is not fooled by structure inside strings', () => {
    // braces, brackets, commas and escaped quotes inside names and metadata values
    const tricky = fileOf(
      `{"__metadata__":{"cfg":"{\\"a\\": [1,2,3], \\"b\\": {\\"c\\": [[[[]]]]}}","x\\\\":"]]]]]]"},"w,[{\\"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`,
      4,
    );
    const got = parseSafetensors(tricky);
    expect(Object.keys(got.metadata)).toEqual(['cfg', 'x\\']);
    expect([...got.tensors.keys()]).toEqual(['w,[{"']);
    // 5,000 commas inside one metadata string are not 5,000 keys
    const commas = fileOf(`{"__metadata__":{"long":"${','.repeat(5000)}"}}`);
    expect(parseSafetensors(commas).metadata.long).toHaveLength(5000);
  });

  it('a large valid header parses at well under a second per 100 MB', () => {
    // 20 MB: one metadata value (a config blob) and 2,000 small tensors
    const entries = Array.from({ length: 2000 }, (_, i) => `"layer${i}.weight":{"dtype":"F32","shape":[1],"data_offsets":[${4 * i},${4 * i + 4}]}`);
    const file = fileOf(`{"__metadata__":{"blob":"${'x'.repeat(20_000_000)}"},${entries.join(',')}}`, 8000);
    const r = measure(() => parseSafetensors(file));
    expect(r.err).toBeUndefined();
    expect(r.seconds).toBeLessThan(0.2 * 5); // 0.2 s for 20 MB at 1 s / 100 MB, with 5x slack
  });
});

describe('special files', () => {
  let dir = '';
  const children: ChildProcess[] = [];
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-dos-'));
  });
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('/dev/zero is refused at once as a character device', () => {
    const r = measure(() => loadSafetensors('/dev/zero'));
    expectRefused(r, /^\/dev\/zero: is a character device; only regular files are read/);
    expect(r.seconds).toBeLessThan(0.5);
    expect(r.grownBytes).toBeLessThan(8e6);
  });

  it('a symlink to /dev/zero named like a checkpoint is refused the same way', () => {
    const link = path.join(dir, 'model.safetensors');
    fs.symlinkSync('/dev/zero', link);
    expectRefused(measure(() => readSafetensors(link)), /is a character device/);
  });

  it('a FIFO is refused at once instead of waiting for a writer', () => {
    const fifo = path.join(dir, 'pipe.safetensors');
    const made = spawnSync('mkfifo', [fifo]);
    expect(made.status, `mkfifo: ${made.stderr}`).toBe(0);
    // A writer that never writes: before the fix the read blocked until it gave up (5 s) and
    // then failed on an empty file; without it, the open itself would hang forever.
    children.push(spawn('sh', ['-c', `sleep 5 > '${fifo}'`], { stdio: 'ignore' }));
    const r = measure(() => loadSafetensors(fifo));
    expectRefused(r, /pipe\.safetensors: is a FIFO \(named pipe\); only regular files are read/);
    expect(r.seconds).toBeLessThan(1);
  });

  it('a directory is refused with a named error', () => {
    expectRefused(measure(() => readSafetensors(dir)), /is a directory; only regular files are read/);
  });

  it('a file whose header length runs past its end fails before the data is read', () => {
    const p = path.join(dir, 'liar.safetensors');
    const bytes = fileOf('{}');
    new DataView(bytes.buffer).setBigUint64(0, 99_000_000n, true);
    fs.writeFileSync(p, bytes);
    expectRefused(measure(() => readSafetensors(p)), /header length 99000000 runs past the end of the file \(16 bytes\)/);
  });
});
