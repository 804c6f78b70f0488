/**
 * GEMMs split along K across threads (src/codegen/cpu/native/gemm_ksplit_c.ts: few rows, a long
 * reduction, as in the weight gradients of pointwise convolutions) against a float64 product
 * computed here: A stored transposed, an A prologue, a bias epilogue, K not a multiple of the
 * block or of the parts, f32 and f64, on one, two and three threads.
 */
import { describe, expect, it } from 'vitest';
import { cpuDeviceFor } from '../../../src/codegen/cpu/device.js';
import { nativeSupport } from '../../../src/codegen/cpu/native/device.js';
import type { NativeExecutable } from '../../../src/codegen/cpu/native/executable.js';
import type { KernelGraph, MatmulKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import type { DType } from '../../../src/ir/dtype.js';
import { acc, bin, buf, cst, expectClose, ld, lin, mulberry32, randArray, simplePlan, v } from './util.js';

const support = nativeSupport();

interface Case {
  m: number;
  k: number;
  n: number;
  dtype: DType;
  prologue: boolean;
}
const CASES: Case[] = [
  { m: 40, k: 4 * 384 + 37, n: 160, dtype: 'f32', prologue: false },
  { m: 7, k: 2000, n: 45, dtype: 'f32', prologue: true },
  { m: 30, k: 1601, n: 33, dtype: 'f64', prologue: false },
];

/** C[m, n] = sum_k A'[m, k] B[k, n] + bias[n], A stored as (K x M), A' = A or 3 A - 1 (prologue). */
function graph(t: Case): KernelGraph {
  const aIdx = lin(['k', 'm'], [t.k, t.m]);
  const k: MatmulKernel = {
    kind: 'matmul',
    name: 'wgrad_like',
    batch: 1,
    m: t.m,
    n: t.n,
    k: t.k,
    dtype: t.dtype,
    a: t.prologue ? { kind: 'expr', expr: bin('sub', bin('mul', ld(0, aIdx, t.dtype), cst(3, t.dtype)), cst(1, t.dtype)) } : { kind: 'strided', buf: 0, offset: 0, strides: [0, 1, t.m] },
    b: { kind: 'strided', buf: 1, offset: 0, strides: [0, t.n, 1] },
    outputs: [{ buf: 3, index: lin(['m', 'n'], [t.m, t.n]), expr: bin('add', acc(0, t.dtype), ld(2, v('n'), t.dtype)) }],
  };
  return {
    buffers: [buf(0, t.dtype, t.k * t.m, 'input'), buf(1, t.dtype, t.k * t.n, 'input'), buf(2, t.dtype, t.n, 'input'), buf(3, t.dtype, t.m * t.n, 'output')],
    kernels: [k],
    inputs: [0, 1, 2],
    outputs: [{ kind: 'buffer', buf: 3, shape: [t.m, t.n], dtype: t.dtype }],
    consts: [],
  };
}

describe.runIf(typeof support !== 'string')('native GEMM split along K', () => {
  for (const t of CASES) {
    it(`${t.m}x${t.k} @ ${t.k}x${t.n} ${t.dtype}${t.prologue ? ' with an A prologue' : ''}`, () => {
      const rng = mulberry32(t.m * 7 + t.n);
      const a = randArray(t.dtype, [t.k, t.m], rng);
      const b = randArray(t.dtype, [t.k, t.n], rng);
      const bias = randArray(t.dtype, [t.n], rng);
      const want = new Float64Array(t.m * t.n);
      for (let i = 0; i < t.m; i++)
        for (let j = 0; j < t.n; j++) {
          let s = 0;
          for (let q = 0; q < t.k; q++) {
            const av = a.data[q * t.m + i]!;
            s += (t.prologue ? 3 * av - 1 : av) * b.data[q * t.n + j]!;
          }
          want[i * t.n + j] = s + bias.data[j]!;
        }
      for (const threads of [1, 2, 3]) {
        const g = graph(t);
        const ex = cpuDeviceFor(threads, 'native').compile(g, simplePlan(g)) as NativeExecutable;
        expect(ex.cSource).toMatch(/_part\(void\* ctx_/);
        const tol = t.dtype === 'f64' ? 1e-12 : 2e-4;
        expectClose(ex.run([a, b, bias])[0]!.data, want, tol, tol, `${threads} threads`);
      }
    });
  }
});
