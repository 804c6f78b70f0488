/**
 * GEMMs split by columns across threads (src/codegen/cpu/native/gemm_cols_c.ts): a ConvNeXt-like
 * GEMM with a LayerNorm prologue (row statistics), a nonlinear epilogue and a reducing output
 * (the squares of the epilogue summed over each image's rows, as GRN's statistics). At batch 1
 * its rows are one unit, which used to run on one thread; split by columns, every output keeps
 * one writer and every sum its row order. Checked against a float64 product computed here, and
 * bit for bit against the one-thread result at 2 and 3 threads.
 */
import { describe, expect, it } from 'vitest';
import { cpuDeviceFor } from '../../../src/codegen/cpu/device.js';
import { nativeSupport } from '../../../src/codegen/cpu/native/device.js';
import type { NativeExecutable } from '../../../src/codegen/cpu/native/executable.js';
import type { KernelGraph, MatmulKernel, MatmulOperand, SExpr } from '../../../src/codegen/kernel/kernel_graph.js';
import type { HostArray } from '../../../src/ir/host.js';
import { acc, bin, buf, cst, expectClose, ld, lin, mulberry32, randArray, simplePlan, un, v } from './util.js';

const support = nativeSupport();

interface Case {
  batch: number;
  m: number;
  k: number;
  n: number;
  /** A read as stored, no reducing output: at batch 1 its packed B is cached (gemm_bcache_c.ts). */
  plain?: boolean;
}
const CASES: Case[] = [
  // the first GELU GEMM of ConvNeXt atto's stage 0 at batch 1 (N = 160: parts of 80 columns)
  { batch: 1, m: 3136, k: 40, n: 160 },
  // ragged: N not a multiple of 16 or of the register strips, M not of the row tiles
  { batch: 1, m: 197, k: 13, n: 75 },
  // three units: on two threads, two column parts each (six tasks)
  { batch: 3, m: 49, k: 64, n: 320 },
  // many column blocks of the K-blocked path (K > 512)
  { batch: 1, m: 30, k: 600, n: 1100 },
  // fewer rows than columns, B cached: parts of the packed B's blocks of 512 columns (parts start
  // inside a block), two K blocks
  { batch: 1, m: 49, k: 600, n: 1100, plain: true },
  { batch: 1, m: 49, k: 320, n: 320, plain: true },
];

/** LayerNorm of x[b, m, :] over k (mean, then variance reading it), scaled by gamma[k]. */
function layerNormA(c: Case): MatmulOperand {
  const x = (kv: string): SExpr => ld(0, lin(['b', 'm', kv], [c.batch, c.m, c.k]));
  const mean = bin('div', acc(0), cst(c.k));
  const d = bin('sub', x('r0'), mean);
  const rstd = un('rsqrt', bin('add', bin('div', acc(1), cst(c.k)), cst(1e-6)));
  return {
    kind: 'expr',
    expr: bin('mul', bin('mul', bin('sub', x('k'), mean), rstd), ld(2, v('k'))),
    stats: {
      row: [c.k],
      reductions: [
        { id: 0, op: 'sum', expr: x('r0'), dtype: 'f32' },
        { id: 1, op: 'sum', expr: bin('mul', d, d), dtype: 'f32' },
      ],
    },
  };
}

/** y = t + 0.25 t^2 with t = acc + bias[n] at (b, m, n); ss[b, n] = sum over m of y^2. */
function graph(c: Case): KernelGraph {
  const t = bin('add', acc(0), ld(3, v('n')));
  const y = bin('add', t, bin('mul', bin('mul', t, t), cst(0.25)));
  const k: MatmulKernel = {
    kind: 'matmul',
    name: 'gelu_like',
    batch: c.batch,
    m: c.m,
    n: c.n,
    k: c.k,
    dtype: 'f32',
    a: c.plain ? { kind: 'strided', buf: 0, offset: 0, strides: [0, c.k, 1] } : layerNormA(c),
    // B stored (n, k), like a pointwise convolution's weight
    b: { kind: 'strided', buf: 1, offset: 0, strides: [0, 1, c.k] },
    ...(c.plain ? {} : { reduceRows: c.m }),
    outputs: [
      { buf: 4, index: lin(['b', 'm', 'n'], [c.batch, c.m, c.n]), expr: y },
      ...(c.plain ? [] : [{ buf: 5, index: lin(['b', 'n'], [c.batch, c.n]), expr: bin('mul', y, y), accumulate: true, init: 'zero' as const }]),
    ],
  };
  return {
    buffers: [buf(0, 'f32', c.batch * c.m * c.k, 'input'), buf(1, 'f32', c.n * c.k, 'input'), buf(2, 'f32', c.k, 'input'), buf(3, 'f32', c.n, 'input'), buf(4, 'f32', c.batch * c.m * c.n, 'output'), buf(5, 'f32', c.batch * c.n, 'output')],
    kernels: [k],
    inputs: [0, 1, 2, 3],
    outputs: [
      { kind: 'buffer', buf: 4, shape: [c.batch, c.m, c.n], dtype: 'f32' },
      ...(c.plain ? [] : [{ kind: 'buffer' as const, buf: 5, shape: [c.batch, c.n], dtype: 'f32' as const }]),
    ],
    consts: [],
  };
}

/** The kernel in float64, from the f32 inputs. */
function reference(c: Case, [x, w, gamma, bias]: HostArray[]): [Float64Array, Float64Array] {
  const y = new Float64Array(c.batch * c.m * c.n);
  const ss = new Float64Array(c.batch * c.n);
  const row = new Float64Array(c.k);
  for (let b = 0; b < c.batch; b++)
    for (let m = 0; m < c.m; m++) {
      const at = (b * c.m + m) * c.k;
      let s = 0;
      for (let q = 0; q < c.k; q++) s += x!.data[at + q]!;
      const mean = s / c.k;
      let s2 = 0;
      for (let q = 0; q < c.k; q++) s2 += (x!.data[at + q]! - mean) ** 2;
      const rstd = 1 / Math.sqrt(s2 / c.k + 1e-6);
      for (let q = 0; q < c.k; q++) row[q] = c.plain ? x!.data[at + q]! : (x!.data[at + q]! - mean) * rstd * gamma!.data[q]!;
      for (let n = 0; n < c.n; n++) {
        let p = 0;
        for (let q = 0; q < c.k; q++) p += row[q]! * w!.data[n * c.k + q]!;
        const t = p + bias!.data[n]!;
        const val = t + 0.25 * t * t;
        y[(b * c.m + m) * c.n + n] = val;
        ss[b * c.n + n] += val * val;
      }
    }
  return [y, ss];
}

describe.runIf(typeof support !== 'string')('native GEMM split by columns', () => {
  for (const c of CASES) {
    it(`batch ${c.batch}: ${c.m}x${c.k} @ ${c.k}x${c.n} ${c.plain ? '(B cached)' : 'with a LayerNorm prologue and a reducing output'}`, () => {
      const rng = mulberry32(c.m * 31 + c.n);
      const ins = [randArray('f32', [c.batch, c.m, c.k], rng), randArray('f32', [c.n, c.k], rng, -0.3, 0.3), randArray('f32', [c.k], rng, 0.5, 1.5), randArray('f32', [c.n], rng, -0.2, 0.2)];
      const [wantY, wantSs] = reference(c, ins);
      let one: Float32Array[] | undefined;
      for (const threads of [1, 2, 3]) {
        const g = graph(c);
        const ex = cpuDeviceFor(threads, 'native').compile(g, simplePlan(g)) as NativeExecutable;
        // the column-capable driver, and the executable reports the kernel as split
        expect(ex.cSource).toMatch(/_t\(void\* ctx_, int64_t start, int64_t end\)/);
        if (c.plain) expect(ex.cSource).toContain('_BPK');
        expect(ex.splitKernels).toEqual(threads > 1 ? [0] : []);
        const out = ex.run(ins).map((a) => a.data as Float32Array);
        // the product: K f32 terms of |a b| <= ~1; the sums of squares: m rows of y^2 in f32
        const tolY = 3e-6 * Math.sqrt(c.k) + 1e-6;
        expectClose(out[0]!, wantY, tolY, tolY, `y, ${threads} threads`);
        if (!c.plain) expectClose(out[1]!, wantSs, 1e-6 * c.m + 1e-5, 1e-4, `sum of squares, ${threads} threads`);
        if (!one) one = out;
        else
          out.forEach((o, i) => {
            // bit for bit: the column split changes no element's summation order
            const same = o.every((x, j) => Object.is(x, one![i]![j]));
            expect(same, `output ${i} at ${threads} threads equals the one-thread result`).toBe(true);
          });
      }
    });
  }

  it('repeated calls on 2 and 3 threads (workers spinning inside calls, sleeping between them) give the one-thread result every time', async () => {
    const c = CASES[2]!;
    const rng = mulberry32(5);
    const ins = [randArray('f32', [c.batch, c.m, c.k], rng), randArray('f32', [c.n, c.k], rng, -0.3, 0.3), randArray('f32', [c.k], rng, 0.5, 1.5), randArray('f32', [c.n], rng, -0.2, 0.2)];
    const g = graph(c);
    const want = (cpuDeviceFor(1, 'native').compile(g, simplePlan(g)) as NativeExecutable).run(ins).map((a) => Array.from(a.data as Float32Array));
    for (const threads of [2, 3]) {
      const ex = cpuDeviceFor(threads, 'native').compile(g, simplePlan(g)) as NativeExecutable;
      for (let rep = 0; rep < 40; rep++) {
        // every tenth call after a pause, long enough for the workers to fall asleep
        if (rep % 10 === 9) await new Promise((r) => setTimeout(r, 5));
        const got = ex.run(ins).map((a) => Array.from(a.data as Float32Array));
        expect(got, `call ${rep} on ${threads} threads`).toEqual(want);
      }
    }
  });
});
