/**
 * CPU backend, loop kernels: scalar semantics equal the host implementations op by op (integer
 * wrapping, NaN handling in max/min, round half to even, erf, casts, f16 stores), reductions
 * (sum/max/min, over inner and outer axes), a multi-phase LayerNorm kernel, hoisting of
 * loop-invariant loads, and the (start, end) range split.
 */
import { AX } from '../../../src/codegen/kernel/axis.js';
import { describe, expect, it } from 'vitest';
import { cpuDevice, createCpuDevice, instantiateKernel } from '../../../src/codegen/cpu/device.js';
import { bufferDtypes, emitKernel, type JsKernelCode } from '../../../src/codegen/cpu/emit.js';
import { idx } from '../../../src/codegen/kernel/index_expr.js';
import type { KernelGraph, LoopKernel, ReduceOp, SExpr } from '../../../src/codegen/kernel/kernel_graph.js';
import { allocHost, castScalar, type DType, isFloat } from '../../../src/ir/dtype.js';
import { HostArray } from '../../../src/ir/host.js';
import { erf } from '../../../src/ir/hostmath.js';
import type { PrimName } from '../../../src/ir/primitive.js';
import { PRIMS } from '../../../src/ir/primitives/index.js';
import { acc, bin, buf, cast, cmp, cst, expectClose, f32tol, ixv, ld, lin, mulberry32, randArray, sel, simplePlan, un, v } from './util.js';

const SPECIAL: Readonly<Record<DType, readonly number[]>> = {
  f32: [0, -0, 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 3.5, 0.1, -7.75, 100, 1e-7, 3.0e38, NaN, Infinity, -Infinity, 2, 3, 0.3, 5.5, -1e-3],
  f64: [0, -0, 1, -1, 0.5, -0.5, 1.5, 2.5, -2.5, 3.5, 0.1, -7.75, 100, 1e-300, 1e300, NaN, Infinity, -Infinity, 2, 3, 0.3, 5.5, -1e-3],
  f16: [0, 1, -1, 0.5, 1.5, 2.5, -2.5, 0.099975586, 100, 65504, NaN, Infinity, 2, 3],
  bf16: [0, 1, -1, 0.5, 1.5, 2.5, -2.5, 100, NaN, Infinity, 2, 3],
  i32: [0, 1, -1, 2, 3, 7, -7, 31, 32, 33, -32, 100000, 2147483647, -2147483648, 65536, -65537, 12345],
  u32: [0, 1, 2, 3, 7, 31, 32, 33, 100000, 4294967295, 2147483648, 2147483647, 65536, 12345],
  bool: [0, 1],
};

const UNARY = ['neg', 'exp', 'log', 'log1p', 'expm1', 'sin', 'cos', 'tanh', 'logistic', 'sqrt', 'rsqrt', 'erf', 'abs', 'sign', 'floor', 'ceil', 'round', 'not'] as const;
const BINARY = ['add', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'rem', 'and', 'or', 'xor', 'shift_left', 'shift_right_logical'] as const;
const CMPS = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;
const DTYPES_ALL: DType[] = ['f32', 'f64', 'i32', 'u32', 'bool', 'f16', 'bf16'];

function accepts(prim: string, avals: { shape: number[]; dtype: DType }[], params: unknown = {}): boolean {
  try {
    (PRIMS[prim as PrimName].shape as (i: unknown, p: unknown) => unknown)(avals, params);
    return true;
  } catch {
    return false;
  }
}

function hostArr(dtype: DType, values: readonly number[]): HostArray {
  const d = allocHost(dtype, values.length);
  values.forEach((x, i) => (d[i] = castScalar(x, dtype)));
  return new HostArray(dtype, [values.length], d);
}

/** Runs out[o0] = expr(in0[o0], in1[o0], ...) through the device. */
function runElementwise(inputs: HostArray[], outDtype: DType, expr: (loads: SExpr[]) => SExpr): HostArray {
  const n = inputs[0]!.size;
  const loads = inputs.map((a, i) => ld(i, v('o0'), a.dtype));
  const outId = inputs.length;
  const k: LoopKernel = { kind: 'loop', name: 'ew', outer: [n], row: [], reductions: [], outerOutputs: [{ buf: outId, index: v('o0'), expr: expr(loads) }], rowOutputs: [] };
  const g: KernelGraph = {
    buffers: [...inputs.map((a, i) => buf(i, a.dtype, n, 'input')), buf(outId, outDtype, n, 'output')],
    kernels: [k],
    inputs: inputs.map((_, i) => i),
    outputs: [{ kind: 'buffer', buf: outId, shape: [n], dtype: outDtype }],
    consts: [],
  };
  return cpuDevice.compile(g, simplePlan(g)).run(inputs)[0]!;
}

function sameBits(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  for (let i = 0; i < want.length; i++) {
    const a = got[i]!;
    const b = want[i]!;
    if (!(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)))) throw new Error(`${what}[${i}]: got ${a}, host ${b}`);
  }
}

describe('scalar semantics equal the host implementation', () => {
  it('unary ops, every accepted dtype', () => {
    let checked = 0;
    for (const fn of UNARY) {
      for (const dt of DTYPES_ALL) {
        if (!accepts(fn, [{ shape: [1], dtype: dt }])) continue;
        const x = hostArr(dt, SPECIAL[dt]);
        const want = PRIMS[fn].impl([x], {} as never, { wide: false })[0]!;
        const got = runElementwise([x], dt, ([a]) => un(fn, a!));
        if (dt === 'f16' || dt === 'bf16') expectClose(got.data, want.data, 1e-3, 0, `${fn}:${dt}`);
        else if (fn === 'erf' && dt === 'f64') expectClose(got.data, want.data, 1e-14, 0, `${fn}:${dt}`);
        else if (fn === 'erf') expectClose(got.data, want.data, 0, 8e-7, `${fn}:${dt}`); // erf32: rational approximation
        else sameBits(got.data, want.data, `${fn}:${dt}`);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('binary ops and comparisons, every accepted dtype, all pairs of special values', () => {
    let checked = 0;
    for (const dt of DTYPES_ALL) {
      const s = SPECIAL[dt];
      const xs: number[] = [];
      const ys: number[] = [];
      for (const a of s) for (const b of s) (xs.push(a), ys.push(b));
      const x = hostArr(dt, xs);
      const y = hostArr(dt, ys);
      for (const fn of BINARY) {
        if (!accepts(fn, [{ shape: [1], dtype: dt }, { shape: [1], dtype: dt }])) continue;
        const want = PRIMS[fn].impl([x, y], {} as never, { wide: false })[0]!;
        const got = runElementwise([x, y], dt, ([a, b]) => bin(fn, a!, b!));
        if (dt === 'f16' || dt === 'bf16') expectClose(got.data, want.data, 1e-2, 0, `${fn}:${dt}`);
        else sameBits(got.data, want.data, `${fn}:${dt}`);
        checked++;
      }
      for (const fn of CMPS) {
        const want = PRIMS[fn].impl([x, y], {} as never, { wide: false })[0]!;
        const got = runElementwise([x, y], 'bool', ([a, b]) => cmp(fn, a!, b!));
        sameBits(got.data, want.data, `${fn}:${dt}`);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(80);
  });

  it('select and every cast', () => {
    for (const from of DTYPES_ALL) {
      const x = hostArr(from, SPECIAL[from]);
      for (const to of DTYPES_ALL) {
        const want = PRIMS.cast.impl([x], { dtype: to }, { wide: false })[0]!;
        const got = runElementwise([x], to, ([a]) => cast(a!, to));
        sameBits(got.data, want.data, `cast ${from}->${to}`);
      }
      const p = hostArr('bool', SPECIAL[from].map((_, i) => i % 3 === 0 ? 1 : 0));
      const y = hostArr(from, [...SPECIAL[from]].reverse());
      const want = PRIMS.select.impl([p, x, y], {} as never, { wide: false })[0]!;
      const got = runElementwise([p, x, y], from, ([c, a, b]) => sel(c!, a!, b!));
      sameBits(got.data, want.data, `select:${from}`);
    }
  });

  it('erf agrees with the host erf: ~4e-15 relative in f64, within 7.3e-7 (erf32) in f32', () => {
    const xs = Array.from({ length: 200001 }, (_, i) => -7 + (14 * i) / 200000);
    xs.push(0, -0, 1e-300, -1e-12, 1e-5, 0.125, 6, -6, Infinity, -Infinity, NaN);
    const got = runElementwise([hostArr('f64', xs)], 'f64', ([a]) => un('erf', a!));
    expectClose(got.data, Float64Array.from(xs, erf), 1e-14, 0, 'erf f64');
    expect(Object.is(got.data[xs.length - 10], -0)).toBe(true);
    const got32 = runElementwise([hostArr('f32', xs)], 'f32', ([a]) => un('erf', a!));
    expectClose(got32.data, Float32Array.from(xs, (t) => erf(Math.fround(t))), 0, 7.5e-7, 'erf f32');
    // exact at the ends, signed zero and NaN kept
    expect(Array.from(runElementwise([hostArr('f32', [4, -4, 1e9, -Infinity, -0])], 'f32', ([a]) => un('erf', a!)).data)).toEqual([1, -1, 1, -1, -0]);
    expect(Number.isNaN(runElementwise([hostArr('f32', [NaN])], 'f32', ([a]) => un('erf', a!)).data[0])).toBe(true);
    // the exact option calls the host's function
    const k = { kind: 'loop', name: 'e', outer: [xs.length], row: [], reductions: [], outerOutputs: [{ buf: 1, index: v('o0'), expr: un('erf', ld(0, v('o0'), 'f64')) }], rowOutputs: [] } as LoopKernel;
    const g: KernelGraph = { buffers: [buf(0, 'f64', xs.length, 'input'), buf(1, 'f64', xs.length, 'output')], kernels: [k], inputs: [0], outputs: [{ kind: 'buffer', buf: 1, shape: [xs.length], dtype: 'f64' }], consts: [] };
    const exact = createCpuDevice({ exactErf: true }).compile(g, simplePlan(g)).run([hostArr('f64', xs)])[0]!;
    sameBits(exact.data, Float64Array.from(xs, erf), 'exact erf');
  });

  it('constants keep their dtype (f32 rounding, -0, NaN, infinities) and index values work', () => {
    const x = hostArr('f64', [1, 2, 3, 4]);
    const got = runElementwise([x], 'f64', ([a]) => bin('add', bin('mul', a!, cst(0.1, 'f64')), cast(cst(0.1, 'f32'), 'f64')));
    sameBits(got.data, [1, 2, 3, 4].map((t) => t * 0.1 + Math.fround(0.1)), 'consts');
    const z = runElementwise([x], 'f64', () => cst(-0, 'f64'));
    expect(Object.is(z.data[0], -0)).toBe(true);
    const io = runElementwise([x], 'i32', () => bin('mul', ixv(v('o0')), cst(3, 'i32')));
    expect(Array.from(io.data)).toEqual([0, 3, 6, 9]);
  });

  it('f16 and bf16 stores round like castScalar', () => {
    const xs = Array.from({ length: 200 }, (_, i) => (i - 100) * 0.01237 + 1e-4 * i * i);
    const x = hostArr('f64', xs);
    for (const dt of ['f16', 'bf16'] as const) {
      const got = runElementwise([x], dt, ([a]) => cast(a!, dt));
      sameBits(got.data, xs.map((t) => castScalar(t, dt)), dt);
    }
  });
});

// ---------------------------------------------------------------------------------------
// reductions

function naiveReduce(op: ReduceOp, xs: number[]): number {
  let a = op === 'sum' ? 0 : op === 'max' ? -Infinity : Infinity;
  for (const x of xs) {
    if (op === 'sum') a += x;
    else if (op === 'max') a = x > a || Number.isNaN(x) ? x : a;
    else a = x < a || Number.isNaN(x) ? x : a;
  }
  return a;
}

function reduceGraph(shape: number[], axes: number[], op: ReduceOp, dtype: DType): KernelGraph {
  const outer = shape.filter((_, i) => !axes.includes(i));
  const row = axes.map((a) => shape[a]!);
  let oi = 0;
  let ri = 0;
  const vars = shape.map((_, i) => (axes.includes(i) ? `r${ri++}` : `o${oi++}`));
  const x = ld(0, lin(vars, shape), dtype);
  const k: LoopKernel = {
    kind: 'loop',
    name: `reduce_${op}`,
    outer,
    row,
    reductions: [{ id: 0, op, expr: x, dtype }],
    outerOutputs: [{ buf: 1, index: lin(outer.map((_, i) => `o${i}`), outer), expr: acc(0, dtype) }],
    rowOutputs: [],
  };
  const n = shape.reduce((a, b) => a * b, 1);
  const m = outer.reduce((a, b) => a * b, 1);
  return {
    buffers: [buf(0, dtype, n, 'input'), buf(1, dtype, m, 'output')],
    kernels: [k],
    inputs: [0],
    outputs: [{ kind: 'buffer', buf: 1, shape: outer, dtype }],
    consts: [],
  };
}

describe('reductions', () => {
  const cases: [number[], number[]][] = [
    [[7, 13], [1]],
    [[7, 13], [0]],
    [[3, 4, 5], [1]],
    [[3, 4, 5], [0, 2]],
    [[2, 3, 4, 5], [1, 2]],
    [[6], [0]],
    [[4, 0], [1]],
  ];
  for (const op of ['sum', 'max', 'min'] as const) {
    for (const dtype of ['f32', 'i32'] as const) {
      it(`${op} ${dtype} over various axes agrees with the host reduce`, () => {
        const rng = mulberry32(7);
        for (const [shape, axes] of cases) {
          const x = randArray(dtype, shape, rng, -50, 50);
          const g = reduceGraph(shape, axes, op, dtype);
          const got = cpuDevice.compile(g, simplePlan(g)).run([x])[0]!;
          const want = PRIMS[`reduce_${op}`].impl([x], { axes }, { wide: false })[0]!;
          expectClose(got.data, want.data, f32tol(x.size), 1e-5, `${op} ${shape} ${axes}`);
        }
      });
    }
  }

  it('max/min propagate NaN like the host', () => {
    const xs = [1, NaN, 3, -1, 5, 2, 2, NaN, NaN, 4, 0, -3];
    const x = hostArr('f32', xs);
    for (const op of ['max', 'min'] as const) {
      const g = reduceGraph([4, 3], [1], op, 'f32');
      const got = cpuDevice.compile(g, simplePlan(g)).run([x])[0]!;
      const want = [0, 1, 2, 3].map((r) => naiveReduce(op, xs.slice(r * 3, r * 3 + 3)));
      sameBits(got.data, Float32Array.from(want), op);
    }
  });

  it('i32 sums wrap like the host', () => {
    const x = new HostArray('i32', [2, 3], Int32Array.from([2147483647, 1, 5, -2147483648, -1, -7]));
    const g = reduceGraph([2, 3], [1], 'sum', 'i32');
    const got = cpuDevice.compile(g, simplePlan(g)).run([x])[0]!;
    const want = PRIMS.reduce_sum.impl([x], { axes: [1] }, { wide: false })[0]!;
    expect(Array.from(got.data)).toEqual(Array.from(want.data));
  });
});

// ---------------------------------------------------------------------------------------
// LayerNorm: one kernel, three phases

function layerNormGraph(R: number, C: number, eps: number): KernelGraph {
  const xi = lin(['o0', 'r0'], [R, C]);
  const x = ld(0, xi);
  const mean = bin('div', acc(0), cst(C));
  const d = bin('sub', x, mean);
  const rstd = un('rsqrt', bin('add', bin('div', acc(1), cst(C)), cst(eps)));
  const y = bin('add', bin('mul', bin('mul', d, rstd), ld(1, v('r0'))), ld(2, v('r0')));
  const k: LoopKernel = {
    kind: 'loop',
    name: 'layernorm',
    outer: [R],
    row: [C],
    reductions: [
      { id: 0, op: 'sum', expr: x, dtype: 'f32' },
      { id: 1, op: 'sum', expr: bin('mul', d, d), dtype: 'f32' },
    ],
    outerOutputs: [
      { buf: 4, index: v('o0'), expr: mean },
      { buf: 5, index: v('o0'), expr: rstd },
    ],
    rowOutputs: [{ buf: 3, index: xi, expr: y }],
  };
  return {
    buffers: [buf(0, 'f32', R * C, 'input'), buf(1, 'f32', C, 'input'), buf(2, 'f32', C, 'input'), buf(3, 'f32', R * C, 'output'), buf(4, 'f32', R, 'output'), buf(5, 'f32', R, 'output')],
    kernels: [k],
    inputs: [0, 1, 2],
    outputs: [
      { kind: 'buffer', buf: 3, shape: [R, C], dtype: 'f32' },
      { kind: 'buffer', buf: 4, shape: [R], dtype: 'f32' },
      { kind: 'buffer', buf: 5, shape: [R], dtype: 'f32' },
    ],
    consts: [],
  };
}

describe('multi-phase row kernels', () => {
  it('LayerNorm (mean, variance from the mean, normalised rows) matches a float64 loop', () => {
    const R = 37;
    const C = 40;
    const eps = 1e-6;
    const rng = mulberry32(3);
    const x = randArray('f32', [R, C], rng, -3, 5);
    const gamma = randArray('f32', [C], rng);
    const beta = randArray('f32', [C], rng);
    const g = layerNormGraph(R, C, eps);
    const [y, mean, rstd] = cpuDevice.compile(g, simplePlan(g)).run([x, gamma, beta]);
    const want = new Float64Array(R * C);
    const wm = new Float64Array(R);
    const wr = new Float64Array(R);
    for (let r = 0; r < R; r++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += x.data[r * C + c]!;
      const m = s / C;
      let q = 0;
      for (let c = 0; c < C; c++) q += (x.data[r * C + c]! - m) ** 2;
      const rs = 1 / Math.sqrt(q / C + Math.fround(eps));
      wm[r] = m;
      wr[r] = rs;
      for (let c = 0; c < C; c++) want[r * C + c] = (x.data[r * C + c]! - m) * rs * gamma.data[c]! + beta.data[c]!;
    }
    expectClose(y!.data, want, f32tol(C), 1e-6, 'y');
    expectClose(mean!.data, wm, f32tol(C), 1e-6, 'mean');
    expectClose(rstd!.data, wr, f32tol(C), 1e-6, 'rstd');
  });

  it('hoists loads that do not depend on the row variable and bases affine loads outside the innermost loop', () => {
    const g = layerNormGraph(4, 8, 1e-5);
    const src = cpuDevice.compile(g, simplePlan(g)).sources[0]!;
    // x[o0 * 8 + r0]: the base 8 * o0 is computed outside the row loops
    expect(src).toMatch(/const (i\d+) = 8 \* o0;[\s\S]*for \(let r0[\s\S]*\1 \+ r0/);
    // rsqrt depends only on the outer index: computed once, before the row-output loop
    const rs = src.indexOf('Math.sqrt');
    const lastLoop = src.lastIndexOf('for (let r0');
    expect(rs).toBeGreaterThan(0);
    expect(rs).toBeLessThan(lastLoop);
  });
});

describe('column-mode reductions (reducing leading axes, kept axis contiguous)', () => {
  it('normalises columns in one kernel (mean, variance, rows) with accumulator arrays', () => {
    // x [R, 1, C]: per column c: mean and variance over r, then y = (x - mean) * rsqrt(var + eps); colmax
    const R = 33;
    const C = 19;
    const xi = lin(['r0', 'r1', 'o1'], [R, 1, C]);
    const x = ld(0, xi);
    const mean = bin('div', acc(0), cst(R));
    const d = bin('sub', x, mean);
    const k: LoopKernel = {
      kind: 'loop',
      name: 'colnorm',
      outer: [1, C],
      row: [R, 1],
      reductions: [
        { id: 0, op: 'sum', expr: x, dtype: 'f32' },
        { id: 1, op: 'sum', expr: bin('mul', d, d), dtype: 'f32' },
        { id: 2, op: 'max', expr: x, dtype: 'f32' },
      ],
      outerOutputs: [{ buf: 2, index: v('o1'), expr: acc(2) }],
      rowOutputs: [{ buf: 1, index: xi, expr: bin('mul', d, un('rsqrt', bin('add', bin('div', acc(1), cst(R)), cst(1e-5)))) }],
    };
    const g: KernelGraph = {
      buffers: [buf(0, 'f32', R * C, 'input'), buf(1, 'f32', R * C, 'output'), buf(2, 'f32', C, 'output')],
      kernels: [k],
      inputs: [0],
      outputs: [
        { kind: 'buffer', buf: 1, shape: [R, 1, C], dtype: 'f32' },
        { kind: 'buffer', buf: 2, shape: [C], dtype: 'f32' },
      ],
      consts: [],
    };
    const xa = randArray('f32', [R, 1, C], mulberry32(21), -2, 3);
    xa.data[5 * C + 4] = NaN;
    const ex = cpuDevice.compile(g, simplePlan(g));
    expect(ex.sources[0]).toMatch(/S0\[/);
    expect(ex.sources[0]).not.toMatch(/for \(let o0/);
    const [y, mx] = ex.run([xa]);
    const wy = new Float64Array(R * C);
    const wm = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      const col = Array.from({ length: R }, (_, r) => xa.data[r * C + c]!);
      const m = col.reduce((a, b) => a + b, 0) / R;
      const var_ = col.reduce((a, b) => a + (b - m) ** 2, 0) / R;
      col.forEach((t, r) => (wy[r * C + c] = (t - m) / Math.sqrt(var_ + Math.fround(1e-5))));
      wm[c] = naiveReduce('max', col);
    }
    expectClose(y!.data, wy, f32tol(R), 1e-6, 'y');
    sameBits(mx!.data, Float32Array.from(wm), 'colmax');
  });
});

describe('index expressions', () => {
  it('div/mod indices (a transpose of a reshape) and padding through select on index bounds', () => {
    // x: [6, 4] viewed as [2, 3, 4]; out[o0, o1] with o0 in [0, 4), o1 in [0, 6): x[(o1 / 3) * 12 + (o1 % 3) * 4 + o0]
    const ranges = new Map([
      [AX.outer(0), 4],
      [AX.outer(1), 6],
    ]);
    const o1 = v('o1');
    const xi = idx.add(idx.scale(idx.div(o1, 3, ranges), 12), idx.scale(idx.mod(o1, 3, ranges), 4), v('o0'));
    const padIdx = idx.add(v('o0'), idx.const(-1)); // out2[o0] = x[o0 - 1] for 1 <= o0 <= 24 else 7
    const inRange = bin('and', cmp('ge', ixv(v('o0')), cst(1, 'i32')), cmp('le', ixv(v('o0')), cst(24, 'i32')));
    const k: LoopKernel = {
      kind: 'loop',
      name: 'gather',
      outer: [4, 6],
      row: [],
      reductions: [],
      outerOutputs: [{ buf: 1, index: lin(['o0', 'o1'], [4, 6]), expr: ld(0, xi) }],
      rowOutputs: [],
    };
    const pad: LoopKernel = { kind: 'loop', name: 'pad', outer: [27], row: [], reductions: [], outerOutputs: [{ buf: 2, index: v('o0'), expr: sel(inRange, ld(0, padIdx), cst(7)) }], rowOutputs: [] };
    const g: KernelGraph = {
      buffers: [buf(0, 'f32', 24, 'input'), buf(1, 'f32', 24, 'output'), buf(2, 'f32', 27, 'output')],
      kernels: [k, pad],
      inputs: [0],
      outputs: [
        { kind: 'buffer', buf: 1, shape: [4, 6], dtype: 'f32' },
        { kind: 'buffer', buf: 2, shape: [27], dtype: 'f32' },
      ],
      consts: [],
    };
    const x = new HostArray('f32', [24], Float32Array.from({ length: 24 }, (_, i) => i));
    const [t, p] = cpuDevice.compile(g, simplePlan(g)).run([x]);
    const want: number[] = [];
    for (let a = 0; a < 4; a++) for (let b = 0; b < 6; b++) want.push(Math.floor(b / 3) * 12 + (b % 3) * 4 + a);
    expect(Array.from(t!.data)).toEqual(want);
    expect(Array.from(p!.data)).toEqual([7, ...Array.from({ length: 24 }, (_, i) => i), 7, 7]);
  });
});

// ---------------------------------------------------------------------------------------
// range split

describe('range splitting', () => {
  it('any split of the outer range computes the same result', () => {
    // out[o0, o1, o2] = sum_r x[o0, r, o1, o2] * w[r] + o2, outer [3, 5, 7]
    const [A, R, B, C] = [3, 4, 5, 7];
    const x = ld(0, lin(['o0', 'r0', 'o1', 'o2'], [A, R, B, C]));
    const k: LoopKernel = {
      kind: 'loop',
      name: 'split',
      outer: [A, B, C],
      row: [R],
      reductions: [{ id: 0, op: 'sum', expr: bin('mul', x, ld(1, v('r0'))), dtype: 'f32' }],
      outerOutputs: [{ buf: 2, index: lin(['o0', 'o1', 'o2'], [A, B, C]), expr: bin('add', acc(0), cast(ixv(v('o2')), 'f32')) }],
      rowOutputs: [],
    };
    const g: KernelGraph = {
      buffers: [buf(0, 'f32', A * R * B * C, 'input'), buf(1, 'f32', R, 'input'), buf(2, 'f32', A * B * C, 'output')],
      kernels: [k],
      inputs: [0, 1],
      outputs: [{ kind: 'buffer', buf: 2, shape: [A, B, C], dtype: 'f32' }],
      consts: [],
    };
    const code = emitKernel(k, bufferDtypes(g)) as JsKernelCode;
    expect(code.total).toBe(A * B * C);
    expect(code.splittable).toBe(true);
    const fn = instantiateKernel(code);
    const rng = mulberry32(11);
    const xd = randArray('f32', [A * R * B * C], rng).data;
    const wd = randArray('f32', [R], rng).data;
    const full = new Float32Array(A * B * C);
    fn(0, code.total, xd, wd, full);
    for (const cuts of [[1], [7], [35, 36], [3, 50, 51, 104]]) {
      const out = new Float32Array(A * B * C).fill(NaN);
      const pts = [0, ...cuts, code.total];
      for (let i = 0; i + 1 < pts.length; i++) fn(pts[i]!, pts[i + 1]!, xd, wd, out);
      expect(Array.from(out)).toEqual(Array.from(full));
    }
    const want = PRIMS.reduce_sum.impl([new HostArray('f32', [A, R, B, C], Float32Array.from(xd, (t, i) => t * wd[Math.floor(i / (B * C)) % R]!))], { axes: [1] }, { wide: true })[0]!;
    expectClose(full, Float64Array.from(want.data, (t, i) => t + (i % C)), f32tol(R), 1e-6);
  });
});

void isFloat;
