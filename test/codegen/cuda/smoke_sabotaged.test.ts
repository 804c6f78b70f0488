/** The smoke test notices a wrong kernel: the fake's row_sum is off by 0.01 per row. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, expect, test } from 'vitest';
import { runSmoke } from '../../../bench/gpu/smoke_checks.js';
import { buildFakeDriver, buildFakeNvrtc } from './fake_cuda.js';
import { tempDir } from './helpers.js';

let dir = '';
beforeAll(() => {
  dir = tempDir('cuda-smoke-sabotaged');
  process.env.NEXGRAD_CUDA_LIBCUDA = buildFakeDriver(dir, 'libcuda_sabotaged', { memory: 1 << 30, sabotage: true });
  process.env.NEXGRAD_CUDA_LIBNVRTC = buildFakeNvrtc(dir);
});

test('a kernel that computes the wrong values fails its check by name', async () => {
  const lines: string[] = [];
  const out = path.join(dir, 'cuda-smoke.json');
  expect(await runSmoke(out, (line) => lines.push(line))).toBe(1);
  const report = JSON.parse(readFileSync(out, 'utf8')) as { checks: { name: string; ok: boolean; detail: unknown }[] };
  const failed = report.checks.filter((c) => !c.ok);
  expect(failed.map((c) => c.name)).toEqual(['warp-shuffle row reduction vs float64 sums']);
  expect(failed[0]!.detail).toMatch(/^row_sum differs from float64 sums \(worst scaled error \d+/);
  expect(lines.at(-1)).toBe('5 passed, 1 failed');
});
