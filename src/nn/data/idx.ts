/**
 * IDX files (the MNIST format), raw or gzipped, as untrusted input: the magic, the element type,
 * the rank and every dimension are checked, the data size the header claims is bounded and must
 * match the file exactly, and a gzip stream is inflated only up to the size its header claims,
 * so a lying header or a decompression bomb costs no more memory than the limit.
 */
import { DataError } from './types.js';
import { lazyNode } from '../../ir/node_builtins.js';

// Node modules, looked up on first use (these features need Node; the module itself loads anywhere)
const fs = lazyNode('fs', 'IDX files');
const zlib = lazyNode('zlib', 'IDX files');

export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

/** Largest data section accepted by default (1 GiB; Fashion-MNIST's largest file is 47 MB). */
export const IDX_MAX_BYTES = 1 << 30;

const IDX_TYPES: Readonly<Record<number, string>> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

interface IdxHeader {
  readonly dims: number[];
  readonly headerBytes: number;
  readonly dataBytes: number;
}

/** Parses the header from the file's first bytes; null when more bytes are needed. */
function parseHeader(file: string, head: Uint8Array, rank: number, maxBytes: number): IdxHeader | null {
  if (head.length < 4) return null;
  if (head[0] !== 0 || head[1] !== 0) {
    const got = Array.from(head.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new DataError(`${file}: not an IDX file: bad magic ${got} (expected 00 00 08 0${rank})`);
  }
  const type = head[2]!;
  if (type !== 0x08) {
    const name = IDX_TYPES[type] ?? 'unknown';
    throw new DataError(`${file}: IDX element type 0x${type.toString(16).padStart(2, '0')} (${name}) is not supported; expected 0x08 (unsigned byte)`);
  }
  if (head[3] !== rank) throw new DataError(`${file}: IDX rank ${head[3]} where ${rank} was expected (${rank === 1 ? 'labels' : 'images'})`);
  const headerBytes = 4 + 4 * rank;
  if (head.length < headerBytes) return null;
  const view = new DataView(head.buffer, head.byteOffset, headerBytes);
  const dims: number[] = [];
  let dataBytes = 1;
  for (let i = 0; i < rank; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    if (d === 0 && i > 0) throw new DataError(`${file}: IDX dimension ${i} is 0`);
    dims.push(d);
    dataBytes *= d;
  }
  if (dataBytes > maxBytes) {
    throw new DataError(`${file}: IDX dims [${dims.join(', ')}] claim ${dataBytes} bytes of data, over the limit of ${maxBytes}`);
  }
  return { dims, headerBytes, dataBytes };
}

function checkSize(file: string, h: IdxHeader, total: number, what: string): void {
  const want = h.headerBytes + h.dataBytes;
  if (total < want) {
    throw new DataError(`${file}: truncated: IDX dims [${h.dims.join(', ')}] need ${want} bytes${what}, the file holds ${total}`);
  }
  if (total > want) {
    throw new DataError(`${file}: ${total - want} bytes after the data that IDX dims [${h.dims.join(', ')}] describe (expected ${want} bytes${what})`);
  }
}

function readRaw(file: string, fd: number, size: number, rank: number, maxBytes: number): IdxArray {
  const head = Buffer.alloc(Math.min(size, 4 + 4 * rank));
  fs.readSync(fd, head, 0, head.length, 0);
  const h = parseHeader(file, head, rank, maxBytes);
  if (!h) throw new DataError(`${file}: truncated: ${size} bytes is shorter than an IDX header of rank ${rank} (${4 + 4 * rank} bytes)`);
  checkSize(file, h, size, '');
  const data = new Uint8Array(h.dataBytes);
  let off = 0;
  while (off < data.length) {
    const n = fs.readSync(fd, data, off, data.length - off, h.headerBytes + off);
    if (n === 0) throw new DataError(`${file}: file shrank while reading (got ${off} of ${data.length} data bytes)`);
    off += n;
  }
  return { dims: h.dims, data };
}

/** Compressed prefixes tried for the header; deflate expands at most ~1032x, which bounds each try's output. */
const HEADER_PREFIXES = [256, 4096, 65536];

/**
 * The IDX header from the first bytes of a gzip stream, inflated without requiring the stream's
 * end (sync flush), so the header's claims can bound the full inflate.
 */
function gzipHeader(file: string, compressed: Uint8Array, rank: number, maxBytes: number): IdxHeader {
  const headerBytes = 4 + 4 * rank;
  let got = 0;
  for (const prefix of HEADER_PREFIXES) {
    let out: Buffer;
    try {
      out = zlib.gunzipSync(compressed.subarray(0, prefix), { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: 1100 * prefix + 64 });
    } catch (e) {
      throw new DataError(`${file}: corrupt gzip stream: ${(e as Error).message}`);
    }
    got = out.length;
    const h = parseHeader(file, out.subarray(0, headerBytes), rank, maxBytes);
    if (h) return h;
    if (prefix >= compressed.length) break;
  }
  throw new DataError(`${file}: truncated: the gzip stream yields ${got} bytes, shorter than an IDX header of rank ${rank} (${headerBytes} bytes)`);
}

function readGzip(file: string, compressed: Uint8Array, rank: number, maxBytes: number): IdxArray {
  const h = gzipHeader(file, compressed, rank, maxBytes);
  const want = h.headerBytes + h.dataBytes;
  let out: Buffer;
  try {
    out = zlib.gunzipSync(compressed, { maxOutputLength: want + 1 });
  } catch (e) {
    if (e instanceof RangeError) {
      throw new DataError(`${file}: the gzip stream holds more than the ${want} bytes that IDX dims [${h.dims.join(', ')}] describe`);
    }
    const msg = (e as Error).message;
    const partial = /unexpected end/i.test(msg) ? `truncated gzip stream (IDX dims [${h.dims.join(', ')}] need ${want} bytes uncompressed)` : `corrupt gzip stream: ${msg}`;
    throw new DataError(`${file}: ${partial}`);
  }
  checkSize(file, h, out.length, ' uncompressed');
  return { dims: h.dims, data: new Uint8Array(out.buffer, out.byteOffset + h.headerBytes, h.dataBytes) };
}

/**
 * Reads an IDX file of unsigned bytes with the given rank (1 for labels, 3 for images), raw or
 * gzipped (detected from the gzip magic 1f 8b, whatever the name).
 */
export function readIdx(file: string, rank: number, maxBytes: number = IDX_MAX_BYTES): IdxArray {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new DataError(`cannot open IDX file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const magic = Buffer.alloc(Math.min(2, size));
    fs.readSync(fd, magic, 0, magic.length, 0);
    if (magic[0] === 0x1f && magic[1] === 0x8b) {
      // The compressed file is bounded too: deflate cannot shrink data by more than ~1032x.
      if (size > maxBytes) throw new DataError(`${file}: the gzip file is ${size} bytes, over the limit of ${maxBytes}`);
      const compressed = new Uint8Array(size);
      fs.readSync(fd, compressed, 0, size, 0);
      return readGzip(file, compressed, rank, maxBytes);
    }
    return readRaw(file, fd, size, rank, maxBytes);
  } finally {
    fs.closeSync(fd);
  }
}
