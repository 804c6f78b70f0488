/**
 * Tiled layout changes on the native CPU backend (src/codegen/cpu/native/transpose_c.ts): NHWC ->
 * CHWN copies (the kind autodiff emits before a weight-gradient convolution) with a channel count
 * that leaves a partial tile, a size-1 axis, a fused expression on the loaded value, and a second
 * output, against the permutation computed here, on one and two threads.
 */
import { describe, expect, it } from 'vitest';
import { cpuDeviceFor } from '../../../src/codegen/cpu/device.js';
import { nativeSupport } from '../../../src/codegen/cpu/native/device.js';
import type { NativeExecutable } from '../../../src/codegen/cpu/native/executable.js';
import type { KernelGraph, LoopKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { bin, buf, cst, ld, lin, mulberry32, randArray, simplePlan } from './util.js';

const support = nativeSupport();

describe.runIf(typeof support !== 'string')('native tiled transposes', () => {
  for (const [n, h, w, c] of [
    [8, 6, 5, 40],
    [3, 1, 7, 17],
    [5, 4, 4, 16],
  ] as const) {
    it(`NHWC ${n}x${h}x${w}x${c} -> CHWN, plus 2x - 1 in NHWC order`, () => {
      const size = n * h * w * c;
      const src = lin(['o3', 'o1', 'o2', 'o0'], [n, h, w, c]);
      const k: LoopKernel = {
        kind: 'loop',
        name: 'to_chwn',
        outer: [c, h, w, n],
        row: [],
        reductions: [],
        outerOutputs: [
          { buf: 1, index: lin(['o0', 'o1', 'o2', 'o3'], [c, h, w, n]), expr: ld(0, src) },
          { buf: 2, index: lin(['o0', 'o1', 'o2', 'o3'], [c, h, w, n]), expr: bin('sub', bin('mul', ld(0, src), cst(2)), cst(1)) },
        ],
        rowOutputs: [],
      };
      const g: KernelGraph = {
        buffers: [buf(0, 'f32', size, 'input'), buf(1, 'f32', size, 'output'), buf(2, 'f32', size, 'output')],
        kernels: [k],
        inputs: [0],
        outputs: [1, 2].map((b) => ({ kind: 'buffer' as const, buf: b, shape: [c, h, w, n], dtype: 'f32' as const })),
        consts: [],
      };
      const x = randArray('f32', [n, h, w, c], mulberry32(size));
      for (const threads of [1, 2]) {
        const ex = cpuDeviceFor(threads, 'native').compile(g, simplePlan(g)) as NativeExecutable;
        expect(ex.cSource).toContain('_tb');
        const [t, t2] = ex.run([x]);
        for (let ci = 0; ci < c; ci++)
          for (let y = 0; y < h; y++)
            for (let xx = 0; xx < w; xx++)
              for (let ni = 0; ni < n; ni++) {
                const o = ((ci * h + y) * w + xx) * n + ni;
                const v = x.data[((ni * h + y) * w + xx) * c + ci]!;
                if (t!.data[o] !== v || t2!.data[o] !== Math.fround(2 * v - 1)) throw new Error(`at c=${ci} h=${y} w=${xx} n=${ni} (${threads} threads): ${t!.data[o]}, ${t2!.data[o]} vs ${v}`);
              }
      }
    });
  }
});
