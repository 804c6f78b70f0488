/**
 * Masked sparse execution of the FCMAE encoder: step time (forward + backward, jitted, CPU)
 * sparse vs dense-masked at mask ratio 0.6, side by side in one process, same weights, images
 * and mask. The sparse step draws its mask inside from the key (fcmae.patch_mask: the compiler
 * knows the visible count and rewrites); the dense-masked step gets the same mask as a tensor
 * (no static count: it runs dense). Repeats alternate between the two so load changes hit both.
 *
 *   npm run bench:sparse
 *
 * Workloads:
 *   atto-224-b8-encoder   ConvNeXt V2 atto encoder, 224x224, batch 8: gradient of a weighted sum
 *                         of its output at visible patches (what the decoder reads)
 *   atto-224-b8-fcmae     the whole FCMAE loss (decoder 512x1, norm-pix) and its gradient
 *   mini-32-b128-encoder  the main job's encoder (stem 4, depths 2,2, dims 48,96), 32x32, batch 128
 *   mini-32-b128-fcmae    the main job's FCMAE loss (decoder 128x1) and its gradient
 *
 * Environment: BENCH_REPEATS (default 5), BENCH_WARMUP (default 2, the first call included),
 * BENCH_WORKLOADS=id,id (a subset), BENCH_OUT=path.json | none (default
 * bench/results/sparse-<date>.json). Not part of the test suite.
 */
import * as path from 'node:path';
import * as ng from '../../src/index.js';
import type { FcmaeConfig, FcmaeParams } from '../../src/convnextv2/fcmae.js';
import { writeFileAtomic } from '../../src/convnextv2/report/png.js';
import { countFlops, sparsifyMasked } from '../../src/passes/sparse/index.js';
import { flopsOf } from '../../src/passes/sparse/flops.js';
import { envInt, envList, formatTable, localDate, machineInfo, median, repoRoot } from '../harness.js';

const { fcmae } = ng.convnextv2;

interface Workload {
  readonly id: string;
  readonly encoder: Parameters<typeof fcmae.config>[0];
  readonly decoderDim: number;
  readonly imgSize: number;
  /** The encoder's total stride. */
  readonly patch: number;
  readonly batch: number;
  readonly what: 'encoder' | 'fcmae';
}

const WORKLOADS: readonly Workload[] = [
  { id: 'atto-224-b8-encoder', encoder: 'atto', decoderDim: 512, imgSize: 224, patch: 32, batch: 8, what: 'encoder' },
  { id: 'atto-224-b8-fcmae', encoder: 'atto', decoderDim: 512, imgSize: 224, patch: 32, batch: 8, what: 'fcmae' },
  { id: 'mini-32-b128-encoder', encoder: { depths: [2, 2], dims: [48, 96], stemStride: 4 }, decoderDim: 128, imgSize: 32, patch: 8, batch: 128, what: 'encoder' },
  { id: 'mini-32-b128-fcmae', encoder: { depths: [2, 2], dims: [48, 96], stemStride: 4 }, decoderDim: 128, imgSize: 32, patch: 8, batch: 128, what: 'fcmae' },
];

const RATIO = 0.6;

function objective(w: Workload, cfg: FcmaeConfig, p: FcmaeParams, imgs: ng.Tensor, mask: ng.Tensor): ng.Tensor {
  if (w.what === 'fcmae') return fcmae.forward(p, imgs, mask, { cfg }).loss;
  const y = fcmae.encode(p.encoder, imgs, mask, { cfg });
  const [n, h, ww, c] = y.shape as [number, number, number, number];
  const keep = ng.sub(1, ng.reshape(mask, [n, h, ww, 1]));
  return ng.mean(ng.mul(ng.mul(y, keep), ng.reshape(ng.arange(0, c, 1, 'f32'), [c])));
}

interface Side {
  readonly times: number[];
  firstMs: number;
  flops: number;
}

async function run(w: Workload, warmup: number, repeats: number, log: (s: string) => void) {
  const cfg = fcmae.config(w.encoder, { decoderDim: w.decoderDim, patchSize: w.patch, imgSize: w.imgSize, maskRatio: RATIO });
  const patch = w.patch;
  const params = fcmae.init(ng.random.key(0), cfg);
  const imgs = ng.random.normal(ng.random.key(1), [w.batch, 3, w.imgSize, w.imgSize]);
  const key = ng.random.key(2);
  const mask = fcmae.randomMask(key, w.batch, w.imgSize, patch, RATIO);
  const sparseFn = (p: FcmaeParams, x: ng.Tensor, k: ng.Tensor) => objective(w, cfg, p, x, fcmae.randomMask(k, w.batch, w.imgSize, patch, RATIO));
  const denseFn = (p: FcmaeParams, x: ng.Tensor, m: ng.Tensor) => objective(w, cfg, p, x, m);
  const sparse = ng.jit((p: FcmaeParams, x: ng.Tensor, k: ng.Tensor) => ng.valueAndGrad(sparseFn)(p, x, k), { backend: 'cpu' });
  const dense = ng.jit((p: FcmaeParams, x: ng.Tensor, m: ng.Tensor) => ng.valueAndGrad(denseFn)(p, x, m), { backend: 'cpu' });
  // flops of the forward programs (views free; the rewrite applied to the sparse one)
  const fwd = ng.trace(sparseFn, params, imgs, key);
  const flops = { sparse: flopsOf(countFlops(sparsifyMasked(fwd))), dense: flopsOf(countFlops(ng.trace(denseFn, params, imgs, mask))) };
  const sides: Record<'sparse' | 'dense', Side> = { sparse: { times: [], firstMs: 0, flops: flops.sparse }, dense: { times: [], firstMs: 0, flops: flops.dense } };
  const call = { sparse: () => sparse(params, imgs, key), dense: () => dense(params, imgs, mask) };
  let t0 = performance.now();
  const [ls, gs] = call.sparse();
  await ls.data();
  sides.sparse.firstMs = performance.now() - t0;
  t0 = performance.now();
  const [ld, gd] = call.dense();
  await ld.data();
  sides.dense.firstMs = performance.now() - t0;
  // the two steps agree before anything is timed
  const a = ng.treeLeaves(gs).map((t) => t.dataSync());
  const b = ng.treeLeaves(gd).map((t) => t.dataSync());
  let worst = 0;
  a.forEach((x, i) => {
    let num = 0;
    let den = 0;
    for (let j = 0; j < x.length; j++) {
      num = Math.max(num, Math.abs(x[j]! - b[i]![j]!));
      den = Math.max(den, Math.abs(b[i]![j]!));
    }
    worst = Math.max(worst, den === 0 ? num : num / den);
  });
  const lossDiff = Math.abs(ls.item() - ld.item()) / Math.max(Math.abs(ld.item()), 1e-30);
  log(`${w.id}: loss ${ld.item().toPrecision(6)} (rel diff ${lossDiff.toExponential(1)}), worst gradient rel diff ${worst.toExponential(2)}; first calls sparse ${(sides.sparse.firstMs / 1000).toFixed(1)} s, dense ${(sides.dense.firstMs / 1000).toFixed(1)} s`);
  if (!(worst < 1e-3 && lossDiff < 1e-4)) throw new Error(`${w.id}: sparse and dense-masked steps disagree (gradient ${worst}, loss ${lossDiff})`);
  for (let i = 1; i < warmup; i++) for (const s of ['sparse', 'dense'] as const) await call[s]()[0].data();
  for (let i = 0; i < repeats; i++) {
    for (const s of (i % 2 ? ['dense', 'sparse'] : ['sparse', 'dense']) as ('sparse' | 'dense')[]) {
      const t = performance.now();
      await call[s]()[0].data();
      sides[s].times.push(performance.now() - t);
    }
  }
  return { workload: w, sides, check: { lossRelDiff: lossDiff, worstGradRelDiff: worst } };
}

async function main(): Promise<void> {
  const log = (s: string) => console.log(s);
  const repeats = envInt('BENCH_REPEATS', 5);
  const warmup = Math.max(1, envInt('BENCH_WARMUP', 2));
  const only = envList('BENCH_WORKLOADS');
  const chosen = WORKLOADS.filter((w) => !only || only.includes(w.id));
  const started = performance.now();
  const results = [];
  for (const w of chosen) results.push(await run(w, warmup, repeats, log));
  const rows = results.map((r) => {
    const ms = { sparse: median(r.sides.sparse.times), dense: median(r.sides.dense.times) };
    return [
      r.workload.id,
      (ms.dense / 1000).toFixed(3),
      (ms.sparse / 1000).toFixed(3),
      `${(ms.dense / ms.sparse).toFixed(2)}x`,
      (r.sides.sparse.flops / r.sides.dense.flops).toFixed(3),
    ];
  });
  log(formatTable(['workload (fwd+bwd, ratio 0.6)', 'dense-masked s', 'sparse s', 'speed-up', 'flops sparse/dense (fwd)'], rows));
  const out = process.env.BENCH_OUT ?? path.join(repoRoot(), 'bench', 'results', `sparse-${localDate()}.json`);
  if (out !== 'none') {
    const json = {
      bench: 'fusion/sparse',
      date: new Date().toISOString(),
      command: 'npm run bench:sparse',
      maskRatio: RATIO,
      machine: { ...machineInfo(), loadAverageStart: (await import('node:os')).loadavg() },
      repeats,
      warmup,
      results: results.map((r) => ({
        workload: r.workload.id,
        batch: r.workload.batch,
        imgSize: r.workload.imgSize,
        what: r.workload.what,
        check: r.check,
        dense: { medianMs: median(r.sides.dense.times), firstMs: r.sides.dense.firstMs, timesMs: r.sides.dense.times, forwardFlops: r.sides.dense.flops },
        sparse: { medianMs: median(r.sides.sparse.times), firstMs: r.sides.sparse.firstMs, timesMs: r.sides.sparse.times, forwardFlops: r.sides.sparse.flops },
        speedup: median(r.sides.dense.times) / median(r.sides.sparse.times),
      })),
      totalSeconds: Math.round((performance.now() - started) / 100) / 10,
    };
    writeFileAtomic(out, new TextEncoder().encode(`${JSON.stringify(json, null, 2)}\n`));
    log(`wrote ${path.relative(process.cwd(), out)}`);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
