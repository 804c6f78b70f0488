/**
 * Shared pieces of the CPU emitters: the kernel code record, scratch specs, the function
 * wrapper, and the range / nested loop builders (see emit.ts for the calling convention).
 */
import { nestedLoops } from '../lower/scope_builder.js';
import type { CodeBuilder } from './scope.js';
import type { DwRowConfig, WasmFunc, WgRowConfig } from './wasm.js';
import type { ReduceOp } from '../kernel/kernel_graph.js';

/** A scratch array a kernel needs (allocated once per executable). */
export interface ScratchSpec {
  readonly type: 'f64' | 'f32' | 'i32';
  /** Elements. */
  readonly size: number;
  /** When set, the array is a view of the executable's WebAssembly memory at this byte offset. */
  readonly wasmByteOffset?: number;
}

export interface JsKernelCode {
  readonly kind: 'js';
  readonly name: string;
  /** Body of `new Function('H', 'T', source)` returning the kernel function. */
  readonly source: string;
  /** Buffer ids in argument order (after start, end). */
  readonly bufs: readonly number[];
  /** Scratch arrays, passed after the buffers. */
  readonly scratch: readonly ScratchSpec[];
  /** Constant tables (T). */
  readonly tables: readonly (Int32Array | Float64Array)[];
  /** Size of the range: the kernel is fn(0, total, ...); when splittable, any split works. */
  readonly total: number;
  readonly splittable: boolean;
  /** Rough work per range element (flops or element ops), for deciding whether to split. */
  readonly workPerItem: number;
  /** Optional WebAssembly micro-kernel this kernel calls (see wasm.ts). */
  readonly wasm?: WasmUse;
  /**
   * A GEMM whose packed B (`bytes` in WebAssembly memory) may be kept across calls when the
   * buffers it reads (`bufs`) do not change: the kernel takes a PackedBCache or null (`BC`)
   * before its WebAssembly function.
   */
  readonly bCache?: { readonly bufs: readonly number[]; readonly bytes: number };
}

/**
 * A kernel's packed B kept in WebAssembly memory across calls (matmul.ts, device.ts): `state()`
 * says 2 when `view` holds the packing of the current sources, 1 when the sources are those of
 * the previous call but not yet kept (the kernel packs, copies into `view` and calls `kept()`),
 * 0 when they changed.
 */
export interface PackedBCache {
  readonly view: Float32Array;
  state(): 0 | 1 | 2;
  kept(): void;
}

/**
 * The WebAssembly function a kernel calls (passed as its last argument) over the executable's
 * memory, which holds the kernel's scratch views; `bytes` is how much of it the kernel uses.
 */
export type WasmUse =
  /** With `epilogue` or `prologue`, the function is the micro-kernel combined with them (wasm.ts, gemmFusedModuleBytes). */
  | { readonly kind: 'gemm_f32'; readonly bytes: number; readonly epilogue?: WasmFunc; readonly prologue?: WasmFunc; readonly bPrologue?: WasmFunc }
  | { readonly kind: 'dwrow'; readonly bytes: number; readonly cfg: DwRowConfig }
  | { readonly kind: 'wgrow'; readonly bytes: number; readonly cfg: WgRowConfig }
  /** A row-reduction loop kernel's function rows(n) (wasm_rowloop.ts). */
  | { readonly kind: 'rowloop'; readonly bytes: number; readonly func: WasmFunc };

export type KernelCode = JsKernelCode;

export interface EmitOptions {
  /** Use the WebAssembly SIMD GEMM micro-kernel for f32 matmuls (default: when available). */
  readonly wasm?: boolean;
  /**
   * Compile f32 matmul epilogues to WebAssembly SIMD where they are expressible (default: on,
   * with the WebAssembly GEMM; see wasm_epilogue.ts). true / 'f32x4' computes in f32 lanes
   * (rounding every operation to f32, as XLA does); 'f64x2' computes in f64 lanes, about half
   * as fast, and matches the JavaScript epilogue bit for bit; false keeps the JavaScript one.
   */
  readonly wasmEpilogue?: boolean | 'f64x2' | 'f32x4';
}

export function safeName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_$]/g, '_');
  return /^[A-Za-z_$]/.test(s) ? s : `k_${s}`;
}

export const HELPERS_PRELUDE = 'const erf = H.erf, roundF16 = H.roundF16, roundBf16 = H.roundBf16;';

/** Wraps a function body into the module source. */
export function wrapFunction(name: string, params: readonly string[], body: string, preludeLines: readonly string[] = []): string {
  return [HELPERS_PRELUDE, ...preludeLines, `return function ${safeName(name)}(${params.join(', ')}) {`, ...body.split('\n').map((l) => `  ${l}`), '};'].join('\n');
}

/** Initial accumulator values (argmax: index -1, i.e. nothing seen; its best value lives in `<acc>v`). */
export const REDUCE_INIT: Readonly<Record<ReduceOp, string>> = { sum: '0', max: '-Infinity', min: 'Infinity', argmax: '-1' };

/**
 * The statement folding `v` into accumulator `a` (max/min propagate NaN like the host; argmax
 * keeps the first index of the largest value, a NaN counting as largest, its value in `<a>v`,
 * `i` being the row index).
 */
export function reduceUpdate(op: ReduceOp, a: string, v: string, i = ''): string {
  switch (op) {
    case 'sum':
      return `${a} += ${v};`;
    case 'max':
      return `if (${v} > ${a} || ${v} !== ${v}) ${a} = ${v};`;
    case 'min':
      return `if (${v} < ${a} || ${v} !== ${v}) ${a} = ${v};`;
    case 'argmax':
      return `if (${a} < 0 || ${v} > ${a}v || (${v} !== ${v} && ${a}v === ${a}v)) { ${a}v = ${v}; ${a} = ${i}; }`;
  }
}

/**
 * Opens loops over the flattened index space of `dims` restricted to [start, end): the last
 * dimension is the innermost loop (vars[last] at depth+2), the others an odometer updated once
 * per run of the innermost loop (defined at depth+1). `body` fills the innermost scope.
 */
export function emitRangeLoops(cb: CodeBuilder, dims: readonly number[], vars: readonly string[], body: () => void): void {
  const vL = vars[vars.length - 1]!;
  emitRangeLoopsPrefix(cb, dims, vars, () => {
    cb.open(vL);
    body();
    cb.close(`for (let ${vL} = _lo; ${vL} < _hi; ${vL}++)`);
  });
}

/**
 * Like emitRangeLoops, but `body` fills the per-prefix scope (depth+1) and must itself loop the
 * last variable over [_lo, _hi).
 */
export function emitRangeLoopsPrefix(cb: CodeBuilder, dims: readonly number[], vars: readonly string[], body: () => void): void {
  const n = dims.length;
  const L = n - 1;
  const NL = dims[L]!;
  cb.line(`let _f = start, _q = start;`);
  cb.line(`let _lo = _q % ${NL}; _q = (_q - _lo) / ${NL};`);
  for (let d = L - 1; d >= 1; d--) {
    cb.line(`let ${vars[d]} = _q % ${dims[d]}; _q = (_q - ${vars[d]}) / ${dims[d]};`);
  }
  if (L >= 1) cb.line(`let ${vars[0]} = _q;`);
  cb.open(...vars.slice(0, L));
  cb.line(`const _hi = _lo + (end - _f) < ${NL} ? _lo + (end - _f) : ${NL};`);
  body();
  cb.line('_f += _hi - _lo;');
  cb.line('_lo = 0;');
  if (L >= 1) {
    const chain = (d: number): string => (d === 0 ? `${vars[0]}++;` : `if (++${vars[d]} === ${dims[d]}) { ${vars[d]} = 0; ${chain(d - 1)} }`);
    cb.line(chain(L - 1));
  }
  cb.close('while (_f < end)');
}

/** Nested full loops over `dims` (vars at successive depths); an empty list is one block. */
export function emitNestedLoops(cb: CodeBuilder, dims: readonly number[], vars: readonly string[], body: () => void): void {
  nestedLoops(cb, dims, vars, 'let', body);
}

