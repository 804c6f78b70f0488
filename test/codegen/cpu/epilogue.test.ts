/**
 * CPU backend, matmul epilogues compiled to WebAssembly SIMD (wasm_epilogue.ts): plain, bias,
 * bias + GELU, residual adds, max/min/select, per-row scalars, several outputs, N not a multiple
 * of the vector width, 1-element edges, several row chunks / column blocks / K blocks, batches.
 * Each kernel is compiled three ways: the JavaScript epilogue (wasmEpilogue: false), f64x2
 * lanes (must match it bit for bit: same operations in double precision, one rounding at the
 * store) and the default f32x4 lanes (every operation rounded to f32: within a few f32 ulp of
 * it); all three are checked against a float64 evaluation with the host erf. Epilogues the
 * wasm path cannot express (tanh, transposed stores, strided loads) fall back to JavaScript.
 */
import { AX } from '../../../src/codegen/kernel/axis.js';
import { describe, expect, it } from 'vitest';
import { createCpuDevice, type CpuExecutable } from '../../../src/codegen/cpu/device.js';
import { ERF_P, ERF_Q } from '../../../src/codegen/lower/expr_rules.js';
import { wasmSimdAvailable } from '../../../src/codegen/cpu/wasm.js';
import type { Idx } from '../../../src/codegen/kernel/index_expr.js';
import type { KernelGraph, KernelOutput, MatmulKernel, SExpr } from '../../../src/codegen/kernel/kernel_graph.js';
import { castScalar } from '../../../src/ir/dtype.js';
import { HostArray } from '../../../src/ir/host.js';
import { erf as hostErf } from '../../../src/ir/hostmath.js';
import { acc, bin, buf, cast, cmp, cst, expectClose, f32tol, ic, ld, lin, mulberry32, randArray, sel, simplePlan, un, v } from './util.js';

const JS = createCpuDevice({ wasmEpilogue: false });
const F64 = createCpuDevice({ wasmEpilogue: 'f64x2' });
const F32 = createCpuDevice();

const gelu = (x: SExpr): SExpr => bin('mul', bin('mul', x, cst(0.5)), bin('add', cst(1), un('erf', bin('mul', x, cst(Math.SQRT1_2)))));

interface Extra {
  readonly id: number;
  readonly size: number;
  /** Values (default: uniform in [-1, 1]). */
  readonly data?: Float32Array;
}

interface Out {
  readonly buf: number;
  readonly size: number;
  readonly index: Idx;
  readonly expr: SExpr;
}

interface MmCase {
  readonly name: string;
  readonly batch?: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  /** B has a batch dimension. */
  readonly bBatched?: boolean;
  /** Input buffers beyond A (0) and B (1), ids from 2. */
  readonly extra?: readonly Extra[];
  readonly outputs: (c: { m: number; n: number; batch: number }) => readonly Out[];
  /** The expected path: computed in wasm ('wasm'), copied only ('copy') or JavaScript ('js'). */
  readonly path: 'wasm' | 'copy' | 'js';
  readonly A?: Float32Array;
  readonly B?: Float32Array;
}

function build(c: MmCase): { g: KernelGraph; inputs: HostArray[]; outs: readonly Out[] } {
  const batch = c.batch ?? 1;
  const { m, n, k } = c;
  const rng = mulberry32(c.name.length * 7919 + m * 31 + n);
  const bSize = (c.bBatched ? batch : 1) * k * n;
  const outs = c.outputs({ m, n, batch });
  const extra = c.extra ?? [];
  const kern: MatmulKernel = {
    kind: 'matmul',
    name: `mm_${c.name.replace(/\W/g, '_')}`,
    batch,
    m,
    n,
    k,
    dtype: 'f32',
    a: { kind: 'strided', buf: 0, offset: 0, strides: [m * k, k, 1] },
    b: { kind: 'strided', buf: 1, offset: 0, strides: [c.bBatched ? k * n : 0, n, 1] },
    outputs: outs.map((o): KernelOutput => ({ buf: o.buf, index: o.index, expr: o.expr })),
  };
  const g: KernelGraph = {
    buffers: [buf(0, 'f32', batch * m * k, 'input'), buf(1, 'f32', bSize, 'input'), ...extra.map((e) => buf(e.id, 'f32', e.size, 'input')), ...outs.map((o) => buf(o.buf, 'f32', o.size, 'output'))],
    kernels: [kern],
    inputs: [0, 1, ...extra.map((e) => e.id)],
    outputs: outs.map((o) => ({ kind: 'buffer' as const, buf: o.buf, shape: [o.size], dtype: 'f32' as const })),
    consts: [],
  };
  const inputs = [
    c.A ? new HostArray('f32', [c.A.length], c.A) : randArray('f32', [batch * m * k], rng),
    c.B ? new HostArray('f32', [c.B.length], c.B) : randArray('f32', [bSize], rng),
    ...extra.map((e) => (e.data ? new HostArray('f32', [e.size], e.data) : randArray('f32', [e.size], rng))),
  ];
  return { g, inputs, outs };
}

function evalIdx(x: Idx, env: Readonly<Record<string, number>>): number {
  let s = x.c;
  for (const t of x.terms) {
    const a = t.atom;
    let val: number;
    if (a.k === 'var') val = env[a.axis.name]!;
    else if (a.k === 'div') val = Math.floor(evalIdx(a.a, env) / a.d);
    else val = ((evalIdx(a.a, env) % a.d) + a.d) % a.d;
    s += t.coef * val;
  }
  return s;
}

/** The epilogue in float64 (host erf), with JavaScript's max/min/select semantics. */
function evalExpr(e: SExpr, env: Readonly<Record<string, number>>, accv: number, data: ReadonlyMap<number, ArrayLike<number>>): number {
  const go = (x: SExpr): number => evalExpr(x, env, accv, data);
  switch (e.op) {
    case 'const':
      return castScalar(e.value, e.dtype);
    case 'acc':
      return accv;
    case 'load':
      return data.get(e.buf)![evalIdx(e.index, env)]!;
    case 'cast':
      return go(e.a);
    case 'unary': {
      const a = go(e.a);
      const f: Partial<Record<string, (x: number) => number>> = { neg: (x) => -x, abs: Math.abs, sqrt: Math.sqrt, rsqrt: (x) => 1 / Math.sqrt(x), erf: hostErf, tanh: Math.tanh, exp: Math.exp };
      return f[e.fn]!(a);
    }
    case 'binary': {
      const a = go(e.a);
      const b = go(e.b);
      const f: Partial<Record<string, () => number>> = { add: () => a + b, sub: () => a - b, mul: () => a * b, div: () => a / b, max: () => (a > b || a !== a ? a : b), min: () => (a < b || a !== a ? a : b) };
      return f[e.fn]!();
    }
    case 'cmp': {
      const a = go(e.a);
      const b = go(e.b);
      const f: Record<string, boolean> = { eq: a === b, ne: a !== b, lt: a < b, le: a <= b, gt: a > b, ge: a >= b };
      return f[e.fn] ? 1 : 0;
    }
    case 'select':
      return go(e.c) ? go(e.a) : go(e.b);
    default:
      throw new Error(`evalExpr: ${e.op}`);
  }
}

function reference(c: MmCase, inputs: readonly HostArray[], outs: readonly Out[]): Float64Array[] {
  const batch = c.batch ?? 1;
  const { m: M, n: N, k: K } = c;
  const A = inputs[0]!.data;
  const B = inputs[1]!.data;
  const data = new Map<number, ArrayLike<number>>((c.extra ?? []).map((e, i) => [e.id, inputs[2 + i]!.data as ArrayLike<number>]));
  const res = outs.map((o) => new Float64Array(o.size));
  for (let b = 0; b < batch; b++)
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A[(b * M + m) * K + k]! * B[(c.bBatched ? b * K * N : 0) + k * N + n]!;
        const env = { b, m, n };
        outs.forEach((o, i) => (res[i]![evalIdx(o.index, env)] = evalExpr(o.expr, env, s, data)));
      }
  return res;
}

const same = (a: number, b: number): boolean => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

function expectBitwise(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) if (!same(got[i]!, want[i]!)) throw new Error(`${what}: differs at ${i}: ${got[i]} vs ${want[i]}`);
}

function compile(dev: typeof JS, g: KernelGraph): CpuExecutable {
  return dev.compile(g, simplePlan(g)) as CpuExecutable;
}

/** Runs a case on the three paths and checks them against each other and the f64 reference. */
function check(c: MmCase): void {
  const { g, inputs, outs } = build(c);
  const exJs = compile(JS, g);
  const ex64 = compile(F64, g);
  const ex32 = compile(F32, g);
  // the expected path was taken
  expect(exJs.sources[0]).toContain('Ct[_cr + n]');
  for (const ex of [ex64, ex32]) {
    const src = ex.sources[0]!;
    if (c.path === 'js') {
      expect(src).toContain('Ct[_cr + n]');
      expect(src).not.toContain('G(1,');
    } else {
      expect(src).not.toContain('Ct[_cr + n]');
      expect(src.includes('G(1, _rows, _nc)')).toBe(c.path === 'wasm');
    }
  }
  const rJs = exJs.run(inputs);
  const r64 = ex64.run(inputs);
  const r32 = ex32.run(inputs);
  // run again: staging and in-place Ct reuse must not leak between calls
  const r32b = ex32.run(inputs);
  const ref = reference(c, inputs, outs);
  const tol = f32tol(c.k);
  outs.forEach((o, i) => {
    const js = rJs[i]!.data;
    expectBitwise(r64[i]!.data, js, `${c.name} out ${i}: f64x2 vs JavaScript`);
    expectBitwise(r32b[i]!.data, r32[i]!.data, `${c.name} out ${i}: f32x4 second run`);
    // f32x4 rounds each operation to f32: a few ulp (abs 1e-6 covers GELU's cancellation)
    expectClose(r32[i]!.data, js, 1e-6, 1e-6, `${c.name} out ${i}: f32x4 vs JavaScript`);
    expectClose(js, ref[i]!, tol, tol, `${c.name} out ${i}: JavaScript vs f64`);
    expectClose(r32[i]!.data, ref[i]!, tol, tol, `${c.name} out ${i}: f32x4 vs f64`);
  });
}

const rowMajor = (batch: number, m: number, n: number): Idx => lin(['b', 'm', 'n'], [batch, m, n]);
const one = (expr: (o: { m: number; n: number; batch: number }) => SExpr) => (s: { m: number; n: number; batch: number }): Out[] => [{ buf: 10, size: s.batch * s.m * s.n, index: rowMajor(s.batch, s.m, s.n), expr: expr(s) }];
const bias = (id = 2): SExpr => ld(id, v('n'));
const resid = (s: { m: number; n: number; batch: number }, id = 3): SExpr => ld(id, rowMajor(s.batch, s.m, s.n));

const CASES: MmCase[] = [
  { name: 'plain 7x13 k5', m: 7, n: 13, k: 5, outputs: one(() => acc(0)), path: 'copy' },
  { name: 'plain contiguous 70x16 k9', m: 70, n: 16, k: 9, outputs: one(() => acc(0)), path: 'copy' },
  { name: 'bias 1x1 k1', m: 1, n: 1, k: 1, extra: [{ id: 2, size: 1 }], outputs: one(() => bin('add', acc(0), bias())), path: 'wasm' },
  { name: 'bias 3x5 k2', m: 3, n: 5, k: 2, extra: [{ id: 2, size: 5 }], outputs: one(() => bin('add', acc(0), bias())), path: 'wasm' },
  { name: 'bias+gelu 37x21 k19', m: 37, n: 21, k: 19, extra: [{ id: 2, size: 21 }], outputs: one(() => gelu(bin('add', acc(0), bias()))), path: 'wasm' },
  { name: 'bias+gelu 130x40 k40 (row chunks)', m: 130, n: 40, k: 40, extra: [{ id: 2, size: 40 }], outputs: one(() => gelu(bin('add', acc(0), bias()))), path: 'wasm' },
  {
    name: 'bias+residual b2 9x6 k300',
    batch: 2,
    m: 9,
    n: 6,
    k: 300,
    extra: [
      { id: 2, size: 6 },
      { id: 3, size: 2 * 9 * 6 },
    ],
    outputs: one((s) => bin('add', resid(s), bin('add', acc(0), bias()))),
    path: 'wasm',
  },
  {
    name: 'gelu+residual 70x40 k33',
    m: 70,
    n: 40,
    k: 33,
    extra: [{ id: 3, size: 70 * 40 }],
    outputs: one((s) => bin('add', gelu(acc(0)), resid(s))),
    path: 'wasm',
  },
  {
    name: 'relu, leaky select, min 19x11 k7',
    m: 19,
    n: 11,
    k: 7,
    extra: [{ id: 2, size: 11 }],
    outputs: (s) => [
      { buf: 10, size: s.m * s.n, index: rowMajor(1, s.m, s.n), expr: bin('max', bin('add', acc(0), bias()), cst(0)) },
      { buf: 11, size: s.m * s.n, index: rowMajor(1, s.m, s.n), expr: sel(cmp('gt', acc(0), cst(0)), acc(0), bin('mul', acc(0), cst(0.01))) },
      { buf: 12, size: s.m * s.n, index: rowMajor(1, s.m, s.n), expr: bin('min', acc(0), bias()) },
    ],
    path: 'wasm',
  },
  {
    name: 'per-row and scalar loads b3 10x9 k4',
    batch: 3,
    m: 10,
    n: 9,
    k: 4,
    extra: [
      { id: 2, size: 30 },
      { id: 3, size: 4 },
    ],
    // acc * rowscale[b, m] - shift[2]
    outputs: one((s) => bin('sub', bin('mul', acc(0), ld(2, lin(['b', 'm'], [s.batch, s.m]))), ld(3, ic(2)))),
    path: 'wasm',
  },
  {
    name: 'three outputs (acc, gelu, bias) 67x20 k12',
    m: 67,
    n: 20,
    k: 12,
    extra: [{ id: 2, size: 20 }],
    outputs: (s) => [
      { buf: 10, size: s.m * s.n, index: rowMajor(1, s.m, s.n), expr: acc(0) },
      { buf: 11, size: s.m * s.n, index: rowMajor(1, s.m, s.n), expr: gelu(bin('add', acc(0), bias())) },
      { buf: 12, size: s.m * s.n, index: rowMajor(1, s.m, s.n), expr: bin('add', acc(0), bias()) },
    ],
    path: 'wasm',
  },
  {
    name: 'column blocks and K blocks 70x600 k400',
    m: 70,
    n: 600,
    k: 400,
    extra: [
      { id: 2, size: 600 },
      { id: 3, size: 70 * 600 },
    ],
    outputs: one((s) => bin('add', gelu(bin('add', acc(0), bias())), resid(s))),
    path: 'wasm',
  },
  {
    name: 'padded output rows, strided residual rows 23x12 k6',
    m: 23,
    n: 12,
    k: 6,
    extra: [{ id: 3, size: 23 * 24 + 5 }],
    // out[m * 17 + n + 2] = acc + resid[m * 24 + 5 + n]
    outputs: (s) => [{ buf: 10, size: s.m * 17 + 2, index: { c: 2, terms: lin(['m', 'n'], [s.m, 17]).terms }, expr: bin('add', acc(0), ld(3, { c: 5, terms: lin(['m', 'n'], [s.m, 24]).terms })) }],
    path: 'wasm',
  },
  {
    name: 'batched B, per-batch bias b2 11x10 k8',
    batch: 2,
    m: 11,
    n: 10,
    k: 8,
    bBatched: true,
    extra: [
      { id: 2, size: 20 },
      { id: 3, size: 2 * 11 * 10 },
    ],
    outputs: one((s) => gelu(bin('add', bin('add', acc(0), ld(2, lin(['b', 'n'], [s.batch, s.n]))), resid(s)))),
    path: 'wasm',
  },
  {
    name: 'unary and compare coverage 13x7 k3',
    m: 13,
    n: 7,
    k: 3,
    extra: [{ id: 2, size: 7 }],
    outputs: (s) => {
      const x = bin('add', acc(0), bias());
      const idx = rowMajor(1, s.m, s.n);
      const exprs: SExpr[] = [
        un('neg', x),
        un('abs', x),
        un('sqrt', un('abs', x)),
        un('rsqrt', bin('add', un('abs', x), cst(1))),
        bin('div', bin('sub', acc(0), bias()), bin('add', un('abs', bias()), cst(0.5))),
        cast(bin('mul', x, x), 'f32'),
        un('erf', bin('mul', x, cst(3))),
        ...(['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const).map((f) => sel(cmp(f, acc(0), bias()), acc(0), bias())),
      ];
      return exprs.map((expr, i) => ({ buf: 10 + i, size: s.m * s.n, index: idx, expr }));
    },
    path: 'wasm',
  },
  // not expressible: JavaScript epilogue
  { name: 'tanh falls back 9x10 k4', m: 9, n: 10, k: 4, outputs: one(() => un('tanh', acc(0))), path: 'js' },
  { name: 'exp falls back 5x6 k3', m: 5, n: 6, k: 3, outputs: one(() => un('exp', bin('mul', acc(0), cst(0.5)))), path: 'js' },
  { name: 'transposed store falls back 8x6 k5', m: 8, n: 6, k: 5, outputs: (s) => [{ buf: 10, size: s.m * s.n, index: lin(['n', 'm'], [s.n, s.m]), expr: bin('mul', acc(0), cst(2)) }], path: 'js' },
  { name: 'stride-2 load falls back 6x5 k4', m: 6, n: 5, k: 4, extra: [{ id: 2, size: 10 }], outputs: one(() => bin('add', acc(0), ld(2, { c: 0, terms: [{ coef: 2, atom: { k: 'var', axis: AX.n } }] }))), path: 'js' },
  {
    name: 'mixed supported and unsupported outputs fall back 7x9 k3',
    m: 7,
    n: 9,
    k: 3,
    outputs: (s) => [
      { buf: 10, size: s.m * s.n, index: rowMajor(1, s.m, s.n), expr: gelu(acc(0)) },
      { buf: 11, size: s.m * s.n, index: rowMajor(1, s.m, s.n), expr: un('tanh', acc(0)) },
    ],
    path: 'js',
  },
];

/** The f32 erf of src/codegen/lower/expr_rules.ts as the CPU computes it: f32 coefficients, the polynomial in float64, rounded once when stored. */
const P32 = ERF_P.map(Math.fround);
const Q32 = ERF_Q.map(Math.fround);
function erf32(x: number): number {
  if (x >= 4) return 1;
  if (x <= -4) return -1;
  const u = x * x;
  const horner = (cs: readonly number[]): number => cs.slice(1).reduce((acc, c) => acc * u + c, cs[0]!);
  return Math.min(1, Math.max(-1, (x * horner(P32)) / horner(Q32)));
}

describe('matmul epilogues in WebAssembly SIMD', () => {
  it('WebAssembly SIMD is available here', () => {
    expect(wasmSimdAvailable()).toBe(true);
  });

  for (const c of CASES) it(c.name, () => check(c));

  it('the f32 erf rule (x P(x^2) / Q(x^2) with f32 coefficients, +-1 beyond 4) is within 7.5e-7 of the float64 erf', () => {
    let worst = 0;
    for (let i = -60000; i <= 60000; i++) worst = Math.max(worst, Math.abs(erf32(i / 10000) - hostErf(i / 10000)));
    expect(worst).toBeLessThan(7.5e-7);
    expect(erf32(4)).toBe(1);
    expect(erf32(-4)).toBe(-1);
  });

  it('erf matches erf32 bit for bit (f64x2) and within 3 f32 ulp of 1 (f32x4), clamping at |x| >= 4', () => {
    // acc = 1 * x exactly (K = 1): a dense grid over [-6, 6] plus the clamp edges and specials
    const xs: number[] = [];
    for (let i = -60000; i <= 60000; i += 7) xs.push(Math.fround(i / 10000));
    xs.push(4, -4, Math.fround(4 - 1e-6), Math.fround(-4 + 1e-6), 0, -0, Infinity, -Infinity, NaN, 1e-30, -1e-30);
    const N = xs.length;
    const c: MmCase = { name: 'erf grid', m: 1, n: N, k: 1, A: Float32Array.of(1), B: Float32Array.from(xs), outputs: one(() => un('erf', acc(0))), path: 'wasm' };
    const { g, inputs } = build(c);
    const [js] = compile(JS, g).run(inputs);
    const [w64] = compile(F64, g).run(inputs);
    const [w32] = compile(F32, g).run(inputs);
    // (the GEMM accumulates from +0, so acc is +0 for x = -0)
    const want = Float32Array.from(xs, (x) => erf32(x + 0)); // rounded once, as the JavaScript and f64x2 paths
    // erf stays within [-1, 1] (the rounded coefficients pass -1 by an ulp near x = -4 unclamped)
    for (const r of [js!, w64!, w32!]) for (const y of r.data) if (Math.abs(y) > 1) throw new Error(`erf gave ${y}`);
    expectBitwise(js!.data, want, 'JavaScript erf');
    expectBitwise(w64!.data, want, 'f64x2 erf');
    for (let i = 0; i < N; i++) {
      const d = Math.abs(w32!.data[i]! - want[i]!);
      if (!(d <= 3 * 2 ** -24 * 2) && !same(w32!.data[i]!, want[i]!)) throw new Error(`f32x4 erf(${xs[i]}) = ${w32!.data[i]}, erf32 ${want[i]}`);
      if (Math.abs(xs[i]!) >= 4) expect(w32!.data[i]).toBe(Math.sign(xs[i]!));
    }
  });

  it('NaN, infinities and signed zeros: max/min/select keep the JavaScript semantics', () => {
    // A has a zero row (acc = +0), a NaN row and an infinite row; bias has -0, +0, NaN, +-Inf
    const M = 4;
    const K = 2;
    const N = 7;
    const A = Float32Array.from([0, 0, NaN, 1, Infinity, 1, 0.5, -0.25]);
    const B = Float32Array.from({ length: K * N }, (_, i) => (i % 3) - 1);
    const biasv = Float32Array.from([-0, 0, NaN, Infinity, -Infinity, 2, -3]);
    const c: MmCase = {
      name: 'specials',
      m: M,
      n: N,
      k: K,
      A,
      B,
      extra: [{ id: 2, size: N, data: biasv }],
      outputs: (s) => {
        const idx = rowMajor(1, s.m, s.n);
        const exprs: SExpr[] = [
          bin('max', acc(0), bias()),
          bin('min', acc(0), bias()),
          bin('max', bias(), acc(0)),
          bin('min', bias(), acc(0)),
          sel(cmp('ge', acc(0), bias()), bias(), acc(0)),
          gelu(bin('add', acc(0), bias())),
          un('neg', bias()),
        ];
        return exprs.map((expr, i) => ({ buf: 10 + i, size: s.m * s.n, index: idx, expr }));
      },
      path: 'wasm',
    };
    const { g, inputs } = build(c);
    const rJs = compile(JS, g).run(inputs);
    const r64 = compile(F64, g).run(inputs);
    const r32 = compile(F32, g).run(inputs);
    rJs.forEach((r, i) => {
      expectBitwise(r64[i]!.data, r.data, `specials out ${i} f64x2`);
      // exact operations (max/min/select/neg) agree bit for bit in f32 lanes too
      if (i !== 5) expectBitwise(r32[i]!.data, r.data, `specials out ${i} f32x4`);
      else for (let j = 0; j < r.data.length; j++) expect(Number.isNaN(r32[i]!.data[j]!)).toBe(Number.isNaN(r.data[j]!));
    });
    // max(+0, -0) is -0 as in JavaScript's `a > b || a !== a ? a : b`
    expect(Object.is(r32[0]!.data[0], -0)).toBe(true);
  });

  it('threads: split kernels with a wasm epilogue compute what one thread computes', () => {
    const c: MmCase = {
      name: 'threads',
      m: 300,
      n: 48,
      k: 64,
      extra: [
        { id: 2, size: 48 },
        { id: 3, size: 300 * 48 },
      ],
      outputs: one((s) => bin('add', gelu(bin('add', acc(0), bias())), resid(s))),
      path: 'wasm',
    };
    const { g, inputs } = build(c);
    const ex1 = compile(F32, g);
    const ex2 = compile(createCpuDevice({ threads: 2, splitMinWork: 1 }), g);
    const r1 = ex1.run(inputs);
    const r2 = ex2.run(inputs);
    expect(ex2.splitKernels).toEqual([0]);
    expectBitwise(r2[0]!.data, r1[0]!.data, 'two threads vs one');
  });
});
