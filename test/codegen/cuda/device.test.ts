/**
 * The CUDA Device end to end on the emulating fake driver (kernels run on the host emulation):
 * registration through the backend registry, arrays of every dtype round-tripping through
 * device memory (f16/bf16 as raw bits), synchronous reads, jitted tensor-core matmuls and a
 * patchify convolution against the CPU backend, the arena reused across calls, CUDA graph
 * record and replay (with new arguments copied in), and the errors for arrays of another
 * device.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import * as ng from '../../../src/index.js';
import { CudaExecutable } from '../../../src/codegen/cuda/executable.js';
import { roundBf16, roundF16 } from '../../../src/ir/dtype.js';
import { HostArray } from '../../../src/ir/host.js';
import { getDevice } from '../../../src/passes/backends.js';
import { useEmulatedCuda, uniform } from './emulated.js';

beforeAll(async () => {
  useEmulatedCuda();
  process.env.NEXGRAD_CACHE_DIR = `${process.env.TMPDIR ?? '/tmp'}/nexgrad-cuda-device-test-${process.pid}`;
  expect(await ng.init('cuda')).toContain('cuda');
});

const tensorOf = (dtype: ng.DType, shape: number[], seed: number): ng.Tensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = uniform(n, seed, -3, 3);
  const round = dtype === 'bf16' ? roundBf16 : dtype === 'f16' ? roundF16 : (x: number) => x;
  return ng.tensor(Array.from(v, round), { dtype, shape });
};

describe('arrays on the CUDA device', () => {
  test('the registry opens it: caps from the device, every dtype, 2-byte halves', () => {
    const d = getDevice('cuda');
    expect(d.name).toBe('cuda');
    expect(d.id).toMatch(/^cuda:nexgrad fake GPU 0:sm_90/);
    expect([...d.caps.dtypes].sort()).toEqual(['bf16', 'bool', 'f16', 'f32', 'f64', 'i32', 'u32']);
    expect(d.caps.elementBytes).toMatchObject({ f16: 2, bf16: 2, bool: 1, f64: 8 });
    expect(d.caps.maxSharedMemoryBytes).toBe(49152);
    expect(d.caps.maxWorkgroupSize).toBe(1024);
  });

  test('every dtype round-trips through device memory, asynchronously and synchronously', async () => {
    const cases: [ng.DType, number[]][] = [
      ['f32', [1.5, -0, NaN, Infinity, -3.25e-30]],
      ['f64', [Math.PI, -1e300, 5e-324, NaN]],
      ['f16', [1, -2.5, 65504, 6e-8, 0.1, -Infinity, NaN]],
      ['bf16', [1, -2.5, 3.0e38, 1e-40, 0.1, Infinity, NaN]],
      ['i32', [-2147483648, 2147483647, 0, -1]],
      ['u32', [0, 4294967295, 12345]],
      ['bool', [1, 0, 1]],
    ];
    for (const [dtype, values] of cases) {
      const host = ng.tensor(values, { dtype });
      const onDevice = host.to('cuda');
      expect(onDevice._array!.device.name).toBe('cuda');
      const want = Array.from(host.dataSync());
      expect(Array.from(await onDevice.data()), dtype).toEqual(want);
      expect(Array.from(onDevice.dataSync()), `${dtype} sync`).toEqual(want);
    }
  });

  test('f16 and bf16 bits are the device formats: every f16 pattern survives, values round to nearest even', async () => {
    const all = new Float32Array(65536);
    const view = new HostArray('f16', [65536], all);
    // decode all patterns through an upload of bits: host values -> device -> host must be stable
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      all[h] = e === 0x1f ? (m ? NaN : sign * Infinity) : e === 0 ? sign * m * 2 ** -24 : sign * (1 + m / 1024) * 2 ** (e - 15);
    }
    const back = await getDevice('cuda').upload(view).read();
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(all[h]!)) expect(Number.isNaN(back.data[h]!)).toBe(true);
      else if (!Object.is(back.data[h], all[h])) throw new Error(`f16 pattern ${h.toString(16)}: ${all[h]} came back as ${back.data[h]}`);
    }
    const xs = uniform(4096, 9, -70000, 70000);
    const f16 = await getDevice('cuda').upload(new HostArray('f16', [xs.length], Float32Array.from(xs, roundF16))).read();
    const bf16 = await getDevice('cuda').upload(new HostArray('bf16', [xs.length], Float32Array.from(xs, roundBf16))).read();
    for (let i = 0; i < xs.length; i++) {
      expect(f16.data[i]).toBe(roundF16(xs[i]!));
      expect(bf16.data[i]).toBe(roundBf16(xs[i]!));
    }
  });

  test('an array of another device is refused by name', () => {
    const d = getDevice('cuda');
    expect(() => d.read(ng.tensor([1, 2])._array!)).toThrow(/cuda: read is an array of the 'cpu' device, not of this one/);
  });
});

describe('jit on the CUDA device (tensor-core kernels)', () => {
  test('bf16 and f16 matmuls (batched, odd sizes) equal the CPU backend within one rounding', async () => {
    for (const [dtype, a, b] of [
      ['bf16', [37, 70], [70, 45]],
      ['f16', [3, 20, 33], [3, 33, 17]],
    ] as [ng.DType, number[], number[]][]) {
      const x = tensorOf(dtype, a, 1);
      const y = tensorOf(dtype, b, 2);
      const f = (p: ng.Tensor, q: ng.Tensor) => ng.matmul(p, q);
      const onCuda = ng.jit(f, { backend: 'cuda', cacheDir: false });
      const got = onCuda(x, y);
      expect(got._array!.device.name).toBe('cuda');
      const want = ng.jit(f, { cacheDir: false })(x, y).dataSync();
      const g = await got.data();
      const unit = dtype === 'bf16' ? 2 ** -7 : 2 ** -10;
      for (let i = 0; i < want.length; i++) expect(Math.abs(g[i]! - want[i]!), `${dtype} element ${i}`).toBeLessThanOrEqual(unit * Math.max(1, Math.abs(want[i]!)));
      const exec = onCuda.lower(x, y).exec as CudaExecutable;
      expect(exec.kernelCount).toBe(1);
      expect(exec.sources[0]).toContain(`ng_mma_${dtype}(`);
    }
  });

  test('a patchify convolution (stride = kernel) runs as a tensor-core GEMM', async () => {
    const x = tensorOf('bf16', [2, 3, 8, 8], 3);
    const w = tensorOf('bf16', [5, 3, 2, 2], 4);
    const f = (xx: ng.Tensor, ww: ng.Tensor) => ng.conv2d(xx, ww, { strides: 2 });
    const onCuda = ng.jit(f, { backend: 'cuda', cacheDir: false });
    const got = await onCuda(x, w).data();
    const want = ng.jit(f, { cacheDir: false })(x, w).dataSync();
    expect(got.length).toBe(want.length);
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(2 ** -7 * Math.max(1, Math.abs(want[i]!)));
  });

  test('a donated training loop updates its buffers in place; nothing is allocated once the graph is recorded (second call)', async () => {
    const step = ng.jit((w: ng.Tensor, m: ng.Tensor, g: ng.Tensor) => {
      const m2 = m.mul(0.9).add(g);
      return [w.sub(m2.mul(0.1)), m2];
    }, { backend: 'cuda', donate: [0, 1], cacheDir: false });
    const g = ng.random.normal(ng.random.key(4), [64, 33]).to('cuda');
    let w = ng.random.normal(ng.random.key(5), [64, 33]).to('cuda');
    let m = ng.zeros([64, 33]).to('cuda');
    // the same loop on the host, in f32
    const wh = Float32Array.from(await w.data());
    const mh = new Float32Array(wh.length);
    const gh = Float32Array.from(await g.data());
    const buffer = (t: ng.Tensor): bigint => (t._array as unknown as { buffer: { ptr: bigint } }).buffer.ptr;
    const first = buffer(w);
    const live: number[] = [];
    for (let i = 0; i < 6; i++) {
      const old = w;
      [w, m] = step(w, m, g) as [ng.Tensor, ng.Tensor];
      expect(old.isDonated).toBe(true);
      expect(buffer(w)).toBe(first);
      for (let j = 0; j < wh.length; j++) {
        mh[j] = Math.fround(Math.fround(mh[j]! * 0.9) + gh[j]!);
        wh[j] = Math.fround(wh[j]! - Math.fround(mh[j]! * 0.1));
      }
      const exec = step.lower(w, m, g).exec as CudaExecutable;
      if (i > 1) expect(exec.lastRun.allocatedBytes).toBe(0);
      live.push(ng.liveMemory('cuda').bytes);
    }
    expect(new Set(live.slice(1)).size).toBe(1);
    const got = await w.data();
    for (let j = 0; j < wh.length; j++) expect(Math.abs(got[j]! - wh[j]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(wh[j]!)));
    expect(() => step(w, m, g)).not.toThrow();
  });

  test('eager operations on CUDA tensors run there', async () => {
    const a = ng.tensor([1, -2, 3.5]).to('cuda');
    const b = a.mul(2).add(ng.tensor([0.5, 0.5, 0.5]).to('cuda'));
    expect(b._array!.device.name).toBe('cuda');
    expect(Array.from(await b.data())).toEqual([2.5, -3.5, 7.5]);
    expect(Array.from(await ng.sum(b).data())).toEqual([6.5]);
  });

  test('calls after the first replay a CUDA graph; new arguments are copied in; the arena is allocated once', async () => {
    const f = ng.jit((p: ng.Tensor, q: ng.Tensor) => ng.matmul(p, q), { backend: 'cuda', cacheDir: false });
    const inputs = [0, 1, 2].map((s) => [tensorOf('bf16', [16, 24], 10 + s), tensorOf('bf16', [24, 8], 20 + s)] as const);
    const cpu = ng.jit((p: ng.Tensor, q: ng.Tensor) => ng.matmul(p, q), { cacheDir: false });
    const modes: string[] = [];
    for (const [round, [p, q]] of [inputs[0]!, inputs[0]!, inputs[1]!, inputs[2]!, inputs[1]!].entries()) {
      const got = await f(p, q).data();
      const exec = f.lower(p, q).exec as CudaExecutable;
      modes.push(exec.lastMode);
      const want = cpu(p, q).dataSync();
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!), `call ${round} element ${i}`).toBeLessThanOrEqual(2 ** -7 * Math.max(1, Math.abs(want[i]!)));
    }
    expect(modes).toEqual(['direct', 'record', 'replay', 'replay', 'replay']);
  });
});
