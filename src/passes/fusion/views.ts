/**
 * Scalar values of inlined primitives: the expression for one element of a value, given how to
 * read its operands at any index (`read`). Views remap the index (pad and concatenate select
 * between pieces), elementwise ops build nodes, gather reads its table at a data-dependent
 * offset, random_bits is a threefry expression of the counter. One entry per lowering kind.
 */
import { delinearize, type Idx, idx, idxRange, linearize, type Ranges } from '../../codegen/kernel/index_expr.js';
import type { BinaryFn, CmpFn, SExpr, UnaryFn } from '../../codegen/kernel/kernel_graph.js';
import type { DType } from '../../ir/dtype.js';
import { NexgradError } from '../../ir/errors.js';
import type { Lowering } from '../../ir/primitive.js';
import type { Atom, Eqn, Var } from '../../ir/program.js';
import { sizeOf } from '../../ir/shape.js';

export interface ValueArgs {
  readonly v: Var;
  readonly e: Eqn;
  readonly index: readonly Idx[];
  readonly ranges: Ranges;
  /** The value of operand k of `e` at an index. */
  readonly read: (k: number, index: readonly Idx[]) => SExpr;
  /** A buffer holding operand k contiguously (row-major), and its element type. */
  readonly bufferOf: (k: number) => { buf: number; dtype: DType };
}

type Rule = (a: ValueArgs) => SExpr;

const i32 = (value: number): SExpr => ({ op: 'const', value, dtype: 'i32' });
const indexValue = (index: Idx): SExpr => ({ op: 'index', index, dtype: 'i32' });
const and = (a: SExpr, b: SExpr): SExpr => ({ op: 'binary', fn: 'and', a, b, dtype: 'bool' });
const cmp = (fn: CmpFn, a: SExpr, b: SExpr): SExpr => ({ op: 'cmp', fn, a, b, dtype: 'bool' });

const same = (a: ValueArgs, k: number): SExpr => a.read(k, a.index);

export const VALUE_RULES: Readonly<Partial<Record<Lowering, Rule>>> = {
  unary: (a) => ({ op: 'unary', fn: a.e.prim as UnaryFn, a: same(a, 0), dtype: a.v.aval.dtype }),
  binary: (a) => ({ op: 'binary', fn: a.e.prim as BinaryFn, a: same(a, 0), b: same(a, 1), dtype: a.v.aval.dtype }),
  compare: (a) => cmp(a.e.prim as CmpFn, same(a, 0), same(a, 1)),
  select: (a) => ({ op: 'select', c: same(a, 0), a: same(a, 1), b: same(a, 2), dtype: a.v.aval.dtype }),
  cast: (a) => ({ op: 'cast', a: same(a, 0), dtype: a.v.aval.dtype }),
  view: (a) => VIEW_RULES[a.e.prim]!(a),
  gather: gatherValue,
  random: randomBitsValue,
};

const inShape = (a: ValueArgs): readonly number[] => (a.e.inputs[0] as Atom).aval.shape;
const pr = (a: ValueArgs): Record<string, any> => a.e.params as Record<string, any>;

const VIEW_RULES: Readonly<Record<string, Rule>> = {
  broadcast_in_dim: (a) => a.read(0, inShape(a).map((n, i) => (n === 1 ? idx.const(0) : a.index[pr(a).dims[i]]!))),
  reshape: (a) => a.read(0, delinearize(linearize(a.index, a.v.aval.shape), inShape(a), a.ranges)),
  transpose: (a) => {
    const perm = pr(a).perm as number[];
    const inIdx = new Array<Idx>(perm.length);
    perm.forEach((q, k) => (inIdx[q] = a.index[k]!));
    return a.read(0, inIdx);
  },
  slice: (a) => a.read(0, a.index.map((ix, d) => idx.add(idx.const(pr(a).start[d]), idx.scale(ix, pr(a).strides[d])))),
  rev: (a) => {
    const axes = pr(a).axes as number[];
    const s = inShape(a);
    return a.read(0, a.index.map((ix, d) => (axes.includes(d) ? idx.add(idx.const(s[d]! - 1), idx.scale(ix, -1)) : ix)));
  },
  iota: (a) => ({ op: 'index', index: a.index[pr(a).dim as number]!, dtype: a.v.aval.dtype }),
  pad: padValue,
  concatenate: concatValue,
};

/** in = (index - lo) / step where in range and on the step grid; the pad value elsewhere. */
function padValue(a: ValueArgs): SExpr {
  const p = pr(a);
  const s = inShape(a);
  const conds: SExpr[] = [];
  const inIdx = a.index.map((ix, d) => {
    const step = (p.interior[d] as number) + 1;
    const pos = idx.add(ix, idx.const(-p.lo[d]));
    const n = s[d]!;
    const extent = n === 0 ? 0 : (n - 1) * step + 1;
    const [lo, hi] = idxRange(pos, a.ranges);
    if (lo < 0) conds.push(cmp('ge', indexValue(pos), i32(0)));
    if (hi >= extent) conds.push(cmp('lt', indexValue(pos), i32(extent)));
    if (step === 1) return pos;
    conds.push(cmp('eq', indexValue(idx.mod(pos, step, a.ranges)), i32(0)));
    return idx.div(pos, step, a.ranges);
  });
  const inner = a.read(0, inIdx);
  if (conds.length === 0) return inner;
  return { op: 'select', c: conds.reduce(and), a: inner, b: { op: 'const', value: p.value as number, dtype: a.v.aval.dtype }, dtype: a.v.aval.dtype };
}

function concatValue(a: ValueArgs): SExpr {
  const axis = pr(a).axis as number;
  let off = 0;
  const pieces = a.e.inputs.map((x, k) => {
    const start = off;
    off += x.aval.shape[axis]!;
    return { k, start, end: off };
  });
  let expr: SExpr | undefined;
  for (let j = pieces.length - 1; j >= 0; j--) {
    const pc = pieces[j]!;
    const val = a.read(pc.k, a.index.map((ix, d) => (d === axis ? idx.add(ix, idx.const(-pc.start)) : ix)));
    expr = expr ? { op: 'select', c: cmp('lt', indexValue(a.index[axis]!), i32(pc.end)), a: val, b: expr, dtype: a.v.aval.dtype } : val;
  }
  return expr!;
}

/** An index value clamped to [0, n - 1] as i32 (gather clamps out-of-range indices). */
export function clampedIndex(i: SExpr, n: number): SExpr {
  if (i.dtype === 'u32') {
    const lim: SExpr = { op: 'const', value: n - 1, dtype: 'u32' };
    return { op: 'cast', a: { op: 'binary', fn: 'min', a: i, b: lim, dtype: 'u32' }, dtype: 'i32' };
  }
  const hi: SExpr = { op: 'binary', fn: 'min', a: i, b: i32(n - 1), dtype: 'i32' };
  return { op: 'binary', fn: 'max', a: hi, b: i32(0), dtype: 'i32' };
}

/** The parts of an output index of gather/scatter: leading x dims, index dims, trailing x dims. */
export function splitGatherIndex(index: readonly Idx[], xRank: number, idxRank: number, axis: number, batchDims: number) {
  const mid = idxRank - batchDims;
  const pre = index.slice(0, axis);
  const idxPart = index.slice(axis, axis + mid);
  const post = index.slice(axis + mid);
  if (pre.length + 1 + post.length !== xRank) throw new NexgradError('fusion: internal: gather index rank');
  return { pre, idxIndex: [...pre.slice(0, batchDims), ...idxPart], post };
}

/** gather(x, i)[pre, j, post] = x[pre, clamp(i[pre[:batchDims], j]), post]: a load at a dynamic offset. */
function gatherValue(a: ValueArgs): SExpr {
  const x = a.e.inputs[0] as Atom;
  const ix = a.e.inputs[1] as Atom;
  const { axis, batchDims } = pr(a) as { axis: number; batchDims: number };
  const xs = x.aval.shape;
  const { pre, idxIndex, post } = splitGatherIndex(a.index, xs.length, ix.aval.shape.length, axis, batchDims);
  const { buf, dtype } = a.bufferOf(0);
  const stride = sizeOf(xs.slice(axis + 1));
  const at = clampedIndex(a.read(1, idxIndex), xs[axis]!);
  const dyn: SExpr = stride === 1 ? at : { op: 'binary', fn: 'mul', a: at, b: i32(stride), dtype: 'i32' };
  return { op: 'load', buf, index: linearize([...pre, idx.const(0), ...post], xs), dyn, dtype };
}

/**
 * random_bits(key, counter) as JAX's threefry_2x32 of the flattened counter: with n elements and
 * h = ceil(n/2), element f < h is word 0 of hash(c[f], c[f + h]) and element f >= h word 1 of
 * hash(c[f - h], c[f]); the missing partner of an odd count is 0. Written with p = f mod h so
 * every read stays in range.
 */
function randomBitsValue(a: ValueArgs): SExpr {
  const shape = a.v.aval.shape;
  const n = sizeOf(shape);
  const h = (n + 1) >>> 1;
  const f = linearize(a.index, shape);
  const p = idx.mod(f, h, a.ranges);
  const counterAt = (flat: Idx): SExpr => a.read(1, delinearize(flat, shape, a.ranges));
  const x0 = counterAt(p);
  const partner = idx.add(p, idx.const(h));
  let x1 = counterAt(n % 2 === 0 ? partner : idx.mod(partner, n, a.ranges));
  if (n % 2 === 1) x1 = { op: 'select', c: cmp('lt', indexValue(partner), i32(n)), a: x1, b: { op: 'const', value: 0, dtype: 'u32' }, dtype: 'u32' };
  const k0 = a.read(0, [idx.const(0)]);
  const k1 = a.read(0, [idx.const(1)]);
  const word = (w: 0 | 1): SExpr => ({ op: 'threefry', k0, k1, x0, x1, word: w, dtype: 'u32' });
  if (h === n) return word(0);
  return { op: 'select', c: cmp('lt', indexValue(f), i32(h)), a: word(0), b: word(1), dtype: 'u32' };
}
