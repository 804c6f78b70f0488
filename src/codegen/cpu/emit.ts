/**
 * Kernel -> JavaScript source for the CPU backend.
 *
 * Every generated kernel is the body of `new Function('H', 'T', source)`: H holds the runtime
 * helpers (erf, f16/bf16 rounding, round-half-even), T the kernel's precomputed tables; the body
 * returns `function (start, end, ...buffers, ...scratch)`, which computes the part [start, end)
 * of the kernel's splittable range (loop kernels: the flattened outer index space; matmul: the
 * flattened (batch, row) space; fast convolutions: output positions). Running [0, total) does
 * the whole kernel; disjoint ranges write disjoint outputs, so halves can run on two threads.
 */
import type { DType } from '../../ir/dtype.js';
import { PRIMS } from '../../ir/primitives/index.js';
import { affineStrides } from '../index_expr.js';
import type { HostKernel, Kernel, KernelGraph, LoopKernel, ReduceOp, SExpr } from '../kernel.js';
import { emitConv } from './conv.js';
import { emitMatmul } from './matmul.js';
import { bufName, CodeBuilder } from './scope.js';
import type { DwRowConfig, WgRowConfig } from './wasm.js';

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
}

/**
 * The WebAssembly function a kernel calls (passed as its last argument) over the executable's
 * memory, which holds the kernel's scratch views; `bytes` is how much of it the kernel uses.
 */
export type WasmUse =
  | { readonly kind: 'gemm_f32'; readonly bytes: number }
  | { readonly kind: 'dwrow'; readonly bytes: number; readonly cfg: DwRowConfig }
  | { readonly kind: 'wgrow'; readonly bytes: number; readonly cfg: WgRowConfig };

export interface HostKernelCode {
  readonly kind: 'host';
  readonly name: string;
  readonly source: string;
  readonly kernel: HostKernel;
}

export type KernelCode = JsKernelCode | HostKernelCode;

/** Buffer dtypes by id. */
export function bufferDtypes(g: KernelGraph): Map<number, DType> {
  return new Map(g.buffers.map((b) => [b.id, b.dtype]));
}

export function safeName(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_$]/g, '_');
  return /^[A-Za-z_$]/.test(s) ? s : `k_${s}`;
}

export const HELPERS_PRELUDE = 'const erf = H.erf, roundF16 = H.roundF16, roundBf16 = H.roundBf16, roundEven = H.roundEven;';

/** Wraps a function body into the module source. */
export function wrapFunction(name: string, params: readonly string[], body: string, preludeLines: readonly string[] = []): string {
  return [HELPERS_PRELUDE, ...preludeLines, `return function ${safeName(name)}(${params.join(', ')}) {`, ...body.split('\n').map((l) => `  ${l}`), '};'].join('\n');
}

const REDUCE_INIT: Readonly<Record<ReduceOp, string>> = { sum: '0', max: '-Infinity', min: 'Infinity' };

/** The statement folding `v` into accumulator `a` (max/min propagate NaN like the host). */
export function reduceUpdate(op: ReduceOp, a: string, v: string): string {
  switch (op) {
    case 'sum':
      return `${a} += ${v};`;
    case 'max':
      return `if (${v} > ${a} || ${v} !== ${v}) ${a} = ${v};`;
    case 'min':
      return `if (${v} < ${a} || ${v} !== ${v}) ${a} = ${v};`;
  }
}

/** Rounds/wraps an accumulated value to its dtype (as the host stores a reduction result). */
function finishAcc(a: string, dtype: DType): string | null {
  switch (dtype) {
    case 'i32':
      return `${a} = ${a} | 0;`;
    case 'u32':
      return `${a} = ${a} >>> 0;`;
    case 'f16':
      return `${a} = roundF16(${a});`;
    case 'bf16':
      return `${a} = roundBf16(${a});`;
    default:
      return null;
  }
}

/**
 * Opens loops over the flattened index space of `dims` restricted to [start, end): the last
 * dimension is the innermost loop (vars[last] at depth+2), the others an odometer updated once
 * per run of the innermost loop (defined at depth+1). `body` fills the innermost scope.
 */
export function emitRangeLoops(cb: CodeBuilder, dims: readonly number[], vars: readonly string[], body: () => void): void {
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
  cb.open(vars[L]!);
  body();
  cb.close(`for (let ${vars[L]} = _lo; ${vars[L]} < _hi; ${vars[L]}++)`);
  cb.line('_f += _hi - _lo;');
  cb.line('_lo = 0;');
  if (L >= 1) {
    // carry chain from vars[L-1] outwards; vars[0] only increments
    const chain = (d: number): string => (d === 0 ? `${vars[0]}++;` : `if (++${vars[d]} === ${dims[d]}) { ${vars[d]} = 0; ${chain(d - 1)} }`);
    cb.line(chain(L - 1));
  }
  cb.close('while (_f < end)');
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
  if (dims.length === 0) {
    cb.open();
    body();
    cb.close('');
    return;
  }
  const rec = (d: number): void => {
    cb.open(vars[d]!);
    if (d === dims.length - 1) body();
    else rec(d + 1);
    cb.close(`for (let ${vars[d]} = 0; ${vars[d]} < ${dims[d]}; ${vars[d]}++)`);
  };
  rec(0);
}

/** Loads of an expression DAG. */
function collectLoads(e: SExpr, out: SExpr[], seen = new Set<SExpr>()): SExpr[] {
  if (seen.has(e)) return out;
  seen.add(e);
  switch (e.op) {
    case 'load':
      out.push(e);
      break;
    case 'unary':
    case 'cast':
      collectLoads(e.a, out, seen);
      break;
    case 'binary':
    case 'cmp':
      collectLoads(e.a, out, seen);
      collectLoads(e.b, out, seen);
      break;
    case 'select':
      collectLoads(e.c, out, seen);
      collectLoads(e.a, out, seen);
      collectLoads(e.b, out, seen);
      break;
    default:
      break;
  }
  return out;
}

/**
 * Column mode: the row loops go outside the innermost outer variable when the row loads are
 * contiguous in that variable rather than in the innermost row variable (a sum over leading
 * axes such as a bias gradient), with one accumulator array per reduction.
 */
function preferColumns(k: LoopKernel, lastOuter: string | undefined, lastRow: string | undefined): boolean {
  if (!lastOuter || !lastRow) return false;
  let col = 0;
  let row = 0;
  const loads: SExpr[] = [];
  for (const r of k.reductions) collectLoads(r.expr, loads);
  for (const o of k.rowOutputs) collectLoads(o.expr, loads);
  for (const l of loads) {
    if (l.op !== 'load') continue;
    const a = affineStrides(l.index);
    if (!a) continue;
    const sL = Math.abs(a.strides.get(lastOuter) ?? 0);
    const sR = Math.abs(a.strides.get(lastRow) ?? 0);
    if (sL !== 0 && (sR === 0 || sL < sR)) col++;
    else if (sR !== 0) row++;
  }
  return col > row;
}

function emitLoop(k: LoopKernel, dtypes: ReadonlyMap<number, DType>, bufs: readonly number[]): JsKernelCode {
  const cb = new CodeBuilder();
  const outerAll = k.outer.length ? [...k.outer] : [1];
  const total = outerAll.reduce((a, b) => a * b, 1);
  const rowSize = k.row.reduce((a, b) => a * b, 1);
  // size-1 dimensions are the constant 0
  const outer: number[] = [];
  const ovars: string[] = [];
  outerAll.forEach((n, i) => {
    if (n === 1 && k.outer.length) {
      cb.line(`const o${i} = 0;`);
      cb.defineVars(`o${i}`);
    } else {
      outer.push(n);
      ovars.push(`o${i}`);
    }
  });
  if (outer.length === 0) {
    outer.push(1);
    ovars.push('_o');
  }
  const row: number[] = [];
  const rvars: string[] = [];
  k.row.forEach((n, i) => {
    if (n === 1) {
      cb.line(`const r${i} = 0;`);
      cb.defineVars(`r${i}`);
    } else {
      row.push(n);
      rvars.push(`r${i}`);
    }
  });
  const dt = (b: number): DType => {
    const d = dtypes.get(b);
    if (!d) throw new Error(`cpu codegen: kernel ${k.name} writes unknown buffer ${b}`);
    return d;
  };
  const NL = outer[outer.length - 1]!;
  const vL = ovars[ovars.length - 1]!;
  const columns = NL > 1 && preferColumns(k, vL, rvars[rvars.length - 1]);
  const scratch: ScratchSpec[] = [];
  if (!columns) {
    emitRangeLoops(cb, outer, ovars, () => {
      const accDepth = cb.depth;
      const done = new Set<number>();
      cb.accResolver = (id) => {
        if (!done.has(id)) throw new Error(`cpu codegen: kernel ${k.name} reads acc ${id} before its reduction`);
        return { src: `acc${id}`, depth: accDepth };
      };
      for (const r of k.reductions) {
        cb.line(`let acc${r.id} = ${REDUCE_INIT[r.op]};`);
        emitNestedLoops(cb, row, rvars, () => {
          const v = cb.value(r.expr);
          cb.line(reduceUpdate(r.op, `acc${r.id}`, v));
        });
        const fin = finishAcc(`acc${r.id}`, r.dtype);
        if (fin) cb.line(fin);
        done.add(r.id);
      }
      for (const o of k.outerOutputs) cb.store(o.buf, dt(o.buf), o.index, o.expr);
      if (k.rowOutputs.length) {
        emitNestedLoops(cb, row, rvars, () => {
          for (const o of k.rowOutputs) cb.store(o.buf, dt(o.buf), o.index, o.expr);
        });
      }
    });
  } else {
    // column mode: per prefix index, accumulator arrays over the range of the last outer var
    const accName = new Map<number, string>();
    k.reductions.forEach((r, i) => {
      accName.set(r.id, `S${i}`);
      scratch.push({ type: 'f64', size: NL });
    });
    const done = new Set<number>();
    cb.accResolver = (id) => {
      if (!done.has(id)) throw new Error(`cpu codegen: kernel ${k.name} reads acc ${id} before its reduction`);
      return { src: `${accName.get(id)!}[${vL} - _lo]`, depth: cb.depthOfVar(vL) };
    };
    const lastLoop = (body: () => void): void => {
      cb.open(vL);
      body();
      cb.close(`for (let ${vL} = _lo; ${vL} < _hi; ${vL}++)`);
    };
    emitRangeLoopsPrefix(cb, outer, ovars, () => {
      for (const r of k.reductions) {
        const S = accName.get(r.id)!;
        cb.line(`for (let _j = 0; _j < _hi - _lo; _j++) ${S}[_j] = ${REDUCE_INIT[r.op]};`);
        emitNestedLoops(cb, row, rvars, () => {
          lastLoop(() => {
            const v = cb.value(r.expr);
            cb.line(`const _a = ${vL} - _lo;`);
            if (r.op === 'sum') cb.line(`${S}[_a] += ${v};`);
            else cb.line(`{ const _p = ${S}[_a]; if (${v} ${r.op === 'max' ? '>' : '<'} _p || ${v} !== ${v}) ${S}[_a] = ${v}; }`);
          });
        });
        const fin = finishAcc('_t', r.dtype);
        if (fin) cb.line(`for (let _j = 0; _j < _hi - _lo; _j++) { let _t = ${S}[_j]; ${fin} ${S}[_j] = _t; }`);
        done.add(r.id);
      }
      if (k.outerOutputs.length) lastLoop(() => k.outerOutputs.forEach((o) => cb.store(o.buf, dt(o.buf), o.index, o.expr)));
      if (k.rowOutputs.length) {
        emitNestedLoops(cb, row, rvars, () => lastLoop(() => k.rowOutputs.forEach((o) => cb.store(o.buf, dt(o.buf), o.index, o.expr))));
      }
    });
  }
  const params = ['start', 'end', ...bufs.map(bufName), ...scratch.map((_, i) => `S${i}`)];
  const nodes = k.reductions.length + k.outerOutputs.length + k.rowOutputs.length;
  return {
    kind: 'js',
    name: k.name,
    source: wrapFunction(k.name, params, cb.finish()),
    bufs,
    scratch,
    tables: [],
    total,
    splittable: true,
    workPerItem: Math.max(1, rowSize * Math.max(1, k.reductions.length + (k.rowOutputs.length ? 1 : 0))) * Math.max(1, nodes),
  };
}

/** The buffers a kernel touches, in argument order. */
export function kernelBuffers(k: Kernel): number[] {
  const ids = new Set<number>();
  const visit = (e: import('../kernel.js').SExpr, seen: Set<unknown>): void => {
    if (seen.has(e)) return;
    seen.add(e);
    switch (e.op) {
      case 'load':
        ids.add(e.buf);
        break;
      case 'unary':
      case 'cast':
        visit(e.a, seen);
        break;
      case 'binary':
      case 'cmp':
        visit(e.a, seen);
        visit(e.b, seen);
        break;
      case 'select':
        visit(e.c, seen);
        visit(e.a, seen);
        visit(e.b, seen);
        break;
      default:
        break;
    }
  };
  const seen = new Set<unknown>();
  switch (k.kind) {
    case 'loop':
      k.reductions.forEach((r) => visit(r.expr, seen));
      [...k.outerOutputs, ...k.rowOutputs].forEach((o) => {
        ids.add(o.buf);
        visit(o.expr, seen);
      });
      break;
    case 'matmul':
      ids.add(k.a.buf);
      ids.add(k.b.buf);
      k.outputs.forEach((o) => {
        ids.add(o.buf);
        visit(o.expr, seen);
      });
      break;
    case 'conv':
      ids.add(k.lhs.buf);
      ids.add(k.rhs.buf);
      k.outputs.forEach((o) => {
        ids.add(o.buf);
        visit(o.expr, seen);
      });
      break;
    case 'host':
      k.inputs.forEach((i) => ids.add(i.buf));
      k.outputs.forEach((o) => ids.add(o.buf));
      break;
  }
  return [...ids].sort((a, b) => a - b);
}

export interface EmitOptions {
  /** Use the WebAssembly SIMD GEMM micro-kernel for f32 matmuls (default: when available). */
  readonly wasm?: boolean;
}

/** Generates the CPU code of one kernel. */
export function emitKernel(k: Kernel, dtypes: ReadonlyMap<number, DType>, opts: EmitOptions = {}): KernelCode {
  const bufs = kernelBuffers(k);
  switch (k.kind) {
    case 'loop':
      return emitLoop(k, dtypes, bufs);
    case 'matmul':
      return emitMatmul(k, dtypes, bufs, opts);
    case 'conv':
      return emitConv(k, dtypes, bufs, opts);
    case 'host': {
      if (!(k.prim in PRIMS)) throw new Error(`cpu codegen: host kernel ${k.name}: unknown primitive ${k.prim}`);
      const src = `// host kernel: PRIMS.${k.prim}.impl(${k.inputs.map((i) => `buf${i.buf}:${i.dtype}[${i.shape.join(',')}]`).join(', ')}) -> ${k.outputs.map((o) => `buf${o.buf}`).join(', ')}`;
      return { kind: 'host', name: k.name, source: src, kernel: k };
    }
  }
}
