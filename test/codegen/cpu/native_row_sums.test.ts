/**
 * Row-mode sums in C run under `#pragma omp simd reduction` (c_common.ts cSumLoops: partial sums
 * in vector lanes, so the order of the additions changes). Checked against float64 sums computed
 * here: a LayerNorm-like kernel (mean, then the centred sum of squares reading it, then the
 * normalised row), rows of 3 to 203 elements over one and two row axes, one and two threads;
 * a max reduction keeps its plain loop (NaN rules).
 */
import { describe, expect, it } from 'vitest';
import { cpuDeviceFor } from '../../../src/codegen/cpu/device.js';
import { nativeSupport } from '../../../src/codegen/cpu/native/device.js';
import type { NativeExecutable } from '../../../src/codegen/cpu/native/executable.js';
import type { KernelGraph, LoopKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { acc, bin, buf, cst, expectClose, ld, lin, mulberry32, randArray, simplePlan } from './util.js';

const support = nativeSupport();

/** x: (R, ...row); out[r, ...] = (x - mean) / (var + 1); stats[r] = max over the row. */
function graph(R: number, row: number[]): KernelGraph {
  const n = row.reduce((a, b) => a * b, 1);
  const rv = row.map((_, i) => `r${i}`);
  const xi = lin(['o0', ...rv], [R, ...row]);
  const x = ld(0, xi);
  const mean = bin('div', acc(0), cst(n));
  const d = bin('sub', x, mean);
  const k: LoopKernel = {
    kind: 'loop',
    name: 'rowstats',
    outer: [R],
    row,
    reductions: [
      { id: 0, op: 'sum', expr: x, dtype: 'f32' },
      { id: 1, op: 'sum', expr: bin('mul', d, d), dtype: 'f32' },
      { id: 2, op: 'max', expr: x, dtype: 'f32' },
    ],
    outerOutputs: [{ buf: 2, index: lin(['o0'], [R]), expr: acc(2) }],
    rowOutputs: [{ buf: 1, index: xi, expr: bin('div', d, bin('add', bin('div', acc(1), cst(n)), cst(1))) }],
  };
  return {
    buffers: [buf(0, 'f32', R * n, 'input'), buf(1, 'f32', R * n, 'output'), buf(2, 'f32', R, 'output')],
    kernels: [k],
    inputs: [0],
    outputs: [
      { kind: 'buffer', buf: 1, shape: [R, n], dtype: 'f32' },
      { kind: 'buffer', buf: 2, shape: [R], dtype: 'f32' },
    ],
    consts: [],
  };
}

describe.runIf(typeof support !== 'string')('native row sums under omp simd', () => {
  for (const [R, row] of [
    [37, [203]],
    [5, [3]],
    [64, [40]],
    [9, [7, 13]],
  ] as [number, number[]][]) {
    it(`${R} rows of ${row.join('x')}`, () => {
      const n = row.reduce((a, b) => a * b, 1);
      const xs = randArray('f32', [R, n], mulberry32(R + n));
      const want = new Float64Array(R * n);
      const wantMax = new Float64Array(R);
      for (let r = 0; r < R; r++) {
        let s = 0;
        let mx = -Infinity;
        for (let j = 0; j < n; j++) {
          s += xs.data[r * n + j]!;
          mx = Math.max(mx, xs.data[r * n + j]!);
        }
        const mean = Math.fround(s) / n;
        let v = 0;
        for (let j = 0; j < n; j++) v += (xs.data[r * n + j]! - mean) ** 2;
        for (let j = 0; j < n; j++) want[r * n + j] = (xs.data[r * n + j]! - mean) / (Math.fround(v) / n + 1);
        wantMax[r] = mx;
      }
      for (const threads of [1, 2]) {
        const g = graph(R, row);
        const ex = cpuDeviceFor(threads, 'native').compile(g, simplePlan(g)) as NativeExecutable;
        expect(ex.cSource).toContain('#pragma omp simd reduction(+: acc0_)');
        expect(ex.cSource).not.toContain('reduction(+: acc2_)');
        const [out, mx] = ex.run([xs]);
        expectClose(out!.data, want, 1e-5, 1e-5, `normalised rows, ${threads} threads`);
        expectClose(mx!.data, wantMax, 0, 0, `row max, ${threads} threads`);
      }
    });
  }
});
