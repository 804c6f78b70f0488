/**
 * CUDA device smoke test, for a GPU host (bench/gpu/check.sh runs it there):
 *   node dist/bench/gpu/smoke.js [--out results.json]     (default $OUT/cuda-smoke.json)
 * Exit codes: 0 all checks passed, 1 a check failed, 2 CUDA unavailable (the reason is printed
 * and written to the results file).
 */
import path from 'node:path';
import { runSmoke } from './smoke_checks.js';

const outIndex = process.argv.indexOf('--out');
const out = outIndex > 0 ? process.argv[outIndex + 1]! : path.join(process.env.OUT ?? '.', 'cuda-smoke.json');
runSmoke(out).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
