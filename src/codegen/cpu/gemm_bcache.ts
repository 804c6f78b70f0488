/**
 * Packed weights kept across calls on the JavaScript/WebAssembly path (the native dialect has
 * the same in native/gemm_bcache_c.ts). A f32 GEMM whose B is a plain strided read of a buffer
 * the graph never writes (an input that is not donated, or a constant: inference weights) packs
 * all of B once, block by block in the layout the micro-kernel reads, into an array of the
 * kernel's own, and each block is then one `set` into Bp instead of a scalar packing loop.
 * "Unchanged" is checked, not assumed: a tensor made by `fromHost` shares the caller's array,
 * which the caller may still write, so every call compares B's bytes (as i32, so -0 and NaN
 * payloads count) with a copy taken when it packed, and repacks on any difference. The arrays
 * live in the kernel function's closure: one per instance (each worker thread has its own).
 */
import { AX } from '../kernel/axis.js';
import { affineStrides } from '../kernel/index_expr.js';
import type { GemmSpec } from '../lower/gemm_spec.js';
import { bufName, type CodeBuilder } from './scope.js';

/** The element range [lo, hi) of B's buffer that B reads, or null when B is not a plain strided read. */
function bRegion(spec: GemmSpec): { lo: number; hi: number } | null {
  if (spec.bExpr || spec.k === 0 || spec.n === 0) return null;
  const a = affineStrides(spec.bIdx);
  if (!a) return null;
  for (const [ax, s] of a.strides) if (s < 0 || (ax !== AX.k && ax !== AX.n)) return null;
  const hi = a.offset + (spec.k - 1) * (a.strides.get(AX.k) ?? 0) + (spec.n - 1) * (a.strides.get(AX.n) ?? 0) + 1;
  return { lo: a.offset, hi };
}

/** Largest packed B cached per kernel (elements): 16M (64 MiB). */
const MAX_PACKED = 1 << 24;

export interface BCache {
  readonly lo: number;
  readonly len: number;
  /** Elements of the packed copy. */
  readonly packed: number;
}

/**
 * Whether the GEMM caches its packed B: f32, B a plain strided read (no batch term) of a buffer in
 * `stable`. `ncBlocks * NC` columns (rounded to the register tile) by K.
 */
export function planBCache(spec: GemmSpec, bDtype: string, stable: ReadonlySet<number> | undefined, NC: number): BCache | null {
  if (!stable || spec.dtype !== 'f32' || bDtype !== 'f32' || !stable.has(spec.bBuf)) return null;
  const r = bRegion(spec);
  if (!r) return null;
  const packed = Math.ceil(spec.n / NC) * NC * spec.k;
  if (packed > MAX_PACKED) return null;
  return { lo: r.lo, len: r.hi - r.lo, packed };
}

/** Closure state of a kernel with a B cache (wrapFunction prelude lines). */
export const B_CACHE_PRELUDE = ['let _bcPacked = null, _bcSrc = null;'];

/**
 * Emits, at the top of the kernel function, the check and (when B changed or on the first call)
 * the repack of every block; `packBlock(dst, base)` emits the packing of the block at _jc, _pc
 * (with _nc, _ncp, _kc, _kcNR defined) into dst at element offset base.
 */
export function emitBCacheRefresh(cb: CodeBuilder, spec: GemmSpec, c: BCache, t: { NC: number; KC: number; NR: number }, packBlock: (dst: string, base: string) => void): void {
  const src = bufName(spec.bBuf);
  cb.line(`const _bcI = new Int32Array(${src}.buffer, ${src}.byteOffset + ${c.lo * 4}, ${c.len});`);
  cb.line('let _bcSame = _bcPacked !== null;');
  cb.line(`if (_bcSame) for (let _i = 0; _i < ${c.len}; _i++) if (_bcSrc[_i] !== _bcI[_i]) { _bcSame = false; break; }`);
  cb.line('if (!_bcSame) {');
  cb.line(`  if (_bcPacked === null) { _bcPacked = new Float32Array(${c.packed}); _bcSrc = new Int32Array(${c.len}); }`);
  cb.line('  _bcSrc.set(_bcI);');
  cb.open();
  cb.line(`const _nc = ${spec.n} - _jc < ${t.NC} ? ${spec.n} - _jc : ${t.NC};`);
  cb.line(`const _ncp = ((_nc + ${t.NR - 1}) / ${t.NR} | 0) * ${t.NR};`);
  cb.open();
  cb.line(`const _kc = ${spec.k} - _pc < ${t.KC} ? ${spec.k} - _pc : ${t.KC};`);
  cb.line(`const _kcNR = _kc * ${t.NR};`);
  cb.line(`const _bo = _jc * ${spec.k} + _pc * _ncp;`);
  packBlock('_bcPacked', '_bo + ');
  cb.close(`for (let _pc = 0; _pc < ${spec.k}; _pc += ${t.KC})`);
  cb.close(`for (let _jc = 0; _jc < ${spec.n}; _jc += ${t.NC})`);
  cb.line('}');
}

/** The block's copy into Bp (inside the column and K block loops). */
export function emitBCacheCopy(cb: CodeBuilder, spec: GemmSpec): void {
  cb.line(`{ const _bo = _jc * ${spec.k} + _pc * _ncp; Bp.set(_bcPacked.subarray(_bo, _bo + _kc * _ncp)); }`);
}
