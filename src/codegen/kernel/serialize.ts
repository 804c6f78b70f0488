/**
 * KernelGraph <-> JSON for the on-disk compile cache. The file is untrusted input: reading it
 * validates every field (its type, its range, every buffer and node reference), so nothing but
 * checked numbers and enumerated names can reach a code generator. Scalar expression DAGs are
 * written as a node table (shared nodes stay shared). Constants are not stored: the cache key
 * covers their values, and the reader takes them from the program being compiled.
 */
import { isDType, type DType } from '../../ir/dtype.js';
import type { HostArray } from '../../ir/host.js';
import { PRIMS } from '../../ir/primitives/index.js';
import type { ConvParams, PrimName } from '../../ir/primitive.js';
import { type Axis, axis, AXIS_ROLES, type AxisRole } from './axis.js';
import type { MemoryPlan } from './device.js';
import { type Idx, type IdxAtom, idxRange, idxVars } from './index_expr.js';
import { childKeys, sexprChildren, type SExpr, type SExprOp, visitSExpr } from './sexpr.js';
import { type ExprOperand, isExprOperand, type Kernel, type KernelGraph, type KernelOutput, type MatmulOperand, type Reduction } from './kernel_graph.js';

export const FORMAT = 'nexgrad-kernel-graph-4';

/** Bounds on what a cache entry may describe. */
const LIMITS = { elements: 2 ** 32, nodes: 5_000_000, idxDepth: 64, rank: 16, name: 200, work: 2 ** 44 };

export class CacheFormatError extends Error {
  constructor(where: string, what: string) {
    super(`cache entry: ${where}: ${what}`);
    this.name = 'CacheFormatError';
  }
}

// ---------------------------------------------------------------------------------------
// writing

/** Numbers JSON cannot hold are written as strings. */
function numOut(v: number): number | string {
  if (Object.is(v, -0)) return '-0';
  return Number.isFinite(v) ? v : String(v);
}

function idxOut(x: Idx): unknown {
  return { c: x.c, t: x.terms.map((t) => [t.coef, atomOut(t.atom)]) };
}

function atomOut(a: IdxAtom): unknown {
  return a.k === 'var' ? [a.axis.role, a.axis.pos] : [a.k, idxOut(a.a), a.d];
}

export function serializeLowered(g: KernelGraph, plan: MemoryPlan): string {
  const nodes: unknown[] = [];
  const ids = new Map<SExpr, number>();
  const ref = (e: SExpr): number => {
    const have = ids.get(e);
    if (have !== undefined) return have;
    const n: Record<string, unknown> = { ...e };
    for (const k of childKeys(e.op)) {
      const c = (e as unknown as Record<string, SExpr | undefined>)[k];
      if (c) n[k] = ref(c);
    }
    if (e.op === 'load' || e.op === 'index') n.index = idxOut(e.index);
    if (e.op === 'const') n.value = numOut(e.value);
    const id = nodes.length;
    nodes.push(n);
    ids.set(e, id);
    return id;
  };
  const outs = (os: readonly KernelOutput[]) =>
    os.map((o) => ({ buf: o.buf, index: idxOut(o.index), expr: ref(o.expr), ...(o.dyn ? { dyn: ref(o.dyn) } : {}), ...(o.accumulate ? { accumulate: true } : {}), ...(o.when ? { when: ref(o.when) } : {}), ...(o.init ? { init: o.init } : {}) }));
  const kernels = g.kernels.map((k): unknown => {
    switch (k.kind) {
      case 'loop':
        return { ...k, reductions: k.reductions.map((r) => ({ ...r, expr: ref(r.expr) })), outerOutputs: outs(k.outerOutputs), rowOutputs: outs(k.rowOutputs) };
      case 'matmul': {
        const stats = (o: ExprOperand) => (o.stats ? { stats: { row: o.stats.row, reductions: o.stats.reductions.map((r) => ({ ...r, expr: ref(r.expr) })) } } : {});
        const op = (o: MatmulOperand) => (isExprOperand(o) ? { kind: 'expr', expr: ref(o.expr), ...stats(o) } : { kind: 'strided', buf: o.buf, offset: o.offset, strides: o.strides });
        return { ...k, a: op(k.a), b: op(k.b), outputs: outs(k.outputs) };
      }
      case 'conv':
        return { ...k, outputs: outs(k.outputs) };
      case 'sort':
        return k;
    }
  });
  const outputs = g.outputs.map((o) => (o.kind === 'literal' ? { ...o, value: numOut(o.value) } : o));
  return JSON.stringify({
    format: FORMAT,
    graph: { buffers: g.buffers, kernels, inputs: g.inputs, outputs, consts: g.consts.map((c) => c.buf) },
    nodes,
    plan: { ...plan, outputAliases: [...plan.outputAliases] },
  });
}

// ---------------------------------------------------------------------------------------
// reading: every field checked

type J = unknown;

class Reader {
  bufferCount = 0;
  dtypes: DType[] = [];
  readonly built: SExpr[] = [];

  obj(x: J, where: string): Record<string, J> {
    if (x === null || typeof x !== 'object' || Array.isArray(x)) throw new CacheFormatError(where, 'expected an object');
    return x as Record<string, J>;
  }
  arr(x: J, where: string, max = LIMITS.nodes): J[] {
    if (!Array.isArray(x) || x.length > max) throw new CacheFormatError(where, 'expected a bounded array');
    return x;
  }
  int(x: J, where: string, lo = 0, hi = LIMITS.elements): number {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < lo || x > hi) throw new CacheFormatError(where, `expected an integer in [${lo}, ${hi}]`);
    return x;
  }
  num(x: J, where: string): number {
    if (typeof x === 'number' && Number.isFinite(x)) return x;
    const special: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity, '-0': -0 };
    if (typeof x === 'string' && Object.prototype.hasOwnProperty.call(special, x)) return special[x]!;
    throw new CacheFormatError(where, 'expected a number');
  }
  bool(x: J, where: string): boolean {
    if (typeof x !== 'boolean') throw new CacheFormatError(where, 'expected a boolean');
    return x;
  }
  oneOf<T extends string>(x: J, allowed: readonly T[], where: string): T {
    if (typeof x !== 'string' || !(allowed as readonly string[]).includes(x)) throw new CacheFormatError(where, `expected one of ${allowed.join(', ')}`);
    return x as T;
  }
  dtype(x: J, where: string): DType {
    if (!isDType(x)) throw new CacheFormatError(where, 'expected a dtype');
    return x;
  }
  name(x: J, where: string): string {
    if (typeof x !== 'string' || !/^[A-Za-z0-9_+.\-]{1,4096}$/.test(x)) throw new CacheFormatError(where, 'expected a kernel name (letters, digits, _ + . -)');
    return x;
  }
  ints(x: J, where: string, lo = 0, hi = LIMITS.elements, max = LIMITS.rank): number[] {
    return this.arr(x, where, max).map((v, i) => this.int(v, `${where}[${i}]`, lo, hi));
  }
  buf(x: J, where: string): number {
    return this.int(x, where, 0, this.bufferCount - 1);
  }
  idx(x: J, where: string, depth = 0): Idx {
    if (depth > LIMITS.idxDepth) throw new CacheFormatError(where, 'index expression too deep');
    const o = this.obj(x, where);
    const terms = this.arr(o.t, `${where}.t`, 64).map((t, i) => {
      const [coef, atom] = this.arr(t, `${where}.t[${i}]`, 2);
      return { coef: this.int(coef, `${where}.t[${i}]`, -LIMITS.elements, LIMITS.elements), atom: this.atom(atom, `${where}.t[${i}]`, depth) };
    });
    return { c: this.int(o.c, `${where}.c`, -LIMITS.elements, LIMITS.elements), terms };
  }
  atom(x: J, where: string, depth: number): IdxAtom {
    const a = this.arr(x, where, 3);
    if (AXIS_ROLES.includes(a[0] as AxisRole)) {
      const role = a[0] as AxisRole;
      const pos = this.int(a[1], where, 0, role === 'outer' || role === 'row' ? LIMITS.rank : 0);
      return { k: 'var', axis: axis(role, pos) };
    }
    const k = this.oneOf(a[0], ['div', 'mod'] as const, where);
    return { k, a: this.idx(a[1], where, depth + 1), d: this.int(a[2], where, 1) };
  }
  ref(x: J, where: string): SExpr {
    return this.built[this.int(x, where, 0, this.built.length - 1)]!;
  }

  node(x: J, i: number): SExpr {
    const where = `nodes[${i}]`;
    const n = this.obj(x, where);
    const op = this.oneOf(n.op, Object.keys(NODE_FIELDS) as SExprOp[], `${where}.op`);
    const e: Record<string, unknown> = { op, dtype: this.dtype(n.dtype, `${where}.dtype`) };
    for (const k of childKeys(op)) if (n[k] !== undefined) e[k] = this.ref(n[k], `${where}.${k}`);
    NODE_FIELDS[op](this, n, e, where);
    return e as unknown as SExpr;
  }

  /** Reduction phases: ids 0, 1, ... in order, of the given ops. */
  reductions(x: J, where: string, ops: readonly Reduction['op'][] = ['sum', 'max', 'min', 'argmax']): Reduction[] {
    return this.arr(x, where).map((v, j) => {
      const w = `${where}[${j}]`;
      const o = this.obj(v, w);
      return { id: this.int(o.id, `${w}.id`, 0, LIMITS.nodes), op: this.oneOf(o.op, ops, `${w}.op`), expr: this.ref(o.expr, `${w}.expr`), dtype: this.dtype(o.dtype, `${w}.dtype`) };
    });
  }

  /** Epilogue outputs; `reducing`: a matmul's, which may be reducing (init 'zero', accumulated). */
  outputs(x: J, where: string, reducing = false): KernelOutput[] {
    return this.arr(x, where).map((v, i) => {
      const w = `${where}[${i}]`;
      const o = this.obj(v, w);
      if (o.init !== undefined) {
        if (!reducing) throw new CacheFormatError(`${w}.init`, 'only a matmul output may be zero-initialised');
        this.oneOf(o.init, ['zero'] as const, `${w}.init`);
        if (o.accumulate !== true || o.dyn !== undefined || o.when !== undefined) throw new CacheFormatError(`${w}.init`, 'a zero-initialised output must accumulate, with no offset or guard');
      }
      return {
        ...(o.init !== undefined ? { init: 'zero' as const } : {}),
        buf: this.buf(o.buf, `${w}.buf`),
        index: this.idx(o.index, `${w}.index`),
        expr: this.ref(o.expr, `${w}.expr`),
        ...(o.dyn !== undefined ? { dyn: this.ref(o.dyn, `${w}.dyn`) } : {}),
        ...(o.accumulate !== undefined ? { accumulate: this.bool(o.accumulate, `${w}.accumulate`) } : {}),
        ...(o.when !== undefined ? { when: this.ref(o.when, `${w}.when`) } : {}),
      };
    });
  }
}

const UNARY = [...(Object.keys(PRIMS) as PrimName[]).filter((p) => PRIMS[p].lowering === 'unary')];
const BINARY = [...(Object.keys(PRIMS) as PrimName[]).filter((p) => PRIMS[p].lowering === 'binary')];
const CMP = [...(Object.keys(PRIMS) as PrimName[]).filter((p) => PRIMS[p].lowering === 'compare')];

/** The non-operand fields of each node kind. */
const NODE_FIELDS: { readonly [K in SExprOp]: (r: Reader, n: Record<string, J>, e: Record<string, unknown>, where: string) => void } = {
  load: (r, n, e, w) => {
    e.buf = r.buf(n.buf, `${w}.buf`);
    e.index = r.idx(n.index, `${w}.index`);
    if (r.dtypes[e.buf as number] !== e.dtype) throw new CacheFormatError(w, 'load dtype differs from its buffer');
  },
  const: (r, n, e, w) => (e.value = r.num(n.value, `${w}.value`)),
  index: (r, n, e, w) => (e.index = r.idx(n.index, `${w}.index`)),
  acc: (r, n, e, w) => (e.id = r.int(n.id, `${w}.id`, 0, LIMITS.nodes)),
  unary: (r, n, e, w) => (e.fn = r.oneOf(n.fn, UNARY, `${w}.fn`)),
  binary: (r, n, e, w) => (e.fn = r.oneOf(n.fn, BINARY, `${w}.fn`)),
  cmp: (r, n, e, w) => (e.fn = r.oneOf(n.fn, CMP, `${w}.fn`)),
  select: () => {},
  cast: () => {},
  threefry: (r, n, e, w) => (e.word = r.int(n.word, `${w}.word`, 0, 1)),
};

function requireChildren(e: SExpr, where: string): void {
  for (const k of childKeys(e.op)) {
    if (k === 'dyn') continue;
    if (!(e as unknown as Record<string, unknown>)[k]) throw new CacheFormatError(where, `missing operand ${k}`);
  }
}

function convParams(r: Reader, x: J, where: string): ConvParams {
  const p = r.obj(x, where);
  const dims = r.obj(p.dims, `${where}.dims`);
  return {
    windowStrides: r.ints(p.windowStrides, `${where}.windowStrides`, 1),
    padding: r.arr(p.padding, `${where}.padding`, LIMITS.rank).map((pp, i) => {
      const [lo, hi] = r.ints(pp, `${where}.padding[${i}]`, -LIMITS.elements, LIMITS.elements, 2);
      return [lo!, hi!] as const;
    }),
    lhsDilation: r.ints(p.lhsDilation, `${where}.lhsDilation`, 1),
    rhsDilation: r.ints(p.rhsDilation, `${where}.rhsDilation`, 1),
    featureGroupCount: r.int(p.featureGroupCount, `${where}.featureGroupCount`, 1),
    batchGroupCount: r.int(p.batchGroupCount, `${where}.batchGroupCount`, 1),
    dims: { lhs: r.ints(dims.lhs, `${where}.dims.lhs`), rhs: r.ints(dims.rhs, `${where}.dims.rhs`), out: r.ints(dims.out, `${where}.dims.out`) },
  };
}

function kernel(r: Reader, x: J, i: number): Kernel {
  const where = `kernels[${i}]`;
  const k = r.obj(x, where);
  const kind = r.oneOf(k.kind, ['loop', 'matmul', 'conv', 'sort'] as const, `${where}.kind`);
  const name = r.name(k.name, `${where}.name`);
  switch (kind) {
    case 'loop': {
      const space = k.space === undefined ? undefined : r.obj(k.space, `${where}.space`);
      return {
        kind, name,
        outer: r.ints(k.outer, `${where}.outer`),
        row: r.ints(k.row, `${where}.row`),
        reductions: r.reductions(k.reductions, `${where}.reductions`),
        outerOutputs: r.outputs(k.outerOutputs, `${where}.outerOutputs`),
        rowOutputs: r.outputs(k.rowOutputs, `${where}.rowOutputs`),
        ...(space ? { space: { F: r.ints(space.F, `${where}.space.F`), axes: r.ints(space.axes, `${where}.space.axes`) } } : {}),
      };
    }
    case 'matmul': {
      const operand = (v: J, w: string, isA: boolean): MatmulOperand => {
        const o = r.obj(v, w);
        if (o.kind === 'expr') {
          if (o.stats === undefined) return { kind: 'expr', expr: r.ref(o.expr, `${w}.expr`) };
          if (!isA) throw new CacheFormatError(`${w}.stats`, 'only the A operand has row statistics');
          const st = r.obj(o.stats, `${w}.stats`);
          return { kind: 'expr', expr: r.ref(o.expr, `${w}.expr`), stats: { row: r.ints(st.row, `${w}.stats.row`, 1, LIMITS.elements, 1), reductions: r.reductions(st.reductions, `${w}.stats.reductions`, ['sum']) } };
        }
        r.oneOf(o.kind, ['strided'] as const, `${w}.kind`);
        const s = r.ints(o.strides, `${w}.strides`, -LIMITS.elements, LIMITS.elements, 3);
        if (s.length !== 3) throw new CacheFormatError(w, 'expected three strides');
        return { kind: 'strided', buf: r.buf(o.buf, `${w}.buf`), offset: r.int(o.offset, `${w}.offset`), strides: [s[0]!, s[1]!, s[2]!] };
      };
      return {
        kind, name,
        batch: r.int(k.batch, `${where}.batch`), m: r.int(k.m, `${where}.m`), n: r.int(k.n, `${where}.n`), k: r.int(k.k, `${where}.k`),
        dtype: r.dtype(k.dtype, `${where}.dtype`),
        a: operand(k.a, `${where}.a`, true), b: operand(k.b, `${where}.b`, false),
        outputs: r.outputs(k.outputs, `${where}.outputs`, true),
        ...(k.reduceRows !== undefined ? { reduceRows: r.int(k.reduceRows, `${where}.reduceRows`, 1) } : {}),
      };
    }
    case 'conv': {
      const side = (v: J, w: string) => {
        const o = r.obj(v, w);
        return { buf: r.buf(o.buf, `${w}.buf`), shape: r.ints(o.shape, `${w}.shape`) };
      };
      return {
        kind, name, params: convParams(r, k.params, `${where}.params`), dtype: r.dtype(k.dtype, `${where}.dtype`),
        lhs: side(k.lhs, `${where}.lhs`), rhs: side(k.rhs, `${where}.rhs`), outShape: r.ints(k.outShape, `${where}.outShape`),
        outputs: r.outputs(k.outputs, `${where}.outputs`),
      };
    }
    case 'sort':
      return {
        kind, name, input: r.buf(k.input, `${where}.input`), dtype: r.dtype(k.dtype, `${where}.dtype`), shape: r.ints(k.shape, `${where}.shape`),
        axis: r.int(k.axis, `${where}.axis`, 0, LIMITS.rank), descending: r.bool(k.descending, `${where}.descending`), output: r.buf(k.output, `${where}.output`),
      };
  }
}

/** Bounded work: a kernel's iteration space and the buffers it names fit the limits. */
function checkExtents(k: Kernel, buffers: readonly { size: number }[], where: string): void {
  const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);
  let work = 0;
  switch (k.kind) {
    case 'loop':
      work = prod(k.outer) * prod(k.row);
      break;
    case 'matmul':
      work = k.batch * k.m * k.n * Math.max(1, k.k);
      checkReducingMatmul(k, where);
      break;
    case 'conv':
      work = prod(k.outShape) * prod(k.rhs.shape);
      if (prod(k.lhs.shape) > buffers[k.lhs.buf]!.size || prod(k.rhs.shape) > buffers[k.rhs.buf]!.size) throw new CacheFormatError(where, 'operand shapes exceed their buffers');
      break;
    case 'sort':
      work = prod(k.shape);
      if (work > buffers[k.input]!.size || work > buffers[k.output]!.size) throw new CacheFormatError(where, 'shape exceeds its buffers');
      if (k.axis >= k.shape.length) throw new CacheFormatError(where, 'axis out of range');
      break;
  }
  if (!(work <= LIMITS.work)) throw new CacheFormatError(where, `iteration space of ${work} exceeds ${LIMITS.work}`);
  checkIndexRanges(k, buffers, where);
}

/** Acc ids an expression reads. */
function accIds(e: SExpr): number[] {
  const ids: number[] = [];
  visitSExpr(e, (n) => {
    if (n.op === 'acc') ids.push(n.id);
  });
  return ids;
}

/**
 * Prologue statistics and reducing epilogues hold together: statistics run over one row axis
 * of the k extent, numbered 0.. in order, each reading only earlier ones (the prologue reads
 * any); zero-initialised outputs come with reduceRows, a divisor of m, and it with them.
 */
function checkReducingMatmul(k: Extract<Kernel, { kind: 'matmul' }>, where: string): void {
  for (const [name, op] of [['a', k.a], ['b', k.b]] as const) {
    if (!isExprOperand(op)) continue;
    const red = op.stats?.reductions ?? [];
    if (op.stats && (op.stats.row.length !== 1 || op.stats.row[0] !== k.k || red.length === 0)) throw new CacheFormatError(`${where}.${name}.stats`, `expected one row axis of extent k = ${k.k} and at least one reduction`);
    red.forEach((r, j) => {
      if (r.id !== j) throw new CacheFormatError(`${where}.${name}.stats.reductions[${j}].id`, `expected ${j}`);
      if (accIds(r.expr).some((i) => i >= j)) throw new CacheFormatError(`${where}.${name}.stats.reductions[${j}].expr`, 'reads a statistic not computed before it');
    });
    if (accIds(op.expr).some((i) => i >= red.length)) throw new CacheFormatError(`${where}.${name}.expr`, 'reads a row statistic that is not computed');
  }
  const reducing = k.outputs.some((o) => o.init === 'zero');
  if (reducing !== (k.reduceRows !== undefined)) throw new CacheFormatError(`${where}.reduceRows`, 'must be given exactly when an output is zero-initialised');
  if (k.reduceRows !== undefined && (k.m === 0 || k.m % k.reduceRows !== 0)) throw new CacheFormatError(`${where}.reduceRows`, `${k.reduceRows} does not divide m = ${k.m}`);
}

/**
 * Visits the static loads a kernel must keep inside their buffers. Loads under a select's
 * branches are exempt: fusion reads padded and concatenated operands as `select(in bounds,
 * x[i], fill)`, so x[i] is out of range exactly where the select throws it away, and every
 * backend makes such reads safe (JavaScript reads `undefined`; the C, WGSL and CUDA emitters
 * clamp each load that can leave its buffer: lower/safe_loads.ts). A load outside any select
 * must be in range, and every store must.
 */
function checkLoads(e: SExpr, guarded: boolean, seen: { guarded: Set<SExpr>; open: Set<SExpr> }, check: (load: Extract<SExpr, { op: 'load' }>, guarded: boolean) => void): void {
  if (seen.open.has(e) || (guarded && seen.guarded.has(e))) return; // a shared node is checked once per context
  (guarded ? seen.guarded : seen.open).add(e);
  if (e.op === 'load' && !e.dyn) check(e, guarded);
  if (e.op === 'select') {
    checkLoads(e.c, guarded, seen, check);
    checkLoads(e.a, true, seen, check);
    checkLoads(e.b, true, seen, check);
  } else for (const c of sexprChildren(e)) checkLoads(c, guarded, seen, check);
}

/** Every load (outside a select: checkLoads) and store a kernel makes stays inside its buffer. */
function checkIndexRanges(k: Kernel, buffers: readonly { size: number }[], where: string): void {
  const ranges = new Map<Axis, number>();
  const roots: SExpr[] = [];
  const outs: KernelOutput[] = [];
  switch (k.kind) {
    case 'loop':
      k.outer.forEach((n, i) => ranges.set(axis('outer', i), n));
      k.row.forEach((n, i) => ranges.set(axis('row', i), n));
      k.reductions.forEach((x) => roots.push(x.expr));
      outs.push(...k.outerOutputs, ...k.rowOutputs);
      break;
    case 'matmul':
      ([['batch', k.batch], ['m', k.m], ['n', k.n], ['k', k.k]] as const).forEach(([role, n]) => ranges.set(axis(role), n));
      for (const o of [k.a, k.b]) {
        if (isExprOperand(o) && o.stats) {
          ranges.set(axis('row', 0), o.stats.row[0]!);
          o.stats.reductions.forEach((x) => roots.push(x.expr));
        }
        if (isExprOperand(o)) roots.push(o.expr);
        else {
          const last = o.offset + o.strides[0] * (k.batch - 1) + Math.max(0, o.strides[1]) * ((o === k.a ? k.m : k.k) - 1) + Math.max(0, o.strides[2]) * ((o === k.a ? k.k : k.n) - 1);
          if (o.strides.some((x) => x < 0) || last >= buffers[o.buf]!.size) throw new CacheFormatError(where, `operand reads outside buffer ${o.buf}`);
        }
      }
      outs.push(...k.outputs);
      break;
    case 'conv':
      k.outShape.forEach((n, i) => ranges.set(axis('outer', i), n));
      outs.push(...k.outputs);
      break;
    case 'sort':
      return;
  }
  for (const o of outs) roots.push(o.expr, ...(o.dyn ? [o.dyn] : []), ...(o.when ? [o.when] : []));
  const inside = (buf: number, index: Idx, what: string, guarded = false): void => {
    const [lo, hi] = idxRange(index, ranges); // also: every axis it reads is one of the kernel's
    // an index inside a loop of no iterations is never computed (a zero-size tensor's kernel)
    if (guarded || [...idxVars(index)].some((a) => ranges.get(a) === 0)) return;
    if (lo < 0 || hi >= buffers[buf]!.size) throw new CacheFormatError(where, `${what} of buffer ${buf} at [${lo}, ${hi}] is outside its ${buffers[buf]!.size} elements`);
  };
  const seen = { guarded: new Set<SExpr>(), open: new Set<SExpr>() };
  try {
    for (const r of roots) checkLoads(r, false, seen, (n, guarded) => inside(n.buf, n.index, 'a load', guarded));
    for (const o of outs) if (!o.dyn) inside(o.buf, o.index, 'a store');
  } catch (e) {
    if (e instanceof CacheFormatError) throw e;
    throw new CacheFormatError(where, (e as Error).message); // an index over an axis the kernel lacks
  }
}

/**
 * Reads a cache entry; `consts` are the program's constants (the graph's const buffers, in
 * order). Throws CacheFormatError naming the first field that is wrong.
 */
export function deserializeLowered(text: string, consts: readonly HostArray[]): { graph: KernelGraph; plan: MemoryPlan } {
  let j: J;
  try {
    j = JSON.parse(text);
  } catch {
    throw new CacheFormatError('file', 'not JSON');
  }
  const r = new Reader();
  const top = r.obj(j, 'entry');
  if (top.format !== FORMAT) throw new CacheFormatError('format', `expected ${FORMAT}`);
  const g = r.obj(top.graph, 'graph');
  const buffers = r.arr(g.buffers, 'graph.buffers').map((v, i) => {
    const b = r.obj(v, `buffers[${i}]`);
    r.int(b.id, `buffers[${i}].id`, i, i);
    return { id: i, dtype: r.dtype(b.dtype, `buffers[${i}].dtype`), size: r.int(b.size, `buffers[${i}].size`), kind: r.oneOf(b.kind, ['input', 'output', 'temp', 'const'] as const, `buffers[${i}].kind`) };
  });
  r.bufferCount = buffers.length;
  r.dtypes = buffers.map((b) => b.dtype);
  r.arr(top.nodes, 'nodes').forEach((n, i) => {
    const e = r.node(n, i);
    requireChildren(e, `nodes[${i}]`);
    r.built.push(e);
  });
  const kernels = r.arr(g.kernels, 'graph.kernels').map((k, i) => kernel(r, k, i));
  kernels.forEach((k, i) => checkExtents(k, buffers, `kernels[${i}]`));
  const inputs = r.arr(g.inputs, 'graph.inputs').map((b, i) => r.buf(b, `graph.inputs[${i}]`));
  const outputs = r.arr(g.outputs, 'graph.outputs').map((v, i) => {
    const o = r.obj(v, `graph.outputs[${i}]`);
    if (o.kind === 'literal') return { kind: 'literal' as const, value: r.num(o.value, `graph.outputs[${i}].value`), dtype: r.dtype(o.dtype, `graph.outputs[${i}].dtype`) };
    r.oneOf(o.kind, ['buffer'] as const, `graph.outputs[${i}].kind`);
    return { kind: 'buffer' as const, buf: r.buf(o.buf, `graph.outputs[${i}].buf`), shape: r.ints(o.shape, `graph.outputs[${i}].shape`), dtype: r.dtype(o.dtype, `graph.outputs[${i}].dtype`) };
  });
  const constBufs = r.arr(g.consts, 'graph.consts').map((b, i) => r.buf(b, `graph.consts[${i}]`));
  if (constBufs.length !== consts.length) throw new CacheFormatError('graph.consts', `expected ${consts.length} constants`);
  constBufs.forEach((b, i) => {
    if (buffers[b]!.dtype !== consts[i]!.dtype || buffers[b]!.size !== consts[i]!.size) throw new CacheFormatError(`graph.consts[${i}]`, 'does not match the program constant');
  });
  const p = r.obj(top.plan, 'plan');
  const storageOf = r.ints(p.storageOf, 'plan.storageOf', -1, LIMITS.nodes, buffers.length);
  if (storageOf.length !== buffers.length) throw new CacheFormatError('plan.storageOf', 'one entry per buffer expected');
  const storageBytes = r.ints(p.storageBytes, 'plan.storageBytes', 0, 2 ** 40, LIMITS.nodes);
  if (storageOf.some((s) => s >= storageBytes.length)) throw new CacheFormatError('plan.storageOf', 'names a missing storage');
  const aliases = r.arr(p.outputAliases, 'plan.outputAliases').map((v, i) => {
    const [ob, pos] = r.arr(v, `plan.outputAliases[${i}]`, 2);
    return [r.buf(ob, `plan.outputAliases[${i}][0]`), r.int(pos, `plan.outputAliases[${i}][1]`, 0, inputs.length - 1)] as [number, number];
  });
  const graph: KernelGraph = { buffers, kernels, inputs, outputs, consts: constBufs.map((buf, i) => ({ buf, value: consts[i]! })) };
  const plan: MemoryPlan = { storageOf, storageBytes, outputAliases: new Map(aliases), peakBytes: r.int(p.peakBytes, 'plan.peakBytes', 0, 2 ** 50) };
  return { graph, plan };
}
