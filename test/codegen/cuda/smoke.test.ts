/**
 * The GPU smoke test (bench/gpu/smoke_checks.ts) run end to end over the fake driver, whose
 * host implementations of the smoke kernels make every check's JS reference comparison run.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { runSmoke } from '../../../bench/gpu/smoke_checks.js';
import { buildFakeDriver, buildFakeNvrtc } from './fake_cuda.js';
import { tempDir } from './helpers.js';

let dir = '';
beforeAll(() => {
  dir = tempDir('cuda-smoke');
  process.env.NEXGRAD_CUDA_LIBCUDA = buildFakeDriver(dir, 'libcuda_fake', { memory: 1 << 30 });
  process.env.NEXGRAD_CUDA_LIBNVRTC = buildFakeNvrtc(dir);
});

test('every smoke check runs and passes over the fake device, and the results file says so', async () => {
  const lines: string[] = [];
  const out = path.join(dir, 'cuda-smoke.json');
  expect(await runSmoke(out, (line) => lines.push(line))).toBe(0);
  const report = JSON.parse(readFileSync(out, 'utf8')) as {
    available: boolean;
    device: { name: string };
    checks: { name: string; ok: boolean; detail: Record<string, unknown> }[];
  };
  expect(report.available).toBe(true);
  expect(report.device.name).toBe('nexgrad fake GPU 0');
  expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
    ['copies and allocator', true],
    ['elementwise kernel (NVRTC) vs JS', true],
    ['warp-shuffle row reduction vs float64 sums', true],
    ['mma.sync bf16 16x8x16 tile vs exact JS product', true],
    ['graph record and replay', true],
    ['cubin disk cache', true],
  ]);
  expect(report.checks[3]!.detail).toEqual({ tile: '16x8x16', exact: true });
  expect(lines.at(-1)).toBe('6 passed, 0 failed');
});
