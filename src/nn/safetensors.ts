/**
 * A strict, self-contained safetensors reader and writer on typed arrays.
 *
 * Layout: an 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON mapping each
 * tensor name to {dtype, shape, data_offsets: [begin, end]} (plus an optional
 * "__metadata__": {string: string}), then the data section; offsets are relative to its
 * start (byte 8 + N). Data is little-endian and row-major.
 *
 * The reader validates the whole header (dtypes, shapes, offsets, sizes, overlaps) before it
 * touches the data, so a hostile or truncated file yields a SafetensorsError and never an
 * allocation larger than the file itself. Before JSON.parse sees the header, a structural scan
 * caps the number of entries, metadata keys, array lengths (rank) and nesting (ReadLimits), so a
 * header costs memory and time proportional to its size. Files are opened without following
 * FIFOs (O_NONBLOCK) and must be regular files; the header is checked before the data is read.
 * Aligned F64/F32/I32/... tensors on a little-endian host are returned as views into the input
 * bytes (zero copy): mutating them mutates the input.
 */

import { NexgradError } from '../ir/errors.js';
import { lazyNode } from '../ir/node_builtins.js';
import type { Stats } from 'node:fs';

// Node modules, looked up on first use (these features need Node; the module itself loads anywhere)
const fs = lazyNode('fs', 'safetensors files');
const os = lazyNode('os', 'safetensors files');
const nodePath = lazyNode('path', 'safetensors files');
const nodeCrypto = lazyNode('crypto', 'safetensors files');

export type SafeDType =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8'
  | 'BOOL';

/**
 * Host storage per dtype: F64 Float64Array; F32, F16, BF16 Float32Array (F16/BF16 widened
 * exactly); I64 and U64 Float64Array (integers within +-2^53); I32 Int32Array; I16 Int16Array;
 * I8 Int8Array; U32 Uint32Array; U16 Uint16Array; U8 Uint8Array; BOOL Uint8Array of 0/1.
 */
export type SafeData =
  | Float64Array | Float32Array
  | Int32Array | Int16Array | Int8Array
  | Uint32Array | Uint16Array | Uint8Array;

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  data: SafeData;
}

export interface SafetensorsFile {
  tensors: Map<string, SafeTensor>;
  /** A null-prototype record, so a "__proto__" key is an ordinary key. */
  metadata: Record<string, string>;
}

/**
 * Caps that bound what a header may cost. The defaults admit every real checkpoint we know of
 * (ConvNeXt V2 huge has 510 tensors; large LLM shards a few thousand) and keep the worst case
 * near 1 KB of memory per entry on top of the file itself.
 */
export interface ReadLimits {
  /** Tensor entries per file (default 65,536). */
  maxTensors?: number;
  /** Keys of __metadata__ (default 4,096). */
  maxMetadataKeys?: number;
  /** Dimensions per shape (default 64, numpy's limit). */
  maxRank?: number;
}

export const DEFAULT_READ_LIMITS: Readonly<Required<ReadLimits>> = Object.freeze({
  maxTensors: 65_536,
  maxMetadataKeys: 4_096,
  maxRank: 64,
});

/** A problem with a safetensors file or with data to write as one (a NexgradError). */
export class SafetensorsError extends NexgradError {
  /** The file (or other source label) involved, when known. */
  readonly file: string | undefined;
  /** The tensor involved, when the problem is specific to one. */
  readonly tensor: string | undefined;

  constructor(problem: string, where: { file?: string; tensor?: string; cause?: unknown } = {}) {
    const parts: string[] = [];
    if (where.file !== undefined) parts.push(where.file);
    if (where.tensor !== undefined) parts.push(`tensor ${JSON.stringify(where.tensor)}`);
    parts.push(problem);
    super(parts.join(': '));
    if (where.cause !== undefined) Object.defineProperty(this, 'cause', { value: where.cause, configurable: true, writable: true });
    this.name = 'SafetensorsError';
    this.file = where.file;
    this.tensor = where.tensor;
  }
}

type Ctor =
  | Float64ArrayConstructor | Float32ArrayConstructor
  | Int32ArrayConstructor | Int16ArrayConstructor | Int8ArrayConstructor
  | Uint32ArrayConstructor | Uint16ArrayConstructor | Uint8ArrayConstructor;

interface DTypeInfo {
  /** Bytes per element in the file. */
  readonly size: number;
  /** The typed array holding the decoded values on the host. */
  readonly host: Ctor;
}

const DTYPES: Readonly<Record<SafeDType, DTypeInfo>> = {
  F64: { size: 8, host: Float64Array },
  F32: { size: 4, host: Float32Array },
  F16: { size: 2, host: Float32Array },
  BF16: { size: 2, host: Float32Array },
  I64: { size: 8, host: Float64Array },
  I32: { size: 4, host: Int32Array },
  I16: { size: 2, host: Int16Array },
  I8: { size: 1, host: Int8Array },
  U64: { size: 8, host: Float64Array },
  U32: { size: 4, host: Uint32Array },
  U16: { size: 2, host: Uint16Array },
  U8: { size: 1, host: Uint8Array },
  BOOL: { size: 1, host: Uint8Array },
};

function isSafeDType(x: unknown): x is SafeDType {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, x);
}

/** The reference implementation's cap on the JSON header. */
const MAX_HEADER_BYTES = 100_000_000;
/** The largest file held in one buffer (Node's Buffer/Uint8Array limit on 64-bit hosts). */
const MAX_FILE_BYTES = 2 ** 32;
/** Names that mean PyTorch pickles: never read, never written (one rule for every writer). */
const PICKLE_NAME = /\.(pt|pth|bin|ckpt)$/i;

/** True for file names that mean PyTorch pickles (.pt/.pth/.bin/.ckpt), which no nexgrad reader or writer accepts. */
export function isPickleName(path: string): boolean {
  return PICKLE_NAME.test(path);
}
const METADATA_KEY = '__metadata__';
const ENTRY_KEYS = new Set(['dtype', 'shape', 'data_offsets']);
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const TWO_32 = 4294967296;
/** Matches an unpaired UTF-16 surrogate, which UTF-8 cannot encode. */
const LONE_SURROGATE = /\p{Cs}/u;

const TORCH_CONVERT_COMMAND =
  `python -c "import torch; from safetensors.torch import save_file; ` +
  `sd=torch.load('in.pt', map_location='cpu', weights_only=True); sd=sd.get('model', sd); ` +
  `save_file({k: v.contiguous() for k, v in sd.items()}, 'out.safetensors')"`;

function pickleError(file: string | undefined, why: string): SafetensorsError {
  return new SafetensorsError(
    `${why}: this looks like a PyTorch pickle checkpoint, not safetensors. Pickle files are not ` +
      `unpickled because loading one can run arbitrary code. Convert it to safetensors first:\n  ` +
      TORCH_CONVERT_COMMAND,
    { file },
  );
}

// ---------------------------------------------------------------------------------------------
// Reading

interface Entry {
  name: string;
  dtype: SafeDType;
  shape: number[];
  numel: number;
  begin: number;
  end: number;
}

/** A validated header: entries in data order and the metadata. */
interface Header {
  entries: Entry[];
  metadata: Record<string, string>;
  /** Byte offset of the data section (8 + header length). */
  dataStart: number;
}

type Fail = (problem: string, tensor?: string, cause?: unknown) => SafetensorsError;

function resolveLimits(limits: ReadLimits | undefined): Required<ReadLimits> {
  const out = { ...DEFAULT_READ_LIMITS };
  if (limits === undefined) return out;
  for (const k of Object.keys(DEFAULT_READ_LIMITS) as (keyof ReadLimits)[]) {
    const v = limits[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      throw new SafetensorsError(`limits.${k} must be a positive integer, got ${JSON.stringify(v)}`);
    }
    out[k] = v;
  }
  return out;
}

/**
 * Reads the 8-byte length field and checks it against the file length (`total`: the whole
 * file, which `prefix` may only start). Returns the header length.
 */
function headerLength(prefix: Uint8Array, total: number, fail: Fail, source: string | undefined): number {
  if (total < 8) {
    throw fail(`file is ${total} bytes, shorter than the 8-byte header length field`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const headerLen = view.getBigUint64(0, true);
  const plausible = headerLen <= BigInt(total - 8) && prefix[8] === 0x7b; // '{'
  if (!plausible && (prefix[0] === 0x80 || startsWithZipMagic(prefix))) {
    throw pickleError(source, 'file starts with a pickle/zip signature');
  }
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw fail(`header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (headerLen > BigInt(total - 8)) {
    throw fail(`header length ${headerLen} runs past the end of the file (${total} bytes)`);
  }
  return Number(headerLen);
}

/**
 * Validates a header. `prefix` holds at least the first 8 + N bytes of the file; `total` is the
 * file's length (the data section is what follows the header).
 */
function parseHeader(prefix: Uint8Array, total: number, source: string | undefined, limits: Required<ReadLimits>): Header {
  const fail: Fail = (problem, tensor, cause) => new SafetensorsError(problem, { file: source, tensor, cause });
  const n = headerLength(prefix, total, fail, source);
  const dataStart = 8 + n;
  const dataLen = total - dataStart;
  const headerBytes = prefix.subarray(8, dataStart);

  // Bound what JSON.parse may build before it runs (see scanHeader).
  const tooBig = scanHeader(headerBytes, limits);
  if (tooBig !== undefined) throw fail(tooBig);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch (e) {
    throw fail('header is not valid UTF-8', undefined, e);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw fail(`header is not valid JSON (${e instanceof Error ? e.message : String(e)})`, undefined, e);
  }
  if (!isPlainObject(header)) throw fail('header JSON is not an object');

  // Validate every entry before decoding anything. (JSON.parse makes own properties, so a
  // "__proto__" name is an ordinary key here; the tensors go into a Map.)
  const metadata = parseMetadata(header[METADATA_KEY], fail, limits);
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) continue;
    entries.push(parseEntry(name, raw, dataLen, limits, (p) => fail(p, name)));
  }
  if (entries.length > limits.maxTensors) {
    throw fail(`header has ${entries.length} tensor entries, more than the limit of ${limits.maxTensors} (limits.maxTensors)`);
  }

  // Sort by (begin, end): the writer's order. Then non-empty ranges must not overlap.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prev: Entry | undefined;
  for (const e of entries) {
    if (e.begin === e.end) continue;
    if (prev !== undefined && e.begin < prev.end) {
      throw fail(
        `data_offsets [${e.begin}, ${e.end}] overlap tensor ${JSON.stringify(prev.name)} ` +
          `at [${prev.begin}, ${prev.end}]`,
        e.name,
      );
    }
    prev = e;
  }
  return { entries, metadata, dataStart };
}

function decodeAll(bytes: Uint8Array, h: Header, source: string | undefined): SafetensorsFile {
  const tensors = new Map<string, SafeTensor>();
  for (const e of h.entries) {
    const data = decode(bytes, h.dataStart + e.begin, e, (p) => new SafetensorsError(p, { file: source, tensor: e.name }));
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata: h.metadata };
}

/**
 * Parses a safetensors file held in memory. `source` labels errors (usually the file path).
 * Tensors come back in data order, which is the writer's order (only empty tensors sharing an
 * offset fall back to JS key order). Aligned tensors may be views into `bytes`.
 */
export function parseSafetensors(bytes: Uint8Array, source?: string, limits?: ReadLimits): SafetensorsFile {
  if (!(bytes instanceof Uint8Array)) {
    throw new SafetensorsError(`expected a Uint8Array of file bytes, got ${bytes === null ? 'null' : typeof bytes}`, { file: source });
  }
  return decodeAll(bytes, parseHeader(bytes, bytes.length, source, resolveLimits(limits)), source);
}

/** What kind of file system object a stat describes, for messages. */
function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** Reads exactly `len` bytes at `pos` into `buf` at `off`; false at a premature end of file. */
function readFully(fd: number, buf: Uint8Array, off: number, len: number, pos: number): boolean {
  while (len > 0) {
    const got = fs.readSync(fd, buf, off, len, pos);
    if (got === 0) return false;
    off += got;
    pos += got;
    len -= got;
  }
  return true;
}

/**
 * Reads a .safetensors file. PyTorch pickle checkpoints (.pt/.pth/.bin/.ckpt, or any file
 * with a zip or pickle signature) are rejected with instructions for converting them. Only
 * regular files are read (a FIFO, a device such as /dev/zero, a directory or a socket is
 * refused before any read), the header is validated before the data is read, and no more than
 * the size fstat reported is ever read.
 */
export function readSafetensors(path: string, limits?: ReadLimits): SafetensorsFile {
  if (typeof path !== 'string' || path === '') throw new SafetensorsError(`expected a file path, got ${JSON.stringify(path)}`);
  if (PICKLE_NAME.test(path)) {
    throw pickleError(path, 'refusing to read a .pt/.pth/.bin/.ckpt file');
  }
  const lim = resolveLimits(limits);
  const fail = (problem: string, cause?: unknown): SafetensorsError => new SafetensorsError(problem, { file: path, cause });
  const why = (e: unknown): string => (e instanceof Error ? e.message : String(e));
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    fd = fs.openSync(path, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw fail(`cannot read file (${why(e)})`, e);
  }
  try {
    let st: Stats;
    try {
      st = fs.fstatSync(fd);
    } catch (e) {
      throw fail(`cannot read file (${why(e)})`, e);
    }
    if (!st.isFile()) throw fail(`is ${fileKind(st)}; only regular files are read`);
    const size = st.size;
    if (size > MAX_FILE_BYTES) {
      throw fail(`file is ${size} bytes; files over ${MAX_FILE_BYTES} bytes (4 GiB) cannot be held in one buffer`);
    }
    try {
      const first = new Uint8Array(Math.min(size, 9));
      if (!readFully(fd, first, 0, first.length, 0)) throw fail('file shrank while it was being read');
      const n = headerLength(first, size, (p) => fail(p), path);
      const bytes = new Uint8Array(size);
      if (!readFully(fd, bytes, 0, 8 + n, 0)) throw fail('file shrank while it was being read');
      const header = parseHeader(bytes, size, path, lim);
      if (!readFully(fd, bytes, 8 + n, size - 8 - n, 8 + n)) throw fail('file shrank while it was being read');
      return decodeAll(bytes, header, path);
    } catch (e) {
      if (e instanceof SafetensorsError) throw e;
      throw fail(`cannot read file (${why(e)})`, e);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function startsWithZipMagic(b: Uint8Array): boolean {
  return b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

// Bytes of the JSON structure, for scanHeader.
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;

/**
 * One pass over the header bytes, outside strings, counting the members of every object and
 * array before JSON.parse builds them. A valid header is at most 3 levels deep (header object,
 * entry object, shape/offsets array); it has at most maxTensors + 1 top-level members; arrays
 * hold at most maxRank items; objects at most maxMetadataKeys; and the total number of JSON
 * values is bounded by what maxTensors entries of moderate rank need. Returns a problem, or
 * undefined. The scan is exact for valid JSON and conservative otherwise (JSON.parse rejects
 * what is malformed). UTF-8 multi-byte sequences never contain these ASCII bytes.
 */
function scanHeader(b: Uint8Array, lim: Required<ReadLimits>): string | undefined {
  const budget = 32 * (lim.maxTensors + 1) + 2 * lim.maxMetadataKeys + 64;
  const kinds: number[] = []; // open container bytes, outermost first
  const counts: number[] = []; // commas seen in each open container
  let values = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === QUOTE) {
      i = stringEnd(b, i);
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (kinds.length >= 3) return 'header nests deeper than a safetensors header can (3 levels)';
      kinds.push(c);
      counts.push(0);
      values++;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      kinds.pop();
      counts.pop();
    } else if (c === COMMA && counts.length > 0) {
      const depth = counts.length;
      const members = ++counts[depth - 1]! + 1;
      if (++values > budget) return `header has more than ${budget} JSON values (limit derived from maxTensors ${lim.maxTensors})`;
      const isArray = kinds[depth - 1] === OPEN_ARRAY;
      if (depth === 1 && members > lim.maxTensors + 1) {
        return `header has more than ${lim.maxTensors} tensor entries (limits.maxTensors)`;
      }
      if (depth > 1 && isArray && members > lim.maxRank) {
        return `header has an array of more than ${lim.maxRank} items: shapes may have at most ${lim.maxRank} dimensions (limits.maxRank)`;
      }
      if (depth > 1 && !isArray && members > Math.max(3, lim.maxMetadataKeys)) {
        return `header has an object with more than ${lim.maxMetadataKeys} keys (limits.maxMetadataKeys)`;
      }
    }
  }
  return undefined;
}

/**
 * The index of the quote that closes the string opened at `open` (or b.length when none does).
 * indexOf is native, so long names and metadata values cost next to nothing; a quote preceded
 * by an odd number of backslashes is escaped.
 */
function stringEnd(b: Uint8Array, open: number): number {
  let q = open;
  for (;;) {
    q = b.indexOf(QUOTE, q + 1);
    if (q < 0) return b.length;
    let slashes = 0;
    while (b[q - 1 - slashes] === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return q;
  }
}

function parseMetadata(raw: unknown, fail: Fail, lim: Required<ReadLimits>): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  if (raw === undefined || raw === null) return out;
  if (!isPlainObject(raw)) throw fail(`${METADATA_KEY} is not an object of strings`);
  const entries = Object.entries(raw);
  if (entries.length > lim.maxMetadataKeys) {
    throw fail(`${METADATA_KEY} has ${entries.length} keys, more than the limit of ${lim.maxMetadataKeys} (limits.maxMetadataKeys)`);
  }
  for (const [k, v] of entries) {
    if (typeof v !== 'string') {
      throw fail(`${METADATA_KEY} value for key ${JSON.stringify(k)} is not a string`);
    }
    // A null-prototype record: "__proto__" stays an ordinary key and nothing is inherited.
    out[k] = v;
  }
  return out;
}

/** Validates shape entries and returns the element count, or a problem description. */
function checkShape(shape: unknown, maxRank: number = DEFAULT_READ_LIMITS.maxRank): number | string {
  if (!Array.isArray(shape)) return 'shape is not an array';
  if (shape.length > maxRank) return `shape has ${shape.length} dimensions, more than the limit of ${maxRank}`;
  let numel = 1;
  let empty = false;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      return `shape ${JSON.stringify(shape)} has an entry that is not a non-negative integer`;
    }
    if (d === 0) empty = true;
    numel *= d; // may reach Infinity (or NaN after a 0): handled below
  }
  if (empty) return 0;
  // The running product never shrinks, so checking the final value catches every overflow.
  if (!(numel <= Number.MAX_SAFE_INTEGER)) {
    return `shape ${JSON.stringify(shape)} has more than 2^53 elements`;
  }
  return numel;
}

function parseEntry(
  name: string,
  raw: unknown,
  dataLen: number,
  lim: Required<ReadLimits>,
  fail: (problem: string) => SafetensorsError,
): Entry {
  if (!isPlainObject(raw)) throw fail('header entry is not an object');
  for (const k of Object.keys(raw)) {
    if (!ENTRY_KEYS.has(k)) throw fail(`header entry has unknown field ${JSON.stringify(k)}`);
  }
  const { dtype, shape, data_offsets: offsets } = raw;
  if (dtype === undefined) throw fail('header entry is missing "dtype"');
  if (typeof dtype !== 'string') throw fail('dtype is not a string');
  if (!isSafeDType(dtype)) {
    throw fail(`unknown dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPES).join(', ')})`);
  }
  if (shape === undefined) throw fail('header entry is missing "shape"');
  const numel = checkShape(shape, lim.maxRank);
  if (typeof numel === 'string') throw fail(numel);
  if (offsets === undefined) throw fail('header entry is missing "data_offsets"');
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o))
  ) {
    throw fail(`data_offsets ${JSON.stringify(offsets)} is not a pair of integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (!(begin >= 0 && begin <= end && end <= dataLen)) {
    throw fail(
      `data_offsets [${begin}, ${end}] are out of range: need 0 <= begin <= end <= ${dataLen} ` +
        `(the data section length)`,
    );
  }
  const need = numel * DTYPES[dtype].size; // exact: numel <= 2^53 times a power of two
  if (end - begin !== need) {
    throw fail(
      `data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ` +
        `${JSON.stringify(shape)} of ${dtype} needs ${need} bytes`,
    );
  }
  return { name, dtype, shape: (shape as number[]).slice(), numel, begin, end };
}

/** Byte-reverses each `size`-byte element of b[off, off+len) in place (big-endian hosts). */
function swapBytes(b: Uint8Array, off: number, len: number, size: number): void {
  if (size === 1) return;
  for (let i = off; i < off + len; i += size) {
    for (let lo = i, hi = i + size - 1; lo < hi; lo++, hi--) {
      const t = b[lo]!;
      b[lo] = b[hi]!;
      b[hi] = t;
    }
  }
}

/**
 * n elements of `ctor` stored little-endian at absolute byte `at` of `bytes`: a view when the
 * host is little-endian and the address is aligned, otherwise a (byte-swapped) copy.
 */
function rawArray<C extends Ctor>(ctor: C, bytes: Uint8Array, at: number, n: number): InstanceType<C> {
  const size = ctor.BYTES_PER_ELEMENT;
  const abs = bytes.byteOffset + at;
  if (LITTLE_ENDIAN && abs % size === 0) {
    // (The cast only satisfies the union of constructor overloads; a SharedArrayBuffer works too.)
    return new ctor(bytes.buffer as ArrayBuffer, abs, n) as InstanceType<C>;
  }
  const out = new ctor(n) as InstanceType<C>;
  const raw = new Uint8Array(out.buffer);
  raw.set(bytes.subarray(at, at + n * size));
  if (!LITTLE_ENDIAN) swapBytes(raw, 0, raw.length, size);
  return out;
}

function decode(
  bytes: Uint8Array,
  at: number,
  e: Entry,
  fail: (problem: string) => SafetensorsError,
): SafeData {
  const n = e.numel;
  switch (e.dtype) {
    case 'F64':
    case 'F32':
    case 'I32':
    case 'I16':
    case 'I8':
    case 'U32':
    case 'U16':
    case 'U8':
      return rawArray(DTYPES[e.dtype].host, bytes, at, n);
    case 'BOOL': {
      const raw = bytes.subarray(at, at + n);
      const bad = raw.findIndex((v) => v > 1);
      if (bad >= 0) throw fail(`BOOL element ${bad} has byte value ${raw[bad]} (must be 0 or 1)`);
      return rawArray(Uint8Array, bytes, at, n);
    }
    case 'F16':
    case 'BF16': {
      const half = rawArray(Uint16Array, bytes, at, n);
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer); // writing bits preserves NaN payloads
      if (e.dtype === 'BF16') for (let i = 0; i < n; i++) bits[i] = half[i]! << 16;
      else for (let i = 0; i < n; i++) bits[i] = f16BitsToF32Bits(half[i]!);
      return out;
    }
    case 'I64':
    case 'U64': {
      const words = rawArray(Uint32Array, bytes, at, 2 * n); // (lo, hi) pairs
      const out = new Float64Array(n);
      const signed = e.dtype === 'I64';
      for (let i = 0; i < n; i++) {
        const hi = signed ? words[2 * i + 1]! | 0 : words[2 * i + 1]!;
        const v = hi * TWO_32 + words[2 * i]!;
        // |true value| >= 2^53 rounds to a value >= 2^53, so this catches every loss.
        if (!Number.isSafeInteger(v)) {
          throw fail(`${e.dtype} element ${i} does not fit in a JS number (beyond +-2^53)`);
        }
        out[i] = v;
      }
      return out;
    }
  }
}

/** Exact widening of IEEE binary16 bits to binary32 bits. */
function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let man = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (man << 13)) >>> 0; // inf / NaN
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (man << 13)) >>> 0; // rebias 15 -> 127
  if (man === 0) return sign >>> 0; // +-0
  // Subnormal: value = man * 2^-24; shift the leading one up to the implicit-bit position.
  let e = 113; // f32 biased exponent of 2^-14
  while ((man & 0x400) === 0) {
    man <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((man & 0x3ff) << 13)) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** binary32 bits -> binary16 bits, rounding to nearest even; NaN stays NaN (payload kept). */
function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const e = (x >>> 23) & 0xff;
  const m = x & 0x7fffff;
  if (e === 0xff) {
    if (m === 0) return sign | 0x7c00;
    const payload = m >>> 13;
    return sign | 0x7c00 | (payload === 0 ? 0x200 : payload);
  }
  const exp = e - 127 + 15;
  if (exp >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (exp <= 0) {
    // Result is subnormal (or zero): count units of 2^-24. Below 2^-25 everything rounds to 0.
    if (exp < -10) return sign;
    const full = m | 0x800000;
    const shift = 14 - exp; // 14..24
    let r = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (r & 1) === 1)) r++; // may carry into the exponent
    return sign | r;
  }
  let r = (exp << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++; // carry may give inf: correct
  return sign | r;
}

/** binary32 bits -> bfloat16 bits, rounding to nearest even; NaN stays NaN. */
function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
    const top = x >>> 16;
    return (top & 0x7f) === 0 ? top | 0x40 : top;
  }
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16; // x < 2^32 - 2^16 here, so no wrap
}

/** The typed-array name each dtype's data must have when writing. */
function hostName(d: SafeDType): string {
  return DTYPES[d].host.name;
}

/** Validates one tensor for writing and returns its element count. */
function checkForWrite(name: string, t: SafeTensor): number {
  const fail = (p: string): SafetensorsError => new SafetensorsError(p, { tensor: name });
  if (name === METADATA_KEY) throw fail(`"${METADATA_KEY}" is reserved and cannot name a tensor`);
  if (LONE_SURROGATE.test(name)) throw fail('name contains an unpaired UTF-16 surrogate');
  if (t === null || typeof t !== 'object') throw fail('value is not a tensor');
  if (!isSafeDType(t.dtype)) throw fail(`unknown dtype ${JSON.stringify(t.dtype)}`);
  const numel = checkShape(t.shape);
  if (typeof numel === 'string') throw fail(numel);
  // toStringTag names the typed array class, and works across realms (unlike instanceof).
  const tag: unknown = ArrayBuffer.isView(t.data)
    ? (t.data as unknown as Record<symbol, unknown>)[Symbol.toStringTag]
    : typeof t.data;
  if (tag !== hostName(t.dtype)) {
    throw fail(`${t.dtype} data must be a ${hostName(t.dtype)}, got ${tag}`);
  }
  if (t.data.length !== numel) {
    throw fail(`data has ${t.data.length} elements but shape ${JSON.stringify(t.shape)} needs ${numel}`);
  }
  return numel;
}

/** Writes t's elements little-endian into out at byte `at`. */
function encode(name: string, t: SafeTensor, out: Uint8Array, at: number): void {
  const fail = (p: string): SafetensorsError => new SafetensorsError(p, { tensor: name });
  const n = t.data.length;
  let src: SafeData = t.data;
  switch (t.dtype) {
    case 'BOOL': {
      const bad = t.data.findIndex((v) => v !== 0 && v !== 1);
      if (bad >= 0) throw fail(`BOOL element ${bad} is ${t.data[bad]} (must be 0 or 1)`);
      break;
    }
    case 'F16':
    case 'BF16': {
      const f = t.data as Float32Array;
      const bits = new Uint32Array(f.buffer, f.byteOffset, n);
      const half = new Uint16Array(n);
      const conv = t.dtype === 'F16' ? f32BitsToF16Bits : f32BitsToBf16Bits;
      for (let i = 0; i < n; i++) half[i] = conv(bits[i]!);
      src = half;
      break;
    }
    case 'I64':
    case 'U64': {
      const words = new Uint32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const v = t.data[i]!;
        const ok = Number.isSafeInteger(v) && (t.dtype === 'I64' || v >= 0);
        if (!ok) throw fail(`element ${i} (${v}) is not a${t.dtype === 'U64' ? ' non-negative' : 'n'} integer within +-2^53`);
        const hi = Math.floor(v / TWO_32);
        words[2 * i] = v - hi * TWO_32;
        words[2 * i + 1] = hi >>> 0; // two's complement for negative hi
      }
      src = words;
      break;
    }
    default:
      break;
  }
  out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), at);
  if (!LITTLE_ENDIAN) swapBytes(out, at, src.byteLength, src.BYTES_PER_ELEMENT);
}

/**
 * Serializes tensors (in iteration order, back to back) with optional string metadata. The
 * header is padded with spaces so the data section starts at a multiple of 8 bytes.
 */
export function serializeSafetensors(
  tensors: Record<string, SafeTensor> | Map<string, SafeTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  // The header JSON is assembled by hand so its keys keep the data order (a JS object would
  // move integer-like names first).
  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new SafetensorsError(`metadata value for key ${JSON.stringify(k)} is not a string`);
      }
      if (LONE_SURROGATE.test(k) || LONE_SURROGATE.test(v)) {
        throw new SafetensorsError(`metadata key ${JSON.stringify(k)} or its value has an unpaired surrogate`);
      }
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const [name, t] of list) {
    const bytes = checkForWrite(name, t) * DTYPES[t.dtype].size;
    const entry = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(entry)}`);
    offsets.push(offset);
    offset += bytes;
  }

  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded); // pad with spaces, as the reference does
  list.forEach(([name, t], i) => encode(name, t, out, 8 + padded + offsets[i]!));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Atomic writes and stale temporary files

/** Temporary files are named `<target>.tmp-<host>-<pid>-<random>`; host is 8 hex digits. */
const TEMP_NAME = /\.tmp-([0-9a-f]{8})-(\d{1,10})-[0-9a-f]{12}$/;
/** A temporary file untouched this long is an orphan whatever its pid (shared file systems). */
export const STALE_TEMP_MS = 15 * 60 * 1000;

let hostTagCache: string | undefined;
/** 8 hex digits of a hash of the host name: a pid only means something on its own host. */
function hostTag(): string {
  hostTagCache ??= nodeCrypto.createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);
  return hostTagCache;
}

/** True unless `pid` is certainly not running on this host (EPERM means it runs as another user). */
function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Removes orphaned temporary files of earlier writes into `dir` (a process killed between
 * creating its temp file and renaming it): those whose writer was on this host and is dead, and
 * any not modified for STALE_TEMP_MS. Only regular files with the exact temp-name pattern are
 * touched; failures are ignored (cleaning is a courtesy, the write itself matters). Returns the
 * names removed.
 */
export function cleanStaleTempFiles(dir: string, now = Date.now()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const full = nodePath.join(dir, name);
    try {
      const st = fs.lstatSync(full);
      if (!st.isFile()) continue;
      const deadHere = m[1] === hostTag() && !pidAlive(Number(m[2]));
      if (deadHere || now - st.mtimeMs > STALE_TEMP_MS) {
        fs.unlinkSync(full);
        removed.push(name);
      }
    } catch {
      // raced with another cleaner or the writer's own rename: nothing to do
    }
  }
  return removed;
}

/**
 * Serializes and writes atomically: the bytes go to `${path}.tmp-<host>-<pid>-<random>`, are
 * synced, then renamed over `path`. On any failure the temp file is removed and `path` is
 * untouched. Stale temp files of killed writers in the same directory are removed first.
 * Names ending in .pt/.pth/.bin/.ckpt are refused: they mean PyTorch pickles, and the reader
 * would refuse the file it wrote.
 */
export function writeSafetensors(
  path: string,
  tensors: Record<string, SafeTensor> | Map<string, SafeTensor>,
  metadata?: Record<string, string>,
): void {
  if (typeof path !== 'string' || path === '') throw new SafetensorsError(`expected a file path, got ${JSON.stringify(path)}`);
  if (PICKLE_NAME.test(path)) {
    throw new SafetensorsError(
      'refusing to write safetensors data under a .pt/.pth/.bin/.ckpt name: those names mean PyTorch pickles ' +
        '(and nexgrad refuses to read them); use a .safetensors name',
      { file: path },
    );
  }
  const bytes = serializeSafetensors(tensors, metadata);
  cleanStaleTempFiles(nodePath.dirname(path));
  const tmp = `${path}.tmp-${hostTag()}-${process.pid}-${nodeCrypto.randomBytes(6).toString('hex')}`;
  let created = false;
  try {
    const fd = fs.openSync(tmp, 'wx'); // 'wx': never clobber an existing file
    created = true;
    try {
      fs.writeFileSync(fd, bytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, path);
  } catch (e) {
    if (created) {
      try {
        fs.rmSync(tmp, { force: true });
      } catch {
        // best effort: the original error matters more
      }
    }
    throw new SafetensorsError(`write failed (${e instanceof Error ? e.message : String(e)})`, {
      file: path,
      cause: e,
    });
  }
}
