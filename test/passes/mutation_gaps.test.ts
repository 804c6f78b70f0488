// Deterministic tests for the deliberate bugs a mutation run found that the suite missed (or
// caught only through one randomly seeded case). Each names the mutation it catches.
import { describe, expect, it } from 'vitest';
import { createCpuDevice, type CpuExecutable } from '../../src/codegen/cpu/device.js';
import { UNLIMITED_CAPS } from '../../src/codegen/kernel/device.js';
import type { KernelGraph, MatmulKernel } from '../../src/codegen/kernel/kernel_graph.js';
import * as ng from '../../src/index.js';
import { HostArray } from '../../src/ir/host.js';
import { planMemory } from '../../src/passes/memory.js';
import { lower } from '../../src/passes/pipeline.js';
import { acc, bin, buf, ld, lin, simplePlan, un } from '../codegen/cpu/util.js';

const jit = <F extends (...a: any[]) => any>(f: F, opts: ng.JitOptions = {}) => ng.jit(f, { cacheDir: false, ...opts });
const vals = (t: ng.Tensor): number[] => Array.from(t.dataSync());

describe('mutation gaps', () => {
  it("simplify folds 0 - x to -x (a copy of add's rule folded it to x)", () => {
    const x = ng.tensor([1.5, -2, 0]);
    const f = jit((a: ng.Tensor) => ng.sub(0, a));
    const y = vals(f(x));
    expect(y).toEqual([-1.5, 2, 0]);
    expect(Object.is(y[2], 0)).toBe(true); // 0 - 0 is +0 (so it is not neg(0) = -0 either)
    const g = jit((a: ng.Tensor) => ng.sub(a, 0).add(ng.sub(0, ng.sub(0, a))));
    expect(vals(g(x))).toEqual([3, -4, 0]);
  });

  it('a conv whose kernel equals its stride but with high-side padding is not a plain patch matmul', () => {
    const x = ng.random.normal(ng.random.key(1), [1, 2, 5, 6]);
    const w = ng.random.normal(ng.random.key(2), [3, 2, 2, 2]);
    const f = (a: ng.Tensor, k: ng.Tensor) => ng.conv2d(a, k, { strides: 2, padding: [[0, 1], [0, 0]] });
    const want = ng.interpret(ng.trace(f, x, w), [x, w], { dtype: 'f64' })[0]!;
    const got = jit(f)(x, w);
    expect(got.shape).toEqual([1, 3, 3, 3]);
    const a = got.dataSync();
    const b = want.dataSync();
    for (let i = 0; i < b.length; i++) expect(a[i]).toBeCloseTo(b[i]!, 5);
  });

  it('the arena sizes bf16 temporaries by the device element size (the CPU stores them in 4 bytes)', () => {
    // a bf16 matmul result read by two reductions: a materialised bf16 temporary
    const f = (a: ng.Tensor) => {
      const y = a.cast('bf16');
      const z = y.matmul(y.transpose());
      return [z.sum(0).cast('f32'), z.max(1).cast('f32')];
    };
    const low = lower(ng.trace(f, ng.ones([16, 8])), undefined, UNLIMITED_CAPS);
    const bf16Temps = low.graph.buffers.filter((b) => b.kind === 'temp' && b.dtype === 'bf16');
    expect(bf16Temps.length).toBeGreaterThan(0);
    for (const b of bf16Temps) expect(low.plan.storageBytes[low.plan.storageOf[b.id]!]!).toBeGreaterThanOrEqual(b.size * 4);
    const twoByte = planMemory(low.graph, undefined, { elementBytes: { ...UNLIMITED_CAPS.elementBytes, bf16: 2 } });
    for (const b of bf16Temps) expect(twoByte.storageBytes[twoByte.storageOf[b.id]!]!).toBeGreaterThanOrEqual(b.size * 2);
  });

  it('argmax takes the first index of tied maxima (JAX and NumPy do), eager, jitted and interpreted', () => {
    const x = ng.tensor([[1, 3, 3, 2], [5, 5, 5, 5], [NaN, 1, NaN, 0]]);
    expect(vals(ng.argmax(x, 1))).toEqual([1, 0, 0]);
    expect(vals(jit((a: ng.Tensor) => ng.argmax(a, 1))(x))).toEqual([1, 0, 0]);
    expect(vals(ng.interpret(ng.trace((a: ng.Tensor) => ng.argmax(a, 1), x), [x])[0]!)).toEqual([1, 0, 0]);
  });

  it('a WebAssembly GEMM epilogue with two outputs does not update in place while the other reads the accumulator (N a multiple of the register width)', () => {
    const [M, K, N] = [5, 3, 8];
    const mm: MatmulKernel = {
      kind: 'matmul', name: 'mm2', batch: 1, m: M, n: N, k: K, dtype: 'f32',
      a: { kind: 'strided', buf: 0, offset: 0, strides: [0, K, 1] },
      b: { kind: 'strided', buf: 1, offset: 0, strides: [0, N, 1] },
      outputs: [
        { buf: 2, index: lin(['m', 'n'], [M, N]), expr: un('erf', acc(0)) },
        { buf: 3, index: lin(['m', 'n'], [M, N]), expr: bin('mul', acc(0), ld(4, lin(['n'], [N]))) },
      ],
    };
    const g: KernelGraph = {
      buffers: [buf(0, 'f32', M * K, 'input'), buf(1, 'f32', K * N, 'input'), buf(2, 'f32', M * N, 'output'), buf(3, 'f32', M * N, 'output'), buf(4, 'f32', N, 'input')],
      kernels: [mm], inputs: [0, 1, 4],
      outputs: [{ kind: 'buffer', buf: 2, shape: [M, N], dtype: 'f32' }, { kind: 'buffer', buf: 3, shape: [M, N], dtype: 'f32' }], consts: [],
    };
    const A = Float32Array.from({ length: M * K }, (_, i) => ((i * 7) % 5) - 2);
    const B = Float32Array.from({ length: K * N }, (_, i) => ((i * 3) % 4) - 1.5);
    const s = Float32Array.from({ length: N }, (_, i) => i + 1);
    const ex = createCpuDevice().compile(g, simplePlan(g)) as CpuExecutable;
    expect(ex.sources[0]).toContain('G(1,'); // the epilogue runs in WebAssembly
    const [e, p] = ex.run([new HostArray('f32', [M, K], A), new HostArray('f32', [K, N], B), new HostArray('f32', [N], s)]);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let c = 0;
        for (let k = 0; k < K; k++) c += A[m * K + k]! * B[k * N + n]!;
        expect(p!.data[m * N + n]).toBeCloseTo(c * s[n]!, 4);
        expect(e!.data[m * N + n]).toBeCloseTo(ng.erf(ng.scalar(c)).item(), 5);
      }
  });

  it('the reduce_max VJP shares the cotangent equally among tied maxima', () => {
    const g = ng.grad((a: ng.Tensor) => a.max())(ng.tensor([1, 3, 3, 2], { dtype: 'f64' }));
    expect(vals(g)).toEqual([0, 0.5, 0.5, 0]);
    const gj = jit(ng.grad((a: ng.Tensor) => a.max(1).sum()))(ng.tensor([[4, 4, 4, 1], [0, 2, 1, 2]]));
    vals(gj).forEach((v, i) => expect(v).toBeCloseTo([1 / 3, 1 / 3, 1 / 3, 0, 0, 0.5, 0, 0.5][i]!, 7));
  });

  it('the dot_general VJP with contracting axes out of order', () => {
    // out[b, n] = sum_{i, j} x[j, b, i] y[i, n, j]: contracting x axes (2, 0) with y axes (0, 2)
    const x = ng.tensor(Float64Array.from({ length: 3 * 2 * 4 }, (_, i) => Math.sin(i + 1)), { dtype: 'f64', shape: [3, 2, 4] });
    const y = ng.tensor(Float64Array.from({ length: 4 * 5 * 3 }, (_, i) => Math.cos(i)), { dtype: 'f64', shape: [4, 5, 3] });
    const f = (a: ng.Tensor, b: ng.Tensor) => ng.dotGeneral(a, b, [[2, 0], [0, 2]]).square().sum();
    const [gx, gy] = ng.grad(f, { argnums: [0, 1] })(x, y);
    // the gradient by hand: out = sum ..., d/dx[j,b,i] = sum_n 2 out[b,n] y[i,n,j]
    const xd = x.dataSync();
    const yd = y.dataSync();
    const out = (b: number, n: number) => {
      let s = 0;
      for (let i = 0; i < 4; i++) for (let j = 0; j < 3; j++) s += xd[(j * 2 + b) * 4 + i]! * yd[(i * 5 + n) * 3 + j]!;
      return s;
    };
    const gxd = gx.dataSync();
    const gyd = gy.dataSync();
    for (let j = 0; j < 3; j++)
      for (let b = 0; b < 2; b++)
        for (let i = 0; i < 4; i++) {
          let s = 0;
          for (let n = 0; n < 5; n++) s += 2 * out(b, n) * yd[(i * 5 + n) * 3 + j]!;
          expect(gxd[(j * 2 + b) * 4 + i]).toBeCloseTo(s, 10);
        }
    for (let i = 0; i < 4; i++)
      for (let n = 0; n < 5; n++)
        for (let j = 0; j < 3; j++) {
          let s = 0;
          for (let b = 0; b < 2; b++) s += 2 * out(b, n) * xd[(j * 2 + b) * 4 + i]!;
          expect(gyd[(i * 5 + n) * 3 + j]).toBeCloseTo(s, 10);
        }
  });

  it('a donated input read off the index its output writes is not updated in place', () => {
    const f = jit((a: ng.Tensor) => a.flip(0).add(a).mul(a), { donate: 0 });
    const x = ng.tensor([1, 2, 3, 4, 5]);
    const want = [6, 12, 18, 24, 30];
    try {
      expect(vals(f(x))).toEqual(want);
    } catch (e) {
      // refusing the donation is the other correct outcome
      expect(String(e)).toMatch(/cannot be reused in place/);
    }
  });

  it('SGD with momentum and dampening takes the plain gradient at the first step (torch)', () => {
    const opt = ng.nn.sgd({ lr: 0.1, momentum: 0.9, dampening: 0.5 });
    const p = { w: ng.tensor([1, 2]) };
    const g = { w: ng.tensor([0.5, -1]) };
    const s0 = opt.init(p);
    const r1 = opt.update(g, s0, p);
    expect(vals(r1.params.w)).toEqual([1 - 0.1 * 0.5, 2 + 0.1 * 1].map(Math.fround));
    // second step: buf = 0.9 buf + (1 - 0.5) g
    const r2 = opt.update(g, r1.state, r1.params);
    const buf2 = [0.9 * 0.5 + 0.5 * 0.5, 0.9 * -1 + 0.5 * -1];
    vals(r2.params.w).forEach((v, i) => expect(v).toBeCloseTo(vals(r1.params.w)[i]! - 0.1 * buf2[i]!, 6));
  });

  it('a kernel split across two worker threads waits for the last worker (every element computed)', () => {
    const dev = createCpuDevice({ threads: 2, splitMinWork: 1 });
    const f = (a: ng.Tensor) => a.mul(3).add(1);
    const x = ng.arange(0, 4096, 1, 'f32');
    const low = lower(ng.trace(f, x));
    const ex = dev.compile(low.graph, low.plan) as CpuExecutable;
    for (let rep = 0; rep < 20; rep++) {
      const [y] = ex.run([x._host!]);
      const d = (y as HostArray).data;
      for (let i = 0; i < 4096; i++) if (d[i] !== 3 * i + 1) throw new Error(`run ${rep}: element ${i} is ${d[i]}`);
    }
    expect(ex.splitKernels.length).toBeGreaterThan(0);
  });

  it('CSE keeps the literals 0 and -0 apart: x * -0 is not x * 0 (found by the CUDA helper)', () => {
    const f = (x: ng.Tensor) => ng.stack([x.mul(0), x.mul(-0)], 0);
    const x = ng.tensor([3, -2]);
    const got = vals(ng.jit(f, { cacheDir: false })(x));
    // IEEE: 3 * -0 = -0, -2 * 0 = -0, -2 * -0 = +0 (the interpreter agrees)
    const want = vals(ng.interpret(ng.trace(f, x), [x])[0]!);
    expect(want.map((v) => Object.is(v, -0))).toEqual([false, true, true, false]);
    expect(got.map((v) => Object.is(v, -0))).toEqual(want.map((v) => Object.is(v, -0)));
  });
});
