/**
 * The WebAssembly GEMM's packed B kept across calls (packed_b_cache.ts): every call's result
 * against a float64 product of the arrays passed in that call, while the weights stay, change
 * to another array, come back, and are updated in place by a donating executable; the kept
 * packing is really used (an unannounced in-place write is not seen); and a B the executable
 * donates, or a temporary, is never kept.
 */
import { describe, expect, it } from 'vitest';
import { createCpuDevice } from '../../../src/codegen/cpu/device.js';
import { InputVersions, keptB, planKeptB } from '../../../src/codegen/cpu/packed_b_cache.js';
import { bufferDtypes, emitKernel } from '../../../src/codegen/cpu/emit.js';
import { makeMemory } from '../../../src/codegen/cpu/wasm.js';
import type { KernelGraph, MatmulKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { HostArray, noteInPlaceWrite } from '../../../src/ir/host.js';
import { acc, buf, expectClose, lin, mulberry32, randArray, simplePlan } from './util.js';

const M = 37;
const N = 44;
const K = 72;

/** C[m, n] = sum_k A[m, k] * W[n, k] (W stored [n][k], as a pointwise conv's weight). */
function graph(weightKind: 'input' | 'const', w?: HostArray): KernelGraph {
  const kern: MatmulKernel = {
    kind: 'matmul',
    name: 'mm_kept',
    batch: 1,
    m: M,
    n: N,
    k: K,
    dtype: 'f32',
    a: { kind: 'strided', buf: 0, offset: 0, strides: [M * K, K, 1] },
    b: { kind: 'strided', buf: 1, offset: 0, strides: [0, 1, K] },
    outputs: [{ buf: 2, index: lin(['b', 'm', 'n'], [1, M, N]), expr: acc(0) }],
  };
  return {
    buffers: [buf(0, 'f32', M * K, 'input'), buf(1, 'f32', K * N, weightKind), buf(2, 'f32', M * N, 'output')],
    kernels: [kern],
    inputs: weightKind === 'input' ? [0, 1] : [0],
    outputs: [{ kind: 'buffer', buf: 2, shape: [M * N], dtype: 'f32' }],
    consts: weightKind === 'const' ? [{ buf: 1, value: w! }] : [],
  };
}

function product(a: HostArray, w: HostArray): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++)
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a.data[m * K + k]! * w.data[n * K + k]!;
      out[m * N + n] = s;
    }
  return out;
}

const rng = mulberry32(2024);
const rand = (size: number): HostArray => randArray('f32', [size], rng, -1, 1);

describe('packed B kept across calls', () => {
  for (const [name, dev] of [
    ['one thread', createCpuDevice()],
    ['two threads', createCpuDevice({ threads: 2, splitMinWork: 1 })],
  ] as const) {
    it(`follows the weights a caller passes (${name})`, () => {
      const g = graph('input');
      const ex = dev.compile(g, simplePlan(g));
      const a = rand(M * K);
      const w1 = rand(K * N);
      const w2 = rand(K * N);
      const check = (w: HostArray, what: string): void => expectClose(ex.run([a, w])[0]!.data as Float32Array, product(a, w), 1e-5, 1e-5, what);
      for (let i = 0; i < 4; i++) check(w1, `w1, call ${i}`); // packs, keeps, then reads the kept packing
      for (let i = 0; i < 3; i++) check(w2, `w2, call ${i}`);
      check(w1, 'w1 again');
      // another executable's donation writes w1 in place: announced, so repacked
      check(w1, 'w1 kept');
      (w1.data as Float32Array).set(rand(K * N).data as Float32Array);
      noteInPlaceWrite();
      check(w1, 'w1 after an in-place update');
      check(w1, 'w1 after an in-place update, kept');
    });
  }

  it('reads the kept packing (an unannounced in-place write is not seen)', () => {
    const dev = createCpuDevice();
    const g = graph('input');
    const ex = dev.compile(g, simplePlan(g));
    const a = rand(M * K);
    const w = rand(K * N);
    const before = product(a, w);
    for (let i = 0; i < 3; i++) ex.run([a, w]);
    (w.data as Float32Array).fill(0); // against the contract: host arrays change only through donation
    expectClose(ex.run([a, w])[0]!.data as Float32Array, before, 1e-5, 1e-5, 'kept');
  });

  it('keeps a constant B', () => {
    const w = rand(K * N);
    const g = graph('const', w);
    const ex = createCpuDevice().compile(g, simplePlan(g));
    const a1 = rand(M * K);
    const a2 = rand(M * K);
    for (const a of [a1, a1, a1, a2, a1]) expectClose(ex.run([a])[0]!.data as Float32Array, product(a, w), 1e-5, 1e-5);
  });

  it('keeps no B the executable donates or computes', () => {
    const g = graph('input');
    const codes = g.kernels.map((k) => emitKernel(k, bufferDtypes(g)));
    expect(codes[0]!.bCache?.bufs).toEqual([1]);
    expect(planKeptB(codes, g, simplePlan(g), 1000).regions.map((r) => [r.kernel, r.offset, r.inputs])).toEqual([[0, 1024, [1]]]);
    expect(planKeptB(codes, g, simplePlan(g, { aliases: new Map([[2, 1]]) }), 1000).regions).toEqual([]);
    const temp: KernelGraph = { ...g, buffers: g.buffers.map((b) => (b.id === 1 ? { ...b, kind: 'temp' as const } : b)), inputs: [0] };
    expect(planKeptB(codes, temp, simplePlan(temp), 1000).regions).toEqual([]);
  });

  it('says 0, 1, 2 as the sources repeat, and 0 after any in-place write', () => {
    const versions = new InputVersions(2);
    const mem = makeMemory(1 << 16);
    const bc = keptB(mem, { kernel: 0, offset: 0, bytes: 64, inputs: [1] }, versions);
    const x = HostArray.zeros('f32', [1]);
    const w = HostArray.zeros('f32', [1]);
    const states: number[] = [];
    const call = (ws: HostArray, keep = true): void => {
      versions.update([x, ws]);
      const s = bc.state();
      states.push(s);
      if (s === 1 && keep) bc.kept();
    };
    call(w);
    call(w);
    call(w);
    call(HostArray.zeros('f32', [1]));
    call(w);
    call(w);
    noteInPlaceWrite();
    call(w);
    call(w);
    call(w);
    expect(states).toEqual([0, 1, 2, 0, 0, 1, 0, 1, 2]);
  });
});
