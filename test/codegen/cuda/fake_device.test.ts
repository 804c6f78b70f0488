/**
 * The addon end to end over a fake driver whose "device" memory is host memory and whose
 * kernels run on the host: copies, memset, the caching allocator (checked against the fake's
 * log of driver calls), NVRTC logs, module and launch errors by name, events, graphs, and
 * stream errors reaching promises. Expected values are computed here in JS.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { type CudaAddon, loadCudaAddon, packKernelArgs } from '../../../src/codegen/cuda/native.js';
import { buildFakeDriver, buildFakeNvrtc } from './fake_cuda.js';
import { tempDir } from './helpers.js';

const MiB = 1 << 20;
const SAXPY = `extern "C" __global__ void saxpy(float* y, const float* x, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
extern "C" __global__ void iota_u32(unsigned* out, unsigned base, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = base + i;
}
extern "C" __global__ void fault(float* p) { p[1ull << 40] = 0; }
`;

let addon: CudaAddon;
let log = '';
let stream = 0;
let saxpy = 0;
let iota = 0;

/** The fake driver's calls since the last mark. */
function callsSinceMark(): string[] {
  return readFileSync(log, 'utf8').split('\n').filter((line) => line !== '');
}
function mark(): void {
  writeFileSync(log, '');
}

/** Deterministic floats in [-4, 4) with few bits, so float32 arithmetic below is exact-ish but still checked. */
function floats(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s >>> 8) / (1 << 24)) * 8 - 4;
  }
  return out;
}

function saxpyArgs(y: bigint, x: bigint, a: number, n: number) {
  return packKernelArgs([{ ptr: y }, { ptr: x }, { f32: a }, { i32: n }]);
}

function expectedSaxpy(y: Float32Array, x: Float32Array, a: number, n: number, times = 1): Float32Array {
  const out = Float32Array.from(y);
  const af = Math.fround(a);
  for (let t = 0; t < times; t++) {
    for (let i = 0; i < n; i++) out[i] = Math.fround(Math.fround(af * x[i]!) + out[i]!);
  }
  return out;
}

beforeAll(async () => {
  const dir = tempDir('fake-device');
  log = path.join(dir, 'calls.log');
  process.env.NEXGRAD_CUDA_LIBCUDA = buildFakeDriver(dir, 'libcuda_fake', { memory: 64 * MiB });
  process.env.NEXGRAD_CUDA_LIBNVRTC = buildFakeNvrtc(dir);
  process.env.FAKE_CUDA_LOG = log;
  const loaded = loadCudaAddon();
  if (!('addon' in loaded)) throw new Error(loaded.reason);
  addon = loaded.addon;
  expect(addon.status()).toMatchObject({ available: true });
  addon.open(0);
  stream = addon.createStream();
  const { cubin } = await addon.compile(SAXPY, 'kernels.cu');
  const module = addon.loadModule(cubin, 'kernels.cu');
  saxpy = addon.getFunction(module, 'saxpy');
  iota = addon.getFunction(module, 'iota_u32');
});

describe('device and memory', () => {
  test('open and deviceProperties report the device', () => {
    const props = addon.deviceProperties(0);
    expect(props).toMatchObject({
      name: 'nexgrad fake GPU 0',
      computeCapability: [9, 0],
      arch: 'sm_90',
      totalMemory: 64 * MiB,
      multiprocessorCount: 132,
      warpSize: 32,
      maxSharedMemoryPerBlockOptin: 232448,
    });
    expect(addon.open(0)).toEqual(props);
    expect(() => addon.deviceProperties(1)).toThrow('deviceProperties: device 1 does not exist (1 present)');
  });

  test('host -> device -> host round trip, into typed arrays, DataViews and ArrayBuffers', async () => {
    const data = floats(1000, 1);
    const ptr = addon.alloc(data.byteLength, stream);
    addon.copyHostToDevice(ptr, data, stream);
    data.fill(0); // the upload was staged: the source may be reused at once
    const back = new Float32Array(1000);
    await addon.copyDeviceToHost(ptr, back, stream);
    expect(back).toEqual(floats(1000, 1));
    const raw = new ArrayBuffer(8);
    await addon.copyDeviceToHost(ptr, raw, stream);
    expect(new Float32Array(raw)).toEqual(floats(2, 1));
    const view = new DataView(new ArrayBuffer(12), 4, 8);
    await addon.copyDeviceToHost(ptr + 4n, view, stream);
    expect(view.getFloat32(0, true)).toBe(floats(2, 1)[1]);
    addon.free(ptr, stream);
  });

  test('device -> device copies, memset and memset32', async () => {
    const n = 64;
    const a = addon.alloc(n * 4, stream);
    const b = addon.alloc(n * 4, stream);
    addon.memset(a, 0x7f, n * 4, stream);
    const bytes = new Uint8Array(n * 4);
    await addon.copyDeviceToHost(a, bytes, stream);
    expect(bytes.every((v) => v === 0x7f)).toBe(true);
    const bits = new Uint32Array(new Float32Array([1.5]).buffer)[0]!;
    addon.memset32(b, bits, n, stream);
    addon.copyDeviceToDevice(a, b, 16, stream); // first 4 floats of a become 1.5
    const floatsBack = new Float32Array(n);
    await addon.copyDeviceToHost(a, floatsBack, stream);
    expect([...floatsBack.subarray(0, 5)]).toEqual([1.5, 1.5, 1.5, 1.5, new Float32Array(new Uint8Array([0x7f, 0x7f, 0x7f, 0x7f]).buffer)[0]]);
    expect(() => addon.memset(a, 256, 4, stream)).toThrow('memset: byte value must be 0..255, got 256');
    expect(() => addon.memset32(a + 2n, 0, 1, stream)).toThrow('is not 4-byte aligned');
    addon.free(a, stream);
    addon.free(b, stream);
  });

  test('the allocator reuses freed blocks of the same bucket and stream, and trim() frees them', () => {
    addon.trim();
    addon.resetPeak();
    mark();
    const before = addon.memoryStats();
    const first = addon.alloc(1000, stream);
    addon.free(first, stream);
    const second = addon.alloc(900, stream); // same 1024-byte bucket: a cache hit, the same block
    expect(second).toBe(first);
    const other = addon.createStream();
    const third = addon.alloc(1000, other); // another stream: never reuses `second`'s bucket entry
    addon.free(second, stream);
    const fourth = addon.alloc(1000, other);
    expect(fourth).not.toBe(first);
    const stats = addon.memoryStats();
    expect(stats.cacheHits - before.cacheHits).toBe(1);
    expect(stats.driverAllocations - before.driverAllocations).toBe(3);
    expect(stats.bytesInUse - before.bytesInUse).toBe(2048);
    expect(stats.bytesCached - before.bytesCached).toBe(1024);
    expect(stats.peakBytesInUse).toBe(before.bytesInUse + 2048);
    expect(callsSinceMark()).toEqual(['cuMemAlloc 1024', 'cuMemAlloc 1024', 'cuMemAlloc 1024']);
    mark();
    expect(addon.trim()).toBe(1024 + stats.pinnedBytesCached);
    expect(callsSinceMark().filter((c) => !c.startsWith('cuMemFreeHost'))).toEqual(['cuCtxSynchronize', 'cuMemFree 1024']);
    expect(addon.memoryStats().bytesCached).toBe(0);
    addon.free(third, other);
    addon.free(fourth, other);
    addon.trim();
    addon.destroyStream(other);
  });

  test('out of memory: the cache is trimmed and the allocation retried, then the error is named', () => {
    addon.trim();
    const big = addon.alloc(40 * MiB, stream);
    addon.free(big, stream); // cached, still held from the driver
    mark();
    const bigger = addon.alloc(48 * MiB, stream);
    expect(callsSinceMark()).toEqual([`cuMemAlloc ${48 * MiB} OOM`, 'cuCtxSynchronize', `cuMemFree ${40 * MiB}`, `cuMemAlloc ${48 * MiB}`]);
    let error: Error & { code?: string } = new Error('none');
    try {
      addon.alloc(32 * MiB, stream);
    } catch (e) {
      error = e as Error;
    }
    expect(error.code).toBe('CUDA_ERROR_OUT_OF_MEMORY');
    expect(error.message).toBe(`cuMemAlloc failed: CUDA_ERROR_OUT_OF_MEMORY (allocating ${32 * MiB} bytes; ${48 * MiB} in use)`);
    addon.free(bigger, stream);
    addon.trim();
  });

  test('bad pointers, ranges and handles are named errors, not crashes', async () => {
    const ptr = addon.alloc(64, stream);
    expect(() => addon.copyHostToDevice(ptr, new Uint8Array(65), stream)).toThrow(/copyHostToDevice: destination 0x[0-9a-f]+ \+ 65 bytes is not inside a live allocation/);
    expect(() => addon.copyHostToDevice(ptr + 8n, new Uint8Array(57), stream)).toThrow('is not inside a live allocation');
    await expect(addon.copyDeviceToHost(ptr + 1n, new Uint8Array(64), stream)).rejects.toThrow('copyDeviceToHost: source');
    await expect(addon.synchronize(77)).rejects.toThrow('synchronize: unknown stream 77');
    expect(() => addon.copyDeviceToDevice(ptr, 12345n, 4, stream)).toThrow('copyDeviceToDevice: source 0x3039 + 4 bytes is not inside a live allocation');
    expect(() => addon.copyHostToDevice(42 as unknown as bigint, new Uint8Array(1))).toThrow('copyHostToDevice: destination must be a device pointer (bigint)');
    expect(() => addon.copyHostToDevice(ptr, [1, 2] as unknown as Uint8Array)).toThrow('copyHostToDevice: source must be an ArrayBuffer, TypedArray or DataView');
    expect(() => addon.alloc(-1)).toThrow('alloc: size must be a non-negative integer');
    expect(() => addon.alloc(8, 999)).toThrow('alloc: unknown stream 999');
    addon.free(ptr, stream);
    expect(() => addon.free(ptr, stream)).toThrow(/free: 0x[0-9a-f]+ is not a live allocation \(freed twice, or not from alloc\)/);
    expect(() => addon.eventElapsedMs(123456, 123457)).toThrow('eventElapsedMs: unknown event 123456');
    expect(() => addon.destroyStream(0)).toThrow('the default stream (0) cannot be destroyed');
  });

  test('a read whose destination is detached before the copy lands is rejected', async () => {
    const ptr = addon.alloc(16, stream);
    addon.memset(ptr, 1, 16, stream);
    const target = new ArrayBuffer(16);
    const pending = addon.copyDeviceToHost(ptr, target, stream);
    structuredClone(target, { transfer: [target] }); // detaches before the callback can run
    await expect(pending).rejects.toThrow('copyDeviceToHost: the destination buffer was detached or resized before the copy finished');
    addon.free(ptr, stream);
  });
});

describe('compilation and modules', () => {
  test('NVRTC compile errors reach JS with the log, the call and the kernel', async () => {
    const source = 'extern "C" __global__ void k() {}\n\n#error identifier "halfx" is undefined\n';
    const expectedLog = 'bad.cu(3): error: identifier "halfx" is undefined\n\n1 error detected in the compilation of "bad.cu".';
    const error = await addon.compile(source, 'bad.cu').then(
      () => undefined,
      (e: Error & { code?: string; call?: string; kernel?: string; log?: string }) => e,
    );
    expect(error).toMatchObject({ code: 'NVRTC_ERROR_COMPILATION', call: 'nvrtcCompileProgram', kernel: 'bad.cu', log: expectedLog });
    expect(error!.message).toBe(`nvrtcCompileProgram failed for kernel 'bad.cu': NVRTC_ERROR_COMPILATION\n${expectedLog}`);
    expect(() => addon.compileSync(source, 'bad.cu')).toThrow(expectedLog);
  });

  test('the open device architecture is added unless the options name one', async () => {
    const text = (cubin: Uint8Array) => Buffer.from(cubin).toString('latin1').split('\n')[1];
    expect(text((await addon.compile(SAXPY, 'a.cu')).cubin)).toBe('-arch=sm_90 ');
    expect(text(addon.compileSync(SAXPY, 'a.cu', ['-lineinfo']).cubin)).toBe('-lineinfo -arch=sm_90 ');
    expect(text((await addon.compile(SAXPY, 'a.cu', ['--gpu-architecture=sm_80'])).cubin)).toBe('--gpu-architecture=sm_80 ');
    await expect(addon.compile(SAXPY, 'a.cu', [7 as unknown as string])).rejects.toThrow('compile: options[0] must be a string');
  });

  test('module load and function lookup failures are named with the driver error and log', () => {
    let error = {} as Error & { code?: string; log?: string };
    try {
      addon.loadModule(new TextEncoder().encode('not a cubin'), 'broken.cu');
    } catch (e) {
      error = e as typeof error;
    }
    expect(error.message).toBe("cuModuleLoadDataEx failed for kernel 'broken.cu': CUDA_ERROR_INVALID_IMAGE\nfake: not a cubin (bad magic)");
    expect(error.code).toBe('CUDA_ERROR_INVALID_IMAGE');
    const module = addon.loadModule(addon.compileSync(SAXPY, 'k.cu').cubin);
    expect(() => addon.getFunction(module, 'missing_kernel')).toThrow("cuModuleGetFunction failed for kernel 'missing_kernel': CUDA_ERROR_NOT_FOUND");
    expect(addon.functionInfo(addon.getFunction(module, 'saxpy'))).toEqual({ name: 'saxpy', paramSizes: [8, 8, 4, 4] });
    addon.unloadModule(module);
    expect(() => addon.getFunction(module, 'saxpy')).toThrow(`getFunction: unknown module ${module}`);
  });
});

describe('launches', () => {
  test('saxpy computes y = a*x + y over grid x block threads', async () => {
    const n = 300;
    const x = floats(n, 2);
    const y = floats(n, 3);
    const dx = addon.alloc(n * 4, stream);
    const dy = addon.alloc(n * 4, stream);
    addon.copyHostToDevice(dx, x, stream);
    addon.copyHostToDevice(dy, y, stream);
    const { signature, data } = saxpyArgs(dy, dx, 0.75, n);
    addon.launch(saxpy, [Math.ceil(n / 128)], [128], 0, stream, signature, data);
    const out = new Float32Array(n);
    await addon.copyDeviceToHost(dy, out, stream);
    expect(out).toEqual(expectedSaxpy(y, x, 0.75, n));
    // A grid too small covers only grid*block elements: the dims reach the driver as given.
    addon.copyHostToDevice(dy, y, stream);
    addon.launch(saxpy, [2, 1, 1], [64, 1, 1], 0, stream, signature, data);
    await addon.copyDeviceToHost(dy, out, stream);
    expect(out).toEqual(Float32Array.from(y, (v, i) => (i < 128 ? expectedSaxpy(y, x, 0.75, n)[i]! : v)));
    addon.free(dx, stream);
    addon.free(dy, stream);
  });

  test('uint32 arguments keep their top bit', async () => {
    const n = 10;
    const out = addon.alloc(n * 4, stream);
    const { signature, data } = packKernelArgs([{ ptr: out }, { u32: 4_000_000_000 }, { i32: n }]);
    addon.launch(iota, [1], [32], 0, stream, signature, data);
    const back = new Uint32Array(n);
    await addon.copyDeviceToHost(out, back, stream);
    expect([...back]).toEqual(Array.from({ length: n }, (_, i) => 4_000_000_000 + i));
    addon.free(out, stream);
  });

  test('arguments are checked against the kernel and live allocations before launch', () => {
    const y = addon.alloc(16, stream);
    const ok = saxpyArgs(y, y, 1, 4);
    expect(() => addon.launch(saxpy, [1], [32], 0, stream, 'ppf', ok.data.subarray(0, 24))).toThrow(
      "launch: kernel 'saxpy' takes 4 parameters, got 3 (signature 'ppf')",
    );
    expect(() => addon.launch(saxpy, [1], [32], 0, stream, 'pppi', ok.data)).toThrow("launch: kernel 'saxpy': parameter 2 is 4 bytes but signature 'p' passes 8");
    expect(() => addon.launch(saxpy, [1], [32], 0, stream, 'ppfx', ok.data)).toThrow("signature character 'x' at 3");
    expect(() => addon.launch(saxpy, [1], [32], 0, stream, 'ppfi', ok.data.subarray(0, 16))).toThrow('packed arguments are 16 bytes, signature \'ppfi\' needs 32');
    const stale = saxpyArgs(y, 0xdead0000n, 1, 4);
    expect(() => addon.launch(saxpy, [1], [32], 0, stream, stale.signature, stale.data)).toThrow(
      "launch: kernel 'saxpy': argument 1 (0xdead0000) is not inside a live allocation",
    );
    expect(() => addon.launch(saxpy, [0], [32], 0, stream, ok.signature, ok.data)).toThrow('launch: grid[0] must be a positive integer');
    expect(() => addon.launch(saxpy, [1], [2048], 0, stream, ok.signature, ok.data)).toThrow("cuLaunchKernel failed for kernel 'saxpy': CUDA_ERROR_INVALID_VALUE");
    // More than 48 KiB of dynamic shared memory needs the opt-in attribute first.
    expect(() => addon.launch(saxpy, [1], [32], 64 * 1024, stream, ok.signature, ok.data)).toThrow('CUDA_ERROR_INVALID_VALUE');
    addon.setMaxDynamicSharedMemory(saxpy, 64 * 1024);
    addon.launch(saxpy, [1], [32], 64 * 1024, stream, ok.signature, ok.data);
    expect(() => addon.setMaxDynamicSharedMemory(saxpy, 1 << 20)).toThrow("cuFuncSetAttribute failed for kernel 'saxpy': CUDA_ERROR_INVALID_VALUE");
    addon.free(y, stream);
  });
});

describe('events and graphs', () => {
  test('events time the span between two records', async () => {
    const start = addon.createEvent();
    const end = addon.createEvent();
    addon.recordEvent(start, stream);
    const until = Date.now() + 30;
    while (Date.now() < until) {
      /* the fake's events read the host clock */
    }
    addon.recordEvent(end, stream);
    await addon.synchronize(stream);
    expect(addon.eventQuery(end)).toBe(true);
    const ms = addon.eventElapsedMs(start, end);
    expect(ms).toBeGreaterThanOrEqual(29);
    expect(ms).toBeLessThan(5000);
    addon.destroyEvent(start);
    addon.destroyEvent(end);
  });

  test('a captured sequence of launches runs only on replay, once per replay', async () => {
    const n = 50;
    const x = floats(n, 4);
    const y = floats(n, 5);
    const dx = addon.alloc(n * 4, stream);
    const dy = addon.alloc(n * 4, stream);
    const di = addon.alloc(n * 4, stream);
    addon.copyHostToDevice(dx, x, stream);
    addon.copyHostToDevice(dy, y, stream);
    addon.memset(di, 0, n * 4, stream);
    await addon.synchronize(stream);
    addon.beginCapture(stream);
    const s = saxpyArgs(dy, dx, -1.25, n);
    addon.launch(saxpy, [1], [64], 0, stream, s.signature, s.data);
    const i = packKernelArgs([{ ptr: di }, { u32: 7 }, { i32: n }]);
    addon.launch(iota, [1], [64], 0, stream, i.signature, i.data);
    expect(() => addon.copyHostToDevice(dx, x, stream)).toThrow(`copyHostToDevice: stream ${stream} is capturing a graph`);
    const { graph, nodes } = addon.endCapture(stream);
    expect(nodes).toBe(2);
    const out = new Float32Array(n);
    await addon.copyDeviceToHost(dy, out, stream);
    expect(out).toEqual(y); // capture ran nothing
    for (let r = 0; r < 3; r++) addon.launchGraph(graph, stream);
    await addon.copyDeviceToHost(dy, out, stream);
    expect(out).toEqual(expectedSaxpy(y, x, -1.25, n, 3));
    const ints = new Uint32Array(n);
    await addon.copyDeviceToHost(di, ints, stream);
    expect([...ints]).toEqual(Array.from({ length: n }, (_, k) => 7 + k));
    addon.destroyGraph(graph);
    expect(() => addon.launchGraph(graph, stream)).toThrow(`launchGraph: unknown graph ${graph}`);
    expect(() => addon.beginCapture(0)).toThrow('beginCapture: the default stream cannot be captured');
    expect(() => addon.beginCapture(stream, 'loose' as 'relaxed')).toThrow("mode must be 'relaxed', 'thread_local' or 'global', got 'loose'");
    for (const p of [dx, dy, di]) addon.free(p, stream);
  });

  // Last: the fault poisons the fake context for the rest of the process, as on a real GPU.
  test('an asynchronous fault rejects the next stream promise with the error name', async () => {
    const p = addon.alloc(16, stream);
    const args = packKernelArgs([{ ptr: p }]);
    const faulting = addon.getFunction(addon.loadModule(addon.compileSync(SAXPY, 'f.cu').cubin), 'fault');
    addon.launch(faulting, [1], [1], 0, stream, args.signature, args.data); // returns before the fault surfaces
    await expect(addon.synchronize(stream)).rejects.toMatchObject({
      message: 'synchronize failed: CUDA_ERROR_ILLEGAL_ADDRESS',
      code: 'CUDA_ERROR_ILLEGAL_ADDRESS',
    });
    await expect(addon.copyDeviceToHost(p, new Uint8Array(16), stream)).rejects.toThrow('cuMemcpyDtoHAsync failed: CUDA_ERROR_ILLEGAL_ADDRESS');
  });
});
