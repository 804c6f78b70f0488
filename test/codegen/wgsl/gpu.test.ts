/** acquireGpu: what it requests from the adapter, and a named reason for every way it can fail. */
import { expect, test } from 'vitest';
import { acquireGpu, GpuUnavailableError, REQUESTED_LIMITS } from '../../../src/codegen/wgsl/gpu.js';
import { describeWgsl, openWgsl } from './env.js';

/** A GPU whose adapter records the device descriptor it was asked for. */
function fakeGpu(opts: { adapter?: 'none' | 'throws'; device?: 'rejects'; features?: string[] } = {}) {
  const asked: { descriptor?: GPUDeviceDescriptor } = {};
  const limits: Record<string, number> = {};
  REQUESTED_LIMITS.forEach((name, i) => (limits[name] = 1000 + i));
  Object.assign(limits, { minUniformBufferOffsetAlignment: 256, minStorageBufferOffsetAlignment: 256, maxTextureDimension2D: 4 });
  const adapter = {
    limits,
    features: new Set(opts.features ?? []),
    info: { vendor: 'acme', architecture: 'rocket', device: 'r1', description: 'Acme Rocket' },
    async requestDevice(descriptor: GPUDeviceDescriptor) {
      asked.descriptor = descriptor;
      if (opts.device === 'rejects') throw new Error('out of rockets');
      return { limits: { ...limits, ...descriptor.requiredLimits }, features: new Set(descriptor.requiredFeatures ?? []) };
    },
  };
  const gpu = {
    async requestAdapter() {
      if (opts.adapter === 'throws') throw new Error('driver crashed');
      return opts.adapter === 'none' ? null : adapter;
    },
  };
  return { gpu: gpu as unknown as GPU, asked };
}

async function reasonOf(p: Promise<unknown>): Promise<[string, string]> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(GpuUnavailableError);
    return [(e as GpuUnavailableError).reason, (e as Error).message];
  }
  throw new Error('expected acquireGpu to fail');
}

test('requests the adapter limit of every listed limit, and shader-f16 when offered', async () => {
  const { gpu, asked } = fakeGpu({ features: ['shader-f16', 'timestamp-query'] });
  const got = await acquireGpu({ gpu });
  expect(got.source).toBe('given');
  expect(got.adapterInfo).toBe('acme rocket r1 (Acme Rocket)');
  expect(asked.descriptor!.requiredFeatures).toEqual(['shader-f16']);
  REQUESTED_LIMITS.forEach((name, i) => {
    expect(asked.descriptor!.requiredLimits![name]).toBe(1000 + i);
    expect(got.limits[name]).toBe(1000 + i);
  });
  expect(got.features.has('shader-f16')).toBe(true);
  const noF16 = fakeGpu({ features: ['shader-f16'] });
  await acquireGpu({ gpu: noF16.gpu, f16: false });
  expect(noF16.asked.descriptor!.requiredFeatures).toEqual([]);
});

test('each failure has its own reason and says what is missing', async () => {
  expect(await reasonOf(acquireGpu({ environment: 'browser' }))).toEqual(['no-navigator-gpu', expect.stringMatching(/^wgsl: no navigator\.gpu/)]);
  expect(await reasonOf(acquireGpu({ environment: 'node', dawnModule: 'nexgrad-no-such-dawn' }))).toEqual([
    'no-webgpu-package',
    expect.stringMatching(/the nexgrad-no-such-dawn package is not installed \(npm install nexgrad-no-such-dawn\)/),
  ]);
  expect(await reasonOf(acquireGpu({ gpu: fakeGpu({ adapter: 'none' }).gpu }))).toEqual(['adapter-request-failed', expect.stringMatching(/adapter request failed: the given GPU returned no adapter/)]);
  expect(await reasonOf(acquireGpu({ gpu: fakeGpu({ adapter: 'throws' }).gpu }))).toEqual(['adapter-request-failed', expect.stringMatching(/adapter request failed: driver crashed/)]);
  expect(await reasonOf(acquireGpu({ gpu: fakeGpu({ device: 'rejects' }).gpu }))).toEqual(['device-request-failed', expect.stringMatching(/device request failed on acme rocket r1 \(Acme Rocket\): out of rockets/)]);
});

const env = await openWgsl();

describeWgsl('acquireGpu on this machine', env, (rt) => {
  test('the device has the adapter limits that matter', async () => {
    const again = await acquireGpu();
    expect(again.source).toBe('dawn');
    for (const name of REQUESTED_LIMITS) expect(rt.limits[name], name).toBe(again.limits[name]);
    // WebGPU's default is 8; an adapter that offers more (SwiftShader: 12) must have given it
    expect(rt.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(8);
    if ((process.env.VK_ICD_FILENAMES ?? '').includes('swiftshader')) expect(rt.adapterInfo).toMatch(/swiftshader/i);
    again.device.destroy();
  });
});
