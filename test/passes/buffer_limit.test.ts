// The buffer-limit pass: on a device that binds at most 8 storage buffers per kernel (WebGPU's
// default), the ConvNeXt V2 atto training step lowers with no kernel over the limit, and a
// training step compiled under the limit computes what the unlimited compile computes.
import { describe, expect, it } from 'vitest';
import { createCpuDevice } from '../../src/codegen/cpu/device.js';
import { CPU_CAPS, UNLIMITED_CAPS } from '../../src/codegen/kernel/device.js';
import { isExprOperand, kernelIO } from '../../src/codegen/kernel/kernel_graph.js';
import * as ops from '../../src/ir/ops.js';
import * as ng from '../../src/index.js';
import { config } from '../../src/convnextv2/config.js';
import { paramSpec } from '../../src/convnextv2/model.js';
import { specEntries, unflattenParams } from '../../src/nn/init.js';
import { lower } from '../../src/passes/pipeline.js';
import { bufferCount } from '../../src/passes/merge_phases.js';

const maxBuffers = (ks: readonly Parameters<typeof kernelIO>[0][]): number => Math.max(...ks.map(bufferCount));

function trainProgram(name: 'atto' | 'custom', batch: number, image: number) {
  const cfg = name === 'atto' ? config('atto') : config('custom', { depths: [1, 1, 2, 1], dims: [8, 16, 32, 64], numClasses: 10 });
  const params = unflattenParams(specEntries(paramSpec(cfg)).map(([n, s]) => [n, ng.random.normal(ng.random.key(n.length), s.shape).mul(0.1)] as const));
  const opt = ng.nn.adamw({ lr: 1e-3, weightDecay: 0.05 });
  const step = (p: any, s: any, xs: ng.Tensor, ys: ng.Tensor) => {
    const [l, g] = ng.valueAndGrad((q: any) => ng.nn.crossEntropy(ng.convnextv2.apply(q, xs, { cfg }), ys))(p);
    const u = opt.update(g, s, p);
    return { loss: l, params: u.params, state: u.state };
  };
  const x = ng.random.normal(ng.random.key(7), [batch, 3, image, image]);
  const y = ng.tensor(Array.from({ length: batch }, (_, i) => i % 10), { dtype: 'i32' });
  return { step, args: [params, opt.init(params), x, y] as const };
}

describe('the buffer-limit pass', () => {
  it('the atto training step under an 8-buffer limit: no kernel binds more than 8 buffers', () => {
    const { step, args } = trainProgram('atto', 2, 64);
    const prog = ng.trace(step, ...args);
    const free = lower(prog, undefined, UNLIMITED_CAPS).graph;
    const limited = lower(prog, undefined, { ...UNLIMITED_CAPS, maxStorageBuffers: 8 }).graph;
    expect(maxBuffers(free.kernels)).toBeGreaterThan(8); // the limit matters here
    expect(maxBuffers(limited.kernels)).toBeLessThanOrEqual(8);
    console.log(`atto train step: ${free.kernels.length} kernels (most buffers ${maxBuffers(free.kernels)}), ${limited.kernels.length} under an 8-buffer limit`);
  });

  it('a tiny ConvNeXt V2 training step compiled under a 6-buffer limit computes the same step', () => {
    ng.registerBackend('cpu-limit6', () => createCpuDevice({ maxStorageBuffers: 6 }));
    const { step, args } = trainProgram('custom', 2, 32);
    const full = ng.jit(step, { backend: 'cpu', cacheDir: false });
    const small = ng.jit(step, { backend: 'cpu-limit6', cacheDir: false });
    const a = full(...args);
    const b = small(...args);
    expect(maxBuffers(small.lower(...args).graph.kernels)).toBeLessThanOrEqual(6);
    const la = ng.treeLeaves(a);
    const lb = ng.treeLeaves(b);
    let worst = 0;
    la.forEach((t, i) => {
      const x = t.dataSync();
      const y = lb[i]!.dataSync();
      const scale = Math.max(1e-3, ...Array.from(x, Math.abs));
      for (let j = 0; j < x.length; j++) worst = Math.max(worst, Math.abs(x[j]! - y[j]!) / scale);
    });
    expect(worst).toBeLessThan(1e-4); // temporaries stored in f32 instead of kept in registers; a wrong split is O(1)
  });

  // A matmul whose A prologue is a LayerNorm with its row statistics (caps.prologueStats): the
  // statistics read x = a * b as the prologue does, at another index, so the buffers they bind
  // must count, and no extraction from the prologue alone brings the kernel under the limit.
  it('a matmul with prologue statistics over the limit is split, the statistics counted, and computes the same', () => {
    const f = (a: ng.Tensor, b: ng.Tensor, g: ng.Tensor, c: ng.Tensor, d: ng.Tensor, w: ng.Tensor) =>
      ops.matmul(ng.nn.layerNorm({ weight: g, bias: ops.mul(c, d) }, ops.mul(a, b)), w);
    const r = (k: number, sh: number[]) => ng.random.normal(ng.random.key(k), sh);
    const args = [r(1, [6, 8]), r(2, [6, 8]), r(3, [8]), r(4, [8]), r(5, [8]), r(6, [8, 5])] as const;
    const prog = ng.trace(f, ...args);
    const free = lower(prog, undefined, CPU_CAPS).graph;
    // unlimited: one matmul kernel binding a, b, g, c, d, w and the output, with both statistics
    expect(free.kernels.length).toBe(1);
    const mm = free.kernels[0]!;
    expect(mm.kind === 'matmul' && isExprOperand(mm.a) && mm.a.stats?.reductions.length).toBe(2);
    expect(maxBuffers(free.kernels)).toBe(7);
    const limited = lower(prog, undefined, { ...CPU_CAPS, maxStorageBuffers: 5 }).graph;
    expect(maxBuffers(limited.kernels)).toBeLessThanOrEqual(5);
    // the statistics got a kernel of their own; the matmul keeps no statistics
    expect(limited.kernels.some((k) => k.kind === 'loop' && k.reductions.length === 2)).toBe(true);
    expect(limited.kernels.some((k) => k.kind === 'matmul' && isExprOperand(k.a) && k.a.stats)).toBe(false);
    ng.registerBackend('cpu-limit5', () => createCpuDevice({ maxStorageBuffers: 5 }));
    const got = ng.jit(f, { backend: 'cpu-limit5', cacheDir: false })(...args).dataSync();
    const want = ng.interpret(prog, [...args], { dtype: 'f64' })[0]!.dataSync();
    expect(got.length).toBe(30);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(want[i]!)));
  });
});
