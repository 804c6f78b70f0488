/**
 * Fusion: Program (regions inlined, simplified) -> KernelGraph.
 *
 * 1. Decide which variables are materialised: program outputs, matmul/conv outputs, outputs
 *    of host-run primitives and their operands, and values several kernels would otherwise
 *    recompute when recomputing is expensive (the cost rule below). Everything else is
 *    inlined as a scalar expression into the kernel that needs it.
 * 2. Build one kernel per materialised variable, in dependency order:
 *    - elementwise/view roots become loop kernels; reductions whose input has the root's
 *      shape and that only this root needs run as phases of the same kernel (a LayerNorm or a
 *      softmax is one kernel: outer loops over kept axes, row loops over reduced axes);
 *    - a reduction root is a loop kernel whose earlier phases can be other reductions over the
 *      same space (mean, then variance);
 *    - matmul and convolution are anchor kernels; a chain of single-use elementwise ops after
 *      them becomes their epilogue; operands that are strided views of buffers are read in
 *      place (transposes absorbed), anything else is materialised first.
 */
import { NexgradError } from '../ir/errors.js';
import type { ConvParams, DotParams } from '../ir/primitive.js';
import { type Atom, type Eqn, Literal, type Program, Var } from '../ir/program.js';
import { shapeEq, sizeOf } from '../ir/shape.js';
import { affineStrides, delinearize, type Idx, idx, idxKey, idxRange, idxSubst, linearize, type Ranges } from '../codegen/kernel/index_expr.js';
import type { BinaryFn, BufferDecl, CmpFn, ExprOperand, GraphOutput, Kernel, KernelGraph, KernelOutput, MatmulOperand, SExpr, StridedOperand, UnaryFn } from '../codegen/kernel/kernel_graph.js';
import type { Origins } from './inline.js';
import { mergeReductionKernels } from './merge_phases.js';
import { BINARY, CMP, ELEMENTWISE, UNARY, VIEW } from './prim_kinds.js';

const REDUCE: Readonly<Record<string, 'sum' | 'max' | 'min'>> = { reduce_sum: 'sum', reduce_max: 'max', reduce_min: 'min' };
const ANCHOR = new Set<string>(['dot_general', 'conv_general']);

/** Cost of recomputing one element, by operation (transcendentals are dearer). */
const OP_COST: Readonly<Record<string, number>> = { exp: 4, log: 4, log1p: 4, expm1: 4, sin: 4, cos: 4, tanh: 4, logistic: 4, erf: 6, pow: 6, sqrt: 2, rsqrt: 2, div: 2 };
/** A value needed by several kernels is recomputed in each when its cost is at most this. */
export const RECOMPUTE_COST_LIMIT = 6;

const isInlinable = (prim: string): boolean => ELEMENTWISE.has(prim) || VIEW.has(prim);

interface Ctx {
  readonly ranges: Map<string, number>;
  readonly memo: Map<string, SExpr>;
  /** Row layout: the full index space F and its reduced axes. */
  readonly layout?: { readonly F: readonly number[]; readonly axes: readonly number[]; readonly outerIdx: readonly Idx[] };
  /** Reduction phases registered in this kernel. */
  readonly reductions: { id: number; op: 'sum' | 'max' | 'min'; expr: SExpr; dtype: Var['aval']['dtype'] }[];
  readonly reduceIds: Map<Var, number>;
  /** The anchor whose accumulator this kernel's epilogue reads. */
  readonly anchor?: { readonly v: Var; readonly index: readonly Idx[] };
  /** The materialised variable this kernel computes (its value is inlined, not loaded). */
  readonly root?: Var;
}

function newCtx(ranges: Map<string, number>, extra: Partial<Ctx> = {}): Ctx {
  return { ranges, memo: new Map(), reductions: [], reduceIds: new Map(), ...extra };
}

/** Equal index lists, where a loop variable of extent 1 equals 0. */
const sameIndex = (a: readonly Idx[], b: readonly Idx[], ranges: Ranges): boolean => {
  const unit = new Map<string, Idx>([...ranges].filter(([, n]) => n === 1).map(([k]) => [k, idx.const(0)]));
  const norm = (x: Idx): string => idxKey(unit.size ? idxSubst(x, unit, ranges) : x);
  return a.length === b.length && a.every((x, i) => norm(x) === norm(b[i]!));
};

export function fuse(p: Program, origins: Origins = new Map()): KernelGraph {
  const producer = new Map<Var, Eqn>();
  const uses = new Map<Var, Eqn[]>();
  for (const e of p.eqns) {
    e.outputs.forEach((v) => producer.set(v, e));
    for (const a of e.inputs) if (a instanceof Var) uses.set(a, [...(uses.get(a) ?? []), e]);
  }
  const outputVars = new Set(p.outputs.filter((a): a is Var => a instanceof Var));
  const isSource = (v: Var): boolean => !producer.has(v); // input or const
  const prim = (v: Var): string => producer.get(v)?.prim ?? 'input';

  // ---------------------------------------------------------------- 1. materialisation
  const M = new Set<Var>();
  for (const v of outputVars) if (!isSource(v)) M.add(v);
  for (const e of p.eqns) {
    if (isInlinable(e.prim) || e.prim in REDUCE) continue;
    e.outputs.forEach((v) => M.add(v));
    for (const a of e.inputs) {
      if (!(a instanceof Var) || isSource(a)) continue;
      // anchors may read a reshape/transpose view of a buffer in place
      let u: Var = a;
      while (ANCHOR.has(e.prim) && (prim(u) === 'reshape' || prim(u) === 'transpose')) u = producer.get(u)!.inputs[0] as Var;
      if (u === a || !(isSource(u) || M.has(u) || ANCHOR.has(prim(u)))) M.add(a);
    }
  }
  // the cost rule, iterated to a fixed point
  for (let changed = true; changed; ) {
    changed = false;
    const costMemo = new Map<Var, number>();
    const cost = (v: Var): number => {
      if (M.has(v) || isSource(v)) return 0;
      const c = costMemo.get(v);
      if (c !== undefined) return c;
      const e = producer.get(v)!;
      let total = ELEMENTWISE.has(e.prim) ? (OP_COST[e.prim] ?? 1) : 0;
      // a reduction needed by several kernels is materialised itself (below), so what lies
      // behind it does not make its consumers look expensive
      if (e.prim in REDUCE) {
        costMemo.set(v, 1);
        return 1;
      }
      for (const a of e.inputs) if (a instanceof Var) total += cost(a);
      costMemo.set(v, total);
      return total;
    };
    // Two notions of the kernels that need a value. rootsT: reductions are transparent (a
    // reduction can run as a phase of its consumer's kernel, so statistics like LayerNorm's
    // mean and variance do not count twice). rootsP: a reduction is a place of its own (its
    // input is computed in the reduction's pass and again wherever else it is used).
    const rootsT = new Map<Var, Set<Var>>();
    const rootsP = new Map<Var, Set<Var>>();
    for (let k = p.eqns.length - 1; k >= 0; k--) {
      const e = p.eqns[k]!;
      for (const v of e.outputs) {
        if (M.has(v)) continue;
        const rt = new Set<Var>();
        const rp = new Set<Var>();
        for (const c of uses.get(v) ?? []) {
          for (const o of c.outputs) {
            if (M.has(o) || !(isInlinable(c.prim) || c.prim in REDUCE)) {
              rt.add(o);
              rp.add(o);
              continue;
            }
            for (const x of rootsT.get(o) ?? []) rt.add(x);
            if (c.prim in REDUCE) rp.add(o);
            else for (const x of rootsP.get(o) ?? []) rp.add(x);
          }
        }
        rootsT.set(v, rt);
        rootsP.set(v, rp);
        const isReduce = producer.get(v)!.prim in REDUCE;
        const r = isReduce ? rt : rp;
        if (r.size > 1 && (producer.get(v)!.prim in REDUCE || cost(v) > RECOMPUTE_COST_LIMIT)) {
          // a view (reshape, broadcast, ...) is free to recompute: keep what it views instead
          let target = v;
          for (;;) {
            const pe = producer.get(target)!;
            const src = pe.inputs[0];
            if (!VIEW.has(pe.prim) || pe.inputs.length !== 1 || !(src instanceof Var) || isSource(src) || M.has(src)) break;
            target = src;
          }
          if (target !== v && (M.has(target) || isSource(target))) continue;
          M.add(target);
          changed = true;
        }
      }
    }
  }

  // An anchor whose consumers are all same-shape elementwise ops that end in one root gets that
  // root as its epilogue (bias, activation, residual add are applied as the result is stored).
  // A leading chain of single-use reshapes/transposes (a conv computed in NHWC and returned in
  // NCHW, a matmul over patches reshaped back to an image) becomes the epilogue's store index.
  const epilogueOf = new Map<Var, Var>(); // root -> anchor
  const epilogueViews = new Map<Var, Eqn[]>(); // root -> the views from the anchor
  for (const e of p.eqns) {
    if (!ANCHOR.has(e.prim)) continue;
    const a = e.outputs[0]!;
    if (outputVars.has(a)) continue;
    const views: Eqn[] = [];
    let start = a;
    for (;;) {
      const us = uses.get(start) ?? [];
      if (us.length !== 1 || outputVars.has(start) || (start !== a && M.has(start))) break;
      const c = us[0]!;
      if (c.prim !== 'reshape' && c.prim !== 'transpose') break;
      views.push(c);
      start = c.outputs[0]!;
    }
    const shape = start.aval.shape;
    const reached = new Set<Var>();
    let ok = true;
    if (start !== a && M.has(start)) reached.add(start);
    const seen = new Set<Var>();
    const stack: Var[] = reached.size ? [] : [start];
    while (stack.length && ok) {
      const v = stack.pop()!;
      if (seen.has(v)) continue;
      seen.add(v);
      for (const c of uses.get(v) ?? []) {
        const o = c.outputs[0]!;
        if (!ELEMENTWISE.has(c.prim) || !shapeEq(o.aval.shape, shape)) {
          ok = false;
          break;
        }
        if (M.has(o)) reached.add(o);
        else stack.push(o);
      }
    }
    if (!ok || reached.size !== 1) continue;
    const w = [...reached][0]!;
    if (epilogueOf.has(w) || ANCHOR.has(prim(w))) continue;
    epilogueOf.set(w, a);
    epilogueViews.set(w, views);
    M.delete(a);
  }

  /** Maps an index of the anchor's output through the views to the epilogue root's index. */
  const throughViews = (root: Var, index: readonly Idx[], ranges: Ranges): Idx[] => {
    let cur = [...index];
    for (const v of epilogueViews.get(root) ?? []) {
      const inShape = v.inputs[0]!.aval.shape;
      if (v.prim === 'transpose') cur = (v.params.perm as number[]).map((q) => cur[q]!);
      else cur = delinearize(linearize(cur, inShape), v.outputs[0]!.aval.shape, ranges);
    }
    return cur;
  };

  // A matmul operand computed by elementwise ops and views used by that matmul alone is its
  // prologue: evaluated while the GEMM packs the operand, never stored (GRN's scale and shift
  // before the second pointwise matmul).
  for (const e of p.eqns) {
    if (e.prim !== 'dot_general') continue;
    for (const a of e.inputs) {
      if (!(a instanceof Var) || isSource(a) || outputVars.has(a) || epilogueOf.has(a) || !M.has(a)) continue;
      const pe = producer.get(a)!;
      if (!isInlinable(pe.prim) || (uses.get(a) ?? []).length !== 1 || e.inputs.filter((x) => x === a).length !== 1) continue;
      M.delete(a);
    }
  }

  // ---------------------------------------------------------------- 2. kernels
  const buffers: BufferDecl[] = [];
  const bufOf = new Map<Var, number>();
  const kernels: Kernel[] = [];
  const newBuf = (v: Var, kind: BufferDecl['kind']): number => {
    const id = buffers.length;
    buffers.push({ id, dtype: v.aval.dtype, size: sizeOf(v.aval.shape), kind });
    bufOf.set(v, id);
    return id;
  };
  const inputs = p.inputs.map((v) => newBuf(v, 'input'));
  const consts = p.consts.map((c) => ({ buf: newBuf(c.v, 'const'), value: c.value }));
  const building = new Set<Var>();
  let kcount = 0;
  const kname = (v: Var, what: string): string => `k${kcount++}_${origins.get(v) ?? what}`;

  const load = (v: Var, index: readonly Idx[]): SExpr => ({ op: 'load', buf: bufOf.get(v)!, index: linearize(index, v.aval.shape), dtype: v.aval.dtype });

  /** Ensures v has a buffer (building its kernel now if needed). */
  const ensureBuilt = (v: Var): number => {
    const have = bufOf.get(v);
    if (have !== undefined) return have;
    if (building.has(v)) throw new NexgradError(`fusion: cycle while materialising a ${prim(v)} value`);
    building.add(v);
    M.add(v);
    const anchor = epilogueOf.get(v);
    const e = producer.get(v)!;
    if (anchor) buildAnchor(anchor, v);
    else if (ANCHOR.has(e.prim)) buildAnchor(v, v);
    else if (isInlinable(e.prim) || e.prim in REDUCE) buildLoop(v);
    else buildHost(e);
    building.delete(v);
    return bufOf.get(v)!;
  };
  const outKind = (v: Var): BufferDecl['kind'] => (outputVars.has(v) ? 'output' : 'temp');

  const atomValue = (a: Atom, index: readonly Idx[], ctx: Ctx): SExpr => {
    if (a instanceof Literal) return { op: 'const', value: a.value, dtype: a.dtype };
    return valueAt(a, index, ctx);
  };

  /** The scalar expression for element `index` of v inside the kernel described by ctx. */
  const valueAt = (v: Var, index: readonly Idx[], ctx: Ctx): SExpr => {
    const key = `${v.id}@${index.map(idxKey).join('|')}`;
    const hit = ctx.memo.get(key);
    if (hit) return hit;
    const r = computeValue(v, index, ctx);
    ctx.memo.set(key, r);
    return r;
  };

  const computeValue = (v: Var, index: readonly Idx[], ctx: Ctx): SExpr => {
    if (ctx.anchor && v === ctx.anchor.v) {
      if (!sameIndex(index, ctx.anchor.index, ctx.ranges)) throw new NexgradError('fusion: internal: anchor read off its own index in an epilogue');
      return { op: 'acc', id: 0, dtype: v.aval.dtype };
    }
    if (bufOf.has(v)) return load(v, index);
    if ((M.has(v) || epilogueOf.has(v)) && v !== ctx.root) {
      ensureBuilt(v);
      return load(v, index);
    }
    const e = producer.get(v)!;
    const dtype = v.aval.dtype;
    const ins = e.inputs;
    const same = (k: number): SExpr => atomValue(ins[k]!, index, ctx);
    if (e.prim in REDUCE) {
      const L = ctx.layout;
      const x = ins[0] as Var;
      const axes = e.params.axes as number[];
      if (L && shapeEq(x.aval.shape, L.F) && axes.join() === L.axes.join() && sameIndex(index, L.outerIdx, ctx.ranges)) {
        let id = ctx.reduceIds.get(v);
        if (id === undefined) {
          const fIdx = fullIndex(L.F, L.axes);
          const expr = valueAt(x, fIdx, ctx);
          id = ctx.reductions.length;
          ctx.reductions.push({ id, op: REDUCE[e.prim]!, expr, dtype });
          ctx.reduceIds.set(v, id);
        }
        return { op: 'acc', id, dtype };
      }
      ensureBuilt(v);
      return load(v, index);
    }
    if (UNARY.has(e.prim)) return { op: 'unary', fn: e.prim as UnaryFn, a: same(0), dtype };
    if (BINARY.has(e.prim)) return { op: 'binary', fn: e.prim as BinaryFn, a: same(0), b: same(1), dtype };
    if (CMP.has(e.prim)) return { op: 'cmp', fn: e.prim as CmpFn, a: same(0), b: same(1), dtype: 'bool' };
    if (e.prim === 'select') return { op: 'select', c: same(0), a: same(1), b: same(2), dtype };
    if (e.prim === 'cast') return { op: 'cast', a: same(0), dtype };
    const x = ins[0];
    const inShape = x ? x.aval.shape : [];
    const pr = e.params as Record<string, any>;
    switch (e.prim) {
      case 'broadcast_in_dim': {
        const dims = pr.dims as number[];
        return atomValue(x!, inShape.map((n, i) => (n === 1 ? idx.const(0) : index[dims[i]!]!)), ctx);
      }
      case 'reshape': {
        const flat = linearize(index, v.aval.shape);
        return atomValue(x!, delinearize(flat, inShape, ctx.ranges), ctx);
      }
      case 'transpose': {
        const perm = pr.perm as number[];
        const inIdx = new Array<Idx>(perm.length);
        perm.forEach((q, k) => (inIdx[q] = index[k]!));
        return atomValue(x!, inIdx, ctx);
      }
      case 'slice':
        return atomValue(x!, index.map((ix, d) => idx.add(idx.const(pr.start[d]), idx.scale(ix, pr.strides[d]))), ctx);
      case 'rev': {
        const axes = pr.axes as number[];
        return atomValue(x!, index.map((ix, d) => (axes.includes(d) ? idx.add(idx.const(inShape[d]! - 1), idx.scale(ix, -1)) : ix)), ctx);
      }
      case 'iota':
        return { op: 'index', index: index[pr.dim as number]!, dtype };
      case 'pad': {
        // in = (index - lo) / step where in range and on the step grid; the pad value elsewhere
        const conds: SExpr[] = [];
        const zero: SExpr = { op: 'const', value: 0, dtype: 'i32' };
        const inIdx = index.map((ix, d) => {
          const step = (pr.interior[d] as number) + 1;
          const pos = idx.add(ix, idx.const(-pr.lo[d]));
          const n = inShape[d]!;
          const extent = n === 0 ? 0 : (n - 1) * step + 1;
          const [lo, hi] = idxRange(pos, ctx.ranges);
          const posE: SExpr = { op: 'index', index: pos, dtype: 'i32' };
          if (lo < 0) conds.push({ op: 'cmp', fn: 'ge', a: posE, b: zero, dtype: 'bool' });
          if (hi >= extent) conds.push({ op: 'cmp', fn: 'lt', a: posE, b: { op: 'const', value: extent, dtype: 'i32' }, dtype: 'bool' });
          if (step === 1) return pos;
          conds.push({ op: 'cmp', fn: 'eq', a: { op: 'index', index: idx.mod(pos, step, ctx.ranges), dtype: 'i32' }, b: zero, dtype: 'bool' });
          return idx.div(pos, step, ctx.ranges);
        });
        const inner = atomValue(x!, inIdx, ctx);
        if (conds.length === 0) return inner;
        const c = conds.reduce((a, b) => ({ op: 'binary', fn: 'and', a, b, dtype: 'bool' }) as SExpr);
        return { op: 'select', c, a: inner, b: { op: 'const', value: pr.value as number, dtype }, dtype };
      }
      case 'concatenate': {
        const axis = pr.axis as number;
        let off = 0;
        const pieces = ins.map((a) => {
          const start = off;
          off += a.aval.shape[axis]!;
          return { a, start, end: off };
        });
        let expr: SExpr | undefined;
        for (let k = pieces.length - 1; k >= 0; k--) {
          const pc = pieces[k]!;
          const sub = index.map((ix, d) => (d === axis ? idx.add(ix, idx.const(-pc.start)) : ix));
          const val = atomValue(pc.a, sub, ctx);
          if (!expr) {
            expr = val;
            continue;
          }
          const cond: SExpr = { op: 'cmp', fn: 'lt', a: { op: 'index', index: index[axis]!, dtype: 'i32' }, b: { op: 'const', value: pc.end, dtype: 'i32' }, dtype: 'bool' };
          expr = { op: 'select', c: cond, a: val, b: expr, dtype };
        }
        return expr!;
      }
    }
    throw new NexgradError(`fusion: internal: cannot inline ${e.prim}`);
  };

  /** The full-space index of a row layout: o-vars at kept axes, r-vars at reduced axes. */
  const fullIndex = (F: readonly number[], axes: readonly number[]): Idx[] => {
    let o = 0;
    let r = 0;
    return F.map((_, d) => (axes.includes(d) ? idx.var(`r${r++}`) : idx.var(`o${o++}`)));
  };

  /**
   * The row layout for a root of shape F: a reduction (not materialised, needed by this root
   * only) whose input has shape F (the root is written in the row loop: LayerNorm, softmax), or
   * else one whose output has shape F (the root is written once per outer index after the
   * reduction: a mean, a loss, a bias gradient with its optimizer update).
   */
  const findRowReduction = (root: Var, F: readonly number[]): { F: readonly number[]; axes: number[]; inRow: boolean } | undefined => {
    const seen = new Set<Var>();
    const stack: Var[] = [root];
    let outerCandidate: { F: readonly number[]; axes: number[]; inRow: boolean } | undefined;
    while (stack.length) {
      const v = stack.pop()!;
      if (seen.has(v)) continue;
      seen.add(v);
      const e = producer.get(v);
      if (!e) continue;
      if (v !== root && (M.has(v) || bufOf.has(v) || epilogueOf.has(v))) continue;
      if (e.prim in REDUCE && v !== root) {
        const x = e.inputs[0] as Var;
        const axes = e.params.axes as number[];
        if (shapeEq(x.aval.shape, F)) return { F, axes, inRow: true };
        // the same elements up to unit axes (a keepdims reshape of the reduction, say)
        if (!outerCandidate && shapeEq(v.aval.shape.filter((n) => n !== 1), F.filter((n) => n !== 1))) outerCandidate = { F: x.aval.shape, axes, inRow: false };
      }
      if (!(isInlinable(e.prim) || e.prim in REDUCE)) continue;
      for (const a of e.inputs) if (a instanceof Var) stack.push(a);
    }
    return outerCandidate;
  };

  /** Non-materialised reductions reachable from `from` through inlined values. */
  const reachableReductions = (from: readonly Atom[]): Var[] => {
    const out: Var[] = [];
    const seen = new Set<Var>();
    const stack = from.filter((a): a is Var => a instanceof Var);
    while (stack.length) {
      const v = stack.pop()!;
      if (seen.has(v) || M.has(v) || bufOf.has(v) || epilogueOf.has(v)) continue;
      seen.add(v);
      const e = producer.get(v);
      if (!e || !(isInlinable(e.prim) || e.prim in REDUCE)) continue;
      if (e.prim in REDUCE) out.push(v);
      for (const a of e.inputs) if (a instanceof Var) stack.push(a);
    }
    return out;
  };
  const spaceKey = (r: Var): string => {
    const e = producer.get(r)!;
    return `${e.inputs[0]!.aval.shape.join(',')}|${(e.params.axes as number[]).join(',')}`;
  };

  /**
   * A reduction that a root needs both directly and through a reduction over another space
   * (GRN: the spatial sum of squares feeds the channel mean and the output) would run in two
   * kernels: materialise it once instead.
   */
  const materialiseSharedReductions = (w: Var): void => {
    const e = producer.get(w)!;
    const S = reachableReductions(e.prim in REDUCE ? e.inputs : [w]);
    const inS = new Set(S);
    for (const r of S) {
      for (const d of reachableReductions(producer.get(r)!.inputs)) {
        if (inS.has(d) && spaceKey(d) !== spaceKey(r)) M.add(d);
      }
    }
  };

  const buildLoop = (w: Var): void => {
    const e = producer.get(w)!;
    materialiseSharedReductions(w);
    const isReduce = e.prim in REDUCE;
    const found = isReduce ? undefined : findRowReduction(w, w.aval.shape);
    const F = isReduce ? (e.inputs[0] as Var).aval.shape : (found?.F ?? w.aval.shape);
    const axes = isReduce ? (e.params.axes as number[]) : (found?.axes ?? []);
    const inRow = found?.inRow ?? false;
    const outer = F.filter((_, d) => !axes.includes(d));
    const row = axes.map((d) => F[d]!);
    const ranges = new Map<string, number>();
    outer.forEach((n, i) => ranges.set(`o${i}`, n));
    row.forEach((n, i) => ranges.set(`r${i}`, n));
    const outerIdx = outer.map((_, i) => idx.var(`o${i}`));
    const ctx = newCtx(ranges, axes.length ? { layout: { F, axes, outerIdx }, root: w } : { root: w });
    // The expressions are built first: they may materialise other values (nested kernels with
    // buffers of their own), and they must not read w itself. Then w gets its buffer.
    let outIndex: Idx;
    let outExpr: SExpr;
    if (isReduce) {
      // earlier phases (reductions over the same space) register while building this one's input
      const expr = valueAt(e.inputs[0] as Var, fullIndex(F, axes), ctx);
      const id = ctx.reductions.length;
      ctx.reductions.push({ id, op: REDUCE[e.prim]!, expr, dtype: w.aval.dtype });
      outIndex = linearize(outerIdx, w.aval.shape);
      outExpr = { op: 'acc', id, dtype: w.aval.dtype };
    } else if (inRow) {
      const fIdx = fullIndex(F, axes);
      outIndex = linearize(fIdx, F);
      outExpr = valueAt(w, fIdx, ctx);
    } else {
      // w's index over the outer loops (equal to them unless w differs by unit axes)
      const wIdx = shapeEq(outer, w.aval.shape) ? outerIdx : delinearize(linearize(outerIdx, outer), w.aval.shape, ranges);
      outIndex = linearize(wIdx, w.aval.shape);
      outExpr = valueAt(w, wIdx, ctx);
    }
    const buf = newBuf(w, outKind(w));
    const out: KernelOutput[] = [{ buf, index: outIndex, expr: outExpr }];
    const rowOutputs: KernelOutput[] = inRow ? out : [];
    const outerOutputs: KernelOutput[] = rowOutputs.length ? [] : out;
    kernels.push({ kind: 'loop', name: kname(w, e.prim), outer, row, reductions: ctx.reductions, outerOutputs, rowOutputs, space: { F, axes } });
  };

  /** Reads operand `a` through `index` (over the kernel's vars) as a strided buffer, if it is one. */
  const stridedOperand = (a: Atom, index: readonly Idx[], ranges: Map<string, number>, vars: readonly string[]): StridedOperand | undefined => {
    if (!(a instanceof Var)) return undefined;
    const se = valueAt(a, index, newCtx(ranges));
    if (se.op !== 'load') return undefined;
    const aff = affineStrides(se.index);
    if (!aff || [...aff.strides.keys()].some((k) => !vars.includes(k))) return undefined;
    return { buf: se.buf, offset: aff.offset, strides: vars.map((k) => aff.strides.get(k) ?? 0) as unknown as [number, number, number] };
  };

  const buildAnchor = (a: Var, root: Var): void => {
    const e = producer.get(a)!;
    const [lhs, rhs] = e.inputs as [Atom, Atom];
    if (e.prim === 'dot_general') {
      const pr = e.params as unknown as DotParams;
      const ls = lhs.aval.shape;
      const rs = rhs.aval.shape;
      const [bl, br] = pr.batch;
      const [cl, cr] = pr.contracting;
      const fl = ls.map((_, i) => i).filter((i) => !bl.includes(i) && !cl.includes(i));
      const fr = rs.map((_, i) => i).filter((i) => !br.includes(i) && !cr.includes(i));
      const batchShape = bl.map((i) => ls[i]!);
      const mShape = fl.map((i) => ls[i]!);
      const nShape = fr.map((i) => rs[i]!);
      const kShape = cl.map((i) => ls[i]!);
      const B = sizeOf(batchShape), Mm = sizeOf(mShape), N = sizeOf(nShape), K = sizeOf(kShape);
      /** lhs index over vars (b, m, k) and rhs index over (b, k, n), under any variable names. */
      const lhsIndex = (vb: string, vm: string, vk: string, r: Ranges): Idx[] => {
        const out = new Array<Idx>(ls.length);
        delinearize(idx.var(vb), batchShape, r).forEach((x, i) => (out[bl[i]!] = x));
        delinearize(idx.var(vk), kShape, r).forEach((x, i) => (out[cl[i]!] = x));
        delinearize(idx.var(vm), mShape, r).forEach((x, i) => (out[fl[i]!] = x));
        return out;
      };
      const rhsIndex = (vb: string, vk: string, vn: string, r: Ranges): Idx[] => {
        const out = new Array<Idx>(rs.length);
        delinearize(idx.var(vb), batchShape, r).forEach((x, i) => (out[br[i]!] = x));
        delinearize(idx.var(vk), kShape, r).forEach((x, i) => (out[cr[i]!] = x));
        delinearize(idx.var(vn), nShape, r).forEach((x, i) => (out[fr[i]!] = x));
        return out;
      };
      const rA = new Map([['b', B], ['m', Mm], ['k', K]]);
      const rB = new Map([['b', B], ['k', K], ['n', N]]);
      const prologue = (a: Atom, index: Idx[], r: Map<string, number>): ExprOperand | undefined =>
        a instanceof Var && !M.has(a) && !bufOf.has(a) && producer.has(a) ? { kind: 'expr', expr: valueAt(a, index, newCtx(r)) } : undefined;
      const opA: MatmulOperand =
        stridedOperand(lhs, lhsIndex('b', 'm', 'k', rA), rA, ['b', 'm', 'k']) ?? prologue(lhs, lhsIndex('b', 'm', 'k', rA), rA) ?? pack(lhs, [B, Mm, K], (r) => lhsIndex('o0', 'o1', 'o2', r));
      const opB: MatmulOperand =
        stridedOperand(rhs, rhsIndex('b', 'k', 'n', rB), rB, ['b', 'k', 'n']) ?? prologue(rhs, rhsIndex('b', 'k', 'n', rB), rB) ?? pack(rhs, [B, K, N], (r) => rhsIndex('o0', 'o1', 'o2', r));
      const rE = new Map([['b', B], ['m', Mm], ['n', N]]);
      const outIdx = [...delinearize(idx.var('b'), batchShape, rE), ...delinearize(idx.var('m'), mShape, rE), ...delinearize(idx.var('n'), nShape, rE)];
      const ctx = newCtx(rE, { anchor: { v: a, index: outIdx }, root });
      const rootIdx = throughViews(root, outIdx, rE);
      const expr = valueAt(root, rootIdx, ctx);
      const buf = newBuf(root, outKind(root));
      kernels.push({ kind: 'matmul', name: kname(root, 'matmul'), batch: B, m: Mm, n: N, k: K, dtype: a.aval.dtype, a: opA, b: opB, outputs: [{ buf, index: linearize(rootIdx, root.aval.shape), expr }] });
      return;
    }
    // conv_general: contiguous operands
    const pr = e.params as unknown as ConvParams;
    const lb = contiguous(lhs);
    const rb = contiguous(rhs);
    const outShape = a.aval.shape;
    const rE = new Map<string, number>(outShape.map((n, i) => [`o${i}`, n]));
    const outIdx = outShape.map((_, i) => idx.var(`o${i}`));
    const ctx = newCtx(rE, { anchor: { v: a, index: outIdx }, root });
    const rootIdx = throughViews(root, outIdx, rE);
    const expr = valueAt(root, rootIdx, ctx);
    const buf = newBuf(root, outKind(root));
    kernels.push({
      kind: 'conv', name: kname(root, 'conv'), params: pr, dtype: a.aval.dtype,
      lhs: { buf: lb, shape: lhs.aval.shape }, rhs: { buf: rb, shape: rhs.aval.shape }, outShape,
      outputs: [{ buf, index: linearize(rootIdx, root.aval.shape), expr }],
    });
  };

  /** Copies operand `a`, read through index(o0, o1, o2), into a fresh contiguous [d0, d1, d2] buffer. */
  const pack = (a: Atom, dims: readonly [number, number, number], index: (r: Ranges) => Idx[]): StridedOperand => {
    if (!(a instanceof Var)) throw new NexgradError('fusion: internal: literal operand to a matmul');
    const ranges = new Map<string, number>(dims.map((n, i) => [`o${i}`, n]));
    const expr = valueAt(a, index(ranges), newCtx(ranges));
    const id = buffers.length;
    buffers.push({ id, dtype: a.aval.dtype, size: dims[0] * dims[1] * dims[2], kind: 'temp' });
    const outIdx = [0, 1, 2].map((i) => idx.var(`o${i}`));
    kernels.push({ kind: 'loop', name: `k${kcount++}_pack`, outer: [...dims], row: [], reductions: [], outerOutputs: [{ buf: id, index: linearize(outIdx, dims), expr }], rowOutputs: [] });
    return { buf: id, offset: 0, strides: [dims[1] * dims[2], dims[2], 1] };
  };

  /** A buffer holding operand `a` in row-major order. */
  const contiguous = (a: Atom): number => {
    if (!(a instanceof Var)) {
      throw new NexgradError('fusion: internal: literal operand');
    }
    const ranges = new Map<string, number>(a.aval.shape.map((n, i) => [`o${i}`, n]));
    const id = a.aval.shape.map((_, i) => idx.var(`o${i}`));
    const se = valueAt(a, id, newCtx(ranges));
    if (se.op === 'load' && idxKey(se.index) === idxKey(linearize(id, a.aval.shape))) return se.buf;
    return ensureBuilt(a);
  };

  const buildHost = (e: Eqn): void => {
    const ins = e.inputs.map((a) => {
      if (a instanceof Literal) throw new NexgradError(`fusion: internal: literal operand to host op ${e.prim}`);
      return { buf: contiguous(a), shape: a.aval.shape, dtype: a.aval.dtype };
    });
    const outs = e.outputs.map((v) => ({ buf: newBuf(v, outKind(v)), shape: v.aval.shape, dtype: v.aval.dtype }));
    kernels.push({ kind: 'host', name: kname(e.outputs[0]!, e.prim), prim: e.prim, params: e.params, inputs: ins, outputs: outs });
  };

  for (const e of p.eqns) for (const v of e.outputs) if (M.has(v) || epilogueOf.has(v)) ensureBuilt(v);

  const outputs: GraphOutput[] = p.outputs.map((a) => {
    if (a instanceof Literal) return { kind: 'literal', value: a.value, dtype: a.dtype };
    return { kind: 'buffer', buf: ensureBuilt(a), shape: a.aval.shape, dtype: a.aval.dtype };
  });
  return { buffers, kernels: mergeReductionKernels(kernels), inputs, outputs, consts };
}

export type { Ranges };
