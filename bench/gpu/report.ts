/**
 * Shared pieces of the GPU scripts (suites, bench): command-line options, the availability
 * check that ends a run with exit status 2 and the reason, and atomic JSON results.
 */
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** `--name value` from argv, else the default. */
export function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : fallback;
}

export const flag = (name: string): boolean => process.argv.includes(`--${name}`);

/** The results folder: --out, else $OUT, else bench/results/gpu. */
export function outDir(): string {
  return option('out', process.env.OUT ?? path.join('bench', 'results', 'gpu'));
}

export function writeJson(file: string, value: unknown): void {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(temp, file);
}

/** Largest |a - b| / (atol + rtol |b|); <= 1 is within tolerance. NaN anywhere but in both is Infinity. */
export function worstError(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number): number {
  if (actual.length !== expected.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const b = expected[i]!;
    if (Number.isNaN(a) && Number.isNaN(b)) continue;
    if (a === b) continue;
    const err = Math.abs(a - b) / (atol + rtol * Math.abs(b));
    if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : err;
  }
  return worst;
}

/** max |a - b| / max |b| (the parity tests' measure). */
export function relMaxError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (Number.isNaN(d)) return Infinity;
    num = Math.max(num, d);
    den = Math.max(den, Math.abs(expected[i]!));
  }
  return den === 0 ? num : num / den;
}
