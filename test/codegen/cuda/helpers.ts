/** Shared pieces of the CUDA addon tests: paths, temp folders, child processes. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const ADDON = path.join(ROOT, 'native', 'build', 'Release', 'nexgrad_cuda.node');
export const CUDA_HEADERS = existsSync('/usr/local/cuda/include/cuda.h');

export function tempDir(label: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `nexgrad-${label}-`));
}

/** Whether the dynamic loader can find `soname` (an independent probe: ldconfig's cache). */
export function loaderKnows(soname: string): boolean {
  const listed = spawnSync('ldconfig', ['-p'], { encoding: 'utf8' });
  if (listed.status !== 0) return false;
  return listed.stdout.split('\n').some((line) => line.trim().startsWith(`${soname} `));
}

/**
 * Runs `body` (CommonJS, with `addon` bound to the loaded addon, inside an async function) in a
 * fresh Node process with `env` added, and returns what it passes to `done(value)` as JSON.
 * The addon opens libcuda/NVRTC once per process, so each driver setup needs its own process.
 */
export function inChild<T>(env: Record<string, string>, body: string): T {
  const script = `
    const addon = require(${JSON.stringify(ADDON)});
    const done = (value) => process.stdout.write('\\n@@' + JSON.stringify(value));
    const fail = (e) => ({ message: e.message, code: e.code, call: e.call, kernel: e.kernel, log: e.log, name: e.name });
    (async () => { ${body} })().catch((e) => { console.error(e); process.exit(3); });`;
  const out = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
  const at = out.lastIndexOf('\n@@');
  if (at < 0) throw new Error(`child printed no result:\n${out}`);
  return JSON.parse(out.slice(at + 3)) as T;
}
