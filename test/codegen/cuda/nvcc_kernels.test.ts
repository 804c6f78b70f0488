/**
 * CI without a GPU: every kernel the test programs generate for the CUDA backend is valid CUDA.
 * The corpus (kernel_corpus.ts: a few hundred random programs, the tiny ConvNeXt V2, atto and
 * FCMAE training steps in f32, bf16 mixed precision and tf32, the data kernels and f16/bf16
 * programs) is lowered for an sm_90 device, its kernel sources deduplicated, and compiled with
 * `nvcc -cubin -arch=sm_90`, two processes at a time. To keep that within minutes, modules are
 * compiled in groups, each wrapped in a namespace of its own with its entry points renamed
 * (nothing else changes); a compile failure fails the test with the failing kernel's label,
 * source and nvcc's messages about it. Names only the host headers declare (nvcc includes
 * them, NVRTC does not) are refused too.
 */
import { expect, test } from 'vitest';
import { type CorpusKernel, kernelsOf, modelAndDataPrograms, randomPrograms } from './kernel_corpus.js';
import { compileWithNvcc } from './nvcc.js';

const RANDOM_PROGRAMS = Number(process.env.NEXGRAD_NVCC_RANDOM_PROGRAMS ?? 300);
const SEED = Number(process.env.NEXGRAD_FUZZ_SEED ?? 20251127);
/** Modules per nvcc invocation. */
const GROUP = 40;

interface Unit {
  readonly label: string;
  readonly source: string;
  readonly entries: readonly string[];
}

/** A group of modules as one translation unit: each in `namespace ng_k<i>`, entries suffixed `_k<i>`. */
function combine(units: readonly Unit[], offset: number): { source: string; ranges: { first: number; last: number; unit: Unit }[] } {
  const lines: string[] = [];
  const ranges: { first: number; last: number; unit: Unit }[] = [];
  units.forEach((u, j) => {
    const i = offset + j;
    let body = u.source;
    for (const e of u.entries) body = body.replace(new RegExp(`(__global__ void (?:__launch_bounds__\\(\\d+\\) )?)${e}\\(`, 'g'), `$1${e}_k${i}(`);
    const first = lines.length + 2;
    lines.push(`namespace ng_k${i} {`, ...body.split('\n'), '}');
    ranges.push({ first, last: lines.length, unit: u });
  });
  return { source: lines.join('\n'), ranges };
}

test('every generated CUDA kernel compiles with nvcc -cubin -arch=sm_90', async () => {
  const t0 = performance.now();
  const programs = [...modelAndDataPrograms(), ...randomPrograms(RANDOM_PROGRAMS, SEED)];
  const kernels: CorpusKernel[] = programs.flatMap(kernelsOf);
  const unique = new Map<string, Unit>();
  for (const k of kernels) {
    if (!unique.has(k.code.source)) unique.set(k.code.source, { label: k.label, source: k.code.source, entries: [...new Set(k.code.dispatches.map((d) => d.entry))] });
  }
  const units = [...unique.values()];
  const tGen = performance.now();
  const groups: ReturnType<typeof combine>[] = [];
  for (let i = 0; i < units.length; i += GROUP) groups.push(combine(units.slice(i, i + GROUP), i));
  const results = await compileWithNvcc(groups.map((g, i) => ({ name: `group${i}`, source: g.source })), { parallel: 2, timeoutMs: 600_000 });
  const failures: string[] = [];
  results.forEach((r, gi) => {
    if (r.ok) return;
    // attribute each error line to the module it falls in
    const hit = new Map<Unit, string[]>();
    for (const line of r.log.split('\n')) {
      const m = /group\d+\.cu\((\d+)\)/.exec(line);
      const range = m ? groups[gi]!.ranges.find((x) => Number(m[1]) >= x.first && Number(m[1]) <= x.last) : undefined;
      if (range) hit.set(range.unit, [...(hit.get(range.unit) ?? []), line]);
    }
    if (hit.size === 0) failures.push(`group ${gi}: nvcc failed:\n${r.log}`);
    for (const [u, log] of hit) failures.push(`${u.label}\n--- nvcc\n${log.join('\n')}\n--- source\n${u.source}`);
  });
  const seconds = (ms: number): string => (ms / 1000).toFixed(1);
  console.log(
    `${programs.length} programs, ${kernels.length} kernels, ${units.length} distinct sources in ${groups.length} nvcc runs; ` +
      `lowering ${seconds(tGen - t0)} s, nvcc ${seconds(performance.now() - tGen)} s`,
  );
  expect(failures, failures.slice(0, 3).join('\n\n')).toEqual([]);
  // nvcc includes cuda_runtime.h (and through it the C library) in every file; NVRTC includes
  // nothing, so what only those headers declare must not appear
  const hostOnly = /\bsize_t\b|\bu?int(8|16|32|64)_t\b|\bINFINITY\b|\bNAN\b|std::|#include|\bprintf\b|\bis(nan|inf|finite)\b/;
  const leaks = units.filter((u) => hostOnly.test(u.source)).map((u) => `${u.label}: ${hostOnly.exec(u.source)![0]}`);
  expect(leaks, 'identifiers NVRTC does not declare').toEqual([]);
  // the corpus reaches every kind of kernel the backend prints
  const text = units.map((u) => u.source).join('\n');
  for (const marker of ['ng_mma_bf16(', 'ng_mma_tf32(', '__syncthreads()', 'atomicAdd(', 'ng_atomic_add_16(', 'ng_f2bf(', 'ng_f2h(']) {
    expect(text, marker).toContain(marker);
  }
});
