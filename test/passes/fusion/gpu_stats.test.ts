/**
 * The GPU GEMM's row statistics (lower/gpu/matmul.ts, shared by WGSL and CUDA's SIMT GEMM):
 * a ConvNeXt V2 block lowered for a GPU device with prologueStats added to its caps is 5
 * kernels (the LayerNorm statistics kernel gone), with reducingEpilogues too 4 (GRN's sum of
 * squares accumulated by pwconv1: one workgroup owns all rows of an image), and computes what
 * the float64 interpreter does, on every GPU backend that runs here.
 */
import { describe, expect, it } from 'vitest';
import { CPU_CAPS, type Device, type DeviceCaps } from '../../../src/codegen/kernel/device.js';
import { isExprOperand } from '../../../src/codegen/kernel/kernel_graph.js';
import { block, type BlockParams, blockSpec } from '../../../src/convnextv2/model.js';
import { traceTree } from '../../../src/ir/functional.js';
import { HostArray } from '../../../src/ir/host.js';
import { interpret } from '../../../src/ir/interpreter.js';
import * as ops from '../../../src/ir/ops.js';
import { treeFlatten } from '../../../src/ir/pytree.js';
import * as random from '../../../src/ir/random.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { initFromSpec } from '../../../src/nn/init.js';
import { SM90_PROPERTIES, cudaCaps, cudaTarget } from '../../../src/codegen/cuda/device.js';
import { emitGraphKernels } from '../../../src/codegen/cuda/executable.js';
import { getDevice } from '../../../src/passes/backends.js';
import { lower } from '../../../src/passes/pipeline.js';
import { TEST_BACKENDS } from '../../helpers/backends.js';

const gpus = TEST_BACKENDS.filter((b) => b !== 'cpu');

function blockCase(dim: number, hw: number, batch: number, seed: number) {
  const p = initFromSpec<BlockParams>(random.key(seed), blockSpec(dim), 'f32');
  const params: BlockParams = {
    ...p,
    norm: { weight: random.normal(random.key(seed + 5), [dim], { mean: 1, std: 0.2 }), bias: random.normal(random.key(seed + 6), [dim], { std: 0.2 }) },
    grn: { gamma: random.normal(random.key(seed + 7), [1, 1, 1, 4 * dim], { std: 0.2 }), beta: random.normal(random.key(seed + 8), [1, 1, 1, 4 * dim], { std: 0.2 }) },
  };
  const x = random.normal(random.key(seed + 1), [batch, hw, hw, dim]);
  const { program } = traceTree('block', (pp: BlockParams, xx: Tensor) => block(pp, xx), [params, x]);
  return { program, leaves: treeFlatten([params, x]).leaves as Tensor[] };
}

const host = (t: Tensor): HostArray => new HostArray('f32', [...t.shape], Float32Array.from(ops.cast(t, 'f32').dataSync() as ArrayLike<number>));

async function runOn(dev: Device, caps: DeviceCaps, c: ReturnType<typeof blockCase>) {
  const { graph, plan } = lower(c.program, undefined, caps);
  const exe = dev.compile(graph, plan);
  const outs = exe.run(c.leaves.map((t) => dev.upload(host(t))));
  const got = await dev.read(outs[0]!);
  return { graph, out: Float64Array.from(got.data as ArrayLike<number>) };
}

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / (s + 1e-30);
}

describe.each(gpus.length ? gpus : ['(no GPU backend here)'])('GPU GEMM row statistics [%s]', (backend) => {
  it('a block with LayerNorm statistics in pwconv1 (5 kernels) equals the interpreter and the unfused graph', async () => {
    if (!gpus.includes(backend)) return;
    const dev = getDevice(backend as 'wgsl');
    // 70 rows per image over 64-row tiles (a ragged last tile), 24 channels
    for (const c of [blockCase(24, 7, 2, 31), blockCase(8, 5, 1, 32)]) {
      const want = Float64Array.from(interpret(c.program, c.leaves, { dtype: 'f64' })[0]!.dataSync() as ArrayLike<number>);
      const fused = await runOn(dev, { ...dev.caps, prologueStats: true }, c);
      const unfused = await runOn(dev, dev.caps, c);
      expect(fused.graph.kernels.length).toBe(unfused.graph.kernels.length - 1);
      expect(fused.graph.kernels.some((k) => k.kind === 'matmul' && isExprOperand(k.a) && k.a.stats?.reductions.length === 2)).toBe(true);
      expect(relDiff(fused.out, want)).toBeLessThan(2e-4);
      expect(relDiff(fused.out, unfused.out)).toBeLessThan(2e-4);
    }
  }, 300_000);

  it('reducing epilogues too (a workgroup per image and column tile): 4 kernels, equal to the interpreter, bit-identical across runs', async () => {
    if (!gpus.includes(backend)) return;
    const dev = getDevice(backend as 'wgsl');
    const caps = { ...dev.caps, prologueStats: true, reducingEpilogues: true };
    // 49 and 100 rows per image: a group's last row tile is ragged, and tiles straddle groups
    for (const c of [blockCase(24, 7, 3, 35), blockCase(8, 10, 2, 36)]) {
      const want = Float64Array.from(interpret(c.program, c.leaves, { dtype: 'f64' })[0]!.dataSync() as ArrayLike<number>);
      const a = await runOn(dev, caps, c);
      const b = await runOn(dev, caps, c);
      expect(a.graph.kernels.length).toBe(4);
      expect(a.graph.kernels.some((k) => k.kind === 'matmul' && k.outputs.some((o) => o.init === 'zero'))).toBe(true);
      expect(relDiff(a.out, want)).toBeLessThan(2e-4);
      expect([...b.out]).toEqual([...a.out]);
    }
  }, 300_000);
});

describe('CUDA without a device (sm_90)', () => {
  it('the SIMT GEMM prints the row statistics and reducing epilogue (the nvcc corpus compiles this program; kernel_corpus.ts)', () => {
    // the CPU's recompute limit: pwconv1 stores the GELU output, the root a reducing epilogue needs
    const caps = { ...cudaCaps(SM90_PROPERTIES), prologueStats: true, reducingEpilogues: true, recomputeCostLimit: CPU_CAPS.recomputeCostLimit };
    const c = blockCase(16, 6, 2, 34);
    const low = lower(c.program, undefined, caps);
    const sources = emitGraphKernels(low.graph, low.plan, cudaTarget(caps, false)).map((k) => k.source);
    const gemm = sources.find((s) => s.includes('ng_St1'));
    expect(gemm).toBeDefined();
    expect(gemm).toMatch(/__shared__ float ng_St0\[/);
    expect(gemm).toContain('__syncthreads()');
    // and the reducing epilogue's group sums (ng_Rs), in the same GEMM
    expect(gemm).toMatch(/__shared__ float ng_Rs\[/);
  });
});
