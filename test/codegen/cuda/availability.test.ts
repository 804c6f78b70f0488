/**
 * The addon builds, loads without a GPU and says why CUDA cannot be used: the missing driver,
 * a cuInit failure, no device, a driver missing entry points, NVRTC missing. Each driver setup
 * runs in its own process (the addon opens libcuda once per process).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { cudaAvailability, cudaUnavailableMessage, loadCudaAddon, packKernelArgs } from '../../../src/codegen/cuda/native.js';
import { CudaRuntime } from '../../../src/codegen/cuda/runtime.js';
import { runSmoke } from '../../../bench/gpu/smoke_checks.js';
import { buildFakeDriver, buildFakeNvrtc } from './fake_cuda.js';
import { ADDON, CUDA_HEADERS, inChild, loaderKnows, ROOT, tempDir } from './helpers.js';

interface StatusLike {
  available: boolean;
  reason: string;
  driverOk: boolean;
  nvrtcOk: boolean;
  nvrtcReason: string;
  deviceCount: number;
}

describe('CUDA addon: build and availability', () => {
  let dir = '';
  beforeAll(() => {
    dir = tempDir('cuda-availability');
  });

  test('the addon is built wherever the CUDA headers are', () => {
    const loaded = loadCudaAddon();
    if (CUDA_HEADERS) {
      expect(loaded, `build it with npm run build:native (${ADDON})`).toHaveProperty('addon');
    } else {
      expect(loaded).toEqual({ reason: expect.stringContaining('the CUDA addon is not built') });
    }
  });

  test('the default status agrees with the dynamic loader about libcuda.so.1', () => {
    const availability = cudaAvailability();
    if (!CUDA_HEADERS) {
      expect(availability.available).toBe(false);
      return;
    }
    if (loaderKnows('libcuda.so.1')) {
      if (!availability.available) expect(availability.reason).not.toMatch(/^no CUDA driver/);
    } else {
      expect(availability).toEqual({ available: false, reason: 'no CUDA driver: libcuda.so.1 not found' });
      expect(cudaUnavailableMessage()).toBe('CUDA unavailable: no CUDA driver: libcuda.so.1 not found');
      expect(() => CudaRuntime.open()).toThrow('CUDA unavailable: no CUDA driver: libcuda.so.1 not found');
    }
  });

  test("jit on 'cuda' without a driver says why and lists the available backends", async () => {
    if (loaderKnows('libcuda.so.1')) return; // a driver machine has the backend (bench/gpu/check.sh)
    const ng = await import('../../../src/index.js');
    const reason = ng.unavailableReasons().cuda!;
    expect(reason).toMatch(/^CUDA unavailable: /);
    if (CUDA_HEADERS) expect(reason).toBe('CUDA unavailable: no CUDA driver: libcuda.so.1 not found');
    expect(await ng.init('cuda')).not.toContain('cuda');
    const available = ng.availableBackends();
    expect(available).toContain('cpu');
    const f = ng.jit((x: import('../../../src/index.js').Tensor) => x.mul(2), { backend: 'cuda' });
    expect(() => f(ng.tensor([1, 2]))).toThrow(`backend 'cuda' is not available: ${reason}. Available: ${available.join(', ')}`);
    expect(() => ng.setDefaultBackend('cuda')).toThrow(/CUDA unavailable/);
  });

  test('the GPU smoke test, dry-run here, reports the missing driver and writes it down', async () => {
    if (loaderKnows('libcuda.so.1')) return; // a driver machine runs the real smoke test (bench/gpu/check.sh)
    const out = path.join(dir, 'smoke.json');
    const lines: string[] = [];
    expect(await runSmoke(out, (line) => lines.push(line))).toBe(2);
    const reason = CUDA_HEADERS ? 'no CUDA driver: libcuda.so.1 not found' : expect.stringContaining('the CUDA addon is not built');
    expect(lines).toEqual([CUDA_HEADERS ? `CUDA unavailable: ${reason}` : expect.stringMatching(/^CUDA unavailable: the CUDA addon is not built/)]);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ available: false, reason });
  });

  test('a missing driver is named, and every device call says CUDA is unavailable', () => {
    const missing = path.join(dir, 'absent', 'libcuda.so.1');
    const result = inChild<{ status: StatusLike; open: { message: string; code: string }; count: { message: string } }>(
      { NEXGRAD_CUDA_LIBCUDA: missing },
      `const status = addon.status();
       let open, count;
       try { addon.open(0); } catch (e) { open = fail(e); }
       try { addon.deviceCount(); } catch (e) { count = fail(e); }
       done({ status, open, count });`,
    );
    expect(result.status.available).toBe(false);
    expect(result.status.reason).toBe(`no CUDA driver: ${missing} not found`);
    expect(result.status.driverOk).toBe(false);
    expect(result.open).toMatchObject({ message: `open: no CUDA driver: ${missing} not found`, code: 'CUDA_UNAVAILABLE' });
    expect(result.count.message).toBe(`deviceCount: no CUDA driver: ${missing} not found`);
  });

  test('a file that is not a shared library is named with the loader error', () => {
    const garbage = path.join(dir, 'garbage.so');
    writeFileSync(garbage, 'this is not an ELF file\n'.repeat(20));
    const status = inChild<StatusLike>({ NEXGRAD_CUDA_LIBCUDA: garbage }, 'done(addon.status());');
    expect(status.reason).toMatch(new RegExp(`^no CUDA driver: ${garbage} could not be loaded \\(.*invalid ELF header\\)$`));
  });

  test.each([['CUDA_ERROR_NO_DEVICE'], ['CUDA_ERROR_SYSTEM_DRIVER_MISMATCH']])('cuInit failing with %s is reported by name', (code) => {
    const lib = buildFakeDriver(dir, `init_${code}`, { initResult: code });
    const status = inChild<StatusLike>({ NEXGRAD_CUDA_LIBCUDA: lib }, 'done(addon.status());');
    expect(status).toMatchObject({ available: false, driverOk: false, reason: `cuInit failed: ${code}` });
  });

  test('a driver lacking entry points is named with the first missing one', () => {
    // cuInit succeeds but nothing past cuInit/cuGetErrorName is exported.
    const lib = buildFakeDriver(dir, 'init_only', { initResult: 'CUDA_SUCCESS' });
    const status = inChild<StatusLike>({ NEXGRAD_CUDA_LIBCUDA: lib }, 'done(addon.status());');
    expect(status.reason).toBe(`CUDA driver too old: ${lib} lacks cuDriverGetVersion`);
  });

  test('a driver with no devices says so', () => {
    const lib = buildFakeDriver(dir, 'no_devices', { devices: 0 });
    const status = inChild<StatusLike>({ NEXGRAD_CUDA_LIBCUDA: lib }, 'done(addon.status());');
    expect(status).toMatchObject({ available: false, deviceCount: 0, reason: 'no CUDA device: cuDeviceGetCount reports 0 devices' });
  });

  test('NVRTC missing: the driver works, CUDA is unavailable, compile says why', () => {
    const lib = buildFakeDriver(dir, 'full_for_nvrtc', {});
    const absent = path.join(dir, 'absent', 'libnvrtc.so');
    const result = inChild<{ status: StatusLike; compile: { message: string; code: string } }>(
      { NEXGRAD_CUDA_LIBCUDA: lib, NEXGRAD_CUDA_LIBNVRTC: absent },
      `const status = addon.status();
       addon.open(0);
       let compile;
       await addon.compile('x', 'k').catch((e) => { compile = fail(e); });
       done({ status, compile });`,
    );
    const reason = `NVRTC missing: ${absent} not found (tried ${absent})`;
    expect(result.status).toMatchObject({ available: false, driverOk: true, nvrtcOk: false, reason });
    expect(result.compile).toMatchObject({ message: `compile: ${reason}`, code: 'NVRTC_UNAVAILABLE' });
  });

  test('without an override NVRTC is searched by its versioned names and under the toolkit', () => {
    const lib = buildFakeDriver(dir, 'full_for_search', {});
    const status = inChild<StatusLike>({ NEXGRAD_CUDA_LIBCUDA: lib, NEXGRAD_CUDA_LIBNVRTC: '', CUDA_HOME: '', CUDA_PATH: '' }, 'done(addon.status());');
    const candidates = ['libnvrtc.so', 'libnvrtc.so.13', 'libnvrtc.so.12'];
    const present =
      candidates.some((name) => loaderKnows(name)) ||
      candidates.some((name) => existsSync(path.join('/usr/local/cuda/lib64', name)));
    if (present) {
      expect(status.nvrtcOk).toBe(true);
    } else {
      expect(status.nvrtcReason).toMatch(/^NVRTC missing: libnvrtc\.so not found \(tried libnvrtc\.so, libnvrtc\.so\.13, libnvrtc\.so\.12, /);
      expect(status.nvrtcReason).toContain('/usr/local/cuda/lib64/libnvrtc.so');
    }
  });

  test('a fake driver and NVRTC make CUDA available', () => {
    const lib = buildFakeDriver(dir, 'full_available', {});
    const nvrtc = buildFakeNvrtc(dir);
    const result = inChild<{ status: StatusLike & { nvrtcVersion: string; driverVersion: number }; noArch: { message: string }; options: string }>(
      { NEXGRAD_CUDA_LIBCUDA: lib, NEXGRAD_CUDA_LIBNVRTC: nvrtc },
      `const status = addon.status();
       let noArch;
       await addon.compile('extern "C" __global__ void k() {}', 'k').catch((e) => { noArch = fail(e); });
       const { cubin } = await addon.compile('extern "C" __global__ void k() {}', 'k', ['-arch=sm_80']);
       done({ status, noArch, options: Buffer.from(cubin).toString('latin1').split('\\n')[1] });`,
    );
    expect(result.status).toMatchObject({ available: true, reason: '', deviceCount: 1, nvrtcVersion: '12.8', driverVersion: 13000 });
    // Before open() there is no device to take the architecture from; a named one compiles.
    expect(result.noArch.message).toBe('compile: no -arch option and no open device to take it from');
    expect(result.options).toBe('-arch=sm_80 ');
  });
});

describe('CUDA modules stay browser-safe and pack arguments exactly', () => {
  test('native.ts and runtime.ts import no node: module at run time', () => {
    for (const file of ['native.ts', 'runtime.ts']) {
      const source = readFileSync(path.join(ROOT, 'src', 'codegen', 'cuda', file), 'utf8');
      const valueImports = source.split('\n').filter((line) => /^import\s(?!type\b)/.test(line) && /from '(node:)?(fs|path|url|module|crypto|os|child_process)'/.test(line));
      expect(valueImports, file).toEqual([]);
      expect(source, file).not.toMatch(/\brequire\(/);
    }
  });

  test('packKernelArgs writes one 8-byte little-endian slot per argument', () => {
    const { signature, data } = packKernelArgs([{ ptr: 0x0102030405060708n }, { i32: -2 }, { u32: 0xfffffffe }, { f32: 1.5 }]);
    expect(signature).toBe('piuf');
    // Derived by hand: pointer bytes LSB first; -2 = 0xfffffffe; 1.5f = 0x3fc00000.
    expect([...data]).toEqual([
      8, 7, 6, 5, 4, 3, 2, 1,
      0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0,
      0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0,
      0, 0, 0xc0, 0x3f, 0, 0, 0, 0,
    ]);
    expect(() => packKernelArgs([{ i32: 2 ** 31 }])).toThrow('argument 0 (2147483648) is not an int32');
    expect(() => packKernelArgs([{ u32: 1 }, { u32: -1 }])).toThrow('argument 1 (-1) is not a uint32');
    expect(() => packKernelArgs([{ ptr: -1n }])).toThrow('argument 0 is not a 64-bit device pointer');
    expect(() => packKernelArgs([{ i32: 1.5 }])).toThrow('not an int32');
  });

  test('the allocator buckets sizes by its rule table', () => {
    const loaded = loadCudaAddon();
    expect(loaded, 'npm run build:native').toHaveProperty('addon');
    if (!('addon' in loaded)) return;
    const KiB = 1024;
    const MiB = 1024 * KiB;
    // <= 1 MiB: multiples of 512 B; <= 16 MiB: of 64 KiB; above: of 2 MiB.
    const expected: [number, number][] = [
      [0, 512], [1, 512], [512, 512], [513, 1024], [MiB, MiB],
      [MiB + 1, MiB + 64 * KiB], [16 * MiB, 16 * MiB], [16 * MiB + 1, 18 * MiB], [100 * MiB + 1, 102 * MiB],
    ];
    for (const [bytes, bucket] of expected) expect(loaded.addon.bucketSize(bytes), `${bytes}`).toBe(bucket);
  });
});
