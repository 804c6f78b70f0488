/**
 * Memory planning on a real training step: the tiny ConvNeXt V2 (depths 1,1,2,1, dims 8..64,
 * 10 classes, 64x64 input, batch 2), forward + cross-entropy + backward + AdamW, jitted with
 * the parameters and optimizer state donated. After the first call a step allocates nothing
 * but its fresh (non-donated) outputs: the loss scalar. Its peak memory is reported.
 */
import { describe, expect, it } from 'vitest';
import { valueAndGrad } from '../../src/autodiff/index.js';
import * as convnextv2 from '../../src/convnextv2/index.js';
import type { ConvNeXtV2Params } from '../../src/convnextv2/model.js';
import { type KernelGraph, kernelIO } from '../../src/codegen/kernel/kernel_graph.js';
import type { MemoryPlan } from '../../src/codegen/kernel/device.js';
import { DTYPES } from '../../src/ir/dtype.js';
import * as ops from '../../src/ir/ops.js';
import { treeLeaves } from '../../src/ir/pytree.js';
import * as random from '../../src/ir/random.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { crossEntropy } from '../../src/nn/losses.js';
import { adamw, type AdamWState } from '../../src/nn/optim.js';
import { jit } from '../../src/passes/jit.js';
import { planMemory } from '../../src/passes/memory.js';

const cfg = convnextv2.config('custom', { depths: [1, 1, 2, 1], dims: [8, 16, 32, 64], numClasses: 10 });
const opt = adamw({ lr: 1e-3, weightDecay: 0.05 });

interface StepOut {
  params: ConvNeXtV2Params;
  state: AdamWState;
  loss: Tensor;
}

function trainStep(p: ConvNeXtV2Params, s: AdamWState, x: Tensor, y: Tensor): StepOut {
  const [loss, g] = valueAndGrad((pp: ConvNeXtV2Params) => crossEntropy(convnextv2.apply(pp, x, { cfg }), y))(p);
  const u = opt.update(g, s, p);
  return { params: u.params, state: u.state, loss };
}

/** Bytes of the graph outputs that do not reuse a donated input (handed out fresh each call). */
function freshOutputBytes(g: KernelGraph, plan: MemoryPlan): number {
  let n = 0;
  for (const o of g.outputs) {
    if (o.kind !== 'buffer' || plan.outputAliases.has(o.buf) || g.buffers[o.buf]!.kind !== 'output') continue;
    n += g.buffers[o.buf]!.size * DTYPES[o.dtype].bytes;
  }
  return n;
}

const MiB = 1024 * 1024;

describe('memory: the jitted tiny ConvNeXt V2 training step', () => {
  it('allocates nothing after its first call but the fresh loss; params and state are updated in place', () => {
    const x = random.normal(random.key(1), [2, 3, 64, 64]);
    const labels = ops.tensor([3, 7], { dtype: 'i32' });
    const params0 = convnextv2.init(random.key(0), cfg);
    // AdamW's init gives m and v the same zero tensors: donation must still update each in place
    const state0 = opt.init(params0);
    const step = jit(trainStep, { backend: 'cpu', cacheDir: false, donate: [0, 1] });

    let r = step(params0, state0, x, labels);
    const { graph, plan, exec } = step.lower(r.params, r.state, x, labels);
    const nDonated = treeLeaves(r.params).length + treeLeaves(r.state).length;
    // every parameter and state leaf is an output that takes over its input's storage
    expect(plan.outputAliases.size).toBe(nDonated);
    const fresh = freshOutputBytes(graph, plan);
    expect(fresh).toBe(4); // the f32 loss
    const first = exec.lastRun.allocatedBytes;

    const losses = [r.loss.item()];
    const storage = treeLeaves(r.params).map((t) => t._host!.data);
    for (let i = 2; i <= 3; i++) {
      const prev = r;
      r = step(r.params, r.state, x, labels);
      losses.push(r.loss.item());
      expect(exec.lastRun.allocatedBytes, `call ${i}`).toBe(fresh);
      expect(treeLeaves(prev.params)[0]!.isDonated).toBe(true);
    }
    // the parameters of step 3 live in the arrays of step 1
    treeLeaves(r.params).forEach((t, i) => expect(t._host!.data).toBe(storage[i]));
    expect(step.stats.traces).toBe(1);

    // the same steps without donation give the same losses (and they fall)
    const plain = jit(trainStep, { backend: 'cpu', cacheDir: false });
    const p1 = convnextv2.init(random.key(0), cfg);
    let q = plain(p1, opt.init(p1), x, labels);
    const plainLosses = [q.loss.item()];
    for (let i = 2; i <= 3; i++) {
      q = plain(q.params, q.state, x, labels);
      plainLosses.push(q.loss.item());
    }
    expect(losses).toEqual(plainLosses);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[2]!).toBeLessThan(losses[0]!);

    const arena = plan.storageBytes.reduce((a, b) => a + b, 0);
    const io = plan.peakBytes - arena;
    console.log(
      `tiny ConvNeXt V2 train step (batch 2, 64x64): ${graph.kernels.length} kernels; peak ${(plan.peakBytes / MiB).toFixed(2)} MiB ` +
        `(arena ${(arena / MiB).toFixed(2)} MiB in ${plan.storageBytes.length} storages, inputs+outputs ${(io / MiB).toFixed(2)} MiB); ` +
        `first call allocated ${(first / MiB).toFixed(2)} MiB, later calls ${fresh} bytes; losses ${losses.map((l) => l.toFixed(4)).join(', ')}`,
    );
    // inputs and outputs (params, m, v twice, the images) are about 1.7 MiB; the arena holds
    // the activations and gradients of one step
    expect(plan.peakBytes).toBeLessThan(8 * MiB);
  });

  it('the arena: live temporaries never share storage; its size is close to the most bytes live at once', () => {
    const x = random.normal(random.key(1), [2, 3, 64, 64]);
    const labels = ops.tensor([3, 7], { dtype: 'i32' });
    const p = convnextv2.init(random.key(0), cfg);
    const { graph, plan } = jit(trainStep, { backend: 'cpu', cacheDir: false, donate: [0, 1] }).lower(p, opt.init(p), x, labels);
    const tempIds = graph.buffers.filter((b) => b.kind === 'temp').map((b) => b.id);
    const bytes = (b: number): number => graph.buffers[b]!.size * DTYPES[graph.buffers[b]!.dtype].bytes;
    const temps = tempIds.reduce((a, b) => a + bytes(b), 0);
    const arena = plan.storageBytes.reduce((a, b) => a + b, 0);
    // no two temporaries that are live at the same time share a storage, and each fits its storage
    const first = new Map<number, number>();
    const last = new Map<number, number>();
    graph.kernels.forEach((k, i) => {
      const { reads, writes } = kernelIO(k);
      for (const b of writes) if (!first.has(b)) first.set(b, i);
      for (const b of reads) last.set(b, i);
    });
    // the lower bound: the most temporary bytes live during one kernel
    let live = 0;
    graph.kernels.forEach((_, i) => {
      let n = 0;
      for (const b of tempIds) if (first.get(b)! <= i && i <= Math.max(last.get(b) ?? -1, first.get(b)!)) n += bytes(b);
      live = Math.max(live, n);
    });
    console.log(`temporaries ${(temps / MiB).toFixed(2)} MiB in ${tempIds.length} buffers; most live at once ${(live / MiB).toFixed(2)} MiB; arena ${(arena / MiB).toFixed(2)} MiB in ${plan.storageBytes.length} storages`);
    expect(arena).toBeGreaterThanOrEqual(live);
    expect(arena).toBeLessThan(1.5 * live); // greedy best-fit: 1.27x the bound here
    expect(arena).toBeLessThan(temps);
    const byStorage = new Map<number, number[]>();
    graph.buffers.forEach((b) => {
      const s = plan.storageOf[b.id]!;
      if (b.kind !== 'temp' || s < 0) return;
      expect(b.size * DTYPES[b.dtype].bytes).toBeLessThanOrEqual(plan.storageBytes[s]!);
      byStorage.set(s, [...(byStorage.get(s) ?? []), b.id]);
    });
    for (const ids of byStorage.values()) {
      const spans = ids.map((b) => [first.get(b)!, Math.max(last.get(b) ?? -1, first.get(b)!)] as const).sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < spans.length; i++) expect(spans[i]![0], 'a storage reused while its previous buffer is live').toBeGreaterThan(spans[i - 1]![1]);
    }
    // planning without donation gives the same arena (donation only aliases outputs)
    expect(planMemory(graph, { donated: [] }).storageBytes).toEqual(plan.storageBytes);
  });
});
