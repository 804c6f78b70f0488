/**
 * CPU device: executables over multi-kernel graphs with arena temporaries (shared storages),
 * steady-state allocation (nothing but fresh outputs after the first run), donated inputs
 * updated in place, outputs that are inputs / consts / duplicated / literal, sort kernels,
 * sources and kernel counts.
 */
import { describe, expect, it } from 'vitest';
import { cpuDevice, createCpuDevice, type CpuExecutable } from '../../../src/codegen/cpu/device.js';
import type { KernelGraph, LoopKernel, MatmulKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { HostArray } from '../../../src/ir/host.js';
import { PRIMS } from '../../../src/ir/primitives/index.js';
import { acc, bin, buf, cst, expectClose, f32tol, ld, lin, mulberry32, randArray, simplePlan, un, v } from './util.js';

/**
 * y = gelu(x @ w + b) (matmul with epilogue, temp t), then z = sum_rows(t * 2) (loop kernel
 * over the temp), then s = z + 1 in another temp, q = s * 3 (temps share one storage).
 */
function mlpGraph(M: number, K: number, N: number): KernelGraph {
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
    outputs: [{ buf: 3, index: lin(['m', 'n'], [M, N]), expr: un('tanh', bin('add', acc(0), ld(2, v('n')))) }],
  };
  const red: LoopKernel = {
    kind: 'loop',
    name: 'colsum',
    outer: [N],
    row: [M],
    reductions: [{ id: 0, op: 'sum', expr: bin('mul', ld(3, lin(['r0', 'o0'], [M, N])), cst(2)), dtype: 'f32' }],
    outerOutputs: [{ buf: 4, index: v('o0'), expr: acc(0) }],
    rowOutputs: [],
  };
  const inc: LoopKernel = { kind: 'loop', name: 'inc', outer: [N], row: [], reductions: [], outerOutputs: [{ buf: 5, index: v('o0'), expr: bin('add', ld(4, v('o0')), cst(1)) }], rowOutputs: [] };
  const mul: LoopKernel = { kind: 'loop', name: 'mul3', outer: [N], row: [], reductions: [], outerOutputs: [{ buf: 6, index: v('o0'), expr: bin('mul', ld(5, v('o0')), cst(3)) }], rowOutputs: [] };
  return {
    buffers: [buf(0, 'f32', M * K, 'input'), buf(1, 'f32', K * N, 'input'), buf(2, 'f32', N, 'input'), buf(3, 'f32', M * N, 'temp'), buf(4, 'f32', N, 'temp'), buf(5, 'f32', N, 'temp'), buf(6, 'f32', N, 'output')],
    kernels: [mm, red, inc, mul],
    inputs: [0, 1, 2],
    outputs: [{ kind: 'buffer', buf: 6, shape: [N], dtype: 'f32' }],
    consts: [],
  };
}

function mlpReference(x: HostArray, w: HostArray, b: HostArray, M: number, N: number): Float64Array {
  const p = PRIMS.dot_general.impl([x, w], { contracting: [[1], [0]], batch: [[], []] }, { wide: true })[0]!;
  const out = new Float64Array(N);
  for (let j = 0; j < N; j++) {
    let s = 0;
    for (let i = 0; i < M; i++) s += 2 * Math.tanh(p.data[i * N + j]! + b.data[j]!);
    out[j] = (s + 1) * 3;
  }
  return out;
}

describe('cpu executables', () => {
  const M = 50;
  const K = 30;
  const N = 20;
  const rng = mulberry32(9);
  const x = randArray('f32', [M, K], rng);
  const w = randArray('f32', [K, N], rng);
  const b = randArray('f32', [N], rng);

  it('runs a multi-kernel graph with arena temporaries; the second run allocates only the output', () => {
    const g = mlpGraph(M, K, N);
    // buffers 4 and 5 are never live together with... (4 -> 5 -> 6): put 3 and 5 in one storage
    const plan = simplePlan(g);
    const storageOf = [...plan.storageOf];
    storageOf[5] = storageOf[3]!;
    const ex = cpuDevice.compile(g, { ...plan, storageOf, storageBytes: plan.storageBytes }) as CpuExecutable;
    expect(ex.kernelCount).toBe(4);
    expect(ex.sources).toHaveLength(4);
    const want = mlpReference(x, w, b, M, N);
    const r1 = ex.run([x, w, b]);
    expectClose(r1[0]!.data, want, f32tol(M * K), 1e-5);
    const first = ex.lastRun.allocatedBytes;
    expect(first).toBeGreaterThan(N * 4);
    const r2 = ex.run([x, w, b]);
    expectClose(r2[0]!.data, want, f32tol(M * K), 1e-5);
    expect(ex.lastRun.allocatedBytes).toBe(N * 4);
    expect(r2[0]!.data).not.toBe(r1[0]!.data);
    for (let i = 0; i < 3; i++) ex.run([x, w, b]);
    expect(ex.lastRun.allocatedBytes).toBe(N * 4);
  });

  it('produces the same results with the JavaScript GEMM and with profiling on', () => {
    const g = mlpGraph(M, K, N);
    const ex = createCpuDevice({ wasm: false, profile: true }).compile(g, simplePlan(g)) as CpuExecutable;
    const r = ex.run([x, w, b]);
    expectClose(r[0]!.data, mlpReference(x, w, b, M, N), f32tol(M * K), 1e-5);
    expect(ex.kernelTimes).toHaveLength(4);
    expect(ex.kernelNames).toEqual(['mm', 'colsum', 'inc', 'mul3']);
  });

  it('updates a donated input in place and returns its array', () => {
    // p' = p - 0.5 * g  (output 2 aliases input 0)
    const n = 10;
    const k: LoopKernel = { kind: 'loop', name: 'sgd', outer: [n], row: [], reductions: [], outerOutputs: [{ buf: 2, index: v('o0'), expr: bin('sub', ld(0, v('o0')), bin('mul', cst(0.5), ld(1, v('o0')))) }], rowOutputs: [] };
    const g: KernelGraph = { buffers: [buf(0, 'f32', n, 'input'), buf(1, 'f32', n, 'input'), buf(2, 'f32', n, 'output')], kernels: [k], inputs: [0, 1], outputs: [{ kind: 'buffer', buf: 2, shape: [n], dtype: 'f32' }], consts: [] };
    const ex = cpuDevice.compile(g, simplePlan(g, { aliases: new Map([[2, 0]]) }));
    const p = new HostArray('f32', [n], Float32Array.from({ length: n }, (_, i) => i));
    const gr = new HostArray('f32', [n], new Float32Array(n).fill(2));
    const [p2] = ex.run([p, gr]);
    expect(p2!.data).toBe(p.data);
    expect(Array.from(p2!.data)).toEqual(Array.from({ length: n }, (_, i) => i - 1));
    const [p3] = ex.run([p2!, gr]);
    expect(p3!.data).toBe(p.data);
    expect(ex.lastRun.allocatedBytes).toBe(0);
    expect(p3!.data[5]).toBe(3);
  });

  it('copies outputs that are inputs, consts or repeated; literal outputs are fresh scalars', () => {
    const n = 4;
    const cval = new HostArray('f32', [n], Float32Array.from([1, 2, 3, 4]));
    const k: LoopKernel = { kind: 'loop', name: 'add', outer: [n], row: [], reductions: [], outerOutputs: [{ buf: 2, index: v('o0'), expr: bin('add', ld(0, v('o0')), ld(1, v('o0'))) }], rowOutputs: [] };
    const g: KernelGraph = {
      buffers: [buf(0, 'f32', n, 'input'), buf(1, 'f32', n, 'const'), buf(2, 'f32', n, 'output')],
      kernels: [k],
      inputs: [0],
      outputs: [
        { kind: 'buffer', buf: 2, shape: [n], dtype: 'f32' },
        { kind: 'buffer', buf: 2, shape: [2, 2], dtype: 'f32' },
        { kind: 'buffer', buf: 0, shape: [n], dtype: 'f32' },
        { kind: 'buffer', buf: 1, shape: [n], dtype: 'f32' },
        { kind: 'literal', value: 2.5, dtype: 'i32' },
      ],
      consts: [{ buf: 1, value: cval }],
    };
    const ex = cpuDevice.compile(g, simplePlan(g));
    const xin = new HostArray('f32', [n], Float32Array.from([10, 20, 30, 40]));
    const outs = ex.run([xin]);
    expect(Array.from(outs[0]!.data)).toEqual([11, 22, 33, 44]);
    expect(outs[1]!.shape).toEqual([2, 2]);
    expect(Array.from(outs[1]!.data)).toEqual([11, 22, 33, 44]);
    expect(outs[1]!.data).not.toBe(outs[0]!.data);
    expect(outs[2]!.data).not.toBe(xin.data);
    expect(Array.from(outs[2]!.data)).toEqual([10, 20, 30, 40]);
    expect(outs[3]!.data).not.toBe(cval.data);
    expect(Array.from(outs[3]!.data)).toEqual([1, 2, 3, 4]);
    expect(outs[4]!.dtype).toBe('i32');
    expect(outs[4]!.shape).toEqual([]);
    expect(outs[4]!.data[0]).toBe(2);
    outs[3]!.data[0] = 99;
    expect(Array.from(ex.run([xin])[0]!.data)).toEqual([11, 22, 33, 44]);
  });

  it('runs a sort kernel (argsort rows, NaN last, ties by index) feeding a loop kernel', () => {
    // argsort of x along its last axis, then idx * 10 in a loop kernel
    const x = new HostArray('f32', [2, 4], Float32Array.from([3, NaN, 2, 2, -1, 5, -Infinity, NaN]));
    const g: KernelGraph = {
      buffers: [buf(0, 'f32', 8, 'input'), buf(1, 'i32', 8, 'temp'), buf(2, 'i32', 8, 'output')],
      kernels: [
        { kind: 'sort', name: 'argsort', input: 0, dtype: 'f32', shape: [2, 4], axis: 1, descending: false, output: 1 },
        { kind: 'loop', name: 'scale', outer: [8], row: [], reductions: [], outerOutputs: [{ buf: 2, index: v('o0'), expr: bin('mul', ld(1, v('o0'), 'i32'), cst(10, 'i32')) }], rowOutputs: [] },
      ],
      inputs: [0],
      outputs: [{ kind: 'buffer', buf: 2, shape: [2, 4], dtype: 'i32' }],
      consts: [],
    };
    const ex = cpuDevice.compile(g, simplePlan(g)) as CpuExecutable;
    const [y] = ex.run([x]);
    // the host: rows [3, NaN, 2, 2] -> 2, 3, 0, 1 and [-1, 5, -Inf, NaN] -> 2, 0, 1, 3
    const ref = PRIMS.argsort.impl([x], { axis: 1, descending: false }, { wide: false })[0]!;
    expect(Array.from(ref.data)).toEqual([2, 3, 0, 1, 2, 0, 1, 3]);
    expect(Array.from(y!.data)).toEqual(Array.from(ref.data).map((i) => i * 10));
  });

  it('rejects inputs of the wrong size and converts inputs stored in another array type', () => {
    const n = 3;
    const k: LoopKernel = { kind: 'loop', name: 'id', outer: [n], row: [], reductions: [], outerOutputs: [{ buf: 1, index: v('o0'), expr: ld(0, v('o0')) }], rowOutputs: [] };
    const g: KernelGraph = { buffers: [buf(0, 'f32', n, 'input'), buf(1, 'f32', n, 'output')], kernels: [k], inputs: [0], outputs: [{ kind: 'buffer', buf: 1, shape: [n], dtype: 'f32' }], consts: [] };
    const ex = cpuDevice.compile(g, simplePlan(g));
    expect(() => ex.run([new HostArray('f32', [2], new Float32Array(2))])).toThrow(/expected 3/);
    const wide = new HostArray('f32', [3], Float64Array.from([0.1, 0.2, 0.3]));
    expect(Array.from(ex.run([wide])[0]!.data)).toEqual([0.1, 0.2, 0.3].map(Math.fround));
  });

  it('has an id for cache keys', () => {
    expect(cpuDevice.name).toBe('cpu');
    expect(cpuDevice.id).toMatch(/^cpu:/);
  });
});
