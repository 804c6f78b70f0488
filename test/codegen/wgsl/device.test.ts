// The WGSL Device: arrays round-trip through GPU buffers in every dtype WGSL stores, reads are
// asynchronous only, f64 is refused naming the kernel, the caps come from the adapter, donated
// inputs are updated in place and fresh outputs never alias inputs, consts or each other, the
// arena and pipelines are reused across calls, and a device whose adapter allows 8 storage
// buffers per kernel compiles and runs a ConvNeXt V2 training step within that limit.
import { expect, it } from 'vitest';
import { createWgslDevice } from '../../../src/codegen/wgsl/device.js';
import { loopShape } from '../../../src/codegen/lower/gpu/loop.js';
import type { WgslArray } from '../../../src/codegen/wgsl/array.js';
import { halfBits, halfValue } from '../../../src/codegen/wgsl/host_data.js';
import { WgslRuntime } from '../../../src/codegen/wgsl/runtime.js';
import * as convnextv2 from '../../../src/convnextv2/index.js';
import type { ConvNeXtV2Params } from '../../../src/convnextv2/model.js';
import { castScalar, roundF16 } from '../../../src/ir/dtype.js';
import { HostArray } from '../../../src/ir/host.js';
import * as ng from '../../../src/index.js';
import { lower } from '../../../src/passes/pipeline.js';
import { describeWgslBackend, wgslBackend } from './env.js';

const env = await wgslBackend();

it('f16 bits on the host: every half value round-trips, and rounding matches roundF16', () => {
  for (let h = 0; h < 0x10000; h++) {
    const v = halfValue(h);
    if (Number.isNaN(v)) continue;
    expect(halfBits(v), `half 0x${h.toString(16)}`).toBe(h);
  }
  for (const x of [1 + 2 ** -11, 65519, 65520, 1e-8, -3.3e-6, 0.1, NaN]) {
    const r = halfValue(halfBits(x));
    expect(Object.is(r, roundF16(x)) || (Number.isNaN(r) && Number.isNaN(x)), String(x)).toBe(true);
  }
});

describeWgslBackend('the WGSL device', env, (device) => {
  const rt = device.runtime;

  it('uploads and reads back every stored dtype; reads are asynchronous only', async () => {
    const cases: [ng.Tensor, number[]][] = [
      [ng.tensor([1.5, -0, NaN, 3.4e38]), [1.5, -0, NaN, Math.fround(3.4e38)]],
      [ng.tensor([1, -2, 2147483647, -2147483648], { dtype: 'i32' }), [1, -2, 2147483647, -2147483648]],
      [ng.tensor([0, 4294967295, 7], { dtype: 'u32' }), [0, 4294967295, 7]],
      [ng.tensor([1, 0, 0, 1, 1], { dtype: 'bool' }), [1, 0, 0, 1, 1]],
      [ng.tensor([0.1, 70000, 1e-7], { dtype: 'f16' }), [0.1, 70000, 1e-7].map((v) => castScalar(v, 'f16'))],
      [ng.tensor([0.1, 1 / 3], { dtype: 'bf16' }), [0.1, 1 / 3].map((v) => castScalar(v, 'bf16'))],
    ];
    for (const [t, want] of cases) {
      const d = t.to('wgsl');
      expect(d.device).toBe('wgsl');
      expect(Array.from(await d.data()), t.dtype).toEqual(want);
      expect(() => d.dataSync()).toThrow(/lives on the 'wgsl' device, which reads back asynchronously; use `await t.data\(\)`/);
    }
    expect(device.caps.elementBytes.bool).toBe(4);
  });

  it('alloc is zero-filled even when the pool hands back a used buffer', async () => {
    const a = device.upload(new HostArray('f32', [64], Float32Array.from({ length: 64 }, (_, i) => i + 1)));
    await a.read();
    device.free(a);
    const z = device.alloc('f32', [64]);
    expect(Array.from((await z.read()).data)).toEqual(new Array(64).fill(0));
    const c = device.copy(device.upload(new HostArray('i32', [3], Int32Array.of(4, 5, 6))));
    expect(Array.from((await c.read()).data)).toEqual([4, 5, 6]);
  });

  it('refuses f64 with an error naming the kernel or the array', () => {
    expect(() => ng.tensor([1, 2], { dtype: 'f64' }).to('wgsl')).toThrow(/f64\[2\] array on the WGSL device \(WGSL has no f64\)/);
    const f = ng.jit((x: ng.Tensor) => x.cast('f64').exp().cast('f32'), { backend: 'wgsl', cacheDir: false });
    expect(() => f(ng.tensor([1, 2]))).toThrow(/wgsl: kernel k\d+_\w+ \(.*\) is f64, which WGSL does not have/);
  });

  it('caps from the adapter limits', () => {
    expect(device.caps.maxStorageBuffers).toBe(rt.limits.maxStorageBuffersPerShaderStage);
    expect(device.caps.maxSharedMemoryBytes).toBe(rt.limits.maxComputeWorkgroupStorageSize);
    expect(device.caps.dtypes.has('f64')).toBe(false);
    expect(device.caps.elementBytes.f16).toBe(device.f16 ? 2 : 4);
    expect(device.id).toContain(rt.adapterInfo);
  });

  it('donated inputs are updated in place; other outputs are distinct fresh buffers', async () => {
    const step = ng.jit((p: ng.Tensor, g: ng.Tensor) => [p.sub(g.mul(0.5)), p, g.mul(2), g.mul(2), ng.tensor(3)], { backend: 'wgsl', donate: [0], cacheDir: false });
    // p is returned unchanged as well: it keeps its buffer, so the update takes another output
    const q = ng.jit((p: ng.Tensor, g: ng.Tensor) => p.sub(g.mul(0.5)), { backend: 'wgsl', donate: [0], cacheDir: false });
    const p = ng.tensor([1, 2, 3, 4]).to('wgsl');
    const g = ng.tensor([2, 2, 2, 2]).to('wgsl');
    const pBuf = (p._array as WgslArray).buffer;
    const out = q(p, g);
    expect((out._array as WgslArray).buffer).toBe(pBuf); // the same GPU buffer, updated in place
    expect(p.isDonated).toBe(true);
    expect(Array.from(await out.data())).toEqual([0, 1, 2, 3]);
    const p2 = ng.tensor([1, 2, 3, 4]).to('wgsl');
    const outs = step(p2, g) as unknown as ng.Tensor[];
    const bufs = outs.map((t) => (t._array as WgslArray).buffer);
    expect(new Set(bufs).size).toBe(bufs.length); // no two outputs share a buffer
    expect(bufs).not.toContain((g._array as WgslArray).buffer);
    expect(Array.from(await outs[1]!.data())).toEqual([1, 2, 3, 4]);
    expect(Array.from(await outs[2]!.data())).toEqual([4, 4, 4, 4]);
    expect(Array.from(await outs[3]!.data())).toEqual([4, 4, 4, 4]);
    expect(Array.from(await outs[4]!.data())).toEqual([3]);
  });

  it('the arena and pipelines are reused: later calls allocate only their fresh outputs and create nothing', async () => {
    const f = ng.jit((x: ng.Tensor, w: ng.Tensor) => x.matmul(w).tanh().matmul(w.transpose([1, 0])).sum(0), { backend: 'wgsl', cacheDir: false });
    const x = ng.ones([16, 8]).to('wgsl');
    const w = ng.ones([8, 8]).mul(0.1).to('wgsl');
    const first = f(x, w);
    await first.data();
    const pipelines = rt.stats().pipelines;
    const exec = f.lower(x, w).exec;
    for (let i = 0; i < 3; i++) {
      const r = f(x, w);
      expect(exec.lastRun.allocatedBytes).toBe(8 * 4);
      await r.data();
      r.dispose();
    }
    expect(rt.stats().pipelines).toBe(pipelines);
  });

  it('at a limit of 8 storage buffers, a ConvNeXt V2 training step shaped for a GPU keeps every kernel within it and matches the interpreter', async () => {
    const rt8 = new WgslRuntime(rt.device, { limits: { maxStorageBuffersPerShaderStage: 8 } });
    // shaped for a real GPU (tree reductions where SwiftShader would get serial ones): both shapes run here
    const dev8 = createWgslDevice(rt8, new Set(), { emulated: false });
    expect(dev8.caps.maxStorageBuffers).toBe(8);
    const cfg = convnextv2.config('custom', { depths: [1, 1, 1, 1], dims: [8, 16, 24, 32], numClasses: 5 });
    const params = convnextv2.init(ng.random.key(0), cfg) as ConvNeXtV2Params;
    const x = ng.random.normal(ng.random.key(1), [2, 3, 32, 32]);
    const y = ng.tensor([1, 3], { dtype: 'i32' });
    const loss = (p: ConvNeXtV2Params) => ng.nn.crossEntropy(convnextv2.apply(p, x, { cfg }), y);
    const program = ng.trace((p: ConvNeXtV2Params) => {
      const [l, g] = ng.valueAndGrad(loss)(p);
      return [l, ...ng.treeLeaves(g)];
    }, params);
    const low = lower(program, undefined, dev8.caps);
    const exec = dev8.compile(low.graph, low.plan);
    for (const src of exec.sources) expect((src.match(/var<storage/g) ?? []).length).toBeLessThanOrEqual(8);
    expect(low.graph.kernels.filter((k) => k.kind === 'loop' && loopShape(k, dev8) === 'tree').length).toBeGreaterThan(0);
    const leaves = ng.treeLeaves(params);
    const outs = exec.run(leaves.map((t) => dev8.upload(t._array as HostArray)));
    const want = ng.interpret(program, leaves);
    for (const [i, w] of want.entries()) {
      const got = (await outs[i]!.read()).data;
      const wd = w.dataSync();
      let scale = 1e-3;
      for (const v of wd) scale = Math.max(scale, Math.abs(v));
      for (let j = 0; j < wd.length; j++) expect(Math.abs(got[j]! - wd[j]!) / scale, `output ${i}[${j}]`).toBeLessThan(1e-4);
    }
  });
});
