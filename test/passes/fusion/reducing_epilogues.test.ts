/**
 * Prologue statistics and reducing epilogues (issue 12): one ConvNeXt V2 block forward on a
 * device with both capabilities is 4 kernels (dwconv; pwconv1 with LayerNorm's statistics in
 * its prologue and GRN's sum of squares accumulated in its epilogue; GRN's channel mean;
 * pwconv2), and every CPU dialect computes the same values fused and unfused (caps off), both
 * checked against the float64 interpreter, at 1 and 3 threads (the reducing GEMM splits its rows
 * at group boundaries, so the sums do not depend on the split).
 */
import { describe, expect, it } from 'vitest';
import { createCpuDevice } from '../../../src/codegen/cpu/device.js';
import { createNativeCpuDevice, nativeSupport } from '../../../src/codegen/cpu/native/device.js';
import { CPU_CAPS, type Device, type DeviceCaps, UNLIMITED_CAPS } from '../../../src/codegen/kernel/device.js';
import { isExprOperand, type KernelGraph, printKernelGraph } from '../../../src/codegen/kernel/kernel_graph.js';
import { block, type BlockParams, blockSpec } from '../../../src/convnextv2/model.js';
import { traceTree } from '../../../src/ir/functional.js';
import { HostArray } from '../../../src/ir/host.js';
import { interpret } from '../../../src/ir/interpreter.js';
import * as ops from '../../../src/ir/ops.js';
import type { Program } from '../../../src/ir/program.js';
import { treeFlatten } from '../../../src/ir/pytree.js';
import * as random from '../../../src/ir/random.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { initFromSpec } from '../../../src/nn/init.js';
import { gelu, layerNorm, linear } from '../../../src/nn/layers.js';
import { lower } from '../../../src/passes/pipeline.js';

const STATS_ONLY: DeviceCaps = { ...UNLIMITED_CAPS, prologueStats: true };
const REDUCING_ONLY: DeviceCaps = { ...UNLIMITED_CAPS, reducingEpilogues: true };

function blockCase(dim: number, hw: number, batch: number, seed: number) {
  const p = initFromSpec<BlockParams>(random.key(seed), blockSpec(dim), 'f32');
  const params: BlockParams = {
    ...p,
    norm: { weight: random.normal(random.key(seed + 5), [dim], { mean: 1, std: 0.2 }), bias: random.normal(random.key(seed + 6), [dim], { std: 0.2 }) },
    grn: { gamma: random.normal(random.key(seed + 7), [1, 1, 1, 4 * dim], { std: 0.2 }), beta: random.normal(random.key(seed + 8), [1, 1, 1, 4 * dim], { std: 0.2 }) },
  };
  const x = random.normal(random.key(seed + 1), [batch, hw, hw, dim]);
  const { program } = traceTree('block', (pp: BlockParams, xx: Tensor) => block(pp, xx), [params, x]);
  const leaves = treeFlatten([params, x]).leaves as Tensor[];
  return { program, leaves };
}

const host = (t: Tensor): HostArray => new HostArray('f32', [...t.shape], Float32Array.from(ops.cast(t, 'f32').dataSync() as ArrayLike<number>));

interface Ran {
  graph: KernelGraph;
  out: Float64Array;
  /** Kernels the executable splits among its threads (both CPU executables list them). */
  split: readonly number[];
  source: string;
}

function run(dev: Device, program: Program, caps: DeviceCaps, leaves: readonly Tensor[]): Ran {
  const { graph, plan } = lower(program, undefined, caps);
  const exe = dev.compile(graph, plan);
  const out = exe.run(leaves.map(host))[0] as HostArray;
  const split = (exe as unknown as { splitKernels?: readonly number[] }).splitKernels ?? [];
  return { graph, out: Float64Array.from(out.data as ArrayLike<number>), split, source: exe.sources.join('\n') };
}

/** max |a - b| / (max |b| + tiny) */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / (s + 1e-30);
}

describe('one ConvNeXt V2 block forward with prologue statistics and reducing epilogues', () => {
  const { program } = blockCase(16, 8, 2, 0);

  it('caps off: 6 kernels; statistics only: 5; reducing epilogues only: 5; both (the CPU): 4', () => {
    const count = (caps: DeviceCaps): number => lower(program, undefined, caps).graph.kernels.length;
    expect(count(UNLIMITED_CAPS)).toBe(6);
    expect(count(STATS_ONLY)).toBe(5);
    expect(count(REDUCING_ONLY)).toBe(5);
    expect(count(CPU_CAPS)).toBe(4);
  });

  it('prints as dwconv, pwconv1 (row stats + GELU + sum of squares), GRN channel mean, pwconv2', () => {
    const { graph } = lower(program, undefined, CPU_CAPS);
    const listing = printKernelGraph(graph);
    expect(graph.kernels.map((k) => `${k.kind} ${k.name}`), listing).toEqual(['conv k0_conv', 'matmul k1_gelu', 'loop k2_grn', 'matmul k3_matmul']);
    const pw1 = graph.kernels[1]!;
    if (pw1.kind !== 'matmul' || !isExprOperand(pw1.a)) throw new Error(listing);
    // LayerNorm's mean then variance, over r0 = the 16 channels of row m (the dwconv output + its bias)
    expect(pw1.a.stats?.row).toEqual([16]);
    expect(pw1.a.stats?.reductions.map((r) => r.op)).toEqual(['sum', 'sum']);
    const lines = listing.split('\n');
    const at = lines.findIndex((l) => l.startsWith('matmul k1_gelu'));
    expect(lines[at]).toContain('rows/group=64');
    expect(lines[at + 1]).toBe('  A row stat acc0 = sum over row [16]: t0 = add(buf11[r0 + 16 * m], buf1[r0]); t0');
    expect(lines[at + 2]).toBe('  A row stat acc1 = sum over row [16]: t0 = add(buf11[r0 + 16 * m], buf1[r0]); t1 = div(acc0, 16:f32); t2 = sub(t0, t1); t3 = mul(t2, t2); t3');
    // GELU output stored, and its square summed per (image, channel) from zero
    expect(pw1.outputs.length).toBe(2);
    expect(pw1.outputs[1]!.init).toBe('zero');
    expect(lines[at + 4]).toMatch(/^ {2}buf13\[n \+ 64 \* \(\(\(\(m\) \/ 8\)\) \/ 8\)\] \+= \(from 0\) .*erf\(t2\).*t6 = mul\(t5, t5\); t6$/);
    expect(pw1.reduceRows).toBe(64);
    // GRN's channel mean reads the sums of squares (norm recomputed, not stored), pwconv2 too
    expect(lines.find((l) => l.startsWith('  acc0 = sum over row: t0 = gt(buf13['))).toBeDefined();
  });
});

const devices: [string, (threads: number) => Device | undefined][] = [
  ['js+wasm', (t) => createCpuDevice({ threads: t })],
  ['js (no wasm)', (t) => createCpuDevice({ threads: t, wasm: false })],
  ['native C', (t) => {
    const s = nativeSupport();
    return typeof s === 'string' ? undefined : createNativeCpuDevice(s, { threads: t });
  }],
];

describe.each(devices)('fused == unfused == float64 interpreter [%s]', (_name, make) => {
  it('random blocks (dims 8 and 24, odd spatial sizes, batch 1 to 3), at 1 and 3 threads', () => {
    const cases: [number, number, number, number][] = [[8, 5, 3, 11], [24, 7, 2, 12], [16, 8, 1, 13]];
    for (const [dim, hw, batch, seed] of cases) {
      const { program, leaves } = blockCase(dim, hw, batch, seed);
      const want = Float64Array.from(interpret(program, leaves, { dtype: 'f64' })[0]!.dataSync() as ArrayLike<number>);
      for (const threads of [1, 3]) {
        const dev = make(threads);
        if (!dev) return; // no C compiler here: the suite for the other dialects still runs
        const fused = run(dev, program, CPU_CAPS, leaves);
        const unfused = run(dev, program, UNLIMITED_CAPS, leaves);
        expect(fused.graph.kernels.length).toBe(4);
        // the row statistics loop (JavaScript, or the WebAssembly prologue: G(2, ...)) and the
        // zeroing of the reducing groups are in the generated GEMM
        expect(fused.source).toMatch(/_st\d+ \+= |G\(2, _mcp, _kc\)/);
        expect(fused.source).toContain('start = start * ');
        expect(unfused.graph.kernels.length).toBe(6);
        const what = `dim ${dim} ${hw}x${hw} batch ${batch} threads ${threads}`;
        expect(relDiff(fused.out, want), what).toBeLessThan(2e-5);
        expect(relDiff(unfused.out, want), what).toBeLessThan(2e-5);
        expect(relDiff(fused.out, unfused.out), what).toBeLessThan(2e-5);
      }
    }
  });

  it('the sums do not depend on the thread count (bit-identical at 1, 2 and 3 threads, the GEMM split)', () => {
    const { program, leaves } = blockCase(16, 14, 5, 21);
    const runs = [1, 2, 3].map((t) => make(t)).filter((d): d is Device => d !== undefined).map((d) => run(d, program, CPU_CAPS, leaves));
    if (runs.length === 0) return;
    // pwconv1 (kernel 1) runs on several threads: its 5 images are the units of its range
    expect(runs[2]!.split).toContain(1);
    for (const r of runs.slice(1)) expect([...r.out]).toEqual([...runs[0]!.out]);
  });
});

describe('what the rules leave alone', () => {
  it('a LayerNorm read by two matmuls keeps its statistics kernel; a plain matmul + sum over n is not a reducing epilogue', () => {
    const ln = (x: Tensor, w1: Tensor, w2: Tensor) => {
      const h = layerNorm({ weight: ops.ones([8]), bias: ops.zeros([8]) }, x);
      return [ops.matmul(h, w1), ops.matmul(h, w2)];
    };
    const x = random.normal(random.key(1), [6, 8]);
    const w = random.normal(random.key(2), [8, 4]);
    const p1 = traceTree('ln2', ln, [x, w, w]).program;
    expect(lower(p1, undefined, CPU_CAPS).graph.kernels.length).toBe(lower(p1, undefined, UNLIMITED_CAPS).graph.kernels.length);
    // a sum over the output's columns (n), not rows: no single writer per element, no rule
    const rowSum = (a: Tensor, ww: Tensor, b: Tensor) => ops.sum(ops.mul(gelu(linear({ weight: ww, bias: b }, a)), 2), [1]);
    const args = [random.normal(random.key(3), [6, 8]), random.normal(random.key(4), [4, 8]), random.normal(random.key(5), [4])] as const;
    const p2 = traceTree('rowsum', rowSum, [...args]).program;
    const g2 = lower(p2, undefined, CPU_CAPS).graph;
    expect(g2.kernels.some((k) => k.kind === 'matmul' && k.outputs.some((o) => o.init === 'zero'))).toBe(false);
  });
});
