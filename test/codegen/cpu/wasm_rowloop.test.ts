/**
 * Row-reduction loop kernels in WebAssembly (wasm_rowloop.ts): LayerNorm over channels with an
 * outer space of (batch, y, x), the input a sum of two buffers plus a bias (as ConvNeXt's stem
 * LayerNorm reads it), storing the normalized rows and/or the per-pixel mean and 1/std. Checked
 * against a float64 evaluation written here and the JavaScript loop (wasm: false), on one
 * thread and split across two; outer spaces with extent-1 axes (a 1x1 image), batch > 1, more
 * than one staged chunk, and a row length that is not a multiple of 4 (which stays in
 * JavaScript: the source must say which path ran).
 */
import { describe, expect, it } from 'vitest';
import { createCpuDevice } from '../../../src/codegen/cpu/device.js';
import { jsPathDevices } from './js_path_devices.js';
import { wasmSimdAvailable } from '../../../src/codegen/cpu/wasm.js';
import type { KernelGraph, KernelOutput, LoopKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { acc, bin, buf, cst, expectClose, ld, lin, mulberry32, randArray, simplePlan, un, v } from './util.js';

interface Case {
  readonly outer: readonly number[];
  readonly C: number;
  readonly rows: boolean;
  readonly stats: boolean;
  readonly wasm: boolean;
}

const CASES: Case[] = [
  { outer: [2, 9, 11], C: 40, rows: true, stats: false, wasm: true },
  { outer: [1, 56, 3], C: 40, rows: false, stats: true, wasm: true },
  { outer: [3, 1, 1], C: 1376, rows: true, stats: true, wasm: true },
  { outer: [1, 7, 7], C: 160, rows: true, stats: true, wasm: true },
  { outer: [2, 13, 13], C: 42, rows: true, stats: true, wasm: false },
];

const EPS = 1e-6;

/** x = a + b + bias[c] over (o0, o1, o2, r0); buffers: a 0, b 1, bias 2, gamma 3, beta 4; outputs y 5, mean 6, rstd 7. */
function graph(c: Case): KernelGraph {
  const [B, H, W] = c.outer as [number, number, number];
  const xi = lin(['o0', 'o1', 'o2', 'r0'], [B, H, W, c.C]);
  const pix = lin(['o0', 'o1', 'o2'], [B, H, W]);
  const x = bin('add', bin('add', ld(0, xi), ld(1, xi)), ld(2, v('r0')));
  const mean = bin('div', acc(0), cst(c.C));
  const d = bin('sub', x, mean);
  const rstd = un('rsqrt', bin('add', bin('div', acc(1), cst(c.C)), cst(EPS)));
  const y = bin('add', bin('mul', bin('mul', d, rstd), ld(3, v('r0'))), ld(4, v('r0')));
  const n = B * H * W;
  const outerOutputs: KernelOutput[] = c.stats ? [{ buf: 6, index: pix, expr: mean }, { buf: 7, index: pix, expr: rstd }] : [];
  const k: LoopKernel = {
    kind: 'loop',
    name: 'ln_rows',
    outer: c.outer,
    row: [c.C],
    reductions: [
      { id: 0, op: 'sum', expr: x, dtype: 'f32' },
      { id: 1, op: 'sum', expr: bin('mul', d, d), dtype: 'f32' },
    ],
    outerOutputs,
    rowOutputs: c.rows ? [{ buf: 5, index: xi, expr: y }] : [],
  };
  const outs = [...(c.rows ? [{ buf: 5, size: n * c.C }] : []), ...(c.stats ? [{ buf: 6, size: n }, { buf: 7, size: n }] : [])];
  return {
    buffers: [buf(0, 'f32', n * c.C, 'input'), buf(1, 'f32', n * c.C, 'input'), buf(2, 'f32', c.C, 'input'), buf(3, 'f32', c.C, 'input'), buf(4, 'f32', c.C, 'input'), ...outs.map((o) => buf(o.buf, 'f32', o.size, 'output'))],
    kernels: [k],
    inputs: [0, 1, 2, 3, 4],
    outputs: outs.map((o) => ({ kind: 'buffer' as const, buf: o.buf, shape: [o.size], dtype: 'f32' as const })),
    consts: [],
  };
}

describe.runIf(wasmSimdAvailable())('row-reduction loop kernels in WebAssembly', () => {
  for (const c of CASES) {
    it(`LayerNorm over ${c.C} channels, outer ${c.outer.join('x')}${c.rows ? ', rows' : ''}${c.stats ? ', statistics' : ''}`, () => {
      const g = graph(c);
      const n = c.outer.reduce((a, b) => a * b, 1);
      const rng = mulberry32(c.C + n);
      const inputs = [randArray('f32', [n * c.C], rng, -1, 3), randArray('f32', [n * c.C], rng, -1, 1), randArray('f32', [c.C], rng), randArray('f32', [c.C], rng), randArray('f32', [c.C], rng)];
      const [A, Bv, bias, gamma, beta] = inputs.map((h) => h.data as Float32Array) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
      const wantY = new Float64Array(n * c.C);
      const wantMean = new Float64Array(n);
      const wantRstd = new Float64Array(n);
      for (let u = 0; u < n; u++) {
        const x = (j: number): number => A[u * c.C + j]! + Bv[u * c.C + j]! + bias[j]!;
        let s = 0;
        for (let j = 0; j < c.C; j++) s += x(j);
        const mu = s / c.C;
        let q = 0;
        for (let j = 0; j < c.C; j++) q += (x(j) - mu) ** 2;
        const rs = 1 / Math.sqrt(q / c.C + EPS);
        wantMean[u] = mu;
        wantRstd[u] = rs;
        for (let j = 0; j < c.C; j++) wantY[u * c.C + j] = (x(j) - mu) * rs * gamma[j]! + beta[j]!;
      }
      const wasm = createCpuDevice().compile(g, simplePlan(g));
      expect(wasm.sources[0]!.includes('G(_n)')).toBe(c.wasm);
      const tol = 2e-6 * Math.sqrt(c.C) + 2e-6;
      for (const [dev, what] of jsPathDevices()) {
        const outs = dev.compile(g, simplePlan(g)).run(inputs);
        let i = 0;
        if (c.rows) expectClose(outs[i++]!.data, wantY, tol, tol, `rows (${what})`);
        if (c.stats) {
          expectClose(outs[i++]!.data, wantMean, tol, tol, `mean (${what})`);
          expectClose(outs[i++]!.data, wantRstd, tol, tol, `rstd (${what})`);
        }
      }
    });
  }
});
