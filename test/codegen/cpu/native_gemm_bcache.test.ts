/**
 * Packed weights kept across calls on the native CPU backend (src/codegen/cpu/native/gemm_bcache_c.ts):
 * a GEMM whose B is an input the graph does not write packs B once, and repacks exactly when B's
 * elements change: the same array written in place by its owner (fromHost shares the caller's
 * array), or another array passed. Results are checked against a float64 product computed here
 * after every change; a donated B is never cached.
 */
import { describe, expect, it } from 'vitest';
import { cpuDeviceFor } from '../../../src/codegen/cpu/device.js';
import { nativeSupport } from '../../../src/codegen/cpu/native/device.js';
import type { NativeExecutable } from '../../../src/codegen/cpu/native/executable.js';
import type { KernelGraph, MatmulKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import type { HostArray } from '../../../src/ir/host.js';
import { acc, bin, buf, expectClose, ld, lin, mulberry32, randArray, simplePlan, v } from './util.js';

const support = nativeSupport();
function graph(M: number, K: number, N: number): KernelGraph {
  const k: MatmulKernel = {
    kind: 'matmul',
    name: 'mm',
    batch: 1,
    m: M,
    n: N,
    k: K,
    dtype: 'f32',
    a: { kind: 'strided', buf: 0, offset: 0, strides: [0, K, 1] },
    b: { kind: 'strided', buf: 1, offset: 0, strides: [0, N, 1] },
    outputs: [{ buf: 3, index: lin(['m', 'n'], [M, N]), expr: bin('add', acc(0), ld(2, v('n'))) }],
  };
  return {
    buffers: [buf(0, 'f32', M * K, 'input'), buf(1, 'f32', K * N, 'input'), buf(2, 'f32', N, 'input'), buf(3, 'f32', M * N, 'output')],
    kernels: [k],
    inputs: [0, 1, 2],
    outputs: [{ kind: 'buffer', buf: 3, shape: [M, N], dtype: 'f32' }],
    consts: [],
  };
}

function reference(M: number, K: number, N: number, a: HostArray, b: HostArray, bias: HostArray): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = bias.data[j]!;
      for (let q = 0; q < K; q++) s += a.data[i * K + q]! * b.data[q * N + j]!;
      c[i * N + j] = s;
    }
  return c;
}

describe.runIf(typeof support !== 'string')('native GEMM: packed B kept across calls', () => {
  // one block of B, and several K and column blocks (K > 512, N > 1024)
  it.each([
    [49, 96, 70],
    [9, 700, 1100],
  ])('M %i, K %i, N %i: repacks exactly when B changes (in place or another array), on one and two threads', (M, K, N) => {
    for (const threads of [1, 2]) {
      const rng = mulberry32(11 + threads);
      const g = graph(M, K, N);
      const ex = cpuDeviceFor(threads, 'native').compile(g, simplePlan(g)) as NativeExecutable;
      expect(ex.cSource).toContain('_BPK');
      const a = randArray('f32', [M, K], rng);
      const b = randArray('f32', [K, N], rng);
      const bias = randArray('f32', [N], rng);
      const check = (what: string, bb: HostArray): void => expectClose(ex.run([a, bb, bias])[0]!.data, reference(M, K, N, a, bb, bias), 1e-5, 1e-5, `${what} (${threads} threads)`);
      check('first call', b);
      check('second call, B unchanged', b);
      // the owner writes one element in place, then all of them
      b.data[K * N - 1] = 5;
      check('one element of B written in place', b);
      // (the check compares 64 KiB chunks across the threads: the first and a middle one too)
      b.data[0] = 7;
      check('the first element written in place', b);
      b.data[(K * N) >> 1] = -6;
      check('a middle element written in place', b);
      for (let i = 0; i < b.data.length; i++) b.data[i] = -b.data[i]!;
      check('all of B written in place', b);
      check('unchanged again', b);
      const b2 = randArray('f32', [K, N], rng);
      check('another B array', b2);
      check('the first array again', b);
    }
  });

  it('does not cache a donated B', () => {
    const [M, K, N] = [49, 96, 70];
    const g = graph(M, K, N);
    // B (input 1) donated to the output: the graph may write it
    const withOut: KernelGraph = { ...g, buffers: g.buffers.map((x) => (x.id === 3 ? { ...x, size: K * N } : x)) };
    const ex = cpuDeviceFor(1, 'native').compile(withOut, simplePlan(withOut, { aliases: new Map([[3, 1]]) })) as NativeExecutable;
    expect(ex.cSource).not.toContain('_BPK');
  });
});
