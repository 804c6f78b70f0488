/**
 * CudaRuntime over the fake driver: compile caching (memory, disk, NVRTC), the untrusted disk
 * cache's checks, buffers, launches, reads, timing and graph record/replay. Values are
 * computed here in JS.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { NexgradError } from '../../../src/ir/errors.js';
import { CubinDiskCache, CudaRuntime } from '../../../src/codegen/cuda/runtime.js';
import { buildFakeDriver, buildFakeNvrtc } from './fake_cuda.js';
import { tempDir } from './helpers.js';

const KERNELS = `extern "C" __global__ void saxpy(float* y, const float* x, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
extern "C" __global__ void iota_u32(unsigned* out, unsigned base, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = base + i;
}
`;

let dir = '';
let runtime: CudaRuntime;

beforeAll(() => {
  dir = tempDir('cuda-runtime');
  process.env.NEXGRAD_CUDA_LIBCUDA = buildFakeDriver(dir, 'libcuda_fake', {});
  process.env.NEXGRAD_CUDA_LIBNVRTC = buildFakeNvrtc(dir);
  runtime = CudaRuntime.open({ cacheDir: path.join(dir, 'cache') });
});

describe('CubinDiskCache treats its folder as untrusted', () => {
  const cubin = new TextEncoder().encode('FAKECUBIN\n-arch=sm_90 \nextern "C" __global__ void k() {}');

  test('keys change with each input and field boundaries', () => {
    const base = CubinDiskCache.key('src', 'sm_90', '12.8', ['-O3']);
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    const variants = [
      CubinDiskCache.key('src2', 'sm_90', '12.8', ['-O3']),
      CubinDiskCache.key('src', 'sm_80', '12.8', ['-O3']),
      CubinDiskCache.key('src', 'sm_90', '13.0', ['-O3']),
      CubinDiskCache.key('src', 'sm_90', '12.8', []),
      CubinDiskCache.key('src', 'sm_90', '12.8', ['-O', '3']),
    ];
    expect(new Set([base, ...variants]).size).toBe(6);
    expect(CubinDiskCache.key('src', 'sm_90', '12.8', ['-O3'])).toBe(base);
  });

  test('a written entry reads back; tampering, renaming, links, size and truncation are misses', () => {
    const folder = path.join(dir, 'untrusted');
    const cache = new CubinDiskCache(folder, 1024);
    const key = CubinDiskCache.key('k', 'sm_90', '12.8', []);
    const other = CubinDiskCache.key('other', 'sm_90', '12.8', []);
    expect(cache.read(key)).toEqual({ miss: 'absent' });
    cache.write(key, cubin);
    expect(readdirSync(folder)).toEqual([`${key}.cubin`]); // no temporary left behind
    expect(cache.read(key)).toEqual({ cubin });
    const file = path.join(folder, `${key}.cubin`);
    const good = readFileSync(file);

    const flipped = Buffer.from(good);
    flipped[flipped.length - 1] ^= 1;
    writeFileSync(file, flipped);
    expect(cache.read(key)).toEqual({ miss: 'digest mismatch' });

    writeFileSync(path.join(folder, `${other}.cubin`), good); // a valid entry under another key
    expect(cache.read(other)).toEqual({ miss: 'digest mismatch' });

    writeFileSync(file, Buffer.concat([Buffer.from('NOTCUBIN'), good.subarray(8)]));
    expect(cache.read(key)).toEqual({ miss: 'bad magic' });
    writeFileSync(file, good.subarray(0, 30));
    expect(cache.read(key)).toEqual({ miss: 'truncated' });
    writeFileSync(file, Buffer.concat([good, Buffer.alloc(2000)]));
    expect(cache.read(key)).toEqual({ miss: 'larger than the 1024-byte cap' });

    writeFileSync(file, good);
    const linked = CubinDiskCache.key('linked', 'sm_90', '12.8', []);
    symlinkSync(file, path.join(folder, `${linked}.cubin`));
    expect(cache.read(linked)).toEqual({ miss: 'unreadable (ELOOP)' });
    mkdirSync(path.join(folder, `${CubinDiskCache.key('dir', 'sm_90', '12.8', [])}.cubin`));
    expect(cache.read(CubinDiskCache.key('dir', 'sm_90', '12.8', []))).toEqual({ miss: 'not a regular file' });

    expect(() => cache.read('../../etc/passwd')).toThrow(NexgradError);
    expect(() => cache.read('../../etc/passwd')).toThrow("CubinDiskCache: malformed key '../../etc/passwd'");
  });
});

describe('CudaRuntime', () => {
  test('opens the device and picks its architecture', () => {
    expect(runtime.device.name).toBe('nexgrad fake GPU 0');
    expect(runtime.arch).toBe('sm_90');
    expect(runtime.nvrtcVersion).toBe('12.8');
  });

  test('compiles once: then from memory, then (a fresh runtime) from disk; a bad disk entry is recompiled', async () => {
    const first = await runtime.compile(KERNELS, 'saxpy');
    expect(first.origin).toBe('nvrtc');
    const again = await runtime.compile(KERNELS, 'iota_u32');
    expect(again).toMatchObject({ origin: 'memory', module: first.module, key: first.key });
    const file = path.join(dir, 'cache', `${first.key}.cubin`);
    expect(existsSync(file)).toBe(true);
    // The entry holds what NVRTC produced for this device: the fake cubin starts with its options.
    expect(readFileSync(file).subarray(40).toString('latin1').split('\n')[1]).toBe('-arch=sm_90 ');

    const second = CudaRuntime.open({ cacheDir: path.join(dir, 'cache') });
    expect((await second.compile(KERNELS, 'saxpy')).origin).toBe('disk');
    const bytes = readFileSync(file);
    bytes[bytes.length - 2] ^= 0x20;
    writeFileSync(file, bytes);
    const third = CudaRuntime.open({ cacheDir: path.join(dir, 'cache') });
    expect((await third.compile(KERNELS, 'saxpy')).origin).toBe('nvrtc');
    expect(new CubinDiskCache(path.join(dir, 'cache')).read(first.key)).toHaveProperty('cubin'); // rewritten whole
    await second.dispose();
    await third.dispose();
    expect(() => second.alloc(4)).toThrow('CudaRuntime.alloc: the runtime was disposed');
  });

  test('a compile error rejects with the log, and the fixed source then compiles', async () => {
    const broken = `${KERNELS}\n#error expected a ";"\n`;
    await expect(runtime.compile(broken, 'saxpy')).rejects.toMatchObject({
      code: 'NVRTC_ERROR_COMPILATION',
      log: expect.stringContaining('saxpy(10): error: expected a ";"'),
    });
    const options = ['-lineinfo'];
    expect((await runtime.compile(KERNELS, 'saxpy', options)).origin).toBe('nvrtc'); // options are part of the key
  });

  test('upload, launch, read and time', async () => {
    const n = 100;
    const x = Float32Array.from({ length: n }, (_, i) => i * 0.5 - 7);
    const y = Float32Array.from({ length: n }, (_, i) => 3 - i * 0.25);
    const kernel = await runtime.compile(KERNELS, 'saxpy');
    const dx = runtime.upload(x);
    const dy = runtime.upload(y);
    const ms = await runtime.time(() => runtime.launch(kernel, [4], [32], [{ ptr: dy.ptr }, { ptr: dx.ptr }, { f32: 3 }, { i32: n }]));
    expect(ms).toBeGreaterThanOrEqual(0);
    const out = await runtime.read(dy, new Float32Array(n));
    expect(out).toEqual(Float32Array.from(y, (v, i) => Math.fround(Math.fround(3 * x[i]!) + v)));
    const bytes = await runtime.read(dx);
    expect(new Float32Array(bytes.buffer)).toEqual(x);
    await expect(runtime.read(dx, new Float32Array(n + 1))).rejects.toThrow('CudaRuntime.read: 404 bytes requested from a 400-byte buffer');
    expect(() => runtime.upload(new Float32Array(n + 1), dx)).toThrow('CudaRuntime.upload: 404 bytes do not fit a 400-byte buffer');
    runtime.free(dx);
    runtime.free(dy);
    expect(() => runtime.free(dx)).toThrow(/CudaRuntime.free: buffer 0x[0-9a-f]+ was already freed/);
  });

  test('record() captures a call as a graph; replay() reruns it; host copies inside are refused', async () => {
    const n = 40;
    const saxpy = await runtime.compile(KERNELS, 'saxpy');
    const iota = await runtime.compile(KERNELS, 'iota_u32');
    const x = Float32Array.from({ length: n }, (_, i) => (i % 7) - 3);
    const y = new Float32Array(n).fill(1);
    const dx = runtime.upload(x);
    const dy = runtime.upload(y);
    const di = runtime.alloc(n * 4);
    const graph = runtime.record(() => {
      runtime.launch(saxpy, [1], [64], [{ ptr: dy.ptr }, { ptr: dx.ptr }, { f32: 0.5 }, { i32: n }]);
      runtime.launch(iota, [1], [64], [{ ptr: di.ptr }, { u32: 100 }, { i32: n }]);
    });
    expect(graph.nodes).toBe(2);
    expect(await runtime.read(dy, new Float32Array(n))).toEqual(y);
    graph.replay();
    graph.replay();
    let expected = Float32Array.from(y);
    for (let r = 0; r < 2; r++) expected = Float32Array.from(expected, (v, i) => Math.fround(Math.fround(0.5 * x[i]!) + v));
    expect(await runtime.read(dy, new Float32Array(n))).toEqual(expected);
    expect([...(await runtime.read(di, new Uint32Array(n)))]).toEqual(Array.from({ length: n }, (_, i) => 100 + i));
    expect(() => runtime.record(() => runtime.upload(x, dx))).toThrow('CudaRuntime.upload: cannot copy from the host while recording a graph');
    // The failed recording ended its capture: recording works again.
    const empty = runtime.record(() => {});
    expect(empty.nodes).toBe(0);
    graph.dispose();
    expect(() => graph.replay()).toThrow('CudaGraph.replay: the graph was disposed');
    for (const b of [dx, dy, di]) runtime.free(b);
  });

  test('memory stats follow the allocator and trim() empties its cache', () => {
    runtime.trim();
    const before = runtime.memoryStats();
    const a = runtime.alloc(3000);
    expect(runtime.memoryStats().bytesInUse - before.bytesInUse).toBe(3072);
    runtime.free(a);
    expect(runtime.memoryStats().bytesCached).toBe(3072);
    expect(runtime.trim()).toBeGreaterThanOrEqual(3072);
    expect(runtime.memoryStats().bytesCached).toBe(0);
  });
});
