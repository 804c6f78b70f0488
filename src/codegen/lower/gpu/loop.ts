/**
 * Loop kernels on a GPU. Three shapes:
 *   - elementwise (no reductions): one thread per outer element (one per (outer, row) element
 *     when the kernel only has row outputs), row outputs in a loop per thread;
 *   - serial reductions (short rows, many rows, or rows read across the outer space, as in a
 *     sum over leading axes): one thread per outer element folds the row space in order, like
 *     the CPU;
 *   - tree reductions: one workgroup per outer element; each thread folds a strided slice of
 *     the row space, then the workgroup combines the partials pairwise in shared memory.
 * Reductions run in phases: consecutive reductions that do not read each other share one pass
 * over the row space (and one tree); a later phase may read an earlier one's result. Outer
 * outputs are stored once per outer element, row outputs once per row element, after the
 * reductions.
 */
import type { DType } from '../../../ir/dtype.js';
import { AX } from '../../kernel/axis.js';
import { affineStrides } from '../../kernel/index_expr.js';
import { type LoopKernel, type SExpr, visitSExpr } from '../../kernel/kernel_graph.js';
import { GpuCode, nextPow2, product } from './code.js';
import type { GpuSharedArray } from './dialect.js';
import type { EmitContext } from './emit_context.js';
import { type AccType, accType, combine, finish, identity, toAcc, update } from './reduce_ops.js';
import type { GpuKernelCode, GpuTarget } from './kernel_code.js';

type Reduction = LoopKernel['reductions'][number];

/** Rows at most this long reduce serially (one thread per outer element). */
const SERIAL_ROW = 64;
/** With at least this many outer elements, rows up to SERIAL_ROW_MANY long also reduce serially. */
const MANY_OUTER = 2048;
const SERIAL_ROW_MANY = 1024;
/** Reductions reading across the outer space reduce serially from this many outer elements on. */
const COLUMN_OUTER = 256;
/** On an emulated GPU (barriers are costly, a few cores run everything): serially from this many on. */
const EMULATED_OUTER = 16;
const ELEMENTWISE_WG = 256;
const TREE_WG = 256;

/** Consecutive reductions that do not read one another's results (one pass over the rows each). */
export function reductionPhases(rs: readonly Reduction[]): Reduction[][] {
  const phases: Reduction[][] = [];
  let cur: Reduction[] = [];
  for (const r of rs) {
    const reads = new Set<number>();
    visitSExpr(r.expr, (n) => n.op === 'acc' && reads.add(n.id));
    if (cur.some((c) => reads.has(c.id))) {
      phases.push(cur);
      cur = [];
    }
    cur.push(r);
  }
  if (cur.length) phases.push(cur);
  return phases;
}

const varsOf = (dims: readonly number[], role: 'outer' | 'row'): string[] => dims.map((_, i) => (role === 'outer' ? AX.outer(i) : AX.row(i)).name);

/** Nested loops over the dimensions larger than 1 (the others are 0), `body` innermost. */
function nestedLoops(cb: GpuCode, dims: readonly number[], vars: readonly string[], body: () => void): void {
  const big = dims.flatMap((n, d) => (n > 1 ? [d] : []));
  cb.open();
  cb.zeros(dims.flatMap((n, d) => (n === 1 ? [vars[d]!] : [])));
  const rec = (j: number): void => {
    if (j === big.length) return body();
    const d = big[j]!;
    cb.loop(vars[d]!, cb.int(0), dims[d]!, 1, () => rec(j + 1));
  };
  rec(0);
  cb.close('');
}

/** The flat row-major index of `vars` over `dims`, as an i32 expression. */
function flatIndex(cb: GpuCode, dims: readonly number[], vars: readonly string[]): string {
  let stride = 1;
  const parts: string[] = [];
  for (let d = dims.length - 1; d >= 0; d--) {
    if (dims[d]! > 1) parts.push(stride === 1 ? vars[d]! : `${cb.int(stride)} * ${vars[d]}`);
    stride *= dims[d]!;
  }
  return parts.length ? `(${parts.join(' + ')})` : cb.int(0);
}

interface AccState {
  readonly done: Set<number>;
  readonly names: Map<number, string>;
}

function resolveAccs(cb: GpuCode, k: LoopKernel, state: AccState, depth: number): void {
  cb.accResolver = (id) => {
    const n = state.names.get(id);
    if (!n || !state.done.has(id)) throw new Error(`gpu codegen: kernel ${k.name} reads acc ${id} before its reduction`);
    return { src: n, depth };
  };
}

/** Declares the finished result of reduction r (from accumulator `acc`) at the current depth. */
function finishReduction(cb: GpuCode, r: Reduction, acc: string, t: AccType, state: AccState): void {
  const name = `ng_a${r.id}`;
  cb.line(cb.gpu.declare(name, r.dtype, finish(cb.gpu, r.op, acc, t, r.dtype)));
  state.names.set(r.id, name);
  state.done.add(r.id);
}

function storeOutputs(cb: GpuCode, k: LoopKernel, dtypeOf: (b: number) => DType, which: 'outer' | 'row'): void {
  cb.storeAll(which === 'outer' ? k.outerOutputs : k.rowOutputs, dtypeOf);
}

function emitElementwise(cb: GpuCode, k: LoopKernel, ctx: EmitContext, wg: number): number {
  const D = cb.gpu;
  const flatRows = k.outerOutputs.length === 0 && k.rowOutputs.length > 0;
  const dims = flatRows ? [...k.outer, ...k.row] : [...k.outer];
  const vars = flatRows ? [...varsOf(k.outer, 'outer'), ...varsOf(k.row, 'row')] : varsOf(k.outer, 'outer');
  const total = product(dims);
  cb.line(D.declareIndex('ng_gid', `${D.groupIndex} * ${cb.int(wg)} + ${D.localIndex}`));
  cb.line(`if (ng_gid >= ${cb.int(total)}) { ${D.exit} }`);
  cb.split('ng_gid', dims, vars);
  if (flatRows) storeOutputs(cb, k, ctx.dtypeOf, 'row');
  else {
    storeOutputs(cb, k, ctx.dtypeOf, 'outer');
    if (k.rowOutputs.length) nestedLoops(cb, k.row, varsOf(k.row, 'row'), () => storeOutputs(cb, k, ctx.dtypeOf, 'row'));
  }
  return Math.ceil(total / wg);
}

function emitSerial(cb: GpuCode, k: LoopKernel, ctx: EmitContext, wg: number): number {
  const D = cb.gpu;
  const total = product(k.outer);
  const rVars = varsOf(k.row, 'row');
  cb.line(D.declareIndex('ng_gid', `${D.groupIndex} * ${cb.int(wg)} + ${D.localIndex}`));
  cb.line(`if (ng_gid >= ${cb.int(total)}) { ${D.exit} }`);
  cb.split('ng_gid', k.outer, varsOf(k.outer, 'outer'));
  const state: AccState = { done: new Set(), names: new Map() };
  resolveAccs(cb, k, state, cb.depth);
  for (const phase of reductionPhases(k.reductions)) {
    for (const r of phase) {
      const t = accType(r.expr.dtype);
      cb.line(D.declareMutable(`ng_p${r.id}`, r.op === 'argmax' ? 'i32' : t, r.op === 'argmax' ? cb.int(-1) : identity(D, r.op, t)));
      if (r.op === 'argmax') cb.line(D.declareMutable(`ng_p${r.id}v`, t, identity(D, r.op, t)));
    }
    if (product(k.row) > 0) {
      nestedLoops(cb, k.row, rVars, () => {
        const i = flatIndex(cb, k.row, rVars);
        for (const r of phase) cb.line(update(D, r.op, `ng_p${r.id}`, toAcc(D, cb.value(r.expr), r.expr.dtype), accType(r.expr.dtype), i));
      });
    }
    for (const r of phase) finishReduction(cb, r, `ng_p${r.id}`, accType(r.expr.dtype), state);
  }
  storeOutputs(cb, k, ctx.dtypeOf, 'outer');
  if (k.rowOutputs.length) nestedLoops(cb, k.row, rVars, () => storeOutputs(cb, k, ctx.dtypeOf, 'row'));
  return Math.ceil(total / wg);
}

const sharedName = (slot: number, t: AccType): string => `ng_sh${slot}_${t}`;
const sharedIndexName = (slot: number): string => `ng_shi${slot}`;

/** One phase of a tree reduction: strided partial folds, then the pairwise combine. */
function treePhase(cb: GpuCode, k: LoopKernel, phase: readonly Reduction[], wg: number, state: AccState, shared: Map<string, GpuSharedArray>): void {
  const D = cb.gpu;
  const R = product(k.row);
  const rVars = varsOf(k.row, 'row');
  for (const r of phase) {
    const t = accType(r.expr.dtype);
    cb.line(D.declareMutable(`ng_p${r.id}`, r.op === 'argmax' ? 'i32' : t, r.op === 'argmax' ? cb.int(-1) : identity(D, r.op, t)));
    if (r.op === 'argmax') cb.line(D.declareMutable(`ng_p${r.id}v`, t, identity(D, r.op, t)));
  }
  if (R > 0) {
    cb.loop('ng_rf', D.localIndex, R, wg, () => {
      cb.split('ng_rf', k.row, rVars);
      for (const r of phase) cb.line(update(D, r.op, `ng_p${r.id}`, toAcc(D, cb.value(r.expr), r.expr.dtype), accType(r.expr.dtype), 'ng_rf'));
    });
  }
  // the previous phase's readers of the shared arrays are done before they are overwritten
  cb.line(D.barrier());
  phase.forEach((r, slot) => {
    const t = accType(r.expr.dtype);
    const val = sharedName(slot, t);
    shared.set(val, { name: val, dtype: t, size: wg });
    if (r.op === 'argmax') {
      shared.set(sharedIndexName(slot), { name: sharedIndexName(slot), dtype: 'i32', size: wg });
      cb.line(`${val}[${D.localIndex}] = ng_p${r.id}v;`);
      cb.line(`${sharedIndexName(slot)}[${D.localIndex}] = ng_p${r.id};`);
    } else cb.line(`${val}[${D.localIndex}] = ng_p${r.id};`);
  });
  cb.line(D.barrier());
  for (let s = wg / 2; s >= 1; s /= 2) {
    cb.when(`${D.localIndex} < ${cb.int(s)}`, () => {
      phase.forEach((r, slot) => {
        const t = accType(r.expr.dtype);
        cb.line(combine(D, r.op, sharedName(slot, t), sharedIndexName(slot), D.localIndex, `${D.localIndex} + ${cb.int(s)}`, t));
      });
    });
    cb.line(D.barrier());
  }
  phase.forEach((r, slot) => {
    const t = accType(r.expr.dtype);
    finishReduction(cb, r, r.op === 'argmax' ? `${sharedIndexName(slot)}[0]` : `${sharedName(slot, t)}[0]`, t, state);
  });
}

function emitTree(cb: GpuCode, k: LoopKernel, ctx: EmitContext, wg: number, shared: Map<string, GpuSharedArray>): number {
  const D = cb.gpu;
  const total = product(k.outer);
  const R = product(k.row);
  cb.line(D.declareIndex('ng_o', D.groupIndex));
  cb.line(`if (ng_o >= ${cb.int(total)}) { ${D.exit} }`);
  cb.split('ng_o', k.outer, varsOf(k.outer, 'outer'));
  const state: AccState = { done: new Set(), names: new Map() };
  resolveAccs(cb, k, state, cb.depth);
  for (const phase of reductionPhases(k.reductions)) treePhase(cb, k, phase, wg, state, shared);
  if (k.outerOutputs.length) cb.when(`${D.localIndex} == ${cb.int(0)}`, () => storeOutputs(cb, k, ctx.dtypeOf, 'outer'));
  if (k.rowOutputs.length && R > 0) {
    cb.loop('ng_rf', D.localIndex, R, wg, () => {
      cb.split('ng_rf', k.row, varsOf(k.row, 'row'));
      storeOutputs(cb, k, ctx.dtypeOf, 'row');
    });
  }
  return total;
}

/**
 * Whether the reductions read along the outer space rather than the rows (a sum over leading
 * axes: the innermost outer axis has the smaller stride in most loads). Then one thread per
 * outer element reads contiguous addresses across neighbouring threads, and a workgroup per
 * row would read with a stride.
 */
export function readsAcrossOuter(k: LoopKernel): boolean {
  const lastBig = (dims: readonly number[]): number => dims.reduce((last, n, i) => (n > 1 ? i : last), -1);
  const lastOuter = lastBig(k.outer);
  const lastRow = lastBig(k.row);
  if (lastOuter < 0 || lastRow < 0) return false;
  let across = 0;
  let along = 0;
  const seen = new Set<SExpr>();
  for (const r of k.reductions) {
    visitSExpr(r.expr, (n) => {
      if (n.op !== 'load') return;
      const a = affineStrides(n.index);
      if (!a) return;
      const so = Math.abs(a.strides.get(AX.outer(lastOuter)) ?? 0);
      const sr = Math.abs(a.strides.get(AX.row(lastRow)) ?? 0);
      if (so !== 0 && (sr === 0 || so < sr)) across++;
      else if (sr !== 0) along++;
    }, seen);
  }
  return across > along;
}

/** Which shape a loop kernel takes on a target (exported for tests of the choice). */
export function loopShape(k: LoopKernel, target?: Pick<GpuTarget, 'emulated'>): 'elementwise' | 'serial' | 'tree' {
  if (k.reductions.length === 0) return 'elementwise';
  const R = product(k.row);
  const T = product(k.outer);
  if (R <= SERIAL_ROW || (T >= MANY_OUTER && R <= SERIAL_ROW_MANY)) return 'serial';
  if (target?.emulated && T >= EMULATED_OUTER) return 'serial';
  return T >= COLUMN_OUTER && readsAcrossOuter(k) ? 'serial' : 'tree';
}

export function emitLoopKernel(k: LoopKernel, ctx: EmitContext): GpuKernelCode {
  const cb = new GpuCode(ctx.dialect);
  const shape = loopShape(k, ctx.target);
  const max = ctx.target.maxWorkgroupSize;
  const total = product(k.outer) * (shape === 'elementwise' && k.outerOutputs.length === 0 ? product(k.row) : 1);
  const wg = shape === 'tree' ? Math.min(max, TREE_WG, nextPow2(product(k.row))) : Math.min(max, ELEMENTWISE_WG, Math.max(32, nextPow2(total)));
  const shared = new Map<string, GpuSharedArray>();
  let groups = 0;
  if (total > 0) {
    if (shape === 'elementwise') groups = emitElementwise(cb, k, ctx, wg);
    else if (shape === 'serial') groups = emitSerial(cb, k, ctx, wg);
    else groups = emitTree(cb, k, ctx, wg, shared);
  }
  return ctx.finish(cb, { workgroupSize: wg, shared: [...shared.values()], groups });
}

export type { SExpr };
