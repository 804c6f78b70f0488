// The buffer-limit pass: on a device that binds at most 8 storage buffers per kernel (WebGPU's
// default), the ConvNeXt V2 atto training step lowers with no kernel over the limit, and a
// training step compiled under the limit computes what the unlimited compile computes.
import { describe, expect, it } from 'vitest';
import { createCpuDevice } from '../../src/codegen/cpu/device.js';
import { UNLIMITED_CAPS } from '../../src/codegen/kernel/device.js';
import { kernelIO } from '../../src/codegen/kernel/kernel_graph.js';
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
});
