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
import { type Axis, axisNamed } from '../kernel/axis.js';
import { affineStrides } from '../kernel/index_expr.js';
import { type Kernel, type KernelGraph, kernelIO, type LoopKernel, type SExpr, type SortKernel, visitSExpr } from '../kernel/kernel_graph.js';
import { lowerExprs } from '../lower/expr_rules.js';
import { JS_NATIVE } from './js_dialect.js';
import { emitConv } from './conv.js';
import { emitMatmul } from './matmul.js';
import { type EmitOptions, emitNestedLoops, emitRangeLoops, emitRangeLoopsPrefix, type JsKernelCode, type KernelCode, REDUCE_INIT, reduceUpdate, type ScratchSpec, wrapFunction } from './common.js';
import { bufName, CodeBuilder } from './scope.js';
import { wasmSimdAvailable } from './wasm.js';
import { emitRowLoopJs, planRowLoop } from './wasm_rowloop.js';

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

/**
 * Column mode: the row loops go outside the innermost outer variable when the row loads are
 * contiguous in that variable rather than in the innermost row variable (a sum over leading
 * axes such as a bias gradient), with one accumulator array per reduction.
 */
export function preferColumns(k: LoopKernel, lastOuter: Axis | undefined, lastRow: Axis | undefined): boolean {
  if (!lastOuter || !lastRow || k.reductions.some((r) => r.op === 'argmax')) return false;
  let col = 0;
  let row = 0;
  const loads: SExpr[] = [];
  const seen = new Set<SExpr>();
  const collect = (e: SExpr): void => visitSExpr(e, (n) => n.op === 'load' && loads.push(n), seen);
  k.reductions.forEach((r) => collect(r.expr));
  k.rowOutputs.forEach((o) => collect(o.expr));
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
  const lastRow = rvars[rvars.length - 1];
  const columns = NL > 1 && lastRow !== undefined && preferColumns(k, axisNamed(vL), axisNamed(lastRow));
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
        if (r.op === 'argmax') cb.line(`let acc${r.id}v = 0;`);
        emitNestedLoops(cb, row, rvars, () => {
          const v = cb.value(r.expr);
          cb.line(reduceUpdate(r.op, `acc${r.id}`, v, r.op === 'argmax' ? rowIndex(k.row) : ''));
        });
        const fin = finishAcc(`acc${r.id}`, r.dtype);
        if (fin) cb.line(fin);
        done.add(r.id);
      }
      cb.storeAll(k.outerOutputs, dt);
      if (k.rowOutputs.length) {
        emitNestedLoops(cb, row, rvars, () => {
          cb.storeAll(k.rowOutputs, dt);
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
      if (k.outerOutputs.length) lastLoop(() => cb.storeAll(k.outerOutputs, dt));
      if (k.rowOutputs.length) {
        emitNestedLoops(cb, row, rvars, () => lastLoop(() => cb.storeAll(k.rowOutputs, dt)));
      }
    });
  }
  const params = ['start', 'end', ...bufs.map(bufName), ...scratch.map((_, i) => `S${i}`)];
  const nodes = k.reductions.length + k.outerOutputs.length + k.rowOutputs.length;
  // accumulating stores may hit one element from several range positions: one thread only
  const scatters = [...k.outerOutputs, ...k.rowOutputs].some((o) => o.accumulate);
  return {
    kind: 'js',
    name: k.name,
    source: wrapFunction(k.name, params, cb.finish()),
    bufs,
    scratch,
    tables: [],
    total,
    splittable: !scatters,
    workPerItem: Math.max(1, rowSize * Math.max(1, k.reductions.length + (k.rowOutputs.length ? 1 : 0))) * Math.max(1, nodes),
  };
}

/** The flat row index of the row variables (r0, r1, ... over `row`) as source. */
function rowIndex(row: readonly number[]): string {
  let stride = 1;
  const parts: string[] = [];
  for (let d = row.length - 1; d >= 0; d--) {
    if (row[d]! > 1) parts.push(stride === 1 ? `r${d}` : `${stride} * r${d}`);
    stride *= row[d]!;
  }
  return parts.length ? parts.join(' + ') : '0';
}

/**
 * A stable argsort of each row (the host's comparator: ascending or descending by value, NaN
 * last, ties by index); the range is over rows.
 */
function emitSort(k: SortKernel, bufs: readonly number[]): JsKernelCode {
  const n = k.shape[k.axis]!;
  const stride = k.shape.slice(k.axis + 1).reduce((a, b) => a * b, 1);
  const rows = k.shape.reduce((a, b) => a * b, 1) / Math.max(n, 1);
  const X = bufName(k.input);
  const O = bufName(k.output);
  // the host's order (src/ir/primitives/reduce.ts sortOrder): NaN last, ties by index
  const [lt, gt] = k.descending ? ['1', '-1'] : ['-1', '1'];
  const order = `const _x = ${X}[_o + _s * _a], _y = ${X}[_o + _s * _b]; if (_x !== _x || _y !== _y) return _x !== _x ? (_y !== _y ? _a - _b : 1) : -1; return _x < _y ? ${lt} : _x > _y ? ${gt} : _a - _b;`;
  const body = [
    `const _s = ${stride}, _idx = new Array(${n});`,
    'for (let _r = start; _r < end; _r++) {',
    `  const _o = Math.floor(_r / _s) * _s * ${n} + (_r % _s);`,
    `  for (let _k = 0; _k < ${n}; _k++) _idx[_k] = _k;`,
    `  _idx.sort((_a, _b) => { ${order} });`,
    `  for (let _k = 0; _k < ${n}; _k++) ${O}[_o + _s * _k] = _idx[_k];`,
    '}',
  ].join('\n');
  return { kind: 'js', name: k.name, source: wrapFunction(k.name, ['start', 'end', ...bufs.map(bufName)], body), bufs, scratch: [], tables: [], total: n === 0 ? 0 : rows, splittable: true, workPerItem: Math.max(1, n * Math.log2(n + 1) * 4) };
}

/** The buffers a kernel touches, in argument order. */
export function kernelBuffers(k: Kernel): number[] {
  const { reads, writes } = kernelIO(k);
  return [...new Set([...reads, ...writes])].sort((a, b) => a - b);
}

/** The edge-case rewrites before printing JavaScript (see src/codegen/lower/expr_rules.ts): expansions computed in f64, rounded once. */
export function prepareKernel(k: Kernel): Kernel {
  return lowerExprs(k, { native: JS_NATIVE });
}

/** Generates the CPU code of one kernel. */
export function emitKernel(kernel: Kernel, dtypes: ReadonlyMap<number, DType>, opts: EmitOptions = {}): KernelCode {
  const k = prepareKernel(kernel);
  const bufs = kernelBuffers(k);
  switch (k.kind) {
    case 'loop': {
      const js = emitLoop(k, dtypes, bufs);
      // row reductions (LayerNorm) in WebAssembly where wasm_rowloop.ts can express them
      const plan = (opts.wasm ?? true) && opts.wasmEpilogue !== false && wasmSimdAvailable() ? planRowLoop(kernel as LoopKernel, dtypes) : null;
      return plan ? emitRowLoopJs(k, plan, bufs, js.workPerItem) : js;
    }
    case 'matmul':
      return emitMatmul(k, dtypes, bufs, opts, kernel as typeof k);
    case 'conv':
      return emitConv(k, dtypes, bufs, opts, kernel as typeof k);
    case 'sort':
      return emitSort(k, bufs);
  }
}
