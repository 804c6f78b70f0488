/**
 * CPU backend with worker threads: kernels split across the main thread and a worker give the
 * same results as one thread (matmul, row and column loop kernels, depthwise conv and its weight
 * gradient, the generic conv which is not split); outputs are SharedArrayBuffer-backed; inputs
 * that are not shared are staged (and donated ones updated in place); steady state allocates
 * only outputs.
 */
import { describe, expect, it } from 'vitest';
import { createCpuDevice, type CpuExecutable } from '../../../src/codegen/cpu/device.js';
import type { ConvKernel, KernelGraph, LoopKernel, MatmulKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { HostArray } from '../../../src/ir/host.js';
import type { ConvParams } from '../../../src/ir/primitive.js';
import { acc, bin, buf, cst, expectClose, ld, lin, mulberry32, randArray, simplePlan, un, v } from './util.js';

function bigGraph(): { g: KernelGraph; inputs: HostArray[] } {
  const [M, K, N] = [300, 64, 48];
  const [H, W, C] = [12, 11, 8];
  const mm: MatmulKernel = {
    kind: 'matmul',
    name: 'mm',
    batch: 1,
    m: M,
    n: N,
    k: K,
    dtype: 'f32',
    a: { kind: 'strided', buf: 0, offset: 0, strides: [0, K, 1] },
    b: { kind: 'strided', buf: 1, offset: 0, strides: [0, N, 1] },
    outputs: [{ buf: 10, index: lin(['m', 'n'], [M, N]), expr: un('erf', acc(0)) }],
  };
  // column sums of the product (column mode) and row max (row mode)
  const cols: LoopKernel = { kind: 'loop', name: 'colsum', outer: [N], row: [M], reductions: [{ id: 0, op: 'sum', expr: ld(10, lin(['r0', 'o0'], [M, N])), dtype: 'f32' }], outerOutputs: [{ buf: 11, index: v('o0'), expr: acc(0) }], rowOutputs: [] };
  const rows: LoopKernel = { kind: 'loop', name: 'rowmax', outer: [M], row: [N], reductions: [{ id: 0, op: 'max', expr: ld(10, lin(['o0', 'r0'], [M, N])), dtype: 'f32' }], outerOutputs: [{ buf: 12, index: v('o0'), expr: acc(0) }], rowOutputs: [] };
  const NHWC = { lhs: [0, 3, 1, 2], rhs: [3, 2, 0, 1], out: [0, 3, 1, 2] };
  const dwp: ConvParams = { windowStrides: [1, 1], padding: [[3, 3], [3, 3]], lhsDilation: [1, 1], rhsDilation: [1, 1], featureGroupCount: C, batchGroupCount: 1, dims: NHWC };
  const out4 = (s: number[]) => lin(s.map((_, i) => `o${i}`), s);
  const dw: ConvKernel = { kind: 'conv', name: 'dw', params: dwp, dtype: 'f32', lhs: { buf: 2, shape: [2, H, W, C] }, rhs: { buf: 3, shape: [7, 7, 1, C] }, outShape: [2, H, W, C], outputs: [{ buf: 13, index: out4([2, H, W, C]), expr: bin('add', acc(0), cst(1)) }] };
  const wgp: ConvParams = { windowStrides: [1, 1], padding: [[3, 3], [3, 3]], lhsDilation: [1, 1], rhsDilation: [1, 1], featureGroupCount: 1, batchGroupCount: C, dims: { lhs: [3, 0, 1, 2], rhs: [3, 0, 1, 2], out: [2, 3, 0, 1] } };
  const wg: ConvKernel = { kind: 'conv', name: 'wg', params: wgp, dtype: 'f32', lhs: { buf: 2, shape: [2, H, W, C] }, rhs: { buf: 13, shape: [2, H, W, C] }, outShape: [7, 7, 1, C], outputs: [{ buf: 14, index: out4([7, 7, 1, C]), expr: acc(0) }] };
  const gp: ConvParams = { windowStrides: [1, 1], padding: [[1, 1], [1, 1]], lhsDilation: [1, 1], rhsDilation: [1, 1], featureGroupCount: 2, batchGroupCount: 1, dims: NHWC };
  const gen: ConvKernel = { kind: 'conv', name: 'generic', params: gp, dtype: 'f32', lhs: { buf: 2, shape: [2, H, W, C] }, rhs: { buf: 4, shape: [3, 3, 4, 6] }, outShape: [2, H, W, 6], outputs: [{ buf: 15, index: out4([2, H, W, 6]), expr: acc(0) }] };
  // donated parameter update: p' = p - 0.1 * colsum (buf 16 aliases input 5)
  const upd: LoopKernel = { kind: 'loop', name: 'update', outer: [N], row: [], reductions: [], outerOutputs: [{ buf: 16, index: v('o0'), expr: bin('sub', ld(5, v('o0')), bin('mul', cst(0.1), ld(11, v('o0')))) }], rowOutputs: [] };
  const g: KernelGraph = {
    buffers: [
      buf(0, 'f32', M * K, 'input'),
      buf(1, 'f32', K * N, 'input'),
      buf(2, 'f32', 2 * H * W * C, 'input'),
      buf(3, 'f32', 49 * C, 'input'),
      buf(4, 'f32', 9 * 4 * 6, 'input'),
      buf(5, 'f32', N, 'input'),
      buf(10, 'f32', M * N, 'temp'),
      buf(11, 'f32', N, 'output'),
      buf(12, 'f32', M, 'output'),
      buf(13, 'f32', 2 * H * W * C, 'temp'),
      buf(14, 'f32', 49 * C, 'output'),
      buf(15, 'f32', 2 * H * W * 6, 'output'),
      buf(16, 'f32', N, 'output'),
    ],
    kernels: [mm, cols, rows, dw, wg, gen, upd],
    inputs: [0, 1, 2, 3, 4, 5],
    outputs: [
      { kind: 'buffer', buf: 11, shape: [N], dtype: 'f32' },
      { kind: 'buffer', buf: 12, shape: [M], dtype: 'f32' },
      { kind: 'buffer', buf: 14, shape: [7, 7, 1, C], dtype: 'f32' },
      { kind: 'buffer', buf: 15, shape: [2, H, W, 6], dtype: 'f32' },
      { kind: 'buffer', buf: 16, shape: [N], dtype: 'f32' },
    ],
    consts: [],
  };
  const rng = mulberry32(17);
  const inputs = [randArray('f32', [M, K], rng), randArray('f32', [K, N], rng), randArray('f32', [2, H, W, C], rng), randArray('f32', [7, 7, 1, C], rng), randArray('f32', [3, 3, 4, 6], rng), randArray('f32', [N], rng)];
  return { g, inputs };
}

describe('worker threads', () => {
  it('split kernels compute what one thread computes; donated inputs are updated in place', () => {
    const { g, inputs } = bigGraph();
    const plan = simplePlan(g, { aliases: new Map([[16, 5]]) });
    const p0 = Float32Array.from(inputs[5]!.data);
    const one = createCpuDevice({ threads: 1 }).compile(g, plan).run([...inputs.slice(0, 5), new HostArray('f32', [48], Float32Array.from(p0))]);
    const ex = createCpuDevice({ threads: 2, splitMinWork: 0 }).compile(g, plan) as CpuExecutable;
    expect(ex.threads).toBe(2);
    const param = new HostArray('f32', [48], Float32Array.from(p0));
    const outs = ex.run([...inputs.slice(0, 5), param]);
    for (let i = 0; i < one.length; i++) expectClose(outs[i]!.data, one[i]!.data, 1e-6, 1e-6, `output ${i}`);
    // every splittable kernel was split (the generic conv, index 5, is not splittable)
    expect(ex.splitKernels).toEqual([0, 1, 2, 3, 4, 6]);
    // the donated (non-shared) parameter was staged and written back in place
    expect(outs[4]!.data).toBe(param.data);
    expect(outs[0]!.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(ex.lastRun.stagedBytes).toBeGreaterThan(0);
    // second run: the staging exists already; only the fresh outputs are allocated
    const outs2 = ex.run([...inputs.slice(0, 5), param]);
    const outBytes = outs2.slice(0, 4).reduce((a, o) => a + o.data.byteLength, 0);
    expect(ex.lastRun.allocatedBytes).toBe(outBytes);
    expectClose(outs2[1]!.data, one[1]!.data, 1e-6, 1e-6, 'rerun');
    // feeding shared arrays back needs no staging
    const sharedInputs = inputs.map((a) => {
      const d = new Float32Array(new SharedArrayBuffer(a.data.byteLength));
      d.set(a.data as Float32Array);
      return new HostArray('f32', a.shape, d);
    });
    ex.run(sharedInputs);
    expect(ex.lastRun.stagedBytes).toBe(0);
  });

  it('runs many small calls in a row without losing jobs', () => {
    const n = 4096;
    const k: LoopKernel = { kind: 'loop', name: 'axpy', outer: [n], row: [], reductions: [], outerOutputs: [{ buf: 2, index: v('o0'), expr: bin('add', bin('mul', ld(0, v('o0')), cst(3)), ld(1, v('o0'))) }], rowOutputs: [] };
    const g: KernelGraph = { buffers: [buf(0, 'f32', n, 'input'), buf(1, 'f32', n, 'input'), buf(2, 'f32', n, 'output')], kernels: [k, { ...k, name: 'again' }], inputs: [0, 1], outputs: [{ kind: 'buffer', buf: 2, shape: [n], dtype: 'f32' }], consts: [] };
    const ex = createCpuDevice({ threads: 2, splitMinWork: 0 }).compile(g, simplePlan(g));
    const rng = mulberry32(2);
    const x = randArray('f32', [n], rng);
    const y = randArray('f32', [n], rng);
    const want = Float32Array.from(x.data, (t, i) => t * 3 + y.data[i]!); // computed in float64, rounded when stored
    for (let r = 0; r < 200; r++) {
      const [o] = ex.run([x, y]);
      if (r % 50 === 0 || r === 199) expect(Array.from(o!.data)).toEqual(Array.from(want));
    }
  });
});
