/**
 * Shared set-up of the tests that run generated CUDA kernels on the host: builds the emulating
 * fake driver and NVRTC (fake_cuda.ts, emulator/ngemu.h) and points the addon at them. Each
 * test file runs in its own process (vitest's forks pool), and the addon opens the driver once
 * per process, so call this before anything opens CUDA.
 */
import path from 'node:path';
import { buildFakeDriver, buildFakeNvrtc } from './fake_cuda.js';
import { tempDir } from './helpers.js';

export function useEmulatedCuda(memoryBytes = 512 << 20): { dir: string; log: string } {
  const dir = tempDir('cuda-emulated');
  const log = path.join(dir, 'calls.log');
  process.env.NEXGRAD_CUDA_LIBCUDA = buildFakeDriver(dir, 'libcuda_emulated', { emulate: true, memory: memoryBytes });
  process.env.NEXGRAD_CUDA_LIBNVRTC = buildFakeNvrtc(dir, { emulate: true });
  process.env.FAKE_CUDA_LOG = log;
  return { dir, log };
}

/** Deterministic values in [lo, hi) (a linear congruential generator). */
export function uniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((s >>> 8) / (1 << 24)) * (hi - lo);
  }
  return out;
}
