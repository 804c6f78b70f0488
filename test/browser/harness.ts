/**
 * Browser test plumbing: build a page with Vite, serve it from 127.0.0.1, drive Debian's
 * chromium (never a downloaded browser) headless with a SwiftShader WebGPU adapter, and keep
 * screenshots under test-output/ (git-ignored by the .gitignore written there).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CHROMIUM = process.env.NEXGRAD_CHROMIUM ?? '/usr/bin/chromium';

/** The flags that give headless chromium a WebGPU adapter on SwiftShader (no --disable-gpu). */
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  // as nexgrad asks of Dawn in Node (src/codegen/wgsl/gpu.ts): no zero-initialisation of
  // workgroup memory, which costs SwiftShader seconds of shader compile time per kernel
  '--enable-dawn-features=disable_workgroup_init',
];

export const wgslRequired = (process.env.NEXGRAD_REQUIRE ?? '').split(',').map((s) => s.trim()).includes('wgsl');

/** test-output/<sub>, created with a .gitignore that ignores everything in test-output. */
export function outputDir(sub: string): string {
  const root = path.join(REPO, 'test-output');
  fs.mkdirSync(path.join(root, sub), { recursive: true });
  const ignore = path.join(root, '.gitignore');
  if (!fs.existsSync(ignore)) fs.writeFileSync(ignore, '*\n');
  return path.join(root, sub);
}

/** Builds the Vite page at `root` into `outDir` (with root's vite.config.ts if any; unminified for readable errors). */
export async function buildPage(root: string, outDir: string): Promise<void> {
  const { build } = await import('vite');
  const config = path.join(root, 'vite.config.ts');
  await build({
    root,
    base: './', // pages are served from sub-folders
    configFile: fs.existsSync(config) ? config : false,
    logLevel: 'error',
    build: { outDir, emptyOutDir: true, minify: false, reportCompressedSize: false },
  });
}

const TYPES: Readonly<Record<string, string>> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.png': 'image/png' };

/** A static server for `dir` on 127.0.0.1 (random port); only files inside dir are served. */
export async function serve(dir: string): Promise<{ url: string; close: () => Promise<void> }> {
  const root = path.resolve(dir);
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.resolve(root, `.${rel.endsWith('/') ? `${rel}index.html` : rel}`);
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Headless chromium with a fresh profile; close() removes the profile. */
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  return {
    context,
    close: async () => {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
