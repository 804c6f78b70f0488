/**
 * Without any Vulkan driver configured, acquireGpu says so. Runs in its own test file (its own
 * process), because the Vulkan loader reads the environment when Dawn creates its instance.
 */
import * as fs from 'node:fs';
import { expect, test } from 'vitest';
import { acquireGpu, GpuUnavailableError } from '../../../src/codegen/wgsl/gpu.js';

test('no ICD file and no system driver: "no Vulkan driver found", naming what to install', async () => {
  delete process.env.VK_ICD_FILENAMES;
  delete process.env.VK_DRIVER_FILES;
  const systemDrivers = ['/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/etc/vulkan/icd.d'].some((d) => fs.existsSync(d) && fs.readdirSync(d).some((f) => f.endsWith('.json')));
  let error: unknown = null;
  try {
    const got = await acquireGpu({ environment: 'node', swiftshaderIcd: '/nonexistent/vk_swiftshader_icd.json' });
    got.device.destroy();
  } catch (e) {
    error = e;
  }
  if (systemDrivers) {
    // a machine with its own Vulkan driver: either it works or the failure is the adapter's
    if (error) expect((error as GpuUnavailableError).reason).toBe('adapter-request-failed');
    return;
  }
  expect(error).toBeInstanceOf(GpuUnavailableError);
  expect((error as GpuUnavailableError).reason).toBe('no-vulkan-driver');
  expect((error as Error).message).toMatch(/no Vulkan driver found \(install chromium and libvulkan1, or set VK_ICD_FILENAMES\)/);
  expect(process.env.VK_ICD_FILENAMES).toBeUndefined(); // a missing ICD file is not pointed at
});
