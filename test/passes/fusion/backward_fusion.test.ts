/**
 * The backward fusions of a ConvNeXt V2 block (issue 12): extra epilogue outputs (pwconv1 stores
 * the GELU output and its erf term beside its bare product), reducing epilogues on a bare
 * product reading earlier buffers (GRN backward's per-image sum of dY * gamma * x in the GEMM
 * dY = dOut W2^T), and the dead-store pass. The
 * forward + backward (gradients of <block(p, x), ct> w.r.t. every parameter and the input) is
 * computed fused (caps on) and unfused (caps off) on every backend that runs here, on random
 * blocks, and both are checked against the float64 interpreter, gradient by gradient. On a GPU
 * backend the capabilities are forced on: its SIMT GEMM implements them, though the device does
 * not declare reducing epilogues by default.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createCpuDevice } from '../../../src/codegen/cpu/device.js';
import { createNativeCpuDevice, nativeSupport } from '../../../src/codegen/cpu/native/device.js';
import type { Device, DeviceCaps } from '../../../src/codegen/kernel/device.js';
import { type KernelGraph, kernelIO, type MatmulKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { HostArray } from '../../../src/ir/host.js';
import { interpret } from '../../../src/ir/interpreter.js';
import * as ops from '../../../src/ir/ops.js';
import type { Program } from '../../../src/ir/program.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { getDevice } from '../../../src/passes/backends.js';
import { lower } from '../../../src/passes/pipeline.js';
import { TEST_BACKENDS } from '../../helpers/backends.js';
import { blockGradCase } from './block_grad_case.js';

const host = (t: Tensor): HostArray => new HostArray('f32', [...t.shape], Float32Array.from(ops.cast(t, 'f32').dataSync() as ArrayLike<number>));

async function runAll(dev: Device, caps: DeviceCaps, c: { program: Program; leaves: Tensor[] }): Promise<{ graph: KernelGraph; outs: Float64Array[] }> {
  const { graph, plan } = lower(c.program, undefined, caps);
  const exe = dev.compile(graph, plan);
  const outs = exe.run(c.leaves.map((t) => dev.upload(host(t))));
  const read = await Promise.all(outs.map((o) => dev.read(o)));
  return { graph, outs: read.map((h) => Float64Array.from(h.data as ArrayLike<number>)) };
}

/** max |a - b| / (max |b| + tiny), per output. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / (s + 1e-30);
}

const on = (caps: DeviceCaps): DeviceCaps => ({ ...caps, prologueStats: true, reducingEpilogues: true });
const off = (caps: DeviceCaps): DeviceCaps => ({ ...caps, prologueStats: false, reducingEpilogues: false });

/** The fusions this suite is about, as found in a graph. */
function features(g: KernelGraph) {
  const mms = g.kernels.filter((k): k is MatmulKernel => k.kind === 'matmul');
  return {
    extraOutputs: mms.some((k) => k.outputs.filter((o) => o.init !== 'zero').length > 1),
    reducing: mms.filter((k) => k.outputs.some((o) => o.init === 'zero')).length,
  };
}

/**
 * Random block shapes: channels, spatial size (odd sizes: ragged tiles), batch 2 or 3 (two or
 * more reduction groups); and one batch-1 block (extra outputs only).
 */
const CASES: [number, number, number][] = [...fc.sample(fc.tuple(fc.constantFrom(4, 8, 12), fc.integer({ min: 2, max: 6 }), fc.integer({ min: 2, max: 3 })), { seed: 20261203, numRuns: 3 }), [8, 5, 1]];

const cpuDevices: [string, () => Device | undefined][] = [
  ['cpu js+wasm, 3 threads', () => createCpuDevice({ threads: 3 })],
  ['cpu native C, 3 threads', () => {
    const s = nativeSupport();
    return typeof s === 'string' ? undefined : createNativeCpuDevice(s, { threads: 3 });
  }],
];
const devices: [string, () => Device | undefined][] = [
  ...(TEST_BACKENDS.includes('cpu') ? cpuDevices : []),
  ...TEST_BACKENDS.filter((b) => b !== 'cpu').map((b) => [b, () => getDevice(b as 'wgsl')] as [string, () => Device]),
];

describe.each(devices)('block forward + backward: fused == unfused == float64 interpreter [%s]', (name, make) => {
  it('random blocks, every gradient', async () => {
    const dev = make();
    if (!dev) {
      expect(name).toContain('native'); // only the C dialect may be missing (no compiler here)
      return;
    }
    const tol = name.startsWith('cpu') ? 5e-5 : 3e-4;
    for (const [[dim, hw, batch], i] of CASES.map((c, j) => [c, j] as const)) {
      const c = blockGradCase(dim, hw, batch, 40 + i);
      const want = interpret(c.program, c.leaves, { dtype: 'f64' }).map((t) => Float64Array.from(t.dataSync() as ArrayLike<number>));
      const fused = await runAll(dev, on(dev.caps), c);
      const unfused = await runAll(dev, off(dev.caps), c);
      const what = `dim ${dim} ${hw}x${hw} batch ${batch}`;
      // the new fusions are in the fused graph: 2 kernels fewer (1 at batch 1: no reducing epilogue)
      const groups = batch >= 2 ? 1 : 0;
      expect(features(fused.graph), what).toEqual({ extraOutputs: true, reducing: groups });
      expect(features(unfused.graph), what).toEqual({ extraOutputs: false, reducing: 0 });
      expect(fused.graph.kernels.length, what).toBe(unfused.graph.kernels.length - 1 - groups);
      want.forEach((w, j) => {
        expect(relDiff(fused.outs[j]!, w), `${what}, gradient ${j}`).toBeLessThan(tol);
        expect(relDiff(unfused.outs[j]!, w), `${what}, gradient ${j}`).toBeLessThan(tol);
      });
    }
  }, 600_000);
});

describe('what the backward rules leave alone', () => {
  it('batch 1: a per-image sum is the whole GEMM (one group would serialise it): no backward reducing epilogue, the extra outputs stay', () => {
    const c = blockGradCase(8, 4, 1, 3);
    const g = lower(c.program, undefined, on(createCpuDevice().caps)).graph;
    const u = lower(c.program, undefined, off(createCpuDevice().caps)).graph;
    expect(features(g)).toEqual({ extraOutputs: true, reducing: 0 });
    expect(g.kernels.length).toBe(u.kernels.length - 1);
  });

  it('after the dead-store pass every temporary a kernel writes is read by a later kernel', () => {
    for (const b of [1, 2]) {
      const g = lower(blockGradCase(8, 4, b, 5).program, undefined, on(createCpuDevice().caps)).graph;
      const returned = new Set(g.outputs.flatMap((o) => (o.kind === 'buffer' ? [o.buf] : [])));
      g.kernels.forEach((k, i) => {
        for (const w of kernelIO(k).writes) {
          if (g.buffers[w]!.kind !== 'temp' || returned.has(w)) continue;
          expect(g.kernels.slice(i + 1).some((l) => kernelIO(l).reads.includes(w)), `${k.name} writes buf${w}`).toBe(true);
        }
      });
    }
  });
});
