// The runtime contract on the real WGSL device (the simulated device of device_runtime.test.ts
// checks it everywhere; this is the same on WebGPU): a training loop keeps params and optimizer
// state in GPU buffers with no host reads or uploads between steps and no growth of device
// memory; eager operations on wgsl tensors run there; the default backend can be wgsl.
import { afterEach, expect, it, vi } from 'vitest';
import * as ng from '../../src/index.js';
import { describeWgslBackend, wgslBackend } from '../codegen/wgsl/env.js';

const env = await wgslBackend();
afterEach(() => ng.setDefaultBackend('cpu'));

describeWgslBackend('the runtime contract on WGSL', env, (device) => {
  const rt = device.runtime;
  const init = () => ({
    w1: ng.random.normal(ng.random.key(1), [6, 16]).mul(0.3),
    b1: ng.zeros([16]),
    w2: ng.random.normal(ng.random.key(2), [16, 3]).mul(0.3),
    b2: ng.zeros([3]),
  });
  type P = ReturnType<typeof init>;
  const x = ng.random.normal(ng.random.key(3), [32, 6]);
  const y = ng.tensor(Array.from({ length: 32 }, (_, i) => i % 3), { dtype: 'i32' });
  const opt = ng.nn.adamw({ lr: 0.01, weightDecay: 0.01 });
  const loss = (p: P, xs: ng.Tensor, ys: ng.Tensor) => ng.nn.crossEntropy(ng.nn.gelu(xs.matmul(p.w1).add(p.b1)).matmul(p.w2).add(p.b2), ys);
  const makeStep = (backend: string) =>
    ng.jit((p: P, s: ReturnType<typeof opt.init>, xs: ng.Tensor, ys: ng.Tensor) => {
      const [l, g] = ng.valueAndGrad(loss)(p, xs, ys);
      const u = opt.update(g, s, p);
      return { loss: l, params: u.params, state: u.state };
    }, { backend, donate: [0, 1], cacheDir: false });

  it('a donated AdamW loop stays on the GPU: no reads, no uploads, flat memory, the CPU losses', async () => {
    const cpuStep = makeStep('cpu');
    let pc = init();
    let sc = opt.init(pc);
    const cpuLosses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const r = cpuStep(pc, sc, x, y);
      cpuLosses.push(r.loss.item());
      pc = r.params as P;
      sc = r.state;
    }
    const step = makeStep('wgsl');
    let p = ng.devicePut(init(), 'wgsl');
    let s = ng.devicePut(opt.init(init()), 'wgsl');
    const xs = x.to('wgsl');
    const ys = y.to('wgsl');
    let r = step(p, s, xs, ys); // the first call compiles and uploads its constants
    p = r.params as P;
    s = r.state;
    const losses: ng.Tensor[] = [r.loss];
    const reads = vi.spyOn(rt, 'read');
    const uploads = vi.spyOn(rt, 'upload');
    const live = rt.stats().liveBuffers;
    for (let i = 1; i < 12; i++) {
      r = step(p, s, xs, ys);
      p = r.params as P;
      s = r.state;
      losses.push(r.loss);
      // the loss scalar is the only buffer a step adds (the caller keeps it)
      expect(rt.stats().liveBuffers).toBe(live + i);
    }
    expect(reads).not.toHaveBeenCalled();
    expect(uploads).not.toHaveBeenCalled();
    expect(step.stats.transfers).toBe(0);
    reads.mockRestore();
    uploads.mockRestore();
    expect(p.w1.device).toBe('wgsl');
    const got = await Promise.all(losses.map(async (l) => (await l.data())[0]!));
    got.forEach((v, i) => expect(Math.abs(v - cpuLosses[i]!), `step ${i}`).toBeLessThan(2e-5 * Math.max(1, Math.abs(cpuLosses[i]!))));
    expect(got[11]!).toBeLessThan(got[0]!);
  });

  it('eager operations on wgsl tensors run there; host operands move there; the default backend', async () => {
    const a = ng.tensor([[1, -2], [3, 0.5]]);
    const b = ng.tensor([[0.5, 1], [2, -1]]);
    const want = Array.from(ng.nn.gelu(a.matmul(b)).add(1).sum(0).dataSync());
    const reads = vi.spyOn(rt, 'read');
    const got = ng.nn.gelu(a.to('wgsl').matmul(b)).add(1).sum(0);
    expect(got.device).toBe('wgsl');
    expect(reads).not.toHaveBeenCalled();
    reads.mockRestore();
    Array.from(await got.data()).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
    ng.setDefaultBackend('wgsl');
    const z = ng.ones([2, 3]).mul(ng.arange(3).cast('f32')).sum();
    expect(z.device).toBe('wgsl');
    expect(Array.from(await z.data())).toEqual([6]);
    expect(() => z.item()).toThrow(/lives on the 'wgsl' device, which reads back asynchronously/);
    const back = await ng.devicePutAsync(z, 'cpu');
    expect(back.item()).toBe(6);
  });
});
