/**
 * WGSL benchmark: the generated tiled GEMM's GFLOP/s and ConvNeXt V2 atto inference and
 * training-step images/s on the 'wgsl' backend, on whatever adapter nexgrad finds: SwiftShader
 * on CPU-only machines (a trend, not a GPU number), Dawn's Vulkan backend on a GPU host.
 *
 *   npm run bench:wgsl
 *
 * Environment:
 *   BENCH_SIZES=1024,2048,4096        square matmul sizes n (C[n,n] = A[n,n] B[n,n])
 *   BENCH_WORKLOADS=infer-b1,...      atto workloads (the CPU benchmark's): infer-b1, infer-b8
 *                                     (224x224), train-b8 (224x224), train-b32-64 (64x64);
 *                                     default infer-b1,train-b32-64
 *   BENCH_REPEATS=3                   timed calls per workload after one warm-up (the first call,
 *                                     compilation included, is reported separately)
 *   BENCH_PROFILE=1                   also print the ten slowest kernels of each atto workload
 *   BENCH_OUT=path.json | none        where the JSON goes (default bench/results/wgsl-<date>.json)
 *
 * Each matmul is checked on 64 sampled elements against a float64 dot product before timing;
 * each timed call is waited for on the device (no readback in the timing).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ng from '../../src/index.js';
import type { ConvNeXtV2Params } from '../../src/convnextv2/model.js';
import type { WgslDevice } from '../../src/codegen/wgsl/device.js';
import type { WgslExecutable } from '../../src/codegen/wgsl/executable.js';
import { getDevice } from '../../src/passes/backends.js';
import { envInt, envList, formatTable, localDate, machineInfo, median, repoRoot } from '../harness.js';

const WORKLOADS = {
  'infer-b1': { kind: 'infer', batch: 1, size: 224 },
  'infer-b8': { kind: 'infer', batch: 8, size: 224 },
  'train-b8': { kind: 'train', batch: 8, size: 224 },
  'train-b32-64': { kind: 'train', batch: 32, size: 64 },
} as const;
type WorkloadId = keyof typeof WORKLOADS;

function seeded(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return new Float32Array(n).map(() => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** Milliseconds of `run` (submitting work) until the device has finished it. */
async function timed(device: WgslDevice, run: () => void): Promise<number> {
  await device.sync();
  const t0 = performance.now();
  run();
  await device.sync();
  return performance.now() - t0;
}

async function benchMatmul(device: WgslDevice, n: number, repeats: number): Promise<Record<string, number>> {
  const a = seeded(n * n, n);
  const b = seeded(n * n, n + 1);
  const A = ng.tensor(a, { shape: [n, n] }).to('wgsl');
  const B = ng.tensor(b, { shape: [n, n] }).to('wgsl');
  const mm = ng.jit((x: ng.Tensor, y: ng.Tensor) => x.matmul(y), { backend: 'wgsl', cacheDir: false });
  let C: ng.Tensor | undefined;
  const firstMs = await timed(device, () => (C = mm(A, B)));
  const c = await C!.data();
  let worst = 0;
  for (let s = 0; s < 64; s++) {
    const i = (s * 7919) % n;
    const j = (s * 104729) % n;
    let want = 0;
    let mag = 0;
    for (let k = 0; k < n; k++) {
      want += a[i * n + k]! * b[k * n + j]!;
      mag += Math.abs(a[i * n + k]! * b[k * n + j]!);
    }
    worst = Math.max(worst, Math.abs(c[i * n + j]! - want) / mag);
  }
  if (!(worst < 1e-5)) throw new Error(`matmul ${n}: sampled relative error ${worst}`);
  C!.dispose();
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    times.push(await timed(device, () => (C = mm(A, B))));
    C!.dispose();
  }
  const ms = median(times);
  return { n, firstMs, ms, gflops: (2 * n ** 3) / (ms * 1e6), sampledRelErr: worst };
}

interface AttoResult {
  workload: WorkloadId;
  batch: number;
  size: number;
  firstMs: number;
  ms: number;
  imgPerSec: number;
  kernels: number;
  slowest?: string[];
}

async function benchAtto(device: WgslDevice, id: WorkloadId, repeats: number, profile: boolean): Promise<AttoResult> {
  const w = WORKLOADS[id];
  const cfg = ng.convnextv2.config('atto');
  const host = ng.convnextv2.init(ng.random.key(0), cfg) as ConvNeXtV2Params;
  const x = ng.tensor(seeded(w.batch * 3 * w.size * w.size, 7), { shape: [w.batch, 3, w.size, w.size] }).to('wgsl');
  const y = ng.tensor(Array.from({ length: w.batch }, (_, i) => i % 1000), { dtype: 'i32' }).to('wgsl');
  let call: () => void;
  let exec: () => WgslExecutable;
  let args: () => ng.Tensor[];
  if (w.kind === 'infer') {
    const params = ng.devicePut(host, 'wgsl');
    const f = ng.jit((p: ConvNeXtV2Params, xs: ng.Tensor) => ng.convnextv2.apply(p, xs, { cfg }), { backend: 'wgsl', cacheDir: false });
    call = () => f(params, x).dispose();
    exec = () => f.lower(params, x).exec as WgslExecutable;
    args = () => [...ng.treeLeaves(params), x];
  } else {
    const opt = ng.nn.adamw({ lr: 1e-3, weightDecay: 0.05 });
    let params = ng.devicePut(host, 'wgsl');
    let state = ng.devicePut(opt.init(host), 'wgsl');
    const step = ng.jit(
      (p: ConvNeXtV2Params, s: ReturnType<typeof opt.init>, xs: ng.Tensor, ys: ng.Tensor) => {
        const [loss, g] = ng.valueAndGrad((pp: ConvNeXtV2Params) => ng.nn.crossEntropy(ng.convnextv2.apply(pp, xs, { cfg }), ys))(p);
        const u = opt.update(g, s, p);
        return { loss, params: u.params, state: u.state };
      },
      { backend: 'wgsl', donate: [0, 1], cacheDir: false },
    );
    call = () => {
      const r = step(params, state, x, y);
      params = r.params as ConvNeXtV2Params;
      state = r.state;
      r.loss.dispose();
    };
    exec = () => step.lower(params, state, x, y).exec as WgslExecutable;
    args = () => [...ng.treeLeaves(params), ...ng.treeLeaves(state), x, y];
  }
  const firstMs = await timed(device, call);
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) times.push(await timed(device, call));
  const ms = median(times);
  const out: AttoResult = { workload: id, batch: w.batch, size: w.size, firstMs, ms, imgPerSec: (w.batch * 1000) / ms, kernels: exec().kernelCount };
  // profiling runs the graph once more: for a training step that is one more (donating) step
  if (profile) {
    const times2 = await exec().profile(args().map((t) => t._array!));
    out.slowest = times2.sort((p, q) => q.ms - p.ms).slice(0, 10).map((t) => `${t.ms.toFixed(1)} ms ${t.name}`);
  }
  return out;
}

async function main(): Promise<void> {
  const available = await ng.init('wgsl');
  if (!available.includes('wgsl')) throw new Error(`the wgsl backend is not available: ${ng.unavailableReasons().wgsl}`);
  const device = getDevice('wgsl') as WgslDevice;
  const repeats = envInt('BENCH_REPEATS', 3);
  const profile = process.env.BENCH_PROFILE === '1';
  console.log(`adapter: ${device.runtime.adapterInfo}`);
  console.log(`machine: ${JSON.stringify(machineInfo())}`);
  const sizes = (envList('BENCH_SIZES') ?? ['1024', '2048', '4096']).map(Number);
  const matmul: Record<string, number>[] = [];
  for (const n of sizes) {
    const r = await benchMatmul(device, n, repeats);
    matmul.push(r);
    console.log(`matmul ${n}: ${r.gflops!.toFixed(1)} GFLOP/s (${r.ms!.toFixed(0)} ms; first call ${r.firstMs!.toFixed(0)} ms)`);
  }
  const ids = (envList('BENCH_WORKLOADS') ?? ['infer-b1', 'train-b32-64']) as WorkloadId[];
  const atto: AttoResult[] = [];
  for (const id of ids) {
    if (!(id in WORKLOADS)) throw new Error(`BENCH_WORKLOADS: unknown workload ${id}; expected ${Object.keys(WORKLOADS).join(', ')}`);
    const r = await benchAtto(device, id, repeats, profile);
    atto.push(r);
    console.log(`atto ${id}: ${r.imgPerSec.toFixed(2)} images/s (${r.ms.toFixed(0)} ms per call; first call ${(r.firstMs / 1000).toFixed(1)} s, ${r.kernels} kernels)`);
    for (const line of r.slowest ?? []) console.log(`  ${line}`);
  }
  console.log('');
  console.log(formatTable(['matmul n', 'GFLOP/s', 'ms'], matmul.map((r) => [String(r.n), r.gflops!.toFixed(1), r.ms!.toFixed(0)])));
  console.log('');
  console.log(formatTable(['atto workload', 'images/s', 'ms/call', 'first call s'], atto.map((r) => [r.workload, r.imgPerSec.toFixed(2), r.ms.toFixed(0), (r.firstMs / 1000).toFixed(1)])));
  const outPath = process.env.BENCH_OUT ?? path.join(repoRoot(), 'bench/results', `wgsl-${localDate()}.json`);
  if (outPath !== 'none') {
    fs.mkdirSync(path.dirname(outPath), { recursive: true });
    const tmp = `${outPath}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, `${JSON.stringify({ adapter: device.runtime.adapterInfo, machine: machineInfo(), matmul, atto }, null, 2)}\n`);
    fs.renameSync(tmp, outPath);
    console.log(`\nwrote ${outPath}`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);
