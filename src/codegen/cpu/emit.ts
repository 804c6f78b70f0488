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
import { affineStrides } from '../kernel/index_expr.js';
import { type Kernel, type KernelGraph, kernelIO, type LoopKernel, type SExpr } from '../kernel/kernel_graph.js';
import { emitConv } from './conv.js';
import { emitMatmul } from './matmul.js';
import { type EmitOptions, emitNestedLoops, emitRangeLoops, emitRangeLoopsPrefix, type JsKernelCode, type KernelCode, REDUCE_INIT, reduceUpdate, type ScratchSpec, wrapFunction } from './common.js';
import { bufName, CodeBuilder } from './scope.js';

export * from './common.js';

/** Buffer dtypes by id. */
export function bufferDtypes(g: KernelGraph): Map<number, DType> {
  return new Map(g.buffers.map((b) => [b.id, b.dtype]));
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
  const { reads, writes } = kernelIO(k);
  return [...new Set([...reads, ...writes])].sort((a, b) => a - b);
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
