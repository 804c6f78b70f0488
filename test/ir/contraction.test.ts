/**
 * dot_general and conv_general: forward against naive loops, gradients the JAX way
 * (finite-difference JVP along a random direction, VJP through <J t, c> = <t, J^T c>), in
 * float64, on random configurations from fast-check; and the shape rules' error messages.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as ops from '../../src/ir/ops.js';
import type { ConvDims, ConvParams, DotParams, MaybeTensor } from '../../src/ir/primitive.js';
import { PRIMS } from '../../src/ir/primitives/index.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { bind1 } from '../../src/ir/trace.js';
import { mulberry32 } from '../helpers/rng.js';

// ---------------------------------------------------------------------------------------
// helpers


const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

function randData(n: number, rng: () => number): Float64Array {
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = rng() * 2 - 1;
  return d;
}

function randTensor(shape: readonly number[], rng: () => number): Tensor {
  return ops.tensor(randData(prod(shape), rng), { dtype: 'f64', shape });
}

function f64(t: Tensor): Float64Array {
  return Float64Array.from(t.dataSync());
}

function shuffle<T>(xs: T[], rng: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function invPerm(p: readonly number[]): number[] {
  const q = new Array<number>(p.length);
  p.forEach((v, i) => (q[v] = i));
  return q;
}

function rowStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Calls fn with every multi-index of shape, in row-major order. */
function forEachIndex(shape: readonly number[], fn: (idx: number[]) => void): void {
  if (shape.some((d) => d === 0)) return;
  const idx = shape.map(() => 0);
  for (;;) {
    fn(idx);
    let d = shape.length - 1;
    for (; d >= 0; d--) {
      if (++idx[d]! < shape[d]!) break;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

function expectClose(actual: Float64Array, expected: Float64Array, rtol: number, atol = 0): void {
  expect(actual.length).toBe(expected.length);
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!);
    if (!(err <= atol + rtol * Math.max(scale, 1e-30))) {
      throw new Error(`element ${i}: ${actual[i]} vs ${expected[i]} (err ${err}, scale ${scale})`);
    }
  }
}

function dot(a: Float64Array, b: Float64Array): { v: number; scale: number } {
  let v = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    v += a[i]! * b[i]!;
    scale += Math.abs(a[i]! * b[i]!);
  }
  return { v, scale };
}

const dilated = (n: number, d: number): number => (n === 0 ? 0 : (n - 1) * d + 1);

// ---------------------------------------------------------------------------------------
// dot_general: random configurations

interface DotCase {
  lhsShape: number[];
  rhsShape: number[];
  params: DotParams;
  /** roles: per lhs/rhs axis, [kind, index] with kind b (batch), c (contracting), f (free). */
  lhsRoles: [string, number][];
  rhsRoles: [string, number][];
  bSizes: number[];
  cSizes: number[];
  lfSizes: number[];
  rfSizes: number[];
}

const dotArb = fc.record({
  b: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
  c: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }),
  lf: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
  rf: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
  seed: fc.integer(),
});

type DotRec = typeof dotArb extends fc.Arbitrary<infer T> ? T : never;

function makeDotCase(r: DotRec): DotCase {
  const rng = mulberry32(r.seed);
  const lhsRoles = shuffle<[string, number]>([...r.b.map((_, i) => ['b', i] as [string, number]), ...r.c.map((_, i) => ['c', i] as [string, number]), ...r.lf.map((_, i) => ['f', i] as [string, number])], rng);
  const rhsRoles = shuffle<[string, number]>([...r.b.map((_, i) => ['b', i] as [string, number]), ...r.c.map((_, i) => ['c', i] as [string, number]), ...r.rf.map((_, i) => ['f', i] as [string, number])], rng);
  // free dims appear in the output in axis order: number them that way
  const renumber = (roles: [string, number][], free: number[]): number[] => {
    const sizes: number[] = [];
    roles.forEach((role) => {
      if (role[0] === 'f') {
        sizes.push(free[role[1]]!);
        role[1] = sizes.length - 1;
      }
    });
    return sizes;
  };
  const lf = renumber(lhsRoles, r.lf);
  const rf = renumber(rhsRoles, r.rf);
  const size = (roles: [string, number][], free: number[]) => roles.map(([k, i]) => (k === 'b' ? r.b[i]! : k === 'c' ? r.c[i]! : free[i]!));
  const pos = (roles: [string, number][], kind: string, n: number) => Array.from({ length: n }, (_, i) => roles.findIndex(([k, j]) => k === kind && j === i));
  return {
    lhsShape: size(lhsRoles, lf),
    rhsShape: size(rhsRoles, rf),
    params: {
      contracting: [pos(lhsRoles, 'c', r.c.length), pos(rhsRoles, 'c', r.c.length)],
      batch: [pos(lhsRoles, 'b', r.b.length), pos(rhsRoles, 'b', r.b.length)],
    },
    lhsRoles,
    rhsRoles,
    bSizes: r.b,
    cSizes: r.c,
    lfSizes: lf,
    rfSizes: rf,
  };
}

function naiveDot(c: DotCase, a: Float64Array, b: Float64Array): Float64Array {
  const outShape = [...c.bSizes, ...c.lfSizes, ...c.rfSizes];
  const out = new Float64Array(prod(outShape));
  const nb = c.bSizes.length;
  const nl = c.lfSizes.length;
  const nr = c.rfSizes.length;
  const ls = rowStrides(c.lhsShape);
  const rs = rowStrides(c.rhsShape);
  const os = rowStrides(outShape);
  forEachIndex([...outShape, ...c.cSizes], (idx) => {
    const pick = (k: string, i: number, side: 'l' | 'r'): number =>
      k === 'b' ? idx[i]! : k === 'c' ? idx[nb + nl + nr + i]! : side === 'l' ? idx[nb + i]! : idx[nb + nl + i]!;
    let la = 0;
    c.lhsRoles.forEach(([k, i], ax) => (la += pick(k, i, 'l') * ls[ax]!));
    let ra = 0;
    c.rhsRoles.forEach(([k, i], ax) => (ra += pick(k, i, 'r') * rs[ax]!));
    let o = 0;
    for (let d = 0; d < outShape.length; d++) o += idx[d]! * os[d]!;
    out[o] = out[o]! + a[la]! * b[ra]!;
  });
  return out;
}

describe('dot_general forward', () => {
  it('matches a naive loop on random batch/contracting configurations', () => {
    fc.assert(
      fc.property(dotArb, (r) => {
        const c = makeDotCase(r);
        const rng = mulberry32(r.seed ^ 0x5bd1e995);
        const a = randTensor(c.lhsShape, rng);
        const b = randTensor(c.rhsShape, rng);
        const y = ops.dotGeneral(a, b, c.params.contracting, c.params.batch);
        expect(y.shape).toEqual([...c.bSizes, ...c.lfSizes, ...c.rfSizes]);
        expectClose(f64(y), naiveDot(c, f64(a), f64(b)), 1e-12, 1e-14);
      }),
      { numRuns: 150, seed: 1234 },
    );
  });

  it('matmul (with broadcast batch dims and 1-D operands) matches a naive loop', () => {
    const arb = fc.record({
      batch: fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }),
      bcast: fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }),
      m: fc.integer({ min: 1, max: 4 }),
      k: fc.integer({ min: 1, max: 4 }),
      n: fc.integer({ min: 1, max: 4 }),
      vec: fc.constantFrom('none', 'a', 'b'),
      seed: fc.integer(),
    });
    fc.assert(
      fc.property(arb, (r) => {
        const rng = mulberry32(r.seed);
        const ba = r.batch.map((d, i) => (r.bcast[i] ? 1 : d));
        const bb = r.batch.map((d, i) => (!r.bcast[i] && i % 2 === 1 ? 1 : d));
        const aShape = r.vec === 'a' ? [r.k] : [...ba, r.m, r.k];
        const bShape = r.vec === 'b' ? [r.k] : [...bb, r.k, r.n];
        const a = randTensor(aShape, rng);
        const b = randTensor(bShape, rng);
        const y = ops.matmul(a, b);
        // naive: broadcast batch of [...batch] over (m, k) @ (k, n)
        const A = f64(a);
        const B = f64(b);
        const M = r.vec === 'a' ? 1 : r.m;
        const N = r.vec === 'b' ? 1 : r.n;
        const bat = r.vec === 'none' ? r.batch.map((_, i) => Math.max(ba[i]!, bb[i]!)) : r.vec === 'a' ? bb : ba;
        const expected = new Float64Array(prod(bat) * M * N);
        let o = 0;
        forEachIndex([...bat, M, N], (idx) => {
          const bi = idx.slice(0, bat.length);
          const [i, j] = [idx[bat.length]!, idx[bat.length + 1]!];
          let s = 0;
          for (let kk = 0; kk < r.k; kk++) {
            let ai: number;
            if (r.vec === 'a') ai = kk;
            else {
              const bo = bi.reduce((acc, v, d) => acc * ba[d]! + (ba[d] === 1 ? 0 : v), 0);
              ai = (bo * r.m + i) * r.k + kk;
            }
            let bidx: number;
            if (r.vec === 'b') bidx = kk;
            else {
              const bo = bi.reduce((acc, v, d) => acc * bb[d]! + (bb[d] === 1 ? 0 : v), 0);
              bidx = (bo * r.k + kk) * r.n + j;
            }
            s += A[ai]! * B[bidx]!;
          }
          expected[o++] = s;
        });
        const expShape = r.vec === 'a' ? [...bat, N] : r.vec === 'b' ? [...bat, M] : [...bat, M, N];
        expect(y.shape).toEqual(expShape);
        expectClose(f64(y), expected, 1e-12, 1e-14);
      }),
      { numRuns: 100, seed: 99 },
    );
  });

  it('handles i32 (wrapping) and f32 operands', () => {
    const a = ops.tensor([1, 2, 3, 4, 5, 6], { dtype: 'i32', shape: [2, 3] });
    const b = ops.tensor([1, 0, -1, 2, 3, 1], { dtype: 'i32', shape: [3, 2] });
    const y = ops.matmul(a, b);
    expect(y.dtype).toBe('i32');
    expect(y.tolist()).toEqual([[8, 7], [17, 16]]);
    const big = ops.tensor([0x40000000, 4], { dtype: 'i32', shape: [1, 2] });
    const two = ops.tensor([4, 1], { dtype: 'i32', shape: [2, 1] });
    expect(ops.matmul(big, two).tolist()).toEqual([[4]]); // 2^32 wraps to 0, + 4
    const af = ops.tensor([0.1, 0.2, 0.3, 0.4], { dtype: 'f32', shape: [2, 2] });
    const yf = ops.matmul(af, af);
    expect(yf.dtype).toBe('f32');
    expect(yf.dataSync()).toBeInstanceOf(Float32Array);
    const [p, q, u, v] = [0.1, 0.2, 0.3, 0.4].map(Math.fround) as [number, number, number, number];
    // accumulated in float64 from the f32 inputs, rounded once to f32
    expect(yf.tolist()).toEqual([[p * p + q * u, p * q + q * v], [u * p + v * u, u * q + v * v]].map((r) => r.map(Math.fround)));
  });
});

// ---------------------------------------------------------------------------------------
// conv_general: random configurations

interface ConvCase {
  nsp: number;
  /** canonical shapes: lhs [N, C, ...in], rhs [O, I, ...k] */
  lhsC: number[];
  rhsC: number[];
  G: number;
  BG: number;
  strides: number[];
  padding: [number, number][];
  ldil: number[];
  rdil: number[];
  /** layouts used for the primitive call */
  dims: ConvDims;
}

const spArb = fc.record({
  n: fc.integer({ min: 1, max: 7 }),
  k: fc.integer({ min: 1, max: 3 }),
  s: fc.integer({ min: 1, max: 3 }),
  ld: fc.integer({ min: 1, max: 2 }),
  rd: fc.integer({ min: 1, max: 2 }),
  lo: fc.integer({ min: -2, max: 3 }),
  hi: fc.integer({ min: -2, max: 3 }),
});

const convArb = fc.record({
  nsp: fc.constantFrom(1, 1, 2, 2, 2, 3),
  kind: fc.constantFrom('plain', 'feature', 'depthwise', 'batch'),
  groups: fc.integer({ min: 2, max: 3 }),
  cg: fc.integer({ min: 1, max: 2 }),
  og: fc.integer({ min: 1, max: 5 }),
  nb: fc.integer({ min: 1, max: 2 }),
  sp: fc.array(spArb, { minLength: 3, maxLength: 3 }),
  layout: fc.constantFrom('canonical', 'nhwc', 'random'),
  seed: fc.integer(),
});

type ConvRec = typeof convArb extends fc.Arbitrary<infer T> ? T : never;

function makeConvCase(r: ConvRec): ConvCase {
  const rng = mulberry32(r.seed);
  let G = 1;
  let BG = 1;
  let C = r.cg;
  let O = r.og;
  if (r.kind === 'feature') {
    G = r.groups;
    C = G * r.cg;
    O = G * r.og;
  } else if (r.kind === 'depthwise') {
    G = C = r.groups + r.cg;
    O = G * r.og;
  } else if (r.kind === 'batch') {
    BG = r.groups;
    O = BG * r.og;
  }
  const N = BG * r.nb;
  const I = C / G;
  const sp = r.sp.slice(0, r.nsp).map((s) => {
    // 3-D cases stay small
    const n = r.nsp === 3 ? Math.min(s.n, 4) : s.n;
    let hi = s.hi;
    const padded = dilated(n, s.ld) + s.lo + hi;
    if (padded < 0) hi -= padded;
    return { ...s, n, hi };
  });
  const r2 = r.nsp + 2;
  const canon = Array.from({ length: r2 }, (_, i) => i);
  let dims: ConvDims = { lhs: canon, rhs: canon, out: canon };
  if (r.layout === 'nhwc') {
    // channels last; kernel spatial..., I, O
    const cl = [0, r2 - 1, ...canon.slice(1, r2 - 1)];
    dims = { lhs: cl, out: cl, rhs: [r2 - 1, r2 - 2, ...canon.slice(0, r2 - 2)] };
  } else if (r.layout === 'random') {
    dims = { lhs: shuffle(canon, rng), rhs: shuffle(canon, rng), out: shuffle(canon, rng) };
  }
  return {
    nsp: r.nsp,
    lhsC: [N, C, ...sp.map((s) => s.n)],
    rhsC: [O, I, ...sp.map((s) => s.k)],
    G,
    BG,
    strides: sp.map((s) => s.s),
    padding: sp.map((s) => [s.lo, s.hi] as [number, number]),
    ldil: sp.map((s) => s.ld),
    rdil: sp.map((s) => s.rd),
    dims,
  };
}

function convParams(c: ConvCase): ConvParams {
  return { windowStrides: c.strides, padding: c.padding, lhsDilation: c.ldil, rhsDilation: c.rdil, featureGroupCount: c.G, batchGroupCount: c.BG, dims: c.dims };
}

function outSpatial(c: ConvCase): number[] {
  return c.lhsC.slice(2).map((n, d) => {
    const padded = dilated(n, c.ldil[d]!) + c.padding[d]![0] + c.padding[d]![1];
    return Math.max(0, Math.floor((padded - dilated(c.rhsC[2 + d]!, c.rdil[d]!)) / c.strides[d]!) + 1);
  });
}

/** Direct convolution on canonical layouts (lhs NC..., rhs OI..., out NC...). */
function naiveConv(c: ConvCase, x: Float64Array, w: Float64Array): { data: Float64Array; shape: number[] } {
  const [N, C, ...inSp] = c.lhsC as [number, number, ...number[]];
  const [O, I, ...kSp] = c.rhsC as [number, number, ...number[]];
  const Nb = N / c.BG;
  const oSp = outSpatial(c);
  const shape = [Nb, O, ...oSp];
  const out = new Float64Array(prod(shape));
  const xs = rowStrides(c.lhsC);
  const ws = rowStrides(c.rhsC);
  let oi = 0;
  forEachIndex(shape, (idx) => {
    const [n, o] = [idx[0]!, idx[1]!];
    const fg = Math.floor(o / (O / c.G));
    const bg = Math.floor(o / (O / c.BG));
    let s = 0;
    forEachIndex([I, ...kSp], (kidx) => {
      const ci = kidx[0]!;
      let xo = (bg * Nb + n) * xs[0]! + (fg * I + ci) * xs[1]!;
      for (let d = 0; d < kSp.length; d++) {
        const pos = idx[2 + d]! * c.strides[d]! + kidx[1 + d]! * c.rdil[d]! - c.padding[d]![0];
        if (pos < 0 || pos % c.ldil[d]! !== 0 || pos / c.ldil[d]! >= inSp[d]!) return;
        xo += (pos / c.ldil[d]!) * xs[2 + d]!;
      }
      let wo = o * ws[0]! + ci * ws[1]!;
      for (let d = 0; d < kSp.length; d++) wo += kidx[1 + d]! * ws[2 + d]!;
      s += x[xo]! * w[wo]!;
    });
    out[oi++] = s;
  });
  void C;
  return { data: out, shape };
}

/** Canonical -> the layout `pos` (canonical role j at axis pos[j]), and back. */
const toLayout = (t: Tensor, pos: readonly number[]): Tensor => ops.transpose(t, invPerm(pos));
const fromLayout = (t: Tensor, pos: readonly number[]): Tensor => ops.transpose(t, pos);

const conv = (x: Tensor, w: Tensor, p: ConvParams): Tensor => bind1('conv_general', [x, w], p);

function caseInputs(c: ConvCase, seed: number) {
  const rng = mulberry32(seed ^ 0x1b873593);
  const xc = randTensor(c.lhsC, rng);
  const wc = randTensor(c.rhsC, rng);
  return { rng, xc, wc, x: toLayout(xc, c.dims.lhs), w: toLayout(wc, c.dims.rhs) };
}

describe('conv_general forward', () => {
  it('matches a naive direct convolution (random strides, padding, dilations, groups, layouts)', () => {
    fc.assert(
      fc.property(convArb, (r) => {
        const c = makeConvCase(r);
        const { xc, wc, x, w } = caseInputs(c, r.seed);
        const y = conv(x, w, convParams(c));
        const ref = naiveConv(c, f64(xc), f64(wc));
        const yc = fromLayout(y, c.dims.out);
        expect(yc.shape).toEqual(ref.shape);
        expectClose(f64(yc), ref.data, 1e-12, 1e-14);
      }),
      { numRuns: 200, seed: 4321 },
    );
  });

  it('NHWC/HWIO equals NCHW/OIHW after transposes', () => {
    const arb = convArb.filter((r) => r.nsp === 2);
    fc.assert(
      fc.property(arb, (r) => {
        const c = makeConvCase({ ...r, layout: 'canonical' });
        const { xc, wc } = caseInputs(c, r.seed);
        const p = convParams(c);
        const nchw = conv(xc, wc, p);
        const xh = ops.transpose(xc, [0, 2, 3, 1]);
        const wh = ops.transpose(wc, [2, 3, 1, 0]);
        const nhwc = conv(xh, wh, { ...p, dims: { lhs: [0, 3, 1, 2], rhs: [3, 2, 0, 1], out: [0, 3, 1, 2] } });
        expectClose(f64(ops.transpose(nhwc, [0, 3, 1, 2])), f64(nchw), 1e-13, 1e-15);
        // ops.conv2d builds the same primitive
        if (c.BG === 1) {
          const viaOps = ops.conv2d(xh, wh, { strides: c.strides, padding: c.padding, dilation: c.rdil, lhsDilation: c.ldil, groups: c.G, layout: 'NHWC', kernelLayout: 'HWIO' });
          expectClose(f64(viaOps), f64(nhwc), 0, 0);
        }
      }),
      { numRuns: 100, seed: 77 },
    );
  });

  it('i32 operands give the exact integer results (both loop orders, all group kinds)', () => {
    fc.assert(
      fc.property(convArb, (r) => {
        const c = makeConvCase(r);
        const rng = mulberry32(r.seed);
        const ints = (shape: number[]) => ops.tensor(Array.from({ length: prod(shape) }, () => Math.floor(rng() * 11) - 5), { dtype: 'i32', shape });
        const xi = toLayout(ints(c.lhsC), c.dims.lhs);
        const wi = toLayout(ints(c.rhsC), c.dims.rhs);
        const p = convParams(c);
        const yi = conv(xi, wi, p);
        expect(yi.dtype).toBe('i32');
        const yf = conv(ops.cast(xi, 'f64'), ops.cast(wi, 'f64'), p);
        expect(Array.from(yi.dataSync())).toEqual(Array.from(yf.dataSync()));
      }),
      { numRuns: 50, seed: 8 },
    );
  });

  it('f32 operands give f32 results close to the f64 ones; i32 works', () => {
    const c = makeConvCase({ nsp: 2, kind: 'feature', groups: 2, cg: 2, og: 2, nb: 2, sp: [{ n: 6, k: 3, s: 2, ld: 1, rd: 1, lo: 1, hi: 1 }, { n: 5, k: 2, s: 1, ld: 1, rd: 2, lo: 0, hi: 1 }, { n: 1, k: 1, s: 1, ld: 1, rd: 1, lo: 0, hi: 0 }], layout: 'canonical', seed: 5 });
    const { xc, wc } = caseInputs(c, 5);
    const p = convParams(c);
    const y64 = conv(xc, wc, p);
    const y32 = conv(ops.cast(xc, 'f32'), ops.cast(wc, 'f32'), p);
    expect(y32.dtype).toBe('f32');
    expect(y32.dataSync()).toBeInstanceOf(Float32Array);
    expectClose(Float64Array.from(y32.dataSync()), f64(y64), 1e-6);
    const xi = ops.tensor([1, 2, 3, 4], { dtype: 'i32', shape: [1, 1, 4] });
    const wi = ops.tensor([1, -1], { dtype: 'i32', shape: [1, 1, 2] });
    const yi = conv(xi, wi, { windowStrides: [1], padding: [[0, 0]], lhsDilation: [1], rhsDilation: [1], featureGroupCount: 1, batchGroupCount: 1, dims: { lhs: [0, 1, 2], rhs: [0, 1, 2], out: [0, 1, 2] } });
    expect(yi.dtype).toBe('i32');
    expect(yi.tolist()).toEqual([[[-1, -1, -1]]]);
  });
});

// ---------------------------------------------------------------------------------------
// gradients

const EPS = 1e-6;

interface GradResult {
  jvpErr: number;
  vjpErr: number;
}

/**
 * Checks a bilinear primitive's rules: JVP against central differences along (tx, tw) and the
 * VJP against the JVP through <J t, c> = <t, J^T c>. Returns the relative errors.
 */
function checkGrad(
  f: (a: Tensor, b: Tensor) => Tensor,
  jvpRule: (p: Tensor[], t: MaybeTensor[], out: Tensor[]) => MaybeTensor[],
  vjpRule: (p: Tensor[], out: Tensor[], ct: MaybeTensor[]) => MaybeTensor[],
  a: Tensor,
  b: Tensor,
  ta: Tensor | null,
  tb: Tensor | null,
  rng: () => number,
): GradResult {
  const y = f(a, b);
  const [jt] = jvpRule([a, b], [ta, tb], [y]);
  expect(jt).not.toBeNull();
  expect(jt!.shape).toEqual(y.shape);
  const step = (s: number) => f(ta ? ops.add(a, ops.mul(ta, s)) : a, tb ? ops.add(b, ops.mul(tb, s)) : b);
  const fp = f64(step(EPS));
  const fm = f64(step(-EPS));
  const fd = fp.map((v, i) => (v - fm[i]!) / (2 * EPS));
  const jd = f64(jt!);
  let scale = 1e-30;
  let jvpErr = 0;
  for (let i = 0; i < jd.length; i++) scale = Math.max(scale, Math.abs(jd[i]!));
  for (let i = 0; i < jd.length; i++) jvpErr = Math.max(jvpErr, Math.abs(jd[i]! - fd[i]!) / scale);
  if (jd.length === 0) jvpErr = 0;

  const ct = randTensor(y.shape, rng);
  const [ca, cb] = vjpRule([a, b], [y], [ct]);
  expect(ca!.shape).toEqual(a.shape);
  expect(cb!.shape).toEqual(b.shape);
  const lhs = dot(jd, f64(ct));
  const r1 = ta ? dot(f64(ta), f64(ca!)) : { v: 0, scale: 0 };
  const r2 = tb ? dot(f64(tb), f64(cb!)) : { v: 0, scale: 0 };
  const vscale = Math.max(lhs.scale, r1.scale + r2.scale, 1e-300);
  const vjpErr = Math.abs(lhs.v - (r1.v + r2.v)) / vscale;
  return { jvpErr, vjpErr };
}

function tangentsFor(a: Tensor, b: Tensor, rng: () => number, which: number): [Tensor | null, Tensor | null] {
  // which: 0 both, 1 lhs only, 2 rhs only
  return [which === 2 ? null : randTensor(a.shape, rng), which === 1 ? null : randTensor(b.shape, rng)];
}

describe('dot_general gradients', () => {
  it('JVP matches finite differences and VJP is its transpose', () => {
    const def = PRIMS.dot_general;
    fc.assert(
      fc.property(dotArb, fc.integer({ min: 0, max: 4 }), (r, which) => {
        const c = makeDotCase(r);
        const rng = mulberry32(r.seed ^ 0x2545f491);
        const a = randTensor(c.lhsShape, rng);
        const b = randTensor(c.rhsShape, rng);
        const [ta, tb] = tangentsFor(a, b, rng, which > 2 ? 0 : which);
        const p = c.params;
        const res = checkGrad(
          (u, v) => bind1('dot_general', [u, v], p),
          (pr, t, o) => (def.jvp as Exclude<typeof def.jvp, 'structural'>)(pr, t, p, o),
          (pr, o, ct) => (def.vjp as Exclude<typeof def.vjp, 'structural'>)(pr, o, ct, p),
          a, b, ta, tb, rng,
        );
        expect(res.jvpErr).toBeLessThan(1e-6);
        expect(res.vjpErr).toBeLessThan(1e-10);
      }),
      { numRuns: 150, seed: 2024 },
    );
  });

  it('returns null for zero tangents and cotangents', () => {
    const def = PRIMS.dot_general;
    const a = ops.ones([2, 3], 'f64');
    const b = ops.ones([3, 2], 'f64');
    const p: DotParams = { contracting: [[1], [0]], batch: [[], []] };
    const jvp = def.jvp as Exclude<typeof def.jvp, 'structural'>;
    const vjp = def.vjp as Exclude<typeof def.vjp, 'structural'>;
    expect(jvp([a, b], [null, null], p, [a])).toEqual([null]);
    expect(vjp([a, b], [a], [null], p)).toEqual([null, null]);
  });
});

function convGradCheck(c: ConvCase, seed: number, which: number): GradResult {
  const def = PRIMS.conv_general;
  const p = convParams(c);
  const { rng, x, w } = caseInputs(c, seed);
  const [tx, tw] = tangentsFor(x, w, rng, which);
  return checkGrad(
    (u, v) => conv(u, v, p),
    (pr, t, o) => (def.jvp as Exclude<typeof def.jvp, 'structural'>)(pr, t, p, o),
    (pr, o, ct) => (def.vjp as Exclude<typeof def.vjp, 'structural'>)(pr, o, ct, p),
    x, w, tx, tw, rng,
  );
}

interface Named {
  name: string;
  rec: ConvRec;
}

const sp1 = (n: number, k: number, s = 1, ld = 1, rd = 1, lo = 0, hi = 0) => ({ n, k, s, ld, rd, lo, hi });
const NONE = sp1(1, 1);
const named: Named[] = [
  { name: '1-D plain', rec: { nsp: 1, kind: 'plain', groups: 2, cg: 2, og: 2, nb: 2, sp: [sp1(7, 3), NONE, NONE], layout: 'canonical', seed: 1 } },
  { name: '1-D strided with remainder, padded', rec: { nsp: 1, kind: 'plain', groups: 2, cg: 2, og: 3, nb: 1, sp: [sp1(8, 3, 3, 1, 1, 1, 2), NONE, NONE], layout: 'canonical', seed: 2 } },
  { name: '2-D depthwise 7x7 pad 3 (NCHW)', rec: { nsp: 2, kind: 'depthwise', groups: 2, cg: 2, og: 1, nb: 2, sp: [sp1(9, 7, 1, 1, 1, 3, 3), sp1(8, 7, 1, 1, 1, 3, 3), NONE], layout: 'canonical', seed: 3 } },
  { name: '2-D depthwise x2 multiplier (NHWC)', rec: { nsp: 2, kind: 'depthwise', groups: 3, cg: 1, og: 2, nb: 1, sp: [sp1(6, 3, 1, 1, 1, 1, 1), sp1(5, 3, 2, 1, 1, 1, 1), NONE], layout: 'nhwc', seed: 4 } },
  { name: '2-D grouped, strided, NHWC', rec: { nsp: 2, kind: 'feature', groups: 2, cg: 2, og: 2, nb: 2, sp: [sp1(7, 3, 2, 1, 1, 1, 0), sp1(6, 2, 3, 1, 1, 0, 1), NONE], layout: 'nhwc', seed: 5 } },
  { name: '2-D patchify stem 4x4 stride 4', rec: { nsp: 2, kind: 'plain', groups: 2, cg: 2, og: 2, nb: 2, sp: [sp1(8, 4, 4), sp1(9, 4, 4), NONE], layout: 'canonical', seed: 6 } },
  { name: '2-D rhs and lhs dilation, negative padding', rec: { nsp: 2, kind: 'plain', groups: 2, cg: 2, og: 2, nb: 1, sp: [sp1(6, 2, 2, 2, 2, -1, 2), sp1(5, 3, 1, 2, 1, 2, -2), NONE], layout: 'random', seed: 7 } },
  { name: '2-D batch groups', rec: { nsp: 2, kind: 'batch', groups: 3, cg: 2, og: 2, nb: 2, sp: [sp1(5, 3, 2, 1, 1, 1, 0), sp1(4, 2, 1, 1, 2, 0, 1), NONE], layout: 'canonical', seed: 8 } },
  { name: '1-D batch groups NHWC with dilation', rec: { nsp: 1, kind: 'batch', groups: 2, cg: 1, og: 3, nb: 1, sp: [sp1(7, 3, 2, 2, 2, 1, 1), NONE, NONE], layout: 'nhwc', seed: 9 } },
  { name: '3-D grouped', rec: { nsp: 3, kind: 'feature', groups: 2, cg: 1, og: 1, nb: 1, sp: [sp1(4, 2, 2, 1, 1, 1, 0), sp1(3, 2, 1), sp1(4, 3, 1, 1, 2, 2, 1)], layout: 'random', seed: 10 } },
];

describe('conv_general gradients', () => {
  for (const { name, rec } of named) {
    it(`JVP/VJP: ${name}`, () => {
      const c = makeConvCase(rec);
      for (const which of [0, 1, 2]) {
        const res = convGradCheck(c, rec.seed, which);
        expect(res.jvpErr).toBeLessThan(1e-6);
        expect(res.vjpErr).toBeLessThan(1e-10);
      }
    });
  }

  it('JVP matches finite differences and VJP is its transpose on random configurations', () => {
    fc.assert(
      fc.property(convArb, fc.integer({ min: 0, max: 4 }), (r, which) => {
        const c = makeConvCase(r);
        const res = convGradCheck(c, r.seed, which > 2 ? 0 : which);
        expect(res.jvpErr).toBeLessThan(1e-6);
        expect(res.vjpErr).toBeLessThan(1e-10);
      }),
      { numRuns: 150, seed: 31337 },
    );
  });

  it('the VJP is differentiable again (second-order VJP through the transposed convs)', () => {
    // The lhs cotangent is linear in (ct, w): check its own VJP rule through the same identity.
    const c = makeConvCase(named[4]!.rec);
    const p = convParams(c);
    const def = PRIMS.conv_general;
    const vjp = def.vjp as Exclude<typeof def.vjp, 'structural'>;
    const { rng, x, w } = caseInputs(c, 11);
    const y = conv(x, w, p);
    const ct = randTensor(y.shape, rng);
    const [dx] = vjp([x, w], [y], [ct], p);
    // d(dx)/d(w) along tw equals dx computed with tw (bilinear in w)
    const tw = randTensor(w.shape, rng);
    const [dxT] = vjp([x, tw], [y], [ct], p);
    const [dxp] = vjp([x, ops.add(w, ops.mul(tw, EPS))], [y], [ct], p);
    const [dxm] = vjp([x, ops.sub(w, ops.mul(tw, EPS))], [y], [ct], p);
    const fd = f64(dxp!).map((v, i) => (v - f64(dxm!)[i]!) / (2 * EPS));
    expectClose(fd, f64(dxT!), 1e-6);
    expect(dx!.shape).toEqual(x.shape);
  });

  it('returns null for zero tangents and cotangents', () => {
    const def = PRIMS.conv_general;
    const c = makeConvCase(named[0]!.rec);
    const p = convParams(c);
    const { x, w } = caseInputs(c, 1);
    const jvp = def.jvp as Exclude<typeof def.jvp, 'structural'>;
    const vjp = def.vjp as Exclude<typeof def.vjp, 'structural'>;
    expect(jvp([x, w], [null, null], p, [x])).toEqual([null]);
    expect(vjp([x, w], [x], [null], p)).toEqual([null, null]);
  });

  it('is fast enough for small images (2,3,64,64) through a stem and a depthwise block', () => {
    const rng = mulberry32(42);
    const x = randTensor([2, 3, 64, 64], rng);
    const w = randTensor([16, 3, 4, 4], rng);
    const t0 = performance.now();
    const h = ops.conv2d(x, w, { strides: 4 });
    expect(h.shape).toEqual([2, 16, 16, 16]);
    const dw = randTensor([16, 1, 7, 7], rng);
    const d = ops.conv2d(h, dw, { padding: 3, groups: 16 });
    const stem: ConvCase = { nsp: 2, lhsC: [2, 3, 64, 64], rhsC: [16, 3, 4, 4], G: 1, BG: 1, strides: [4, 4], padding: [[0, 0], [0, 0]], ldil: [1, 1], rdil: [1, 1], dims: { lhs: [0, 1, 2, 3], rhs: [0, 1, 2, 3], out: [0, 1, 2, 3] } };
    expectClose(f64(h), naiveConv(stem, f64(x), f64(w)).data, 1e-12);
    const dwCase: ConvCase = { ...stem, lhsC: [2, 16, 16, 16], rhsC: [16, 1, 7, 7], G: 16, strides: [1, 1], padding: [[3, 3], [3, 3]] };
    expectClose(f64(d), naiveConv(dwCase, f64(h), f64(dw)).data, 1e-12);
    expect(d.shape).toEqual([2, 16, 16, 16]);
    const def = PRIMS.conv_general;
    const vjp = def.vjp as Exclude<typeof def.vjp, 'structural'>;
    const pd: ConvParams = { windowStrides: [1, 1], padding: [[3, 3], [3, 3]], lhsDilation: [1, 1], rhsDilation: [1, 1], featureGroupCount: 16, batchGroupCount: 1, dims: { lhs: [0, 1, 2, 3], rhs: [0, 1, 2, 3], out: [0, 1, 2, 3] } };
    const [gh, gdw] = vjp([h, dw], [d], [d], pd);
    const ps: ConvParams = { ...pd, windowStrides: [4, 4], padding: [[0, 0], [0, 0]], featureGroupCount: 1 };
    const [gx, gw] = vjp([x, w], [h], [gh!], ps);
    expect(gdw!.shape).toEqual([16, 1, 7, 7]);
    expect(gx!.shape).toEqual([2, 3, 64, 64]);
    expect(gw!.shape).toEqual([16, 3, 4, 4]);
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});

// ---------------------------------------------------------------------------------------
// errors

describe('error messages', () => {
  const f32 = (shape: number[]) => ops.zeros(shape, 'f32');
  const cp = (extra: Partial<ConvParams> = {}): ConvParams => ({
    windowStrides: [1, 1], padding: [[0, 0], [0, 0]], lhsDilation: [1, 1], rhsDilation: [1, 1], featureGroupCount: 1, batchGroupCount: 1,
    dims: { lhs: [0, 1, 2, 3], rhs: [0, 1, 2, 3], out: [0, 1, 2, 3] }, ...extra,
  });

  it('conv_general: channels not divisible by groups', () => {
    expect(() => conv(f32([1, 6, 5, 5]), f32([8, 2, 3, 3]), cp({ featureGroupCount: 4 }))).toThrow(
      'conv_general: input features 6 are not divisible by feature_group_count 4 (lhs f32[1,6,5,5], rhs f32[8,2,3,3])',
    );
    expect(() => ops.conv2d(f32([1, 6, 5, 5]), f32([8, 2, 3, 3]), { groups: 2 })).toThrow(
      'conv_general: rhs input features 2 != lhs features 6 / groups 2 (lhs f32[1,6,5,5], rhs f32[8,2,3,3])',
    );
    expect(() => conv(f32([1, 6, 5, 5]), f32([7, 3, 3, 3]), cp({ featureGroupCount: 2 }))).toThrow(/rhs output features 7 are not divisible by feature_group_count 2/);
    expect(() => conv(f32([3, 2, 5, 5]), f32([4, 2, 3, 3]), cp({ batchGroupCount: 2 }))).toThrow(/lhs batch 3 is not divisible by batch_group_count 2/);
    expect(() => conv(f32([4, 2, 5, 5]), f32([3, 2, 3, 3]), cp({ batchGroupCount: 2 }))).toThrow(/rhs output features 3 are not divisible by batch_group_count 2/);
    expect(() => conv(f32([1, 3, 5, 5]), f32([4, 4, 3, 3]), cp())).toThrow(/rhs input features 4 != lhs features 3 \(lhs f32\[1,3,5,5\]/);
  });

  it('conv_general: wrong ranks, layouts, windows and dtypes', () => {
    expect(() => conv(f32([1, 3, 5, 5]), f32([4, 3, 3]), cp())).toThrow(/conv_general: lhs and rhs ranks differ \(4 vs 3\) \(lhs f32\[1,3,5,5\], rhs f32\[4,3,3\]\)/);
    expect(() => conv(f32([1, 3, 5]), f32([4, 3, 3]), cp())).toThrow(/conv_general: dims.lhs \[0,1,2,3\] is not a permutation of the 3 axes/);
    expect(() => conv(f32([1, 3, 5, 5]), f32([4, 3, 3, 3]), cp({ windowStrides: [1] }))).toThrow(/windowStrides \[1\] must be 2 positive integers/);
    expect(() => conv(f32([1, 3, 5, 5]), f32([4, 3, 3, 3]), cp({ rhsDilation: [0, 1] }))).toThrow(/rhsDilation/);
    expect(() => conv(f32([1, 3, 5, 5]), f32([4, 3, 3, 3]), cp({ padding: [[-3, -3], [0, 0]] }))).toThrow(/padding \(-3, -3\) crops spatial dimension 0/);
    expect(() => conv(f32([1, 3, 5, 5]), ops.zeros([4, 3, 3, 3], 'f64'), cp())).toThrow(/conv_general: dtypes differ/);
    expect(() => conv(f32([2, 4, 5, 5]), f32([4, 2, 3, 3]), cp({ featureGroupCount: 2, batchGroupCount: 2 }))).toThrow(/cannot both exceed 1/);
    expect(() => ops.conv2d(f32([1, 3, 5]), f32([4, 3, 3, 3]))).toThrow(/conv2d: expected 4-D/);
    // a window larger than the input gives an empty output, as in JAX
    expect(conv(f32([1, 3, 2, 2]), f32([4, 3, 3, 3]), cp()).shape).toEqual([1, 4, 0, 0]);
  });

  it('dot_general: mismatched contracting and batch dims, bad axes, dtypes', () => {
    expect(() => ops.dotGeneral(f32([2, 3]), f32([4, 5]), [[1], [0]])).toThrow(
      'dot_general: contracting dimensions differ: lhs f32[2,3] axis 1 (3) vs rhs f32[4,5] axis 0 (4)',
    );
    expect(() => ops.dotGeneral(f32([2, 3, 4]), f32([5, 4, 6]), [[2], [1]], [[0], [0]])).toThrow(
      'dot_general: batch dimensions differ: lhs f32[2,3,4] axis 0 (2) vs rhs f32[5,4,6] axis 0 (5)',
    );
    expect(() => ops.dotGeneral(f32([2, 3]), f32([3, 2]), [[2], [0]])).toThrow(/dot_general: lhs contracting axis 2 is out of range for lhs f32\[2,3\] \(rank 2\)/);
    expect(() => ops.dotGeneral(f32([3, 3]), f32([3, 3]), [[0], [0]], [[0], [1]])).toThrow(/dot_general: lhs axis 0 is used more than once/);
    expect(() => ops.dotGeneral(f32([2, 3]), f32([3, 2]), [[1, 0], [0]])).toThrow(/contracting dimensions \[1,0\] and \[0\] have different lengths/);
    expect(() => ops.dotGeneral(f32([2, 3]), ops.zeros([3, 2], 'f64'), [[1], [0]])).toThrow(/dot_general: dtypes differ: lhs f32\[2,3\] vs rhs f64\[3,2\]/);
    expect(() => ops.dotGeneral(ops.zeros([2, 3], 'bool'), ops.zeros([3, 2], 'bool'), [[1], [0]])).toThrow(/dot_general: bool operands are not supported/);
    expect(() => ops.matmul(f32([2, 3]), f32([4, 5]))).toThrow(/matmul: inner dimensions differ/);
  });
});
