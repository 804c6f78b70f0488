/**
 * The WebAssembly GEMM's fused parts, the ones a ConvNeXt V2 block uses: a reducing epilogue
 * output (GRN's sum of squares over the rows, accumulated by the matmul that produces the GELU
 * output), A prologues (LayerNorm with its row statistics; GRN's apply x * s[n] + beta; an
 * im2col gather) and B's packing ([n][k] weights transposed into strips of 8 columns).
 * Every kernel is checked against a float64 evaluation written here (its own index and
 * expression evaluator), with the JavaScript epilogue (wasmEpilogue: false) as a second
 * implementation, on shapes with several row chunks, column blocks and K blocks, N not a
 * multiple of the vector width, two batch entries, and split across two threads.
 */
import { describe, expect, it } from 'vitest';
import { createCpuDevice, type CpuExecutable } from '../../../src/codegen/cpu/device.js';
import type { Device } from '../../../src/codegen/kernel/device.js';
import type { Idx } from '../../../src/codegen/kernel/index_expr.js';
import type { KernelGraph, KernelOutput, MatmulKernel, MatmulOperand, Reduction, SExpr } from '../../../src/codegen/kernel/kernel_graph.js';
import { castScalar } from '../../../src/ir/dtype.js';
import { HostArray } from '../../../src/ir/host.js';
import { erf as hostErf } from '../../../src/ir/hostmath.js';
import { relaxedSimdAvailable } from '../../../src/codegen/cpu/wasm.js';
import { RELAXED_PROBE } from './wasm_probe.js';
import { acc, bin, buf, cmp, cst, expectClose, ld, lin, mulberry32, randArray, sel, simplePlan, un, v } from './util.js';

const WASM = createCpuDevice();
const JSEPI = createCpuDevice({ wasmEpilogue: false });
const TWO = createCpuDevice({ threads: 2, splitMinWork: 1 });

const gelu = (x: SExpr): SExpr => bin('mul', bin('mul', x, cst(0.5)), bin('add', cst(1), un('erf', bin('mul', x, cst(Math.SQRT1_2)))));

interface Case {
  readonly name: string;
  readonly batch: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  /** The A operand (default: strided row-major [b][m][k] in buffer 0). */
  readonly a?: (c: Case) => MatmulOperand;
  /** Extra input buffers (ids from 2) and their sizes. */
  readonly extra?: readonly { id: number; size: number; lo?: number; hi?: number }[];
  readonly outputs: (c: Case) => readonly (KernelOutput & { size: number })[];
  readonly reduceRows?: number;
}

function build(c: Case): { g: KernelGraph; inputs: HostArray[] } {
  const { batch, m, n, k } = c;
  const extra = c.extra ?? [];
  const outs = c.outputs(c);
  const kern: MatmulKernel = {
    kind: 'matmul',
    name: `mm_${c.name.replace(/\W/g, '_')}`,
    batch,
    m,
    n,
    k,
    dtype: 'f32',
    a: c.a ? c.a(c) : { kind: 'strided', buf: 0, offset: 0, strides: [m * k, k, 1] },
    // B stored [n][k] (a 1x1 conv's weight), as the ConvNeXt pointwise layers have it
    b: { kind: 'strided', buf: 1, offset: 0, strides: [0, 1, k] },
    outputs: outs.map(({ size: _s, ...o }) => o),
    ...(c.reduceRows ? { reduceRows: c.reduceRows } : {}),
  };
  const g: KernelGraph = {
    buffers: [buf(0, 'f32', batch * m * k, 'input'), buf(1, 'f32', k * n, 'input'), ...extra.map((e) => buf(e.id, 'f32', e.size, 'input')), ...outs.map((o) => buf(o.buf, 'f32', o.size, 'output'))],
    kernels: [kern],
    inputs: [0, 1, ...extra.map((e) => e.id)],
    outputs: outs.map((o) => ({ kind: 'buffer' as const, buf: o.buf, shape: [o.size], dtype: 'f32' as const })),
    consts: [],
  };
  const rng = mulberry32(c.name.length * 131 + m * 7 + n);
  const inputs = [randArray('f32', [batch * m * k], rng, -2, 2), randArray('f32', [k * n], rng, -0.3, 0.3), ...extra.map((e) => randArray('f32', [e.size], rng, e.lo ?? -1, e.hi ?? 1))];
  return { g, inputs };
}

function evalIdx(x: Idx, env: Readonly<Record<string, number>>): number {
  let s = x.c;
  for (const t of x.terms) {
    const a = t.atom;
    const val = a.k === 'var' ? env[a.axis.name]! : a.k === 'div' ? Math.floor(evalIdx(a.a, env) / a.d) : ((evalIdx(a.a, env) % a.d) + a.d) % a.d;
    s += t.coef * val;
  }
  return s;
}

/** An expression in float64 (host erf); `accs` are the values `acc id` reads. */
function evalExpr(e: SExpr, env: Readonly<Record<string, number>>, accs: readonly number[], data: ReadonlyMap<number, ArrayLike<number>>): number {
  const go = (x: SExpr): number => evalExpr(x, env, accs, data);
  switch (e.op) {
    case 'const':
      return castScalar(e.value, e.dtype);
    case 'acc':
      return accs[e.id]!;
    case 'load':
      return data.get(e.buf)![evalIdx(e.index, env)]!;
    case 'cast':
      return go(e.a);
    case 'unary': {
      const a = go(e.a);
      const f: Partial<Record<string, (x: number) => number>> = { neg: (x) => -x, sqrt: Math.sqrt, rsqrt: (x) => 1 / Math.sqrt(x), erf: hostErf };
      return f[e.fn]!(a);
    }
    case 'binary': {
      const a = go(e.a);
      const b = go(e.b);
      const f: Partial<Record<string, number>> = { add: a + b, sub: a - b, mul: a * b, div: a / b };
      return f[e.fn]!;
    }
    case 'cmp': {
      const a = go(e.a);
      const b = go(e.b);
      const f: Partial<Record<string, boolean>> = { gt: a > b, lt: a < b };
      return f[e.fn]! ? 1 : 0;
    }
    case 'select':
      return go(e.c) ? go(e.a) : go(e.b);
    default:
      throw new Error(`evalExpr: ${e.op}`);
  }
}

/** The kernel in float64: A (its expression and row statistics), the product, every output. */
function reference(c: Case, inputs: readonly HostArray[]): Float64Array[] {
  const { batch, m: M, n: N, k: K } = c;
  const data = new Map<number, ArrayLike<number>>([[0, inputs[0]!.data as ArrayLike<number>], [1, inputs[1]!.data as ArrayLike<number>]]);
  (c.extra ?? []).forEach((e, i) => data.set(e.id, inputs[2 + i]!.data as ArrayLike<number>));
  const aOp = c.a ? c.a(c) : null;
  const outs = c.outputs(c);
  const res = outs.map((o) => new Float64Array(o.size));
  const B = data.get(1)!;
  const row = new Float64Array(K);
  for (let b = 0; b < batch; b++)
    for (let m = 0; m < M; m++) {
      if (aOp && aOp.kind === 'expr') {
        const stats: number[] = [];
        for (const r of (aOp.stats?.reductions ?? []) as Reduction[]) {
          let s = 0;
          for (let r0 = 0; r0 < K; r0++) s += evalExpr(r.expr, { b, m, r0 }, stats, data);
          stats.push(s);
        }
        for (let k = 0; k < K; k++) row[k] = evalExpr(aOp.expr, { b, m, k }, stats, data);
      } else for (let k = 0; k < K; k++) row[k] = data.get(0)![(b * M + m) * K + k]!;
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += row[k]! * B[n * K + k]!;
        const env = { b, m, n };
        outs.forEach((o, i) => {
          const val = evalExpr(o.expr, env, [s], data);
          const at = evalIdx(o.index, env);
          if (o.accumulate) res[i]![at] += val;
          else res[i]![at] = val;
        });
      }
    }
  return res;
}

function run(dev: Device, c: Case): { ex: CpuExecutable; out: HostArray[] } {
  const { g, inputs } = build(c);
  const ex = dev.compile(g, simplePlan(g)) as CpuExecutable;
  return { ex, out: ex.run(inputs) };
}

/** GELU(acc + bias) stored at (b, m, n) and its square summed over m into (b, n). */
const geluSumSq = (c: Case): (KernelOutput & { size: number })[] => {
  const y = gelu(bin('add', acc(0), ld(2, v('n'))));
  return [
    { buf: 10, index: lin(['b', 'm', 'n'], [c.batch, c.m, c.n]), expr: y, size: c.batch * c.m * c.n },
    { buf: 11, index: lin(['b', 'n'], [c.batch, c.n]), expr: bin('mul', y, y), accumulate: true, init: 'zero', size: c.batch * c.n },
  ];
};

const REDUCING: Case[] = [
  { name: 'gelu + sum of squares, one block', batch: 2, m: 150, n: 40, k: 24, extra: [{ id: 2, size: 40 }], outputs: geluSumSq, reduceRows: 150 },
  { name: 'gelu + sum of squares, column blocks and K blocks', batch: 2, m: 70, n: 1030, k: 1300, extra: [{ id: 2, size: 1030 }], outputs: geluSumSq, reduceRows: 70 },
  { name: 'gelu + sum of squares, n = 37', batch: 1, m: 9, n: 37, k: 5, extra: [{ id: 2, size: 37 }], outputs: geluSumSq, reduceRows: 9 },
];

function checkAll(c: Case, wantWasm: { epilogue: boolean }): void {
  const { inputs } = build(c);
  const want = reference(c, inputs);
  const w = run(WASM, c);
  const j = run(JSEPI, c);
  const t = run(TWO, c);
  expect(w.ex.sources[0]!.includes('G(1, _rows, _nc)')).toBe(wantWasm.epilogue);
  // B ([n][k], k contiguous) is packed by WebAssembly too, in strips of 8 columns
  expect(w.ex.sources[0]).toContain('G(3, _ncp, _kc)');
  expect(j.ex.sources[0]).not.toContain('G(3, _ncp, _kc)');
  const outs = c.outputs(c);
  outs.forEach((o, i) => {
    // the product accumulates K terms (|a b| <= 0.6) in f32; a reducing output sums m rows of
    // squares (each off by about 2 |y| atolY) with f32 rounding that grows with the row count
    const atolY = 3e-8 * c.k + 2e-6;
    const rtol = o.accumulate ? 4e-7 * c.m + 2e-6 : 2e-5;
    const atol = o.accumulate ? 8 * c.m * atolY : atolY;
    for (const [r, what] of [
      [w.out, 'wasm'],
      [j.out, 'JavaScript epilogue'],
      [t.out, 'two threads'],
    ] as const)
      expectClose(r[i]!.data as Float32Array, want[i]!, rtol, atol, `${c.name}: output ${i} (${what})`);
    // the split across threads sums each group's rows in the same order: identical results
    expect(Array.from(t.out[i]!.data as Float32Array)).toEqual(Array.from(w.out[i]!.data as Float32Array));
  });
}

describe('WebAssembly GEMM: reducing epilogue outputs', () => {
  for (const c of REDUCING) it(c.name, () => checkAll(c, { epilogue: true }));

  it('groups of rows within m (a batch folded into m): row chunks end at group boundaries', () => {
    // groups of 5 rows (index b * 4 + floor(m / 5)), and groups of 70 (chunks of 64 rows would straddle them)
    const groups = (rows: number, per: number): Case => ({
      name: `groups of ${per} rows`,
      batch: 1,
      m: rows,
      n: 12,
      k: 8,
      extra: [{ id: 2, size: 12 }],
      reduceRows: per,
      outputs: (cc) => {
        const y = gelu(bin('add', acc(0), ld(2, v('n'))));
        return [
          { buf: 10, index: lin(['b', 'm', 'n'], [1, cc.m, cc.n]), expr: y, size: cc.m * cc.n },
          { buf: 11, index: lin([{ c: 0, terms: [{ coef: 1, atom: { k: 'div', a: v('m'), d: per } }] }, 'n'], [rows / per, cc.n]), expr: bin('mul', y, y), accumulate: true, init: 'zero', size: (rows / per) * cc.n },
        ];
      },
    });
    checkAll(groups(20, 5), { epilogue: true });
    const c70 = groups(210, 70);
    checkAll(c70, { epilogue: true });
    expect(run(WASM, c70).ex.sources[0]).toMatch(/if \(_c1 > /);
  });
});

/** LayerNorm over k with statistics (mean, then variance reading it), gamma (2) and beta (3). */
const layerNormA = (c: Case): MatmulOperand => {
  const x = (kv: string): SExpr => ld(0, lin(['b', 'm', kv], [c.batch, c.m, c.k]));
  const mean = bin('div', acc(0), cst(c.k));
  const xc = bin('sub', x('k'), mean);
  const rstd = un('rsqrt', bin('add', bin('div', acc(1), cst(c.k)), cst(1e-6)));
  const d = bin('sub', x('r0'), mean);
  return {
    kind: 'expr',
    expr: bin('add', bin('mul', bin('mul', xc, rstd), ld(2, v('k'))), ld(3, v('k'))),
    stats: {
      row: [c.k],
      reductions: [
        { id: 0, op: 'sum', expr: x('r0'), dtype: 'f32' },
        { id: 1, op: 'sum', expr: bin('mul', d, d), dtype: 'f32' },
      ],
    },
  };
};

/**
 * GRN's apply as the ConvNeXt graph has it: x * gamma[k] * (sqrt(ss[b, k]) / (mean + eps)) +
 * beta[k] + x, with sqrt guarded by a select (ss: buffer 4, per batch and k; its mean over k:
 * buffer 5, per batch).
 */
const grnA = (c: Case): MatmulOperand => {
  const x = ld(0, lin(['b', 'm', 'k'], [c.batch, c.m, c.k]));
  const ss = ld(4, lin(['b', 'k'], [c.batch, c.k]));
  const pos = cmp('gt', ss, cst(0));
  const nx = bin('div', sel(pos, un('sqrt', sel(pos, ss, cst(1))), cst(0)), bin('add', ld(5, v('b')), cst(1e-6)));
  return { kind: 'expr', expr: bin('add', bin('add', bin('mul', ld(2, v('k')), bin('mul', x, nx)), ld(3, v('k'))), x) };
};

const plainOut = (c: Case): (KernelOutput & { size: number })[] => [{ buf: 10, index: lin(['b', 'm', 'n'], [c.batch, c.m, c.n]), expr: bin('add', acc(0), ld(2, v('n'))), size: c.batch * c.m * c.n }];

/**
 * A 2x2 stride-2 patchify conv's A (im2col) with LayerNorm applied from per-pixel statistics, as
 * the ConvNeXt downsample layers have it: output pixel m = (oy, ox) of an OH x OW grid, k = (ky,
 * kx, c) over C channels of an NHWC image (H = 2 OH, W = 2 OW): x at ((2 oy + ky) W + 2 ox + kx) C
 * + c, mean (4) and rstd (5) per input pixel, gamma (6) and beta (7) per channel.
 */
const OW = 5;
const C = 12;
const divA = (a: Idx, d: number): Idx['terms'][number]['atom'] => ({ k: 'div', a, d });
const modA = (a: Idx, d: number): Idx['terms'][number]['atom'] => ({ k: 'mod', a, d });
const patchA = (c: Case): MatmulOperand => {
  const W = 2 * OW;
  const k = v('k');
  const rowPix = (scale: number): Idx['terms'][number][] => [
    { coef: 2 * W * scale, atom: divA(v('m'), OW) },
    { coef: 2 * scale, atom: modA(v('m'), OW) },
  ];
  const kPix = (scale: number): Idx['terms'][number][] => [
    { coef: W * scale, atom: divA(k, 2 * C) },
    { coef: scale, atom: modA({ c: 0, terms: [{ coef: 1, atom: divA(k, C) }] }, 2) },
  ];
  const x = ld(0, { c: 0, terms: [...rowPix(C), ...kPix(C), { coef: 1, atom: modA(k, C) }] });
  const pix = (buf: number): SExpr => ld(buf, { c: 0, terms: [...rowPix(1), ...kPix(1)] });
  const ch = (buf: number): SExpr => ld(buf, { c: 0, terms: [{ coef: 1, atom: modA(k, C) }] });
  void c;
  return { kind: 'expr', expr: bin('add', bin('mul', bin('mul', bin('sub', x, pix(4)), pix(5)), ch(6)), ch(7)) };
};

const PROLOGUES: Case[] = [
  { name: 'LayerNorm prologue, K = 40', batch: 2, m: 130, n: 24, k: 40, a: layerNormA, extra: [{ id: 2, size: 40 }, { id: 3, size: 40 }], outputs: plainOut },
  // K not a multiple of 4: masked statistics, guarded stores in the last chunk
  { name: 'LayerNorm prologue, K = 37, m = 9', batch: 1, m: 9, n: 37, k: 37, a: layerNormA, extra: [{ id: 2, size: 40 }, { id: 3, size: 40 }], outputs: plainOut },
  { name: 'LayerNorm prologue + gelu + sum of squares', batch: 2, m: 70, n: 160, k: 40, a: layerNormA, extra: [{ id: 2, size: 160 }, { id: 3, size: 40 }], outputs: geluSumSq, reduceRows: 70 },
  // im2col: the row's four pixels are runs of C channels; the statistics runs of one value
  { name: 'patchify + LayerNorm prologue (gathered runs)', batch: 1, m: 4 * OW, n: 24, k: 4 * C, a: patchA, extra: [{ id: 2, size: 24 }, { id: 4, size: 16 * OW * OW }, { id: 5, size: 16 * OW * OW, lo: 0.5, hi: 2 }, { id: 6, size: C }, { id: 7, size: C }], outputs: plainOut },
  { name: 'GRN prologue, K = 160', batch: 2, m: 75, n: 40, k: 160, a: grnA, extra: [{ id: 2, size: 160 }, { id: 3, size: 160 }, { id: 4, size: 320, lo: 0, hi: 40 }, { id: 5, size: 2, lo: 0.5, hi: 2 }], outputs: plainOut },
  // several K blocks (the prologue sees k in [_pc, _pc + _kc)) and a short last one
  { name: 'GRN prologue, K = 1300 (K blocks)', batch: 1, m: 33, n: 20, k: 1300, a: grnA, extra: [{ id: 2, size: 1300 }, { id: 3, size: 1300 }, { id: 4, size: 1300, lo: 0, hi: 40 }, { id: 5, size: 1, lo: 0.5, hi: 2 }], outputs: plainOut },
];

describe('WebAssembly GEMM: A prologues', () => {
  for (const c of PROLOGUES) it(c.name, () => {
    checkAll(c, { epilogue: true });
    expect(run(WASM, c).ex.sources[0]).toContain('G(2, _mcp, _kc)');
    expect(run(JSEPI, c).ex.sources[0]).not.toContain('G(2, _mcp, _kc)');
  });

  it('a prologue with an index it cannot stage (a transposed load) stays in JavaScript', () => {
    const c: Case = {
      name: 'transposed prologue',
      batch: 1,
      m: 12,
      n: 8,
      k: 12,
      a: (cc) => ({ kind: 'expr', expr: un('neg', ld(0, lin(['k', 'm'], [cc.k, cc.m]))) }),
      extra: [{ id: 2, size: 8 }],
      outputs: plainOut,
    };
    const { inputs } = build(c);
    const r = run(WASM, c);
    expect(r.ex.sources[0]).not.toContain('G(2, _mcp, _kc)');
    expectClose(r.out[0]!.data as Float32Array, reference(c, inputs)[0]!, 2e-5, 3e-6, c.name);
  });
});

describe('WebAssembly GEMM: relaxed SIMD detection without the engine flag', () => {
  it('answers what the engine validates (false on Node 20 without --experimental-wasm-relaxed-simd), without throwing', () => {
    const has = WebAssembly.validate(RELAXED_PROBE);
    expect(relaxedSimdAvailable()).toBe(has);
    // and the GEMM above ran either way: the kernels of this file compiled and matched their references
    expect(run(WASM, REDUCING[2]!).out[0]!.data.length).toBe(9 * 37);
  });
});
