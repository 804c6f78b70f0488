/**
 * CPU backend, convolution anchor: every compile-time path (im2col GEMM for 1x1 / patchify /
 * patchify weight gradients, depthwise, depthwise weight gradient, generic) against the host
 * conv_general, with plain and fused epilogues (bias + scale, a second output in another
 * layout), several layouts, strides, paddings (incl. negative), dilations and groups.
 */
import { describe, expect, it } from 'vitest';
import { convPath, type ConvPath } from '../../../src/codegen/lower/conv_geometry.js';
import { createCpuDevice } from '../../../src/codegen/cpu/device.js';
import { wasmSimdAvailable } from '../../../src/codegen/cpu/wasm.js';
import type { ConvKernel, KernelGraph, KernelOutput } from '../../../src/codegen/kernel/kernel_graph.js';
import type { DType } from '../../../src/ir/dtype.js';
import type { ConvDims, ConvParams } from '../../../src/ir/primitive.js';
import { PRIMS } from '../../../src/ir/primitives/index.js';
import { acc, bin, buf, cst, expectClose, f32tol, ld, lin, mulberry32, randArray, simplePlan, v } from './util.js';

const NHWC: ConvDims = { lhs: [0, 3, 1, 2], rhs: [3, 2, 0, 1], out: [0, 3, 1, 2] };
const NCHW: ConvDims = { lhs: [0, 1, 2, 3], rhs: [0, 1, 2, 3], out: [0, 1, 2, 3] };
/** The weight-gradient form autodiff produces for an NHWC/HWIO conv. */
const WGRAD: ConvDims = { lhs: [3, 0, 1, 2], rhs: [3, 0, 1, 2], out: [2, 3, 0, 1] };

interface Case {
  name: string;
  lhs: number[];
  rhs: number[];
  p: Partial<ConvParams> & { dims: ConvDims };
  path: ConvPath;
  dtype?: DType;
}

function params(c: Case): ConvParams {
  const nsp = c.lhs.length - 2;
  const ones = new Array<number>(nsp).fill(1);
  return {
    windowStrides: c.p.windowStrides ?? ones,
    padding: c.p.padding ?? ones.map(() => [0, 0] as const),
    lhsDilation: c.p.lhsDilation ?? ones,
    rhsDilation: c.p.rhsDilation ?? ones,
    featureGroupCount: c.p.featureGroupCount ?? 1,
    batchGroupCount: c.p.batchGroupCount ?? 1,
    dims: c.p.dims,
  };
}

const sq = <T>(x: T): [T, T] => [x, x];

const CASES: Case[] = [
  // im2col GEMM
  { name: '1x1 NHWC', lhs: [2, 5, 6, 8], rhs: [1, 1, 8, 12], p: { dims: NHWC }, path: 'gemm' },
  { name: '1x1 NCHW stride 2', lhs: [2, 8, 7, 6], rhs: [5, 8, 1, 1], p: { dims: NCHW, windowStrides: [2, 2] }, path: 'gemm' },
  { name: 'patchify 4x4/4 (stem)', lhs: [2, 17, 13, 3], rhs: [4, 4, 3, 10], p: { dims: NHWC, windowStrides: [4, 4] }, path: 'gemm' },
  { name: 'patchify 2x2/2 (downsample)', lhs: [1, 8, 8, 6], rhs: [2, 2, 6, 9], p: { dims: NHWC, windowStrides: [2, 2] }, path: 'gemm' },
  { name: 'valid 3x3 overlapping windows', lhs: [1, 9, 8, 5], rhs: [3, 3, 5, 7], p: { dims: NHWC, rhsDilation: [2, 1] }, path: 'gemm' },
  { name: 'patchify weight gradient', lhs: [3, 16, 12, 4], rhs: [3, 4, 3, 6], p: { dims: WGRAD, rhsDilation: [4, 4] }, path: 'gemm' },
  { name: '1D 1x1', lhs: [3, 10, 4], rhs: [1, 4, 6], p: { dims: { lhs: [0, 2, 1], rhs: [2, 1, 0], out: [0, 2, 1] } }, path: 'gemm' },
  { name: '3D 2x2x2/2', lhs: [1, 4, 4, 6, 3], rhs: [2, 2, 2, 3, 4], p: { dims: { lhs: [0, 4, 1, 2, 3], rhs: [4, 3, 0, 1, 2], out: [0, 4, 1, 2, 3] }, windowStrides: [2, 2, 2] }, path: 'gemm' },
  // unpatchify (input gradient of a patchify conv) as a GEMM
  { name: 'unpatchify 2x2 (downsample input gradient)', lhs: [2, 4, 5, 6], rhs: [2, 2, 3, 6], p: { dims: { lhs: NHWC.lhs, rhs: [2, 3, 0, 1], out: NHWC.out }, lhsDilation: [2, 2], padding: sq([1, 1] as const) }, path: 'gemm_transposed' },
  { name: 'unpatchify 4x4 (stem input gradient), NCHW', lhs: [1, 5, 3, 4], rhs: [3, 5, 4, 4], p: { dims: NCHW, lhsDilation: [4, 4], padding: sq([3, 3] as const) }, path: 'gemm_transposed' },
  { name: 'unpatchify 2x3 mixed', lhs: [2, 3, 4, 5], rhs: [2, 3, 5, 7], p: { dims: NHWC, lhsDilation: [2, 3], padding: [[1, 1], [2, 2]] }, path: 'gemm_transposed' },
  // depthwise
  { name: 'depthwise 7x7 pad 3', lhs: [2, 9, 10, 8], rhs: [7, 7, 1, 8], p: { dims: NHWC, padding: sq([3, 3] as const), featureGroupCount: 8 }, path: 'depthwise' },
  { name: 'depthwise 3x3/2 pad (1,0) rhs dil 2', lhs: [1, 11, 9, 5], rhs: [3, 3, 1, 5], p: { dims: NHWC, padding: [[1, 0], [2, 1]], windowStrides: [2, 2], rhsDilation: [2, 2], featureGroupCount: 5 }, path: 'depthwise' },
  { name: 'depthwise lhs dilation (input-gradient form)', lhs: [2, 5, 4, 3], rhs: [3, 3, 1, 3], p: { dims: NHWC, padding: [[2, 2], [2, 3]], lhsDilation: [2, 2], featureGroupCount: 3 }, path: 'depthwise' },
  { name: 'depthwise 7x7 C=40 (ConvNeXt stage 1 shape, smaller image)', lhs: [2, 14, 13, 40], rhs: [7, 7, 1, 40], p: { dims: NHWC, padding: sq([3, 3] as const), featureGroupCount: 40 }, path: 'depthwise' },
  { name: 'depthwise NCHW', lhs: [2, 4, 6, 7], rhs: [4, 1, 3, 3], p: { dims: NCHW, padding: sq([1, 1] as const), featureGroupCount: 4 }, path: 'depthwise' },
  // depthwise weight gradient (batchGroupCount = channels)
  { name: 'depthwise wgrad 7x7', lhs: [3, 9, 9, 8], rhs: [3, 9, 9, 8], p: { dims: WGRAD, padding: sq([3, 3] as const), batchGroupCount: 8 }, path: 'depthwise_wgrad' },
  { name: 'depthwise wgrad 7x7 C=40 (ConvNeXt shape, smaller image)', lhs: [2, 12, 11, 40], rhs: [2, 12, 11, 40], p: { dims: WGRAD, padding: sq([3, 3] as const), batchGroupCount: 40 }, path: 'depthwise_wgrad' },
  { name: 'depthwise wgrad, width 10 (two register blocks), C=6', lhs: [2, 6, 14, 6], rhs: [2, 4, 5, 6], p: { dims: WGRAD, padding: [[1, 1], [0, 0]], batchGroupCount: 6 }, path: 'depthwise_wgrad' },
  { name: 'depthwise wgrad stride 2', lhs: [2, 9, 8, 4], rhs: [2, 5, 4, 4], p: { dims: WGRAD, padding: [[1, 1], [1, 0]], rhsDilation: [2, 2], batchGroupCount: 4 }, path: 'depthwise_wgrad' },
  // generic
  { name: 'feature groups 2, pad 1', lhs: [2, 6, 7, 4], rhs: [3, 3, 2, 6], p: { dims: NHWC, padding: sq([1, 1] as const), featureGroupCount: 2 }, path: 'generic' },
  { name: 'batch groups 2', lhs: [4, 5, 5, 3], rhs: [2, 2, 3, 4], p: { dims: NHWC, batchGroupCount: 2 }, path: 'generic' },
  { name: 'negative padding, dilations, stride 3, odd layout', lhs: [7, 2, 9, 3], rhs: [2, 3, 3, 2], p: { dims: { lhs: [1, 3, 0, 2], rhs: [3, 2, 1, 0], out: [2, 0, 3, 1] }, padding: [[-1, 2], [3, -2]], lhsDilation: [2, 1], rhsDilation: [1, 2], windowStrides: [3, 1] }, path: 'generic' },
  { name: '3x3 pad 1 dense', lhs: [1, 6, 6, 4], rhs: [3, 3, 4, 5], p: { dims: NHWC, padding: sq([1, 1] as const) }, path: 'generic' },
  { name: 'patchify wgrad with cropping (negative hi padding)', lhs: [2, 17, 13, 3], rhs: [2, 4, 3, 5], p: { dims: WGRAD, padding: [[0, -1], [0, -1]], rhsDilation: [4, 4] }, path: 'generic' },
  { name: 'integer conv', lhs: [2, 5, 5, 3], rhs: [3, 3, 3, 4], p: { dims: NHWC, padding: sq([1, 1] as const) }, path: 'generic', dtype: 'i32' },
];

function runCase(c: Case, fused: boolean, wasm: boolean): void {
  const dtype = c.dtype ?? 'f32';
  const p = params(c);
  const rng = mulberry32(c.lhs.reduce((a, b) => a * 7 + b, 1));
  const lo = dtype === 'i32' ? -100 : -1;
  const hi = dtype === 'i32' ? 100 : 1;
  const x = randArray(dtype, c.lhs, rng, lo, hi);
  const w = randArray(dtype, c.rhs, rng, lo, hi);
  const [outAval] = PRIMS.conv_general.shape([{ shape: c.lhs, dtype }, { shape: c.rhs, dtype }], p);
  const outShape = outAval!.shape as number[];
  const O = outShape[p.dims.out[1]!]!;
  const bias = randArray(dtype, [O], rng, lo, hi);
  const vars = outShape.map((_, i) => `o${i}`);
  const outIdx = lin(vars, outShape);
  const n = outShape.reduce((a, b) => a * b, 1);
  // the second output: the same values with the output axes reversed
  const revShape = [...outShape].reverse();
  const outputs: KernelOutput[] = fused
    ? [
        { buf: 3, index: outIdx, expr: bin('add', bin('mul', acc(0, dtype), cst(2, dtype)), ld(2, v(`o${p.dims.out[1]}`), dtype)) },
        { buf: 4, index: lin([...vars].reverse(), revShape), expr: acc(0, dtype) },
      ]
    : [{ buf: 3, index: outIdx, expr: acc(0, dtype) }];
  const k: ConvKernel = { kind: 'conv', name: `conv_${c.name.replace(/\W+/g, '_')}`, params: p, dtype, lhs: { buf: 0, shape: c.lhs }, rhs: { buf: 1, shape: c.rhs }, outShape, outputs };
  expect(convPath(k)).toBe(c.path);
  const g: KernelGraph = {
    buffers: [buf(0, dtype, x.size, 'input'), buf(1, dtype, w.size, 'input'), buf(2, dtype, O, 'input'), buf(3, dtype, n, 'output'), buf(4, dtype, n, 'output')],
    kernels: [k],
    inputs: [0, 1, 2],
    outputs: [{ kind: 'buffer', buf: 3, shape: outShape, dtype }, ...(fused ? [{ kind: 'buffer' as const, buf: 4, shape: revShape, dtype }] : [])],
    consts: [],
  };
  const ex = createCpuDevice({ wasm }).compile(g, simplePlan(g));
  if (wasm && wasmSimdAvailable() && (c.path.startsWith('gemm') || (c.path.startsWith('depthwise') && p.lhsDilation.every((d) => d === 1)))) {
    expect(ex.sources[0]).toMatch(/\b[GD]\(/);
  }
  const outs = ex.run([x, w, bias]);
  const want = PRIMS.conv_general.impl([x, w], p, { wide: dtype !== 'i32' })[0]!;
  const red = (x.size / Math.max(1, c.lhs[p.dims.lhs[0]!]!)) * (c.rhs.reduce((a, b) => a * b, 1) / O);
  const tol = dtype === 'i32' ? 0 : f32tol(red);
  if (!fused) {
    expectClose(outs[0]!.data, want.data, tol, tol, c.name);
    return;
  }
  const fb = p.dims.out[1]!;
  const strides = outShape.map((_, i) => outShape.slice(i + 1).reduce((a, b) => a * b, 1));
  const want0 = Float64Array.from(want.data, (t, i) => 2 * t + bias.data[Math.floor(i / strides[fb]!) % O]!);
  expectClose(outs[0]!.data, want0, tol, tol, `${c.name} fused`);
  // reversed layout
  const want1 = new Float64Array(n);
  const rs = revShape.map((_, i) => revShape.slice(i + 1).reduce((a, b) => a * b, 1));
  for (let i = 0; i < n; i++) {
    let r = i;
    let j = 0;
    for (let d = outShape.length - 1; d >= 0; d--) {
      const id = r % outShape[d]!;
      r = Math.floor(r / outShape[d]!);
      j += id * rs[outShape.length - 1 - d]!;
    }
    want1[j] = want.data[i]!;
  }
  expectClose(outs[1]!.data, want1, tol, tol, `${c.name} second output`);
}

describe('conv kernels against the host conv_general', () => {
  for (const c of CASES) {
    it(`${c.name} [${c.path}]`, () => {
      runCase(c, false, true);
      runCase(c, true, true);
      if (c.path !== 'generic' && wasmSimdAvailable()) runCase(c, true, false);
      if (c.path === 'gemm_transposed') runCase(c, true, true);
    });
  }
});
