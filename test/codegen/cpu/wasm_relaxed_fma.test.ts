/**
 * Relaxed SIMD in the WebAssembly GEMM: where the engine has it (here: V8's flag, set before the
 * backend is loaded; this file runs in its own process), the micro-kernel accumulates with
 * f32x4.relaxed_madd, and its products stay within f32 accumulation error of a float64 GEMM
 * computed here; a GELU epilogue (its erf polynomial then runs its Horner steps as relaxed_madd)
 * stays within f32 rounding of GELU in float64 with the host's erf. The detection is checked
 * against an independent probe: a hand-written module holding one relaxed_madd, validated by the engine.
 */
import * as v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { RELAXED_PROBE as PROBE } from './wasm_probe.js';

v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

describe('WebAssembly GEMM with relaxed SIMD FMA', () => {
  it('detection agrees with the engine, and the FMA GEMM matches a float64 GEMM', async () => {
    const wasm = await import('../../../src/codegen/cpu/wasm.js');
    const engineHasIt = WebAssembly.validate(PROBE);
    expect(wasm.relaxedSimdAvailable()).toBe(engineHasIt);
    expect(wasm.gemmUsesFma()).toBe(engineHasIt);
    if (!engineHasIt) return;
    const { createCpuDevice } = await import('../../../src/codegen/cpu/device.js');
    const { buf, expectClose, lin, mulberry32, randArray, simplePlan, acc } = await import('./util.js');
    const [M, N, K] = [67, 45, 300];
    const g = {
      buffers: [buf(0, 'f32', M * K, 'input'), buf(1, 'f32', K * N, 'input'), buf(2, 'f32', M * N, 'output')],
      kernels: [{ kind: 'matmul' as const, name: 'mm_fma', batch: 1, m: M, n: N, k: K, dtype: 'f32' as const, a: { kind: 'strided' as const, buf: 0, offset: 0, strides: [0, K, 1] }, b: { kind: 'strided' as const, buf: 1, offset: 0, strides: [0, N, 1] }, outputs: [{ buf: 2, index: lin(['m', 'n'], [M, N]), expr: acc(0) }] }],
      inputs: [0, 1],
      outputs: [{ kind: 'buffer' as const, buf: 2, shape: [M * N], dtype: 'f32' as const }],
      consts: [],
    };
    const rng = mulberry32(4242);
    const A = randArray('f32', [M * K], rng);
    const B = randArray('f32', [K * N], rng);
    const ex = createCpuDevice().compile(g, simplePlan(g));
    const got = ex.run([A, B])[0]!.data as Float32Array;
    const want = new Float64Array(M * N);
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A.data[m * K + k]! * B.data[k * N + n]!;
        want[m * N + n] = s;
      }
    // K f32 roundings of terms |a b| <= 1
    expectClose(got, want, 1e-5, 6e-8 * K, 'FMA GEMM');
  });

  it('a GELU epilogue with the FMA erf matches GELU in float64', async () => {
    if (!WebAssembly.validate(PROBE)) return;
    const { createCpuDevice } = await import('../../../src/codegen/cpu/device.js');
    const { erf } = await import('../../../src/ir/hostmath.js');
    const { bin, buf, cst, expectClose, lin, mulberry32, randArray, simplePlan, acc, un } = await import('./util.js');
    // C = A x B with K = 1 and B = 1: the epilogue sees A's values, edges of erf's clamp included
    const rng = mulberry32(77);
    const edges = [0, -0, 1, -1, 4 * Math.SQRT2, -4 * Math.SQRT2, 5.7, -5.7, 6, -6, 20, -20, 1e-20, -1e-20];
    const M = 1200;
    const A = randArray('f32', [M], rng, -9, 9);
    (A.data as Float32Array).set(edges);
    const Bm = randArray('f32', [1], rng);
    (Bm.data as Float32Array)[0] = 1;
    const x = acc(0);
    const gelu = bin('mul', bin('mul', x, cst(0.5)), bin('add', cst(1), un('erf', bin('mul', x, cst(Math.SQRT1_2)))));
    const g = {
      buffers: [buf(0, 'f32', M, 'input'), buf(1, 'f32', 1, 'input'), buf(2, 'f32', M, 'output')],
      kernels: [{ kind: 'matmul' as const, name: 'mm_gelu_fma', batch: 1, m: M, n: 1, k: 1, dtype: 'f32' as const, a: { kind: 'strided' as const, buf: 0, offset: 0, strides: [0, 1, 1] }, b: { kind: 'strided' as const, buf: 1, offset: 0, strides: [0, 1, 1] }, outputs: [{ buf: 2, index: lin(['m', 'n'], [M, 1]), expr: gelu }] }],
      inputs: [0, 1],
      outputs: [{ kind: 'buffer' as const, buf: 2, shape: [M], dtype: 'f32' as const }],
      consts: [],
    };
    const got = createCpuDevice().compile(g, simplePlan(g)).run([A, Bm])[0]!.data as Float32Array;
    const want = Float64Array.from(A.data as Float32Array, (v) => 0.5 * v * (1 + erf(v * Math.SQRT1_2)));
    // the f32 rule's erf is within about 1.2e-7 of erf, which 0.5 x scales by up to 4.5 here
    // (without the FMA the worst absolute error on these values is 4.4e-7; with it 4.8e-7)
    expectClose(got, want, 2e-6, 1e-6, 'GELU with the FMA erf');
    // beyond the clamp GELU is x (erf = 1) or -0 / 0 (erf = -1), exactly
    expect(got[6]).toBe(Math.fround(5.7));
    expect(Math.abs(got[7]!)).toBe(0);
  });
});
