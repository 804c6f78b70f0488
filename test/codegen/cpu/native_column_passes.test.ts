/**
 * Column-mode loop kernels in C share one pass over the rows among reductions that read no
 * accumulator of one another (src/codegen/cpu/native/column_plan_c.ts). Checked against float64
 * sums computed here: three independent sums (one pass), a centred sum of squares reading the
 * first sum (a second pass), a max, and a row output reading all of them, over an outer prefix,
 * on one and two threads; and the pass grouping itself.
 */
import { describe, expect, it } from 'vitest';
import { cpuDeviceFor } from '../../../src/codegen/cpu/device.js';
import { reductionPasses } from '../../../src/codegen/cpu/native/column_plan_c.js';
import { nativeSupport } from '../../../src/codegen/cpu/native/device.js';
import type { NativeExecutable } from '../../../src/codegen/cpu/native/executable.js';
import type { KernelGraph, LoopKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { acc, bin, buf, cst, expectClose, ld, lin, mulberry32, randArray, simplePlan, v } from './util.js';

const support = nativeSupport();
const [P, R, C] = [3, 37, 70];

/** x, y: (P, R, C); reductions over R per (p, c); out[p, r, c] = x * mean + var + s1 - max. */
function kernel(): LoopKernel {
  const xi = lin(['o0', 'r0', 'o1'], [P, R, C]);
  const x = ld(0, xi);
  const y = ld(1, xi);
  const mean = bin('div', acc(0), cst(R));
  const d = bin('sub', x, mean);
  return {
    kind: 'loop',
    name: 'colstats',
    outer: [P, C],
    row: [R],
    reductions: [
      { id: 0, op: 'sum', expr: x, dtype: 'f32' },
      { id: 1, op: 'sum', expr: bin('mul', x, y), dtype: 'f32' },
      { id: 2, op: 'max', expr: y, dtype: 'f32' },
      { id: 3, op: 'sum', expr: bin('mul', d, d), dtype: 'f32' },
    ],
    outerOutputs: [{ buf: 2, index: lin(['o0', 'o1'], [P, C]), expr: acc(3) }],
    rowOutputs: [{ buf: 3, index: xi, expr: bin('sub', bin('add', bin('add', bin('mul', x, mean), bin('div', acc(3), cst(R))), acc(1)), acc(2)) }],
  };
}

describe('column-mode reduction passes', () => {
  it('groups reductions until one reads an accumulator of its group', () => {
    expect(reductionPasses(kernel()).map((p) => p.map((r) => r.id))).toEqual([[0, 1, 2], [3]]);
  });

  it.runIf(typeof support !== 'string')('matches float64 sums, one and two threads', () => {
    const rng = mulberry32(11);
    const xs = randArray('f32', [P, R, C], rng);
    const ys = randArray('f32', [P, R, C], rng);
    const wantVar = new Float64Array(P * C);
    const wantOut = new Float64Array(P * R * C);
    for (let p = 0; p < P; p++)
      for (let c = 0; c < C; c++) {
        let s0 = 0;
        let s1 = 0;
        let mx = -Infinity;
        const at = (r: number): number => (p * R + r) * C + c;
        for (let r = 0; r < R; r++) {
          s0 += xs.data[at(r)]!;
          s1 += xs.data[at(r)]! * ys.data[at(r)]!;
          mx = Math.max(mx, ys.data[at(r)]!);
        }
        const mean = Math.fround(s0) / R;
        let s3 = 0;
        for (let r = 0; r < R; r++) s3 += (xs.data[at(r)]! - mean) ** 2;
        wantVar[p * C + c] = s3;
        for (let r = 0; r < R; r++) wantOut[at(r)] = xs.data[at(r)]! * mean + s3 / R + s1 - mx;
      }
    const g: KernelGraph = {
      buffers: [buf(0, 'f32', P * R * C, 'input'), buf(1, 'f32', P * R * C, 'input'), buf(2, 'f32', P * C, 'output'), buf(3, 'f32', P * R * C, 'output')],
      kernels: [kernel()],
      inputs: [0, 1],
      outputs: [
        { kind: 'buffer', buf: 2, shape: [P, C], dtype: 'f32' },
        { kind: 'buffer', buf: 3, shape: [P, R, C], dtype: 'f32' },
      ],
      consts: [],
    };
    for (const threads of [1, 2]) {
      const ex = cpuDeviceFor(threads, 'native').compile(g, simplePlan(g)) as NativeExecutable;
      // three walks over the rows: the first three reductions, the centred sum, the row output
      expect(ex.cSource.match(/for \(int64_t r0 = 0; r0 < 37; r0\+\+\)/g)).toHaveLength(3);
      const [vr, out] = ex.run([xs, ys]);
      expectClose(vr!.data, wantVar, 1e-5, 1e-5, `variance, ${threads} threads`);
      expectClose(out!.data, wantOut, 1e-5, 1e-5, `row output, ${threads} threads`);
    }
  });
});
