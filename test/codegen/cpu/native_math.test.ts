/**
 * The native dialect's own math (runtime_c.ts): ng_exp, the branch-free exp that lets fused loops
 * vectorise, against the host's Math.exp in float64 over the whole range (random arguments, the
 * overflow and underflow edges, subnormal results, NaN and infinities), and in f32 kernels.
 */
import { describe, expect, it } from 'vitest';
import { cpuDeviceFor } from '../../../src/codegen/cpu/device.js';
import { nativeSupport } from '../../../src/codegen/cpu/native/device.js';
import type { NativeExecutable } from '../../../src/codegen/cpu/native/executable.js';
import type { KernelGraph, LoopKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import type { DType } from '../../../src/ir/dtype.js';
import { HostArray } from '../../../src/ir/host.js';
import { buf, ld, mulberry32, simplePlan, un, v } from './util.js';

const support = nativeSupport();

function expGraph(n: number, dtype: DType): KernelGraph {
  const k: LoopKernel = { kind: 'loop', name: 'exp', outer: [n], row: [], reductions: [], outerOutputs: [{ buf: 1, index: v('o0'), expr: un('exp', ld(0, v('o0'), dtype)) }], rowOutputs: [] };
  return { buffers: [buf(0, dtype, n, 'input'), buf(1, dtype, n, 'output')], kernels: [k], inputs: [0], outputs: [{ kind: 'buffer', buf: 1, shape: [n], dtype }], consts: [] };
}

/** Distance in units in the last place of `want` (subnormals included). */
function ulps(got: number, want: number): number {
  if (Number.isNaN(want)) return Number.isNaN(got) ? 0 : Infinity;
  if (got === want) return 0;
  const a = new Float64Array([want]);
  const bits = new BigInt64Array(a.buffer);
  bits[0] = bits[0]! + 1n;
  const ulp = Math.abs(a[0]! - want) || Number.MIN_VALUE;
  return Math.abs(got - want) / ulp;
}

describe.runIf(typeof support !== 'string')('native math: ng_exp', () => {
  it('is within 2 ulps of Math.exp in float64, edges included', () => {
    const rng = mulberry32(5);
    const xs: number[] = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 709.78, 709.7827128933840, 709.79, 710, 1000, -708.3964185322641, -740, -745.1, -745.2, -746, -1e6, 1e-300, 88.72, -103.97];
    for (let i = 0; i < 4000; i++) xs.push((rng() * 2 - 1) * 20, (rng() * 2 - 1) * 750, -708 - rng() * 38, (rng() * 2 - 1) * 1e-3);
    const g = expGraph(xs.length, 'f64');
    const ex = cpuDeviceFor(1, 'native').compile(g, simplePlan(g)) as NativeExecutable;
    expect(ex.cSource).toContain('ng_exp(');
    const got = ex.run([new HostArray('f64', [xs.length], Float64Array.from(xs))])[0]!.data;
    let worst = 0;
    let at = 0;
    xs.forEach((x, i) => {
      const u = ulps(got[i]!, Math.exp(x));
      if (u > worst) [worst, at] = [u, x];
    });
    expect(worst, `worst at x = ${at}`).toBeLessThanOrEqual(2);
    // the edges exactly
    const exact = (i: number): number => got[i]!;
    expect(exact(0)).toBeNaN();
    expect(exact(1)).toBe(Infinity);
    expect(exact(2)).toBe(0);
    expect(exact(3)).toBe(1);
    expect(exact(9)).toBe(Infinity);
    expect(exact(16)).toBe(0);
  });

  it('matches Math.exp rounded to f32 in f32 kernels', () => {
    const rng = mulberry32(6);
    const n = 3001;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = (rng() * 2 - 1) * 90;
    const g = expGraph(n, 'f32');
    const got = cpuDeviceFor(1, 'native').compile(g, simplePlan(g)).run([new HostArray('f32', [n], x)])[0]!.data;
    for (let i = 0; i < n; i++) expect(got[i], `exp(${x[i]})`).toBe(Math.fround(Math.exp(x[i]!)));
  });
});
