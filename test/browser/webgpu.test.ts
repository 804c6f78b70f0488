/**
 * End to end in a real browser: Debian's chromium, headless, SwiftShader's WebGPU adapter.
 *   - The ESM bundle (npm run build:browser) loaded as a native module, no bundler in between:
 *     a matmul, random bits and an argsort through nexgrad's public API on the 'wgsl' backend,
 *     checked here against the host.
 *   - The example page (examples/browser, built by Vite) trains a small ConvNeXt V2 on WebGPU
 *     for a number of steps: the loss must fall, on the wgsl backend; a screenshot is kept.
 * Without chromium the file fails when NEXGRAD_REQUIRE lists wgsl; otherwise it checks that the
 * browser really is missing (never a silent pass).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import * as ng from '../../src/index.js';
import { buildPage, CHROMIUM, launchChromium, outputDir, REPO, serve, wgslRequired } from './harness.js';
import { pageInputs, type PageInputs, type PageResult } from './page/inputs.js';

const haveChromium = fs.existsSync(CHROMIUM);

/** What the bundle page runs (serialised into the page: it sees only its argument and the page's globals). */
async function bundleCheck(inp: PageInputs): Promise<PageResult> {
  const g = globalThis as unknown as { ng?: typeof ng; ngLoadError?: string };
  if (!g.ng) return { error: `the bundle did not load: ${g.ngLoadError ?? 'unknown'}` };
  const lib = g.ng;
  const available = await lib.init('wgsl');
  if (!available.includes('wgsl')) return { error: `GpuUnavailableError: ${lib.unavailableReasons().wgsl}` };
  const opts = { backend: 'wgsl' as const };
  const c = lib.jit((x: ng.Tensor, y: ng.Tensor) => x.matmul(y), opts)(lib.tensor(inp.a, { shape: [inp.M, inp.K] }), lib.tensor(inp.b, { shape: [inp.K, inp.N] }));
  const bits = lib.jit((k: ng.Tensor) => lib.random.bits(k, inp.bitsShape), opts)(lib.random.key(inp.seed));
  const order = lib.jit((x: ng.Tensor) => lib.argsort(x, 0), opts)(lib.tensor(inp.sortKeys));
  return {
    devices: [c.device!, bits.device!, order.device!],
    matmul: Array.from(await c.data()),
    bits: Array.from(await bits.data()),
    argsort: Array.from(await order.data()),
  };
}

interface ExampleOutcome {
  status: string;
  backend?: string;
  adapterInfo?: string;
  reason?: string;
  losses: number[];
  imagesPerSecond?: number;
  compileMs?: number;
}

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
    execFileSync('npm', ['run', 'build:browser', '--silent'], { cwd: REPO, stdio: 'pipe' });
    const bundleDir = path.join(out, 'bundle');
    fs.mkdirSync(bundleDir, { recursive: true });
    fs.copyFileSync(path.join(REPO, 'dist/browser/nexgrad.js'), path.join(bundleDir, 'nexgrad.js'));
    fs.copyFileSync(path.join(REPO, 'test/browser/page/index.html'), path.join(bundleDir, 'index.html'));
    await buildPage(path.join(REPO, 'examples/browser'), path.join(out, 'example'));
    server = await serve(out);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  test('the ESM bundle in headless chromium: matmul, random bits and argsort on wgsl match the host', async () => {
    const page = await browser.context.newPage();
    const consoleLines: string[] = [];
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    await page.goto(`${server.url}bundle/`);
    await page.waitForFunction(() => (globalThis as { ng?: unknown; ngLoadError?: unknown }).ng !== undefined || (globalThis as { ngLoadError?: unknown }).ngLoadError !== undefined, undefined, { timeout: 60_000 });
    const inp = pageInputs(12345);
    const r = (await page.evaluate(bundleCheck, inp)) as PageResult;
    await page.screenshot({ path: path.join(out, 'bundle.png') });
    await page.close();
    if (r.error && !wgslRequired && /no navigator\.gpu|adapter request failed/.test(r.error)) {
      expect(r.error).toMatch(/^GpuUnavailableError: (no navigator\.gpu|adapter request failed)/);
      return;
    }
    expect(r.error, `page failed; console:\n${consoleLines.join('\n')}`).toBeUndefined();
    expect(r.devices).toEqual(['wgsl', 'wgsl', 'wgsl']);
    const { M, N, K, a, b } = inp;
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
    expect(r.bits).toEqual(Array.from(ng.random.bits(ng.random.key(inp.seed), inp.bitsShape).dataSync()));
    expect(r.argsort).toEqual(Array.from(ng.argsort(ng.tensor(inp.sortKeys), 0).dataSync()));
  });

  test('the example trains a small ConvNeXt V2 on WebGPU in the tab: the loss falls, plotted live', async () => {
    const steps = 24;
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}example/?steps=${steps}&batch=16&images=512&dims=8,16,32,64&depths=1,1,1,1&lr=0.003&autostart=1`);
    await page.waitForFunction(() => ['done', 'fail', 'unavailable'].includes((globalThis as { __nexgradExample?: { status: string } }).__nexgradExample?.status ?? ''), undefined, { timeout: 480_000 });
    const r = (await page.evaluate(() => (globalThis as { __nexgradExample?: unknown }).__nexgradExample)) as ExampleOutcome;
    await page.screenshot({ path: path.join(out, 'example.png'), fullPage: true });
    const text = await page.textContent('#status');
    await page.close();
    if (r.status === 'unavailable' && !wgslRequired) {
      expect(r.reason).toMatch(/no navigator\.gpu|adapter request failed/);
      expect(text).toMatch(/WebGPU is not available here/);
      return;
    }
    expect(errors).toEqual([]);
    expect(r.status, r.reason).toBe('done');
    expect(r.backend).toBe('wgsl');
    expect(r.adapterInfo).toMatch(/swiftshader/i);
    expect(r.losses).toHaveLength(steps);
    const mean = (xs: number[]): number => xs.reduce((s, v) => s + v, 0) / xs.length;
    const first = mean(r.losses.slice(0, 4));
    const last = mean(r.losses.slice(-4));
    console.log(`browser example: loss ${first.toFixed(3)} -> ${last.toFixed(3)} over ${steps} steps, ${r.imagesPerSecond?.toFixed(1)} images/s, first step ${((r.compileMs ?? 0) / 1000).toFixed(1)} s`);
    expect(last).toBeLessThan(0.7 * first);
    expect(text).toMatch(/^Done: 24 steps/);
    expect(fs.statSync(path.join(out, 'example.png')).size).toBeGreaterThan(5000);
  });
}
