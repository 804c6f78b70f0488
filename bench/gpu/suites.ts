/**
 * The CUDA backend's numerical suites on a GPU host (bench/gpu/check.sh runs it there):
 *   node dist/bench/gpu/suites.js [--out DIR] [--backend cuda] [--refs DIR] [--random N] [--only NAME]
 * writes DIR/cuda-suites.json (DIR: --out, else $OUT, else bench/results/gpu). Exit status: 0
 * all passed, 1 a suite failed, 2 the backend is unavailable (the reason is printed first).
 */
import path from 'node:path';
import * as ng from '../../src/index.js';
import { SUITES } from './suite_checks.js';
import { option, outDir, writeJson } from './report.js';

async function main(): Promise<number> {
  const backend = option('backend', 'cuda');
  const out = path.join(outDir(), 'cuda-suites.json');
  const refs = option('refs', path.join('.gpu', 'refs'));
  const only = option('only', '');
  const report: Record<string, unknown> = { when: new Date().toISOString(), node: process.version, backend };
  const available = await ng.init(backend);
  if (!available.includes(backend)) {
    const reason = ng.unavailableReasons()[backend] ?? 'unknown backend';
    console.log(reason);
    writeJson(out, { ...report, available: false, reason });
    return 2;
  }
  const results: { name: string; ok: boolean; ms: number; detail: unknown }[] = [];
  for (const suite of SUITES) {
    if (only && !suite.name.includes(only)) continue;
    const t0 = performance.now();
    let ok = true;
    let detail: unknown;
    try {
      detail = await suite.run({ backend, refs, randomPrograms: Number(option('random', '200')), log: console.log });
    } catch (e) {
      ok = false;
      detail = (e as Error).message;
    }
    const ms = performance.now() - t0;
    results.push({ name: suite.name, ok, ms, detail });
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${suite.name} (${(ms / 1000).toFixed(1)} s) ${typeof detail === 'string' ? detail.split('\n')[0] : JSON.stringify(detail)}`);
    writeJson(out, { ...report, available: true, suites: results });
  }
  const failed = results.filter((r) => !r.ok).length;
  console.log(`${results.length - failed} suites passed, ${failed} failed; results in ${out}`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
