/**
 * Compile-checks CUDA C++ with nvcc, for machines without a GPU: each source is written to a
 * temporary folder and compiled with `nvcc -cubin -arch=sm_90`, two at a time. The CUDA
 * dialect's tests run every kernel they generate through this.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const NVCC = '/usr/local/cuda/bin/nvcc';

export interface NvccSource {
  /** A file name stem: letters, digits, '_', '.', '-'. */
  readonly name: string;
  readonly source: string;
}

export interface NvccResult {
  readonly name: string;
  readonly ok: boolean;
  /** nvcc's stdout and stderr (errors, warnings). */
  readonly log: string;
  /** The cubin's bytes when ok. */
  readonly cubin?: Uint8Array;
}

export interface NvccOptions {
  readonly arch?: string;
  readonly nvcc?: string;
  /** How many nvcc processes run at once (default 2: CI machines have two cores). */
  readonly parallel?: number;
  /** Extra nvcc flags. */
  readonly flags?: readonly string[];
  /** Per-file limit in ms (default 120 s). */
  readonly timeoutMs?: number;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}$/;

function runNvcc(nvcc: string, args: string[], cwd: string, timeout: number): Promise<{ ok: boolean; log: string }> {
  return new Promise((resolve) => {
    execFile(nvcc, args, { cwd, timeout, maxBuffer: 16 << 20, encoding: 'utf8' }, (error, stdout, stderr) => {
      const log = `${stdout}${stderr}`.trim();
      if (error === null) resolve({ ok: true, log });
      else if (error.killed) resolve({ ok: false, log: `${log}\nnvcc: killed after ${timeout} ms`.trim() });
      else resolve({ ok: false, log: log || error.message });
    });
  });
}

/** Compiles each source to a cubin; a failure is a result with ok: false and nvcc's log. */
export async function compileWithNvcc(sources: readonly NvccSource[], options: NvccOptions = {}): Promise<NvccResult[]> {
  const nvcc = options.nvcc ?? NVCC;
  if (!existsSync(nvcc)) throw new Error(`compileWithNvcc: ${nvcc} not found (the CUDA toolkit is expected at /usr/local/cuda)`);
  const seen = new Set<string>();
  for (const { name } of sources) {
    if (!NAME.test(name)) throw new Error(`compileWithNvcc: source name '${name}' must be letters, digits, '_', '.', '-'`);
    if (seen.has(name)) throw new Error(`compileWithNvcc: source name '${name}' is used twice`);
    seen.add(name);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nexgrad-nvcc-'));
  const arch = options.arch ?? 'sm_90';
  const results: NvccResult[] = new Array(sources.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < sources.length) {
      const index = next++;
      const { name, source } = sources[index]!;
      writeFileSync(path.join(dir, `${name}.cu`), source);
      const args = ['-cubin', `-arch=${arch}`, ...(options.flags ?? []), '-o', `${name}.cubin`, `${name}.cu`];
      const { ok, log } = await runNvcc(nvcc, args, dir, options.timeoutMs ?? 120_000);
      results[index] = ok ? { name, ok, log, cubin: new Uint8Array(readFileSync(path.join(dir, `${name}.cubin`))) } : { name, ok, log };
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.parallel ?? 2) }, worker));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return results;
}
