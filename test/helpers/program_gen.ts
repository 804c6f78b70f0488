/**
 * A fast-check generator of random Programs for compiler tests.
 *
 * A Recipe (plain JSON: input shapes, a list of steps, output picks, a data seed) is built into
 * a Program by calling the ops API inside `trace`. Each step picks an operation kind and draws
 * its operands (from a pool of values made so far) and its parameters from a list of integers,
 * adapting them to the operands' shapes, so every recipe builds a valid program and shrinking
 * keeps programs valid. The builder keeps every value finite and numerically tame:
 *   - a static bound on |value| per pool entry; an operand above an op's limit is scaled down
 *     first (a multiplication by a constant), and transcendentals get small arguments;
 *   - inputs of discontinuous operations (comparisons, floor/ceil/round/sign, rem, casts to
 *     integers) are always "exact" values: produced from the inputs by data movement alone, so
 *     f32 and the float64 reference compute the very same values there;
 *   - `red` tracks the accumulated reduction length behind each value (for the tolerance).
 */
import fc from 'fast-check';
import { region, trace } from '../../src/ir/functional.js';
import * as ops from '../../src/ir/ops.js';
import type { Program } from '../../src/ir/program.js';
import { broadcastShapes, sizeOf } from '../../src/ir/shape.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { bind1, currentTrace } from '../../src/ir/trace.js';
import { gelu, layerNorm } from '../../src/nn/layers.js';
import * as random from '../../src/ir/random.js';
import { mulberry32 } from './rng.js';
export { mulberry32 };

export interface Step {
  readonly kind: number;
  readonly a: number;
  readonly b: number;
  readonly p: readonly number[];
}

export interface Recipe {
  readonly inputs: readonly (readonly number[])[];
  readonly steps: readonly Step[];
  readonly outputs: readonly number[];
  readonly seed: number;
}

/**
 * The operation kinds a step can apply (its `kind` modulo this list's length). Append only:
 * stored regression recipes keep their meaning as long as existing kinds keep theirs.
 */
export const KINDS = [
  'unary',
  'binary',
  'broadcast',
  'reduce',
  'reshape',
  'transpose',
  'slice',
  'pad',
  'concat',
  'flip',
  'matmul',
  'conv',
  'where',
  'cast',
  'iota',
  'region',
  'scalar',
  'discrete',
  'big',
  'identity',
  'gather',
  'scatter',
  'argmax',
  'argsort',
  'random',
  'patchify',
] as const;
export type Kind = (typeof KINDS)[number];

/** The first 19 kinds: the arbitrary older regression seeds and paths replay through. */
export const KINDS_V1 = 19;

const stepArbOf = (kinds: number): fc.Arbitrary<Step> =>
  fc.record({
    kind: fc.nat({ max: kinds - 1 }),
    a: fc.nat({ max: 1000 }),
    b: fc.nat({ max: 1000 }),
    p: fc.array(fc.nat({ max: 100_000 }), { minLength: 8, maxLength: 8 }),
  });

/** Recipes over the first `kinds` step kinds (a seed and path replay only through the arbitrary that found them). */
export const recipeArbOf = (kinds: number = KINDS.length): fc.Arbitrary<Recipe> =>
  fc.record({
    inputs: fc.array(fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 4 }), { minLength: 1, maxLength: 3 }),
    steps: fc.array(stepArbOf(kinds), { minLength: 1, maxLength: 14 }),
    outputs: fc.array(fc.nat({ max: 1000 }), { minLength: 1, maxLength: 3 }),
    seed: fc.nat(),
  });

export const recipeArb: fc.Arbitrary<Recipe> = recipeArbOf();

/** A value in the builder's pool. */
export interface Val {
  readonly t: Tensor;
  /** An upper bound on |element|. */
  readonly bound: number;
  /** Computed from the inputs by data movement only (bit-identical in f32 and f64). */
  readonly exact: boolean;
  /** Product of the reduction lengths behind this value (>= 1). */
  readonly red: number;
}

/** Most elements a value may have (keeps the float64 interpreter fast). */
const MAX_SIZE = 2048;
/** Most elements of a 'big' anchor's result (large enough to cross the CPU GEMM's blocking). */
const MAX_BIG = 1 << 16;
/** Most primitive applications per program. */
export const MAX_EQNS = 30;


/** The concrete f32 inputs of a recipe: uniform in [-2, 2]. */
export function recipeInputs(r: Recipe): Tensor[] {
  const rng = mulberry32(r.seed);
  return r.inputs.map((shape) => {
    const n = sizeOf(shape);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rng() * 4 - 2;
    return ops.fromHost('f32', [...shape], data);
  });
}

class Params {
  private k = 0;
  constructor(private readonly p: readonly number[]) {}
  /** An integer in [0, n). */
  int(n: number): number {
    if (n <= 1) return 0;
    const len = this.p.length;
    const v = this.p[this.k % len]! + Math.floor(this.k / len) * 7919;
    this.k++;
    return v % n;
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  bool(): boolean {
    return this.int(2) === 1;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** Random dims with product n (each factor taken from n's divisors), at most `rank` of them. */
function factorize(n: number, maxRank: number, P: Params): number[] {
  const dims: number[] = [];
  let rest = n;
  while (dims.length < maxRank - 1 && rest > 1 && P.int(3) > 0) {
    const divs: number[] = [];
    for (let d = 1; d <= rest; d++) if (rest % d === 0 && d <= 8) divs.push(d);
    const d = P.pick(divs);
    dims.push(d);
    rest /= d;
  }
  dims.push(rest);
  // sometimes add a unit axis
  if (dims.length < maxRank && P.int(4) === 0) dims.splice(P.int(dims.length + 1), 0, 1);
  return dims;
}

const eqnCount = (): number => currentTrace()?.eqns.length ?? 0;

/** The statistics a build reports (for coverage assertions and tolerances). */
export interface BuildInfo {
  /** Per output: the accumulated reduction length behind it. */
  red: number[];
  /** Step kinds applied. */
  kinds: Kind[];
  /** Equations in the program after each step. */
  counts: number[];
}

const newInfo = (): BuildInfo => ({ red: [], kinds: [], counts: [] });

/**
 * Builds the recipe's program body on the given (traced) inputs: returns the outputs and fills
 * `info`. Deterministic in the recipe, and each step's result depends only on earlier steps.
 */
export function buildBody(r: Recipe, xs: readonly Tensor[], info: BuildInfo): Tensor[] {
  const pool: Val[] = xs.map((t) => ({ t, bound: 2, exact: true, red: 1 }));
  const nInputs = xs.length;

  for (const step of r.steps) {
    const P = new Params([step.a, step.b, ...step.p]);
    const kind = KINDS[step.kind % KINDS.length]!;
    const before = eqnCount();
    const v = applyStep(kind, step, pool, P);
    if (v && eqnCount() > before && sizeOf(v.t.shape) <= (kind === 'big' ? MAX_BIG : MAX_SIZE)) {
      pool.push(v);
      info.kinds.push(kind);
    }
    info.counts.push(eqnCount());
  }
  if (pool.length === nInputs) pool.push({ ...pool[0]!, t: ops.neg(pool[0]!.t) }); // at least one primitive
  // outputs: picks from the pool, preferring computed values (an input may be returned as is)
  const computed = pool.length - nInputs;
  const outs = r.outputs.map((o, i) => {
    if (i > 0 && o % 7 === 0) return pool[o % pool.length]!;
    return pool[nInputs + (i === 0 ? computed - 1 : o % computed)]!;
  });
  info.red.push(...outs.map((v) => v.red));
  return outs.map((v) => v.t);
}

/**
 * The Program of a recipe (traced on its f32 inputs) and what the build reports. Steps past
 * the budget of MAX_EQNS equations are dropped, so every program has 1 to MAX_EQNS of them.
 */
export function buildProgram(r: Recipe): { program: Program; inputs: Tensor[]; info: BuildInfo; recipe: Recipe } {
  const inputs = recipeInputs(r);
  let info = newInfo();
  let program = trace((...xs: Tensor[]) => buildBody(r, xs, info), ...inputs);
  if (program.eqns.length > MAX_EQNS) {
    let keep = 0;
    while (keep < info.counts.length && info.counts[keep]! <= MAX_EQNS - 1) keep++;
    r = { ...r, steps: r.steps.slice(0, keep) };
    info = newInfo();
    program = trace((...xs: Tensor[]) => buildBody(r, xs, info), ...inputs);
  }
  return { program, inputs, info, recipe: r };
}

// ---------------------------------------------------------------------------------------
// steps

function tame(v: Val, limit: number): Val {
  if (v.bound <= limit) return v;
  const s = Math.fround(limit / v.bound);
  return { t: ops.mul(v.t, s), bound: limit, exact: false, red: v.red };
}

function pickVal(pool: readonly Val[], i: number): Val {
  return pool[i % pool.length]!;
}

function pickExact(pool: readonly Val[], i: number): Val {
  const ex = pool.filter((v) => v.exact);
  return ex[i % ex.length]!;
}

/**
 * A tensor of exactly `shape` made from v by data movement (reshape, slice, pad, broadcast),
 * so it stays exact when v is.
 */
function fitExact(v: Val, shape: readonly number[], P: Params): Val {
  let t = v.t;
  if (t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return v;
  const n = sizeOf(shape);
  if (t.size === 1) return { ...v, t: ops.broadcastTo(ops.reshape(t, shape.map(() => 1)), shape) };
  if (t.ndim !== 1) t = ops.reshape(t, [t.size]);
  if (t.size >= 2 * n && P.bool()) t = ops.slice(t, [0], [2 * n - 1], [2]);
  else if (t.size > n) {
    const start = P.int(t.size - n + 1);
    t = ops.slice(t, [start], [start + n]);
  } else if (t.size < n) t = ops.pad(t, [[0, n - t.size]], 0.5);
  return { ...v, t: ops.reshape(t, shape) };
}

/** A broadcast-compatible variant of `shape` (some axes 1, maybe fewer leading axes). */
function broadcastable(shape: readonly number[], P: Params): number[] {
  const drop = shape.length > 0 && P.int(3) === 0 ? P.int(shape.length + 1) : 0;
  return shape.slice(drop).map((d) => (P.int(3) === 0 ? 1 : d));
}

function fitBroadcast(v: Val, target: readonly number[], P: Params): Val {
  if (broadcastShapes(v.t.shape, target)?.join() === target.join() && P.int(3) > 0) return v;
  return fitExact(v, broadcastable(target, P), P);
}

const UNARY = ['neg', 'abs', 'exp', 'expm1', 'log', 'log1p', 'sqrt', 'rsqrt', 'sin', 'cos', 'tanh', 'sigmoid', 'erf', 'reciprocal', 'square'] as const;

function applyUnary(v0: Val, P: Params): Val {
  const fn = P.pick(UNARY);
  const posAbs = (v: Val): Tensor => ops.add(ops.abs(v.t), 0.5);
  switch (fn) {
    case 'neg':
      return { ...v0, t: ops.neg(v0.t) };
    case 'abs':
      return { ...v0, t: ops.abs(v0.t) };
    case 'exp':
    case 'expm1': {
      const v = tame(v0, 4);
      return { t: fn === 'exp' ? ops.exp(v.t) : ops.expm1(v.t), bound: Math.exp(v.bound), exact: false, red: v.red };
    }
    case 'log':
      return { t: ops.log(posAbs(v0)), bound: Math.max(0.7, Math.log(v0.bound + 0.5)), exact: false, red: v0.red };
    case 'log1p':
      return { t: ops.log1p(ops.abs(v0.t)), bound: Math.log1p(v0.bound), exact: false, red: v0.red };
    case 'sqrt':
      return { t: ops.sqrt(posAbs(v0)), bound: Math.sqrt(v0.bound + 0.5), exact: false, red: v0.red };
    case 'rsqrt':
      return { t: ops.rsqrt(posAbs(v0)), bound: 1.5, exact: false, red: v0.red };
    case 'reciprocal':
      return { t: ops.reciprocal(posAbs(v0)), bound: 2, exact: false, red: v0.red };
    case 'sin':
    case 'cos': {
      const v = tame(v0, 4);
      return { t: fn === 'sin' ? ops.sin(v.t) : ops.cos(v.t), bound: 1, exact: false, red: v.red };
    }
    case 'tanh':
      return { t: ops.tanh(v0.t), bound: 1, exact: false, red: v0.red };
    case 'sigmoid':
      return { t: ops.sigmoid(v0.t), bound: 1, exact: false, red: v0.red };
    case 'erf':
      return { t: ops.erf(v0.t), bound: 1, exact: false, red: v0.red };
    case 'square': {
      const v = tame(v0, 30);
      return { t: ops.square(v.t), bound: v.bound * v.bound, exact: false, red: v.red };
    }
  }
}

function applyBinary(a0: Val, b0: Val, P: Params): Val | undefined {
  const fn = P.pick(['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow'] as const);
  let a = tame(a0, 100);
  let b = fitBroadcast(tame(b0, 100), a.t.shape, P);
  const shape = broadcastShapes(a.t.shape, b.t.shape)!;
  if (sizeOf(shape) > MAX_SIZE) return undefined;
  if (P.bool()) [a, b] = [b, a]; // broadcasting on either side
  const red = Math.max(a.red, b.red);
  switch (fn) {
    case 'add':
      return { t: ops.add(a.t, b.t), bound: a.bound + b.bound, exact: false, red };
    case 'sub':
      return { t: ops.sub(a.t, b.t), bound: a.bound + b.bound, exact: false, red };
    case 'mul': {
      const x = tame(a, 30);
      const y = tame(b, 30);
      return { t: ops.mul(x.t, y.t), bound: x.bound * y.bound, exact: false, red };
    }
    case 'div':
      return { t: ops.div(a.t, ops.add(ops.abs(b.t), 0.5)), bound: 2 * a.bound, exact: false, red };
    case 'maximum':
      return { t: ops.maximum(a.t, b.t), bound: Math.max(a.bound, b.bound), exact: a.exact && b.exact, red };
    case 'minimum':
      return { t: ops.minimum(a.t, b.t), bound: Math.max(a.bound, b.bound), exact: a.exact && b.exact, red };
    case 'pow': {
      const e = tame(b, 2);
      const base = Math.min(a.bound, 30) + 0.5;
      return { t: ops.pow(ops.add(ops.abs(tame(a, 30).t), 0.5), e.t), bound: Math.max(base ** 2, 4), exact: false, red };
    }
  }
}

function applyBroadcast(v: Val, P: Params): Val | undefined {
  const s = v.t.shape;
  if (P.bool() && s.length < 4) {
    // broadcast_in_dim with the operand's axes placed anywhere (not only trailing)
    const rank = P.range(s.length, 4);
    const dims: number[] = [];
    let next = 0;
    for (let i = 0; i < s.length; i++) {
      const d = P.range(next, rank - (s.length - i));
      dims.push(d);
      next = d + 1;
    }
    const shape = Array.from({ length: rank }, () => P.range(1, 4));
    dims.forEach((d, i) => (shape[d] = s[i] === 1 ? shape[d]! : s[i]!));
    if (sizeOf(shape) > MAX_SIZE) return undefined;
    return { ...v, t: bind1('broadcast_in_dim', [v.t], { shape, dims }) };
  }
  // numpy style: new leading axes and size-1 axes expanded
  const lead = Array.from({ length: P.int(Math.max(1, 5 - s.length)) }, () => P.range(1, 4));
  const shape = [...lead, ...s.map((d) => (d === 1 ? P.range(1, 4) : d))];
  if (shape.length > 4 || sizeOf(shape) > MAX_SIZE || shape.join() === s.join()) return undefined;
  return { ...v, t: ops.broadcastTo(v.t, shape) };
}

function applyReduce(v: Val, P: Params): Val | undefined {
  const s = v.t.shape;
  if (s.length === 0) return undefined;
  const axes = s.map((_, i) => i).filter(() => P.bool());
  if (axes.length === 0) axes.push(P.int(s.length));
  const n = axes.reduce((a, i) => a * s[i]!, 1);
  const keep = P.bool();
  const op = P.pick(['sum', 'max', 'min', 'mean'] as const);
  switch (op) {
    case 'sum':
      return { t: ops.sum(v.t, axes, keep), bound: v.bound * n, exact: false, red: v.red * n };
    case 'mean':
      return { t: ops.mean(v.t, axes, keep), bound: v.bound, exact: false, red: v.red * n };
    case 'max':
      return { ...v, t: ops.max(v.t, axes, keep) };
    case 'min':
      return { ...v, t: ops.min(v.t, axes, keep) };
  }
}

function applyTranspose(v: Val, P: Params): Val | undefined {
  const r = v.t.ndim;
  if (r < 2) return undefined;
  const perm = Array.from({ length: r }, (_, i) => i);
  for (let i = r - 1; i > 0; i--) {
    const j = P.int(i + 1);
    [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  }
  if (perm.every((p, i) => p === i)) [perm[0], perm[1]] = [perm[1]!, perm[0]!];
  return { ...v, t: ops.transpose(v.t, perm) };
}

function applySlice(v: Val, P: Params): Val | undefined {
  const s = v.t.shape;
  if (s.length === 0) return undefined;
  const start = s.map((d) => P.int(d));
  const limit = s.map((d, i) => P.range(start[i]! + 1, d));
  const strides = s.map(() => P.pick([1, 1, 2, 3]));
  if (s.every((d, i) => start[i] === 0 && limit[i] === d && strides[i] === 1)) return undefined;
  return { ...v, t: ops.slice(v.t, start, limit, strides) };
}

function applyPad(v: Val, P: Params): Val | undefined {
  const s = v.t.shape;
  if (s.length === 0) return undefined;
  const interior = s.map(() => P.pick([0, 0, 1, 2]));
  const lo: number[] = [];
  const hi: number[] = [];
  s.forEach((n, i) => {
    const ext = n + Math.max(0, n - 1) * interior[i]!;
    let l = P.range(-2, 2);
    let h = P.range(-2, 2);
    // keep at least one element
    while (l + h + ext < 1) {
      if (l < 0) l++;
      else h++;
    }
    lo.push(l);
    hi.push(h);
  });
  const value = P.pick([0, 1.5, -0.75]);
  const out = s.map((n, i) => lo[i]! + hi[i]! + n + Math.max(0, n - 1) * interior[i]!);
  if (sizeOf(out) > MAX_SIZE) return undefined;
  return { ...v, t: bind1('pad', [v.t], { lo, hi, interior, value }), bound: Math.max(v.bound, 1.5) };
}

function applyConcat(a: Val, pool: readonly Val[], step: Step, P: Params): Val | undefined {
  const s = a.t.shape;
  if (s.length === 0) return undefined;
  const axis = P.int(s.length);
  const parts = [a];
  const n = P.range(1, 2);
  for (let k = 0; k < n; k++) {
    const shape = [...s];
    shape[axis] = P.range(1, 3);
    parts.push(fitExact(tame(pickVal(pool, step.b + k), 100), shape, P));
  }
  const total = sizeOf(s) / s[axis]! * parts.reduce((x, p) => x + p.t.shape[axis]!, 0);
  if (total > MAX_SIZE) return undefined;
  return {
    t: ops.concat(parts.map((p) => p.t), axis),
    bound: Math.max(...parts.map((p) => p.bound)),
    exact: parts.every((p) => p.exact),
    red: Math.max(...parts.map((p) => p.red)),
  };
}

function applyFlip(v: Val, P: Params): Val | undefined {
  const s = v.t.shape;
  if (s.length === 0) return undefined;
  const axes = s.map((_, i) => i).filter(() => P.bool());
  if (axes.length === 0) axes.push(P.int(s.length));
  return { ...v, t: ops.flip(v.t, axes) };
}

function applyMatmul(a0: Val, b0: Val, P: Params): Val | undefined {
  const a1 = tame(a0, 10);
  const b1 = tame(b0, 10);
  const mode = P.pick(['plain', 'batched', 'transB', 'transA', 'vector', 'general'] as const);
  const s = a1.t.shape;
  const m = s.length >= 2 ? s[s.length - 2]! : P.range(1, 6);
  const k = s.length >= 1 ? s[s.length - 1]! : P.range(1, 6);
  const n = P.range(1, 6);
  const batch = s.length >= 3 ? s.slice(0, -2) : [];
  const bound = (K: number): number => a1.bound * b1.bound * K;
  const red = (K: number): number => Math.max(a1.red, b1.red) * K;
  switch (mode) {
    case 'plain': {
      const a = fitExact(a1, [...batch, m, k], P);
      const b = fitExact(b1, [k, n], P);
      return { t: ops.matmul(a.t, b.t), bound: bound(k), exact: false, red: red(k) };
    }
    case 'batched': {
      const bt = batch.length ? batch : [P.range(1, 3)];
      const a = fitExact(a1, [...bt, m, k], P);
      // the other operand's batch axes may broadcast
      const b = fitExact(b1, [...bt.map((d) => (P.int(3) === 0 ? 1 : d)), k, n], P);
      if (sizeOf([...bt, m, n]) > MAX_SIZE) return undefined;
      return { t: ops.matmul(a.t, b.t), bound: bound(k), exact: false, red: red(k) };
    }
    case 'transB': {
      // b given as (n, k): the matmul reads its transpose in place
      const a = fitExact(a1, [...batch, m, k], P);
      const bT = fitExact(b1, [n, k], P);
      return { t: ops.matmul(a.t, ops.transpose(bT.t, [1, 0])), bound: bound(k), exact: false, red: red(k) };
    }
    case 'transA': {
      const aT = fitExact(a1, [k, m], P);
      const b = fitExact(b1, [k, n], P);
      const both = P.bool();
      const bb = both ? ops.transpose(fitExact(b1, [n, k], P).t, [1, 0]) : b.t;
      return { t: ops.matmul(ops.transpose(aT.t, [1, 0]), bb), bound: bound(k), exact: false, red: red(k) };
    }
    case 'vector': {
      const a = fitExact(a1, [k], P);
      const b = fitExact(b1, P.bool() ? [k, n] : [k], P);
      return { t: ops.matmul(a.t, b.t), bound: bound(k), exact: false, red: red(k) };
    }
    case 'general': {
      // dot_general over 3-D operands: contract lhs axis i with rhs axis j, batch over one pair
      const ls = [P.range(1, 4), P.range(1, 4), P.range(1, 4)];
      const ci = P.int(3);
      let bi = P.int(3);
      if (bi === ci) bi = (bi + 1) % 3;
      const cj = P.int(3);
      let bj = P.int(3);
      if (bj === cj) bj = (bj + 1) % 3;
      const rs = [P.range(1, 4), P.range(1, 4), P.range(1, 4)];
      rs[cj] = ls[ci]!;
      rs[bj] = ls[bi]!;
      const useBatch = P.bool();
      const a = fitExact(a1, ls, P);
      const b = fitExact(b1, rs, P);
      const K = ls[ci]!;
      const t = ops.dotGeneral(a.t, b.t, [[ci], [cj]], useBatch ? [[bi], [bj]] : [[], []]);
      if (sizeOf(t.shape) > MAX_SIZE || t.ndim > 4) return undefined;
      return { t, bound: bound(K), exact: false, red: red(K) };
    }
  }
}

function applyConv(a0: Val, b0: Val, P: Params): Val | undefined {
  const x0 = tame(a0, 10);
  const w0 = tame(b0, 10);
  const groups = P.pick([1, 1, 2, 3, 0]); // 0: depthwise
  const cPer = P.range(1, 3);
  const g = groups === 0 ? P.range(1, 4) : groups;
  const C = g * (groups === 0 ? 1 : cPer);
  const O = groups === 0 ? C * P.range(1, 2) : g * P.range(1, 3);
  const N = P.range(1, 2);
  const kh = P.range(1, 3);
  const kw = P.range(1, 3);
  const dil = [P.pick([1, 1, 2]), P.pick([1, 1, 2])];
  const lhsDil = P.int(6) === 0 ? [P.range(1, 2), P.range(1, 2)] : [1, 1];
  const strides = [P.pick([1, 1, 2, 3]), P.pick([1, 1, 2])];
  const pad: [number, number][] = [
    [P.range(0, 2), P.range(0, 2)],
    [P.range(0, 2), P.range(0, 2)],
  ];
  const need = (k: number, d: number) => (k - 1) * d + 1;
  const dilated = (n: number, d: number) => (n - 1) * d + 1;
  // spatial sizes big enough for one output position
  let H = P.range(1, 6);
  let W = P.range(1, 6);
  while (dilated(H, lhsDil[0]!) + pad[0]![0] + pad[0]![1] < need(kh, dil[0]!)) H++;
  while (dilated(W, lhsDil[1]!) + pad[1]![0] + pad[1]![1] < need(kw, dil[1]!)) W++;
  const layout = P.pick(['NCHW', 'NHWC'] as const);
  const klayout = P.pick(['OIHW', 'HWIO'] as const);
  const x = fitExact(x0, layout === 'NCHW' ? [N, C, H, W] : [N, H, W, C], P);
  const wShape = klayout === 'OIHW' ? [O, C / g, kh, kw] : [kh, kw, C / g, O];
  const w = fitExact(w0, wShape, P);
  const t = ops.conv2d(x.t, w.t, { strides, padding: pad, dilation: dil, lhsDilation: lhsDil, groups: g, layout, kernelLayout: klayout });
  if (sizeOf(t.shape) > MAX_SIZE) return undefined;
  const K = (C / g) * kh * kw;
  return { t, bound: x0.bound * w0.bound * K, exact: false, red: Math.max(x0.red, w0.red) * K };
}

function applyWhere(a: Val, pool: readonly Val[], step: Step, P: Params): Val | undefined {
  const target = a.t.shape;
  const c1 = fitBroadcast(pickExact(pool, step.b), target, P);
  const c2 = fitBroadcast(pickExact(pool, step.b + 1 + P.int(5)), target, P);
  const cmp = P.pick([ops.less, ops.greater, ops.lessEqual, ops.greaterEqual, ops.equal, ops.notEqual]);
  const cond = cmp(c1.t, c2.t);
  const other = fitBroadcast(tame(pickVal(pool, step.b + 2), 100), target, P);
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.t.shape)!, other.t.shape)!;
  if (sizeOf(shape) > MAX_SIZE) return undefined;
  const sw = P.bool();
  return {
    t: ops.where(cond, sw ? a.t : other.t, sw ? other.t : a.t),
    bound: Math.max(a.bound, other.bound),
    exact: a.exact && other.exact,
    red: Math.max(a.red, other.red),
  };
}

function applyCast(v: Val, pool: readonly Val[], step: Step, P: Params): Val {
  const mode = P.int(4);
  if (mode === 0 || !v.exact) {
    if (mode === 0 || P.bool()) {
      // f32 -> f64 -> f32: the value is unchanged
      return { ...v, t: ops.cast(ops.cast(v.t, 'f64'), 'f32') };
    }
    v = pickExact(pool, step.b);
  }
  if (mode === 1) {
    // to i32 (truncation), integer arithmetic, back to f32
    let i = ops.cast(v.t, 'i32');
    if (P.bool()) i = ops.add(i, ops.iota(i.shape.length ? [...i.shape] : [1], 0, 'i32').reshape([...i.shape]));
    return { t: ops.cast(i, 'f32'), bound: v.bound + 8, exact: true, red: 1 };
  }
  if (mode === 2) return { t: ops.cast(ops.cast(v.t, 'bool'), 'f32'), bound: 1, exact: true, red: 1 };
  return { t: ops.cast(ops.greater(v.t, 0), 'f32'), bound: 1, exact: true, red: 1 };
}

function applyIota(v: Val, P: Params): Val | undefined {
  const shape = v.t.ndim > 0 && P.bool() ? [...v.t.shape] : Array.from({ length: P.range(1, 3) }, () => P.range(1, 5));
  const dim = P.int(shape.length);
  const it = P.bool() ? ops.iota(shape, dim, 'f32') : ops.cast(ops.iota(shape, dim, 'i32'), 'f32');
  const io: Val = { t: it, bound: shape[dim]!, exact: true, red: 1 };
  if (!P.bool()) return io;
  if (broadcastShapes(io.t.shape, v.t.shape)?.join() !== v.t.shape.join()) return io;
  return { t: ops.add(v.t, io.t), bound: v.bound + io.bound, exact: false, red: v.red };
}

function applyRegion(v0: Val, pool: readonly Val[], step: Step, P: Params): Val | undefined {
  const v = tame(v0, 30);
  const which = P.int(3);
  if (which === 0) return { t: gelu(v.t, { approximate: P.bool() ? 'none' : 'tanh' }), bound: v.bound, exact: false, red: v.red };
  const s = v.t.shape;
  if (s.length === 0) return undefined;
  const c = s[s.length - 1]!;
  if (which === 1) {
    const w = fitExact(tame(pickVal(pool, step.b), 4), [c], P);
    const b = fitExact(tame(pickVal(pool, step.b + 1), 4), [c], P);
    // eps 0.5 keeps the normalisation well conditioned (rows of near-equal values)
    return { t: layerNorm({ weight: w.t, bias: b.t }, v.t, { eps: 0.5 }), bound: w.bound * 3 * v.bound + b.bound, exact: false, red: v.red * c };
  }
  // a softmax over the last axis, as a named region
  const softmax = region('softmax', (x: Tensor) => {
    const m = ops.max(x, -1, true);
    const e = ops.exp(ops.sub(x, m));
    return ops.div(e, ops.sum(e, -1, true));
  });
  return { t: softmax(tame(v, 10).t), bound: 1, exact: false, red: v.red * c };
}

function applyScalar(v0: Val, P: Params): Val {
  const v = tame(v0, 100);
  const c = P.pick([2.5, -1.25, 0.75, 3]);
  switch (P.int(4)) {
    case 0:
      return { t: ops.add(v.t, c), bound: v.bound + 3, exact: false, red: v.red };
    case 1:
      return { t: ops.mul(v.t, c), bound: v.bound * 3, exact: false, red: v.red };
    case 2:
      return { t: ops.sub(c, v.t), bound: v.bound + 3, exact: false, red: v.red };
    default: {
      // a rank-0 value broadcast against another
      const s = ops.sum(v.t);
      return { t: ops.add(ops.mul(s, 0.125), v.t), bound: v.bound * (sizeOf(v.t.shape) / 8 + 1), exact: false, red: v.red * sizeOf(v.t.shape) };
    }
  }
}

function applyDiscrete(pool: readonly Val[], step: Step, P: Params): Val {
  const v = pickExact(pool, step.a);
  const fn = P.pick(['floor', 'ceil', 'round', 'sign', 'rem'] as const);
  switch (fn) {
    case 'floor':
      return { ...v, t: ops.floor(v.t), bound: v.bound + 1 };
    case 'ceil':
      return { ...v, t: ops.ceil(v.t), bound: v.bound + 1 };
    case 'round':
      return { ...v, t: ops.round(v.t), bound: v.bound + 1 };
    case 'sign':
      return { ...v, t: ops.sign(v.t), bound: 1 };
    case 'rem': {
      // rem of exact values is exact (fmod is exact); the divisor is kept away from zero
      const d = fitBroadcast(pickExact(pool, step.b), v.t.shape, P);
      const den = ops.maximum(ops.abs(d.t), 0.5);
      const shape = broadcastShapes(v.t.shape, den.shape)!;
      return { t: ops.rem(ops.broadcastTo(v.t, shape), den), bound: Math.max(v.bound, d.bound), exact: true, red: 1 };
    }
  }
}

/**
 * Large anchors: matmuls with one dimension past the CPU GEMM's blocking (k > 384, n > 512 or
 * m > 64 rows), and the convolution paths of the CPU backend: depthwise 7x7, im2col GEMM (1x1
 * and patchify, no padding) and the batch-grouped weight-gradient form autodiff produces.
 */
function applyBig(a0: Val, b0: Val, P: Params): Val | undefined {
  const a1 = tame(a0, 4);
  const b1 = tame(b0, 4);
  const mode = P.pick(['bigK', 'bigN', 'bigM', 'depthwise', 'patchify', 'wgrad'] as const);
  const red = (K: number): number => Math.max(a1.red, b1.red) * K;
  const mm = (B: number, m: number, k: number, n: number, transB: boolean): Val => {
    const a = fitExact(a1, B > 1 ? [B, m, k] : [m, k], P);
    const b = transB ? ops.transpose(fitExact(b1, [n, k], P).t, [1, 0]) : fitExact(b1, [k, n], P).t;
    return { t: ops.matmul(a.t, b), bound: a1.bound * b1.bound * k, exact: false, red: red(k) };
  };
  switch (mode) {
    case 'bigK':
      return mm(P.range(1, 2), P.range(1, 24), P.range(385, 700), P.range(1, 40), P.bool());
    case 'bigN':
      return mm(1, P.range(1, 12), P.range(1, 24), P.range(513, 700), P.bool());
    case 'bigM':
      return mm(P.range(1, 3), P.range(65, 160), P.range(1, 32), P.range(1, 40), P.bool());
    case 'depthwise': {
      const C = P.range(4, 24);
      const k = P.pick([3, 7]);
      const x = fitExact(a1, [P.range(1, 2), P.range(4, 12), P.range(4, 12), C], P);
      const w = fitExact(b1, [C, 1, k, k], P);
      const pad = (k - 1) / 2;
      const t = ops.conv2d(x.t, w.t, { padding: pad, groups: C, layout: 'NHWC' });
      return { t, bound: a1.bound * b1.bound * k * k, exact: false, red: red(k * k) };
    }
    case 'patchify': {
      const k = P.pick([1, 2, 4]);
      const C = P.range(1, 16);
      const O = P.range(1, 32);
      const x = fitExact(a1, [P.range(1, 2), k * P.range(1, 4), k * P.range(1, 4), C], P);
      const w = fitExact(b1, [O, C, k, k], P);
      const t = ops.conv2d(x.t, w.t, { strides: k, layout: 'NHWC' });
      return { t, bound: a1.bound * b1.bound * C * k * k, exact: false, red: red(C * k * k) };
    }
    case 'wgrad': {
      // the kernel gradient of a depthwise k x k conv of x (n,H,W,C) with output cotangent ct
      const C = P.range(2, 16);
      const k = P.pick([3, 7]);
      const shape = [P.range(1, 2), P.range(3, 8), P.range(3, 8), C];
      const x = fitExact(a1, shape, P);
      const ct = fitExact(b1, shape, P);
      const pad = (k - 1) / 2;
      const t = bind1('conv_general', [x.t, ct.t], {
        windowStrides: [1, 1],
        padding: [[pad, pad], [pad, pad]],
        lhsDilation: [1, 1],
        rhsDilation: [1, 1],
        featureGroupCount: 1,
        batchGroupCount: C,
        dims: { lhs: [3, 0, 1, 2], rhs: [3, 0, 1, 2], out: [1, 0, 2, 3] },
      });
      const K = shape[0]! * shape[1]! * shape[2]!;
      return { t, bound: a1.bound * b1.bound * K, exact: false, red: red(K) };
    }
  }
}

function applyStep(kind: Kind, step: Step, pool: Val[], P: Params): Val | undefined {
  const a = pickVal(pool, step.a);
  const b = pickVal(pool, step.b);
  switch (kind) {
    case 'unary':
      return applyUnary(a, P);
    case 'binary':
      return applyBinary(a, b, P);
    case 'broadcast':
      return applyBroadcast(a, P);
    case 'reduce':
      return applyReduce(a, P);
    case 'reshape': {
      if (a.t.size > 1 && a.t.ndim <= 4) return { ...a, t: ops.reshape(a.t, factorize(a.t.size, 4, P)) };
      return a.t.size === 1 ? { ...a, t: ops.reshape(a.t, P.bool() ? [] : [1, 1]) } : undefined;
    }
    case 'transpose':
      return applyTranspose(a, P);
    case 'slice':
      return applySlice(a, P);
    case 'pad':
      return applyPad(a, P);
    case 'concat':
      return applyConcat(a, pool, step, P);
    case 'flip':
      return applyFlip(a, P);
    case 'matmul':
      return applyMatmul(a, b, P);
    case 'conv':
      return applyConv(a, b, P);
    case 'where':
      return applyWhere(a, pool, step, P);
    case 'cast':
      return applyCast(a, pool, step, P);
    case 'iota':
      return applyIota(a, P);
    case 'region':
      return applyRegion(a, pool, step, P);
    case 'scalar':
      return applyScalar(a, P);
    case 'discrete':
      return applyDiscrete(pool, step, P);
    case 'big':
      return applyBig(a, b, P);
    case 'identity':
      return applyIdentity(a, P);
    case 'gather':
      return applyGather(a, P);
    case 'scatter':
      return applyScatter(a, b, P);
    case 'argmax':
    case 'argsort':
      return applyArg(kind, pickExact(pool, step.a), P);
    case 'random':
      return applyRandom(a, P);
    case 'patchify':
      return applyPatchify(a, b, P);
  }
}

/**
 * Algebraic identities with a literal operand that simplify folds (0 - x is -x, not x; x - 0,
 * x + 0, 0 + x, 1 * x, x * 1, x / 1 are x): exact values stay exact.
 */
function applyIdentity(v: Val, P: Params): Val {
  const forms: ((x: Tensor) => Tensor)[] = [
    (x) => ops.sub(0, x),
    (x) => ops.sub(x, 0),
    (x) => ops.add(x, 0),
    (x) => ops.add(0, x),
    (x) => ops.mul(1, x),
    (x) => ops.mul(x, 1),
    (x) => ops.div(x, 1),
    (x) => ops.sub(0, ops.sub(0, x)),
  ];
  return { ...v, t: P.pick(forms)(v.t) };
}

/** Integer data in [lo, hi] drawn from the step's parameters, as a constant of the program. */
function intConst(P: Params, n: number, lo: number, hi: number, shape: readonly number[]): Tensor {
  return ops.tensor(Int32Array.from({ length: n }, () => P.range(lo, hi)), { dtype: 'i32', shape });
}

/** take(x, indices, axis) with out-of-range indices (clamped). */
function applyGather(v: Val, P: Params): Val | undefined {
  if (v.t.ndim === 0) return undefined;
  const axis = P.int(v.t.ndim);
  const n = v.t.shape[axis]!;
  const m = P.range(1, 5);
  return { ...v, t: ops.take(v.t, intConst(P, m, -1, n, [m]), axis) };
}

/** scatterAdd(x, indices, updates, axis) with repeated and out-of-range indices (dropped). */
function applyScatter(v: Val, u0: Val, P: Params): Val | undefined {
  if (v.t.ndim === 0) return undefined;
  const axis = P.int(v.t.ndim);
  const n = v.t.shape[axis]!;
  const m = P.range(1, 6);
  const updShape = v.t.shape.map((d, i) => (i === axis ? m : d));
  const u = fitExact(u0, updShape, P);
  return { t: ops.scatterAdd(v.t, intConst(P, m, -1, n, [m]), u.t, axis), bound: v.bound + m * u.bound, exact: false, red: v.red + m };
}

/** argmax / argsort of an exact value (ties resolve the same in f32 and f64), as f32 indices. */
function applyArg(kind: 'argmax' | 'argsort', v: Val, P: Params): Val | undefined {
  if (v.t.ndim === 0) return undefined;
  const axis = P.int(v.t.ndim);
  const r = kind === 'argmax' ? ops.argmax(v.t, axis) : ops.argsort(v.t, axis, P.bool());
  return { t: ops.cast(r, 'f32'), bound: v.t.shape[axis]!, exact: true, red: 1 };
}

/** x + uniform(key, x.shape): the draws are exact in f32. */
function applyRandom(v: Val, P: Params): Val {
  const key = ops.tensor(Uint32Array.of(P.range(0, 1000), P.range(0, 1000)), { dtype: 'u32' });
  return { t: ops.add(v.t, random.uniform(key, v.t.shape)), bound: v.bound + 1, exact: false, red: v.red };
}

/**
 * A conv whose kernel equals its stride (a patchify conv, which the compiler turns into a
 * matmul), sometimes with padding on the high side only (which it must not).
 */
function applyPatchify(a0: Val, b0: Val, P: Params): Val {
  const k = P.pick([2, 3]);
  const C = P.range(1, 3);
  const hi = P.pick([0, 0, 1, k - 1]);
  const x = fitExact(tame(a0, 4), [P.range(1, 2), C, k * P.range(1, 3) - hi, k * P.range(1, 3)], P);
  const O = P.range(1, 4);
  const w = fitExact(tame(b0, 4), [O, C, k, k], P);
  const t = ops.conv2d(x.t, w.t, { strides: k, padding: [[0, hi], [0, 0]] });
  return { t, bound: x.bound * w.bound * C * k * k, exact: false, red: x.red * w.red * C * k * k };
}

// ---------------------------------------------------------------------------------------
// comparison

export interface Mismatch {
  readonly output: number;
  readonly index: number;
  readonly got: number;
  readonly want: number;
  readonly tol: number;
}

/** The f32 tolerance for an output: 1e-5 * sqrt(reduction length), relative to max(1, max|ref|). */
export function tolerance(ref: ArrayLike<number>, red: number): number {
  let m = 1;
  for (let i = 0; i < ref.length; i++) m = Math.max(m, Math.abs(ref[i]!));
  return 1e-5 * Math.sqrt(Math.max(1, red)) * m;
}

/** The first element where got and want differ by more than tol (NaN must match NaN). */
export function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): { index: number; got: number; want: number } | undefined {
  if (got.length !== want.length) return { index: -1, got: got.length, want: want.length };
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (Number.isNaN(w) ? !Number.isNaN(g) : !(Math.abs(g - w) <= tol)) return { index: i, got: g, want: w };
  }
  return undefined;
}

/** Every primitive name used in a program (regions' bodies included). */
export function primsOf(p: Program, out = new Set<string>()): Set<string> {
  for (const e of p.eqns) {
    out.add(e.prim);
    const body = e.params.body;
    if (body && typeof body === 'object' && 'eqns' in (body as object)) primsOf(body as Program, out);
  }
  return out;
}
