/**
 * Every numerical suite runs once per available backend (like jax-js's `suite.each(devices)`).
 * NEXGRAD_REQUIRE=cpu,wgsl (CI sets it) makes a missing backend fail the run instead of being
 * left out: a backend is never skipped silently (cpu-native in the list: the native C dialect of
 * the CPU backend must build, checked by test/codegen/cpu/native.test.ts). NEXGRAD_BACKENDS=cpu narrows the list.
 */
import { describe } from 'vitest';
import * as ng from '../../src/index.js';

const KNOWN = ['cpu', 'wgsl', 'cuda'] as const;

const list = (v: string | undefined): string[] => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);

const available = await ng.init(...KNOWN);
// cpu-native (the CPU backend's C dialect) is required by test/codegen/cpu/native.test.ts
const required = list(process.env.NEXGRAD_REQUIRE).filter((b) => b !== 'cpu-native');
const reasons = ng.unavailableReasons();
const missing = required.filter((b) => !available.includes(b));
if (missing.length) {
  throw new Error(`NEXGRAD_REQUIRE=${required.join(',')}: ${missing.map((b) => `'${b}' is not available (${reasons[b] ?? 'unknown backend'})`).join('; ')}`);
}
const only = list(process.env.NEXGRAD_BACKENDS);

/** The backends the numerical suites run on. */
export const TEST_BACKENDS: readonly string[] = available.filter((b) => (KNOWN as readonly string[]).includes(b) && (only.length === 0 || only.includes(b)));

/** describe(...) once per backend: `fn(backend)`. */
export function describeEachBackend(name: string, fn: (backend: string) => void): void {
  for (const b of TEST_BACKENDS) describe(`${name} [${b}]`, () => fn(b));
}

/** f32 tolerance of a backend against the float64 interpreter (GPUs compute in f32 throughout). */
export function tolerance(backend: string, cpu: number): number {
  return backend === 'cpu' ? cpu : Math.max(cpu, 1e-4);
}
