// `--backend auto` (resolveBackend) picks cuda > wgsl > cpu among the available backends, but
// passes over a GPU emulated on the CPU: on SwiftShader the WGSL backend is 6-8x slower than the
// CPU backend (bench/wgsl), so auto picking it would slow the main job several times.
import { describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';
import { resolveBackend } from '../../src/convnextv2/train/runtime.js';
import { getDevice } from '../../src/passes/backends.js';

describe('automatic backend choice', () => {
  it('takes the first available non-emulated backend of cuda, wgsl, cpu', async () => {
    const available = await ng.init();
    const real = ['cuda', 'wgsl', 'cpu'].filter((b) => available.includes(b) && !getDevice(b).emulated);
    expect(resolveBackend('auto')).toBe(real[0]);
    if (available.includes('wgsl') && getDevice('wgsl').emulated) {
      expect(resolveBackend('auto')).not.toBe('wgsl');
      // still available when asked for by name
      expect(resolveBackend('wgsl')).toBe('wgsl');
    }
  });
});
