/**
 * `--threads` picks how many threads the CPU backend uses, not which dialect: regression for
 * --threads 2 replacing the backend with the WebAssembly path's device (4.7x slower than the
 * native C dialect on the Fashion-MNIST fine-tuning step).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { cpuDeviceFor } from '../../src/codegen/cpu/device.js';
import { nativeSupport } from '../../src/codegen/cpu/native/device.js';
import { setupBackend } from '../../src/convnextv2/cli/run.js';
import { getDevice, registerBackend } from '../../src/passes/backends.js';

afterAll(() => registerBackend('cpu', () => cpuDeviceFor()));

describe('--threads', () => {
  it.each([1, 2])('--threads %i keeps the CPU backend\'s dialect and uses that many threads', async (threads) => {
    expect(await setupBackend({ backend: 'cpu', threads })).toBe('cpu');
    const id = getDevice('cpu').id;
    // the dialect the backend picks on its own (native C where a compiler exists and the addon builds)
    const native = typeof nativeSupport() !== 'string' && process.env.NEXGRAD_CPU !== 'wasm';
    expect(id).toMatch(native ? /^cpu:native-/ : /^cpu:js/);
    expect(id).toMatch(new RegExp(`:${threads}threads?(:|$)`));
  });
});
