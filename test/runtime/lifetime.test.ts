// Buffers are freed when no tensor holds them: on dispose(), and when a tensor is garbage-
// collected (FinalizationRegistry). A training loop of 1,000 steps holds device memory flat.
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { beforeAll, describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';
import { createSimDevice } from '../helpers/sim_device.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Collects garbage and lets finalizers run. */
async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 0));
  }
}

const { device: sim, counters } = createSimDevice('simlife');
beforeAll(() => ng.registerBackend('simlife', () => sim));

describe('array lifetime', () => {
  it('dispose() frees now; use after dispose is a named error; aliases keep the memory alive', () => {
    const x = ng.tensor([1, 2, 3, 4]).to('simlife');
    const before = ng.liveMemory('simlife');
    const frees = counters.frees;
    const alias = ng.stopGradient(x); // a second tensor over the same array
    alias.dispose();
    expect(counters.frees).toBe(frees); // x still holds it
    expect(ng.liveMemory('simlife')).toEqual(before);
    x.dispose();
    x.dispose(); // idempotent
    expect(counters.frees).toBe(frees + 1);
    expect(ng.liveMemory('simlife').bytes).toBe(before.bytes - 16);
    expect(() => x.add(1)).toThrow(/was disposed/);
    expect(x.isDisposed).toBe(true);
  });

  it('an unreachable tensor is freed by the garbage collector', async () => {
    await collect();
    const frees = counters.frees;
    (() => {
      for (let i = 0; i < 50; i++) ng.tensor([i, i + 1]).to('simlife');
    })();
    await collect();
    expect(counters.frees - frees).toBe(50);
  });

  for (const backend of ['cpu', 'simlife']) {
    it(`a 1,000-step training loop holds memory flat on ${backend}`, async () => {
      const opt = ng.nn.adamw({ lr: 0.01 });
      type P = { w: ng.Tensor; b: ng.Tensor };
      const step = ng.jit((p: P, s: ReturnType<typeof opt.init>, x: ng.Tensor, y: ng.Tensor) => {
        const [l, g] = ng.valueAndGrad((q: P) => x.matmul(q.w).add(q.b).sub(y).square().mean())(p);
        const u = opt.update(g, s, p);
        return { loss: l, params: u.params, state: u.state };
      }, { backend, donate: [0, 1], cacheDir: false });
      let p = ng.devicePut({ w: ng.random.normal(ng.random.key(0), [8, 4]), b: ng.zeros([4]) }, backend);
      let s = ng.devicePut(opt.init(p), backend);
      const x = ng.random.normal(ng.random.key(1), [16, 8]).to(backend);
      const y = ng.random.normal(ng.random.key(2), [16, 4]).to(backend);
      const run = (n: number) => {
        for (let i = 0; i < n; i++) {
          const r = step(p, s, x, y);
          p = r.params as P;
          s = r.state;
        }
      };
      run(10);
      await collect();
      const start = ng.liveMemory(backend);
      run(1000);
      await collect();
      const end = ng.liveMemory(backend);
      expect(end.arrays).toBe(start.arrays);
      expect(end.bytes).toBe(start.bytes);
      expect(step.stats.compiles).toBe(1);
    });
  }
});
