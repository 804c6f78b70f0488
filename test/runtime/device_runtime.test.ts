// The runtime contract on a device that, like WebGPU, only reads back asynchronously: tensors
// live on the device across jitted calls, readback is `await t.data()`, synchronous reads fail
// with a named error, eager operations run where their operands live, and nothing is copied to
// the host behind the caller's back (every copy is counted by the simulated device).
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';
import { createSimDevice } from '../helpers/sim_device.js';

const { device: sim, counters } = createSimDevice('sim');
const { device: sim2 } = createSimDevice('sim2');

beforeAll(() => {
  ng.registerBackend('sim', () => sim);
  ng.registerBackend('sim2', () => sim2);
});
afterEach(() => ng.setDefaultBackend('cpu'));

const host = (t: ng.Tensor): number[] => Array.from(t.dataSync());

describe('tensors on an async-only device', () => {
  it('read back with await t.data(); dataSync, item and tolist name the device and the fix', async () => {
    const x = ng.tensor([[1, 2], [3, 4]]).to('sim');
    expect(x.device).toBe('sim');
    expect(Array.from(await x.data())).toEqual([1, 2, 3, 4]);
    for (const f of [() => x.dataSync(), () => x.item(), () => x.tolist()]) {
      expect(f).toThrow(/lives on the 'sim' device, which reads back asynchronously; use `await t.data\(\)`/);
    }
    expect(String(x)).toBe('Tensor(f32[2,2] on sim)');
  });

  it('moves between devices: to/devicePut from the host, devicePutAsync back', async () => {
    const x = ng.tensor([1, 2, 3]);
    const up = counters.uploads;
    const tree = ng.devicePut({ a: x, b: [x] }, 'sim');
    expect(counters.uploads - up).toBe(2);
    expect(tree.a.device).toBe('sim');
    expect(tree.a.to('sim')).toBe(tree.a); // already there: nothing moves
    expect(() => tree.a.to('cpu')).toThrow(/devicePutAsync/);
    const back = await ng.devicePutAsync(tree, 'cpu');
    expect(host(back.b[0]!)).toEqual([1, 2, 3]);
    expect(() => ng.devicePut(x, 'nope')).toThrow(/unknown backend "nope"/);
  });

  it('eager operations run on their operands\' device, host operands move there; two devices are an error', async () => {
    const a = ng.tensor([[1, -2], [3, 0.5]]);
    const b = ng.tensor([[0.5, 1], [2, -1]]);
    const want = host(ng.nn.gelu(a.matmul(b)).add(1).sum(0));
    const reads = counters.reads;
    const got = ng.nn.gelu(a.to('sim').matmul(b)).add(1).sum(0);
    expect(got.device).toBe('sim');
    expect(counters.reads).toBe(reads); // computed without reading anything back
    Array.from(await got.data()).forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
    expect(() => a.to('sim').add(b.to('sim2'))).toThrow(/operands live on different devices \('sim' and 'sim2'\)/);
  });

  it('the default backend receives new tensors and operand-free operations', async () => {
    ng.setDefaultBackend('sim');
    expect(ng.tensor([1, 2]).device).toBe('sim');
    expect(ng.zeros([3]).device).toBe('sim');
    expect(ng.arange(4).device).toBe('sim');
    expect(Array.from(await ng.ones([2, 2]).mul(3).data())).toEqual([3, 3, 3, 3]);
    expect(() => ng.setDefaultBackend('cuda')).toThrow(/backend 'cuda' is not available: .*Available: cpu/);
  });
});

describe('jit on a device', () => {
  // a small MLP trained with AdamW: params and optimizer state donated every step
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

  it('keeps params and state on the device: no host copy between steps, same losses as the CPU', async () => {
    const cpuStep = makeStep('cpu');
    let pc = init();
    let sc = opt.init(pc);
    const cpuLosses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = cpuStep(pc, sc, x, y);
      cpuLosses.push(r.loss.item());
      pc = r.params as P;
      sc = r.state;
    }
    const step = makeStep('sim');
    let p = ng.devicePut(init(), 'sim');
    let s = ng.devicePut(opt.init(init()), 'sim');
    const xs = x.to('sim');
    const ys = y.to('sim');
    const before = { ...counters };
    const losses: ng.Tensor[] = [];
    for (let i = 0; i < 8; i++) {
      const r = step(p, s, xs, ys);
      p = r.params as P;
      s = r.state;
      losses.push(r.loss);
    }
    expect(counters.uploads - before.uploads).toBe(0); // nothing moved to the device after the start
    expect(counters.reads - before.reads).toBe(0); // and nothing came back
    expect(step.stats.transfers).toBe(0);
    expect(counters.runs - before.runs).toBe(8);
    expect(p.w1.device).toBe('sim');
    const got = await Promise.all(losses.map(async (l) => (await l.data())[0]!));
    expect(got).toEqual(cpuLosses); // the same kernels underneath: bit for bit
  });

  it('uploads host arguments (counted) and marks donated ones unusable', () => {
    const step = makeStep('sim');
    const p = init();
    const s = opt.init(p);
    const r = step(p, s, x, y);
    expect(step.stats.transfers).toBe(treeSize(p) + treeSize(s) + 2);
    expect(r.loss.device).toBe('sim');
    expect(p.w1.isDonated).toBe(true);
    expect(() => p.w1.dataSync()).toThrow(/was donated to a jitted function/);
  });
});

function treeSize(t: unknown): number {
  return ng.treeLeaves(t).length;
}
