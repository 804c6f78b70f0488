/**
 * The GEMM's JavaScript A packing of an im2col gather whose k part is not affine (ConvNeXt's
 * stem: a 4x4/4 patchify conv of an NCHW image, k = (kernel position, input channel)) reads
 * per row one base offset and per k an offset from a table (matmul.ts, aGatherTable) instead of
 * dividing per element. Checked against the host conv_general in float64 on the stem's layout
 * with 3 channels and batch 2, an odd channel count with a 1x1 output, and a 2x2/2 NCHW
 * downsample with 5 channels; the source must show the table path was taken.
 */
import { describe, expect, it } from 'vitest';
import { createCpuDevice } from '../../../src/codegen/cpu/device.js';
import { convPath } from '../../../src/codegen/lower/conv_geometry.js';
import type { ConvKernel, KernelGraph } from '../../../src/codegen/kernel/kernel_graph.js';
import type { ConvParams } from '../../../src/ir/primitive.js';
import { PRIMS } from '../../../src/ir/primitives/index.js';
import { acc, buf, expectClose, f32tol, lin, mulberry32, randArray, simplePlan } from './util.js';

const NCHW = { lhs: [0, 1, 2, 3], rhs: [0, 1, 2, 3], out: [0, 1, 2, 3] };

const CASES = [
  { name: 'stem 4x4/4, 3 channels, batch 2', lhs: [2, 3, 16, 12], rhs: [6, 3, 4, 4], stride: 4, table: true },
  // (one output pixel: the lowering folds the gather into another index form; values only)
  { name: '1x1 output, 5 channels', lhs: [1, 5, 4, 4], rhs: [7, 5, 4, 4], stride: 4, table: false },
  { name: 'downsample 2x2/2, 5 channels, batch 3', lhs: [3, 5, 6, 10], rhs: [9, 5, 2, 2], stride: 2, table: true },
];

describe('GEMM A packing through a k-offset table', () => {
  for (const c of CASES) {
    for (const wasm of [true, false]) {
      it(`${c.name} (${wasm ? 'wasm' : 'js'} GEMM)`, () => {
        const p: ConvParams = { windowStrides: [c.stride, c.stride], padding: [[0, 0], [0, 0]], lhsDilation: [1, 1], rhsDilation: [1, 1], featureGroupCount: 1, batchGroupCount: 1, dims: NCHW };
        const rng = mulberry32(c.lhs[1]! * 31 + c.stride);
        const x = randArray('f32', c.lhs, rng);
        const w = randArray('f32', c.rhs, rng);
        const outShape = PRIMS.conv_general.shape([{ shape: c.lhs, dtype: 'f32' }, { shape: c.rhs, dtype: 'f32' }], p)[0]!.shape as number[];
        const n = outShape.reduce((a, b) => a * b, 1);
        const k: ConvKernel = {
          kind: 'conv',
          name: 'stem',
          params: p,
          dtype: 'f32',
          lhs: { buf: 0, shape: c.lhs },
          rhs: { buf: 1, shape: c.rhs },
          outShape,
          outputs: [{ buf: 2, index: lin(outShape.map((_, i) => `o${i}`), outShape), expr: acc(0) }],
        };
        expect(convPath(k)).toBe('gemm');
        const g: KernelGraph = {
          buffers: [buf(0, 'f32', x.size, 'input'), buf(1, 'f32', w.size, 'input'), buf(2, 'f32', n, 'output')],
          kernels: [k],
          inputs: [0, 1],
          outputs: [{ kind: 'buffer', buf: 2, shape: outShape, dtype: 'f32' }],
          consts: [],
        };
        const ex = createCpuDevice({ wasm }).compile(g, simplePlan(g));
        if (c.table) expect(ex.sources[0]).toMatch(/_KT\[k\]/);
        const got = ex.run([x, w])[0]!;
        const want = PRIMS.conv_general.impl([x, w], p, { wide: true })[0]!;
        const tol = f32tol(c.lhs[1]! * c.rhs[2]! * c.rhs[3]!);
        expectClose(got.data, want.data, tol, tol, c.name);
      });
    }
  }
});
