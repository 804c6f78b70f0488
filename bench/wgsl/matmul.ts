/**
 * WGSL matmul throughput (GFLOP/s) of the hand-written tiled kernel (src/codegen/wgsl/kernels/
 * matmul.ts) on whatever adapter acquireGpu finds: SwiftShader on CPU-only machines (a trend,
 * not a GPU number), Dawn's Vulkan backend on a GPU host.
 *
 *   npm run build && node dist/bench/wgsl/matmul.js
 *
 * Environment:
 *   BENCH_SIZES=512,1024        square sizes n (C[n,n] = A[n,n] B[n,n]); default 512,1024
 *   BENCH_CONFIGS=4x4,8x4       per-thread register blocks of the 64x64 tile (default both)
 *   BENCH_REPEATS=5             timed calls per (size, config) after one warm-up
 *   BENCH_MIN_MS=200            each timed call repeats the dispatch until it runs at least this long
 *
 * Each result is checked on 64 sampled elements against a float64 dot product before timing.
 */
import { WgslRuntime } from '../../src/codegen/wgsl/runtime.js';
import { matmulDispatch, matmulKernel, type MatmulParams } from '../../src/codegen/wgsl/kernels/matmul.js';
import { envInt, envList, formatTable, machineInfo, median } from '../harness.js';

const CONFIGS: Readonly<Record<string, MatmulParams>> = {
  '4x4': { tileM: 64, tileN: 64, tileK: 16, threadM: 4, threadN: 4 },
  '8x4': { tileM: 64, tileN: 64, tileK: 8, threadM: 8, threadN: 4 },
};

function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return new Float32Array(n).map(() => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

async function main(): Promise<void> {
  const sizes = (envList('BENCH_SIZES') ?? ['512', '1024']).map(Number);
  const configs = envList('BENCH_CONFIGS') ?? Object.keys(CONFIGS);
  const repeats = envInt('BENCH_REPEATS', 5);
  const minMs = envInt('BENCH_MIN_MS', 200);
  const rt = await WgslRuntime.create();
  console.log(`adapter: ${rt.adapterInfo}`);
  console.log(`machine: ${JSON.stringify(machineInfo())}`);
  const rows: string[][] = [];
  for (const n of sizes) {
    const a = seeded(n * n, n);
    const b = seeded(n * n, n + 1);
    const [ab, bb, cb] = [rt.alloc(a.byteLength), rt.alloc(b.byteLength), rt.alloc(4 * n * n)];
    rt.upload(ab, a);
    rt.upload(bb, b);
    for (const name of configs) {
      const params = CONFIGS[name];
      if (!params) throw new Error(`BENCH_CONFIGS: unknown config ${name} (known: ${Object.keys(CONFIGS).join(', ')})`);
      const pipeline = await rt.pipeline(matmulKernel(params), 'main', `matmul ${name}`);
      const d = matmulDispatch({ batch: 1, M: n, N: n, K: n }, undefined, params);
      const run = async (times: number): Promise<number> => {
        const t0 = performance.now();
        const rec = rt.beginCall('bench');
        for (let i = 0; i < times; i++) rec.dispatch(pipeline, [ab, bb, cb], d.workgroups, d.uniform);
        rec.submit();
        await rt.sync();
        return performance.now() - t0;
      };
      const firstMs = await run(1);
      const c = new Float32Array(await rt.read(cb));
      const err = maxSampledError(a, b, c, n);
      if (!(err < 1e-3)) throw new Error(`matmul ${name} n=${n}: sampled error ${err} against float64`);
      const inner = Math.max(1, Math.ceil(minMs / Math.max(firstMs, 1e-3)));
      const times: number[] = [];
      for (let r = 0; r < repeats; r++) times.push((await run(inner)) / inner);
      const ms = median(times);
      rows.push([String(n), name, String(inner), firstMs.toFixed(1), ms.toFixed(2), ((2 * n ** 3) / (ms * 1e6)).toFixed(1), err.toExponential(1)]);
      console.log(formatTable(['n', 'block', 'dispatches/call', 'first ms', 'median ms', 'GFLOP/s', 'max err'], rows.slice(-1)));
    }
    for (const x of [ab, bb, cb]) rt.release(x);
  }
  console.log(`\n${formatTable(['n', 'block', 'dispatches/call', 'first ms', 'median ms', 'GFLOP/s', 'max err'], rows)}`);
  rt.destroy();
}

/** Largest |C - A B| over 64 sampled elements, relative to sum |A||B| of each. */
function maxSampledError(a: Float32Array, b: Float32Array, c: Float32Array, n: number): number {
  let worst = 0;
  for (let s = 0; s < 64; s++) {
    const i = (s * 7919) % n;
    const j = (s * 104729 + 13) % n;
    let sum = 0;
    let mag = 0;
    for (let k = 0; k < n; k++) {
      sum += a[i * n + k]! * b[k * n + j]!;
      mag += Math.abs(a[i * n + k]! * b[k * n + j]!);
    }
    worst = Math.max(worst, Math.abs(c[i * n + j]! - sum) / mag);
  }
  return worst;
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
