// The dialect-generic GPU kernels (src/codegen/lower/gpu) on the WGSL device, one test per
// kernel shape the emitters choose, each checked to be the shape it claims (loopShape,
// convPath, the sort's schedule) and compared with the reference interpreter: tree reductions
// (first-index argmax with ties and NaN, NaN-propagating max/min, several phases), the tiled
// GEMM (edge tiles, batches, transposed operands, prologues and epilogues, K = 0), every
// convolution path and its gradients, the global argsort schedule, atomic scatter_add.
import { expect, it } from 'vitest';
import type { ConvKernel, LoopKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { convPath, type ConvPath } from '../../../src/codegen/lower/conv_geometry.js';
import { loopShape } from '../../../src/codegen/lower/gpu/loop.js';
import * as ng from '../../../src/index.js';
import { bind1 } from '../../../src/ir/trace.js';
import { describeWgslBackend, wgslBackend } from './env.js';

const env = await wgslBackend();

type Fn = (...xs: ng.Tensor[]) => ng.Tensor | ng.Tensor[];

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const randn = (shape: number[], seed: number): ng.Tensor => {
  const r = lcg(seed);
  return ng.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (r() + r() + r() - 1.5) * 1.4), { shape });
};

/** Runs fn with jit on wgsl; every output within tol (relative to the largest) of the float64 interpreter. */
async function close(fn: Fn, args: ng.Tensor[], tol: number, what: string): Promise<void> {
  const outs = ng.jit(fn, { backend: 'wgsl', cacheDir: false })(...args);
  const got = Array.isArray(outs) ? outs : [outs];
  const want = ng.interpret(ng.trace(fn, ...args), args, { dtype: 'f64' });
  expect(got.length).toBe(want.length);
  for (const [i, w] of want.entries()) {
    const g = await got[i]!.data();
    const wd = w.dataSync();
    let scale = 1e-3;
    for (const v of wd) scale = Math.max(scale, Math.abs(v));
    for (let j = 0; j < wd.length; j++) {
      if (!(Math.abs(g[j]! - wd[j]!) <= tol * scale)) throw new Error(`${what}: output ${i} element ${j} is ${g[j]}, the interpreter's ${wd[j]} (scale ${scale})`);
    }
  }
}

async function bitwise(fn: Fn, args: ng.Tensor[], what: string): Promise<void> {
  const got = await (ng.jit(fn, { backend: 'wgsl', cacheDir: false })(...args) as ng.Tensor).data();
  const want = ng.interpret(ng.trace(fn, ...args), args)[0]!.dataSync();
  for (let i = 0; i < want.length; i++) if (!(Object.is(got[i], want[i]) || (Number.isNaN(got[i]!) && Number.isNaN(want[i]!)))) throw new Error(`${what}: element ${i} is ${got[i]}, the interpreter's ${want[i]}`);
}

function kernelsOf(fn: Fn, args: ng.Tensor[]) {
  return ng.jit(fn, { backend: 'wgsl', cacheDir: false }).lower(...args).graph.kernels;
}

describeWgslBackend('GPU kernels on the WGSL device', env, () => {
  it('tree reductions: long rows, first-index argmax among ties and NaN, NaN-propagating max/min', async () => {
    const n = 700;
    const base = Array.from({ length: 3 * n }, (_, i) => (i * 37) % 11);
    // row 0: the maximum 10 first at 3 and again later; row 1: a NaN at 500 and 650; row 2: all equal
    base[3] = 10;
    base[n + 500] = NaN;
    base[n + 650] = NaN;
    for (let j = 0; j < n; j++) base[2 * n + j] = 4;
    const x = ng.tensor(base, { shape: [3, n] });
    const shapes = kernelsOf((a) => ng.argmax(a, 1), [x]).map((k) => loopShape(k as LoopKernel, env.device!));
    expect(shapes).toEqual(['tree']);
    await bitwise((a) => ng.argmax(a, 1), [x], 'argmax over 700');
    await bitwise((a) => a.max(1), [x], 'max over 700');
    await bitwise((a) => a.min(1), [x], 'min over 700');
    await close((a) => a.sum(1), [randn([3, n], 1)], 1e-6, 'sum over 700');
  });

  it('tree reductions in phases: a softmax and a layer norm over long rows, a column sum', async () => {
    const x = randn([4, 300], 2);
    const softmax = (a: ng.Tensor): ng.Tensor => a.sub(a.max(1, true)).exp().div(a.sub(a.max(1, true)).exp().sum(1, true));
    expect(kernelsOf(softmax, [x]).map((k) => (k.kind === 'loop' ? loopShape(k, env.device!) : k.kind))).toContain('tree');
    await close(softmax, [x], 1e-6, 'softmax');
    await close((a) => a.sub(a.mean(1, true)).div(a.sub(a.mean(1, true)).square().mean(1, true).add(1e-5).sqrt()), [x], 1e-5, 'layer norm');
    await close((a) => a.sum(0), [randn([500, 3], 3)], 1e-6, 'column sum');
  });

  it('the reduction shape per target: rows read across the outer space and short rows go serial; an emulated GPU avoids barriers', () => {
    const shapeOf = (fn: Fn, args: ng.Tensor[], emulated: boolean) => kernelsOf(fn, args).map((k) => (k.kind === 'loop' ? loopShape(k, { emulated }) : k.kind));
    const layerNormLike = (a: ng.Tensor) => a.sub(a.mean(1, true)).square().mean(1);
    expect(shapeOf(layerNormLike, [randn([784, 80], 41)], false)).toEqual(['tree']);
    expect(shapeOf(layerNormLike, [randn([784, 80], 41)], true)).toEqual(['serial']);
    expect(shapeOf(layerNormLike, [randn([4096, 80], 41)], false)).toEqual(['serial']);
    expect(shapeOf((a) => a.square().sum(0), [randn([196, 640], 42)], false)).toEqual(['serial']); // across the outer space
    expect(shapeOf((a) => a.square().sum(1), [randn([640, 196], 43)], false)).toEqual(['tree']);
    expect(shapeOf((a) => a.sum(1), [randn([8, 300], 44)], true)).toEqual(['tree']); // too few outputs to keep the cores busy
  });

  it('serial reductions: many short rows (one thread each)', async () => {
    const x = randn([9000, 5], 4);
    expect(kernelsOf((a) => a.sum(1), [x]).map((k) => loopShape(k as LoopKernel, env.device!))).toEqual(['serial']);
    await close((a) => a.sum(1), [x], 1e-6, 'row sums');
    await bitwise((a) => ng.argmax(a.round(), 1), [x], 'argmax of short rows with ties');
  });

  it('GEMM: edge tiles, batches, transposed operands, prologue and epilogue, K = 0', async () => {
    await close((a, b) => a.matmul(b), [randn([2, 70, 33], 5), randn([2, 33, 65], 6)], 1e-5, 'batched edge tiles');
    await close((a, b) => a.transpose([1, 0]).matmul(b), [randn([40, 17], 7), randn([40, 9], 8)], 1e-5, 'A transposed');
    await close((a, b) => a.matmul(b.transpose([1, 0])), [randn([5, 130], 9), randn([66, 130], 10)], 1e-5, 'B transposed');
    await close((a, b, c) => a.mul(1.5).add(c).matmul(b).add(c.sum()).tanh(), [randn([20, 24], 11), randn([24, 18], 12), randn([20, 24], 13)], 1e-5, 'prologue and epilogue');
    await close((a, b) => a.matmul(b).add(1), [ng.zeros([3, 0]), ng.zeros([0, 4])], 0, 'K = 0');
    await close((a, b) => [a.matmul(b), a.matmul(b).mul(2).exp()] as ng.Tensor[], [randn([3, 4], 14), randn([4, 5], 15)], 1e-5, 'two epilogue outputs');
  });

  /** `halo`: whether the depthwise kernel stages its input tile in shared memory (2-D, no lhs dilation). */
  const convCase = (path: ConvPath, fn: Fn, args: ng.Tensor[], halo?: boolean) => ({ path, fn, args, halo });
  const conv = (opts: Parameters<typeof ng.conv2d>[2]) => (x: ng.Tensor, w: ng.Tensor) => ng.conv2d(x, w, opts);
  const grads = (f: (x: ng.Tensor, w: ng.Tensor) => ng.Tensor) => (x: ng.Tensor, w: ng.Tensor) => ng.grad((a: ng.Tensor, b: ng.Tensor) => f(a, b).square().sum(), { argnums: [0, 1] })(x, w) as ng.Tensor[];
  const CONVS = [
    convCase('gemm', conv({}), [randn([2, 3, 10, 10], 20), randn([8, 3, 3, 3], 21)]),
    convCase('gemm_transposed', (x, w) => ng.grad((a: ng.Tensor) => ng.conv2d(a, w, { strides: 2 }).square().sum())(x), [randn([2, 4, 8, 8], 22), randn([6, 4, 2, 2], 23)]),
    convCase('depthwise', conv({ padding: 3, groups: 8 }), [randn([2, 8, 12, 12], 24), randn([8, 1, 7, 7], 25)], true),
    convCase('depthwise', conv({ padding: 1, groups: 6, strides: 2, dilation: 2 }), [randn([1, 6, 9, 11], 26), randn([6, 1, 3, 3], 27)], true),
    // the input gradient of a strided depthwise conv (a linear function of x: no forward conv left): lhs dilation
    convCase('depthwise', (x, w) => ng.grad((a: ng.Tensor) => ng.conv2d(a, w, { padding: 1, groups: 6, strides: 2 }).mul(randn([1, 6, 5, 6], 38)).sum())(x), [randn([1, 6, 9, 11], 36), randn([6, 1, 3, 3], 37)], false),
    convCase('depthwise_wgrad', (x, w) => ng.grad((b: ng.Tensor) => ng.conv2d(x, b, { padding: 3, groups: 8 }).square().sum())(w), [randn([2, 8, 24, 24], 28), randn([8, 1, 7, 7], 29)]),
    convCase('depthwise_wgrad', (x, w) => ng.grad((b: ng.Tensor) => ng.conv2d(x, b, { padding: 1, groups: 4 }).square().sum())(w), [randn([1, 4, 5, 5], 30), randn([4, 1, 3, 3], 31)]),
    convCase('generic', conv({ padding: 1, groups: 2, dilation: 2 }), [randn([2, 4, 9, 9], 32), randn([6, 2, 3, 3], 33)]),
    convCase('generic', grads(conv({ padding: 1 })), [randn([2, 3, 7, 7], 34), randn([5, 3, 3, 3], 35)]),
  ];
  for (const c of CONVS) {
    it(`conv path ${c.path} (${c.args.map((a) => `[${a.shape}]`).join(' ')})`, async () => {
      const paths = kernelsOf(c.fn, c.args).filter((k): k is ConvKernel => k.kind === 'conv').map((k) => convPath(k));
      expect(paths).toContain(c.path);
      if (c.halo !== undefined) {
        const sources = ng.jit(c.fn, { backend: 'wgsl', cacheDir: false }).lower(...c.args).exec.sources;
        expect(sources.some((src) => src.includes('ng_halo'))).toBe(c.halo);
      }
      await close(c.fn, c.args, 2e-5, c.path);
    });
  }

  it('argsort beyond shared memory (the global schedule): stable, NaN last, both directions', async () => {
    const n = 5000;
    const r = lcg(40);
    const data = Array.from({ length: 2 * n }, (_, i) => (i % 97 === 0 ? NaN : Math.floor(r() * 300) - 150 + (i % 3 === 0 ? -0 : 0)));
    const x = ng.tensor(data, { shape: [2, n] });
    const kernels = kernelsOf((a) => ng.argsort(a, 1), [x]);
    expect(kernels.map((k) => k.kind)).toEqual(['sort']);
    const exec = ng.jit((a: ng.Tensor) => ng.argsort(a, 1), { backend: 'wgsl', cacheDir: false }).lower(x).exec;
    expect(exec.sources[0]).toContain('ng_global_step'); // n = 5000 exceeds the pairs shared memory holds
    await bitwise((a) => ng.argsort(a, 1), [x], 'argsort 5000 ascending');
    await bitwise((a) => ng.argsort(a, 1, true), [x], 'argsort 5000 descending');
    await bitwise((a) => ng.argsort(a.cast('i32'), 1, true), [ng.tensor(data.map((v) => (Number.isNaN(v) ? 7 : v)), { shape: [2, n] })], 'argsort i32');
  });

  it('scatter_add with colliding indices: atomic f32 adds (integer values: exact in any order)', async () => {
    const upd = ng.tensor(Array.from({ length: 4000 }, (_, i) => (i % 13) - 6), { shape: [4000, 1] });
    const idx = ng.tensor(Array.from({ length: 4000 }, (_, i) => (i * 7) % 5), { dtype: 'i32' });
    const x = ng.ones([5, 1]);
    await bitwise((a, i, u) => bind1('scatter_add', [a, i, u], { axis: 0, batchDims: 0 }), [x, idx, upd], 'scatter_add 4000 -> 5');
  });
});
