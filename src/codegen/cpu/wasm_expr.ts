/**
 * Scalar expressions (SExpr) as WebAssembly SIMD over vector locals, shared by the GEMM's
 * epilogue (wasm_epilogue.ts) and prologue (wasm_prologue.ts): the lane types, the opcode table
 * per lane type, and one compiler that evaluates a DAG node once per body instance (memoized per
 * node) and asks its caller for the leaves (`acc` and `load`, which each template stages
 * differently).
 *
 * What is expressible (`exprSupported`): f32 values built from constants, leaves, neg, abs,
 * sqrt, rsqrt, erf (the erf32 rational approximation of lower/expr_rules.ts: same coefficients,
 * same clamping), add, sub, mul, div, max, min, cmp + select and f32 -> f32 casts. max, min and
 * select are bitselects that keep JavaScript's NaN and signed-zero behavior:
 * max(a, b) = (a > b || a !== a) ? a : b.
 */
import { ERF_P, ERF_Q } from '../lower/expr_rules.js';
import { castScalar } from '../../ir/dtype.js';
import type { SExpr } from '../kernel/kernel_graph.js';
import { gemmUsesFma, lget, lset, simd, uleb } from './wasm.js';

export type EpilogueLanes = 'f64x2' | 'f32x4';

export interface LaneOps {
  readonly W: number;
  readonly add: number;
  readonly sub: number;
  readonly mul: number;
  readonly div: number;
  readonly neg: number;
  readonly abs: number;
  readonly sqrt: number;
  /** pmin(a, b) = b < a ? b : a and pmax(a, b) = a < b ? b : a (a NaN in a passes through). */
  readonly pmin: number;
  readonly pmax: number;
  readonly cmp: Readonly<Record<'eq' | 'ne' | 'lt' | 'gt' | 'le' | 'ge', number>>;
  /** v128.const bytes of a splatted value. */
  readonly konst: (v: number) => number[];
}

const constBytes = (v: number, f64: boolean): number[] => {
  const dv = new DataView(new ArrayBuffer(16));
  if (f64) for (let i = 0; i < 2; i++) dv.setFloat64(8 * i, v, true);
  else for (let i = 0; i < 4; i++) dv.setFloat32(4 * i, v, true);
  return simd(0x0c, ...new Uint8Array(dv.buffer));
};

export const LANES: Readonly<Record<EpilogueLanes, LaneOps>> = {
  f64x2: { W: 2, add: 0xf0, sub: 0xf1, mul: 0xf2, div: 0xf3, neg: 0xed, abs: 0xec, sqrt: 0xef, pmin: 0xf6, pmax: 0xf7, cmp: { eq: 0x47, ne: 0x48, lt: 0x49, gt: 0x4a, le: 0x4b, ge: 0x4c }, konst: (v) => constBytes(v, true) },
  f32x4: { W: 4, add: 0xe4, sub: 0xe5, mul: 0xe6, div: 0xe7, neg: 0xe1, abs: 0xe0, sqrt: 0xe3, pmin: 0xea, pmax: 0xeb, cmp: { eq: 0x41, ne: 0x42, lt: 0x43, gt: 0x44, le: 0x45, ge: 0x46 }, konst: (v) => constBytes(Math.fround(v), false) },
};

export const OR = simd(0x50);
export const BITSELECT = simd(0x52);
export const PROMOTE = simd(0x5f);
export const DEMOTE = simd(0x5e);
/** memarg with alignment hint 0 (always valid) and a byte offset. */
export const memarg = (off: number): number[] => [0, ...uleb(off)];

/** f32x4.relaxed_madd(a, b, c) = a * b + c (relaxed SIMD). */
const F32X4_RELAXED_MADD = 0x105;

/** erf's coefficients rounded to f32, as the rule in src/codegen/lower/expr_rules.ts has them for f32 (in both lane types). */
const ERF_P32 = ERF_P.map(Math.fround);
const ERF_Q32 = ERF_Q.map(Math.fround);

/** Whether the compiler below can evaluate `e` as `want`, given which leaves the caller stages. */
export function exprSupported(e: SExpr, want: 'f32' | 'mask', leafOk: (leaf: SExpr) => boolean, memo = new Map<SExpr, string>()): boolean {
  const seen = memo.get(e);
  if (seen !== undefined) return seen === want;
  const rec = (x: SExpr, w: 'f32' | 'mask'): boolean => exprSupported(x, w, leafOk, memo);
  let good = false;
  if (want === 'mask') good = e.op === 'cmp' && rec(e.a, 'f32') && rec(e.b, 'f32');
  else if (e.dtype === 'f32') {
    switch (e.op) {
      case 'acc':
      case 'load':
        good = leafOk(e);
        break;
      case 'const':
        good = true;
        break;
      case 'unary':
        good = (e.fn === 'neg' || e.fn === 'abs' || e.fn === 'sqrt' || e.fn === 'rsqrt' || e.fn === 'erf') && rec(e.a, 'f32');
        break;
      case 'binary':
        good = (e.fn === 'add' || e.fn === 'sub' || e.fn === 'mul' || e.fn === 'div' || e.fn === 'max' || e.fn === 'min') && rec(e.a, 'f32') && rec(e.b, 'f32');
        break;
      case 'select':
        good = rec(e.c, 'mask') && rec(e.a, 'f32') && rec(e.b, 'f32');
        break;
      case 'cast':
        good = rec(e.a, 'f32');
        break;
      default:
        good = false;
    }
  }
  memo.set(e, good ? want : `not ${want}`);
  return good;
}

export interface ExprCompiler {
  /** Emits x (once per node) and returns the vector local holding it. */
  value(x: SExpr): number;
  /** The nodes evaluated so far and their locals. */
  readonly have: Map<SExpr, number>;
}

/**
 * A compiler over one body instance. `emit` appends code, `vLocal` allocates a vector local,
 * `leaf` pushes the lanes of an `acc` or `load` node (in the lane type). `have` may be seeded
 * with nodes already held in locals (shared between instances).
 */
export function exprCompiler(emit: (...xs: (readonly number[])[]) => void, L: LaneOps, vLocal: () => number, leaf: (x: SExpr) => void, have = new Map<SExpr, number>()): ExprCompiler {
  const e = emit;
  const push = (x: SExpr): void => {
    if (x.op === 'const') e(L.konst(castScalar(x.value, 'f32')));
    else e(lget(value(x)));
  };
  const set = (x: SExpr): number => {
    const l = vLocal();
    e(lset(l));
    have.set(x, l);
    return l;
  };
  /**
   * erf32(x): if (x >= 4) 1; if (x <= -4) -1; else x * P(u) / Q(u) clamped to [-1, 1], u = x * x.
   * Computed as clamp(ratio(clamp(x, -4, 4)), -1, 1) with pmin/pmax (one instruction each,
   * where compare + bitselect pairs cost several): the same values, because the f32 ratio at
   * x = +-4 is +-1.0000007 (clamped to +-1), and pmin/pmax pass a NaN in x through as the
   * selects did (erf_clamp.test.ts checks both against the rule).
   */
  const erf = (node: SExpr, xl: number): number => {
    const xc = vLocal();
    e(lget(xl), L.konst(-4), simd(L.pmax), L.konst(4), simd(L.pmin), lset(xc));
    const u = vLocal();
    e(lget(xc), lget(xc), simd(L.mul), lset(u));
    // with relaxed SIMD (f32 lanes) each Horner step is one relaxed_madd: fused where the CPU
    // has an FMA (erf_clamp.test.ts bounds its error against the rule in float64)
    const fma = L.W === 4 && gemmUsesFma();
    const horner = (cs: readonly number[]): void => {
      e(L.konst(cs[0]!));
      for (let i = 1; i < cs.length; i++) {
        if (fma) e(lget(u), L.konst(cs[i]!), simd(F32X4_RELAXED_MADD));
        else e(lget(u), simd(L.mul), L.konst(cs[i]!), simd(L.add));
      }
    };
    e(lget(xc));
    horner(ERF_P32);
    e(simd(L.mul));
    horner(ERF_Q32);
    e(simd(L.div));
    e(L.konst(-1), simd(L.pmax), L.konst(1), simd(L.pmin));
    return set(node);
  };
  const unary = (x: SExpr & { op: 'unary' }): number => {
    switch (x.fn) {
      case 'neg':
      case 'abs':
      case 'sqrt':
        push(x.a);
        e(simd(L[x.fn]));
        return set(x);
      case 'rsqrt':
        e(L.konst(1));
        push(x.a);
        e(simd(L.sqrt), simd(L.div));
        return set(x);
      case 'erf':
        return erf(x, value(x.a));
      default:
        throw new Error(`wasm expression: unary ${x.fn}`);
    }
  };
  const binary = (x: SExpr & { op: 'binary' }): number => {
    switch (x.fn) {
      case 'add':
      case 'sub':
      case 'mul':
      case 'div':
        push(x.a);
        push(x.b);
        e(simd(L[x.fn]));
        return set(x);
      case 'max':
      case 'min': {
        // JavaScript: (a > b || a !== a) ? a : b  (min with <)
        const a = value(x.a);
        push(x.b);
        const b = vLocal();
        e(lset(b));
        e(lget(a), lget(b), lget(a), lget(b), simd(L.cmp[x.fn === 'max' ? 'gt' : 'lt']), lget(a), lget(a), simd(L.cmp.ne), OR, BITSELECT);
        return set(x);
      }
      default:
        throw new Error(`wasm expression: binary ${x.fn}`);
    }
  };
  const value = (x: SExpr): number => {
    const h = have.get(x);
    if (h !== undefined) return h;
    switch (x.op) {
      case 'const':
        e(L.konst(castScalar(x.value, 'f32')));
        return set(x);
      case 'acc':
      case 'load':
        leaf(x);
        return set(x);
      case 'cast': {
        const l = value(x.a);
        have.set(x, l);
        return l;
      }
      case 'unary':
        return unary(x);
      case 'binary':
        return binary(x);
      case 'cmp':
        push(x.a);
        push(x.b);
        e(simd(L.cmp[x.fn]));
        return set(x);
      case 'select':
        push(x.a);
        push(x.b);
        push(x.c);
        e(BITSELECT);
        return set(x);
      default:
        throw new Error(`wasm expression: ${x.op}`);
    }
  };
  return { value, have };
}
