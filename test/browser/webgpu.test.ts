/**
 * End to end in a real browser: Debian's chromium, headless, SwiftShader's WebGPU adapter, the
 * WGSL runtime and kernels bundled by Vite. The page (test/browser/page) runs a matmul,
 * random_bits and an argsort in one call; the numbers are checked here against host references.
 * The example page (examples/browser) is built and run too: its in-page self-check must pass.
 * Without chromium the test fails when NEXGRAD_REQUIRE lists wgsl; otherwise it checks that the
 * browser really is missing (never a silent pass).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { HostArray } from '../../src/ir/host.js';
import { PRIMS } from '../../src/ir/primitives/index.js';
import { threefryHash } from '../../src/ir/threefry.js';
import { buildPage, CHROMIUM, launchChromium, outputDir, REPO, serve, wgslRequired } from './harness.js';
import { pageInputs, type PageResult } from './page/inputs.js';

const haveChromium = fs.existsSync(CHROMIUM);

if (!haveChromium && !wgslRequired) {
  test('browser WebGPU: chromium is not installed here (run scripts/setup.sh as root)', () => {
    expect(fs.existsSync(CHROMIUM)).toBe(false);
  });
} else {
  let server: Awaited<ReturnType<typeof serve>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  const out = outputDir('browser');

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`NEXGRAD_REQUIRE lists wgsl, but ${CHROMIUM} is missing (run scripts/setup.sh as root)`);
    await buildPage(path.join(REPO, 'test/browser/page'), path.join(out, 'webgpu-page'));
    await buildPage(path.join(REPO, 'examples/browser'), path.join(out, 'example'));
    server = await serve(out);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test('WGSL kernels through the runtime in headless chromium match the host', async () => {
    const seed = 12345;
    const page = await browser.context.newPage();
    const consoleLines: string[] = [];
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    await page.goto(`${server.url}webgpu-page/?seed=${seed}`);
    await page.waitForFunction(() => (globalThis as { __nexgradResult?: unknown }).__nexgradResult !== undefined, undefined, { timeout: 240_000 });
    const r = (await page.evaluate(() => (globalThis as { __nexgradResult?: unknown }).__nexgradResult)) as PageResult;
    await page.screenshot({ path: path.join(out, 'webgpu.png') });
    await page.close();

    if (r.error && !wgslRequired && /no navigator\.gpu|adapter request failed/.test(r.error)) {
      // no adapter in this browser and wgsl not required: the reason must be a named one
      expect(r.error).toMatch(/^GpuUnavailableError: wgsl: (no navigator\.gpu|adapter request failed)/);
      return;
    }
    expect(r.error, `page failed; console:\n${consoleLines.join('\n')}`).toBeUndefined();
    expect(r.adapterInfo).toMatch(/swiftshader/i);

    const inp = pageInputs(seed);
    const { M, N, K, a, b } = inp.matmul;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        let mag = 0;
        for (let k = 0; k < K; k++) {
          s += a[m * K + k]! * b[k * N + n]!;
          mag += Math.abs(a[m * K + k]! * b[k * N + n]!);
        }
        expect(Math.abs(r.matmul![m * N + n]! - s), `C[${m},${n}]`).toBeLessThanOrEqual((K + 2) * 2 ** -23 * mag);
      }
    expect(r.randomBits).toEqual(Array.from(threefryHash(inp.key[0]!, inp.key[1]!, inp.counter)));
    const host = PRIMS.argsort.impl([new HostArray('f32', [inp.sortKeys.length], inp.sortKeys)], { axis: 0, descending: false }, { wide: false })[0]!;
    expect(r.argsort).toEqual(Array.from(host.data));
    expect(fs.statSync(path.join(out, 'webgpu.png')).size).toBeGreaterThan(1000);
  });

  test('the browser example (examples/browser) passes its kernel self-check and measures a matmul', async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}example/`);
    await page.waitForFunction(() => (globalThis as { __nexgradExample?: unknown }).__nexgradExample !== undefined, undefined, { timeout: 240_000 });
    const r = (await page.evaluate(() => (globalThis as { __nexgradExample?: unknown }).__nexgradExample)) as {
      status: string;
      adapterInfo?: string;
      reason?: string;
      checks: { kernel: string; ok: boolean; detail: string }[];
    };
    if (r.status === 'unavailable' && !wgslRequired) {
      expect(r.reason).toMatch(/no navigator\.gpu|adapter request failed/);
      expect(await page.textContent('#status')).toMatch(/WebGPU is not available here/);
      await page.close();
      return;
    }
    expect(errors).toEqual([]);
    expect(r.checks.map((c) => c.kernel)).toHaveLength(4);
    for (const c of r.checks) expect(c.ok, `${c.kernel}: ${c.detail}`).toBe(true);
    expect(r.status).toBe('ok');
    expect(r.adapterInfo).toMatch(/swiftshader/i);
    await page.click('#measure');
    await page.waitForFunction(() => ((globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('#bench tr').length ?? 0) > 1, undefined, { timeout: 120_000 });
    const firstRow = await page.textContent('#bench tr:nth-child(2)');
    expect(firstRow).toMatch(/^256/);
    await page.screenshot({ path: path.join(out, 'example.png'), fullPage: true });
    await page.close();
  });
}
