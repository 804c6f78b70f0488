/**
 * CPU benchmark: ConvNeXt V2 atto, nexgrad (jit, CPU backend) side by side with TensorFlow.js
 * 4.22 on its wasm backend, same weights, same inputs, in one process.
 *
 *   npm run bench:cpu                 full run (a few minutes)
 *   npm run bench:cpu -- --quick      smoke run (about a minute): 1-2 repeats, no train-b8
 *                                     unless BENCH_WORKLOADS names it
 *
 * Workloads (images/s = batch / median step time over the timed repeats, after warm-up):
 *   infer-b1       inference, batch 1, 224x224
 *   infer-b8       inference, batch 8, 224x224
 *   train-b8       training step (forward + cross-entropy + backward + AdamW), batch 8, 224x224
 *   train-b32-64   training step, batch 32, 64x64
 *
 * Environment:
 *   BENCH_REPEATS, BENCH_WARMUP              repeats / warm-up calls of every workload
 *   BENCH_REPEATS_<ID>, BENCH_WARMUP_<ID>    per workload, ID = INFER_B1, INFER_B8, TRAIN_B8, TRAIN_B32_64
 *   BENCH_WORKLOADS=infer-b1,train-b8        run only these
 *   BENCH_FRAMEWORKS=tfjs,nexgrad            run only these
 *   BENCH_OUT=path.json | none               where the JSON goes (default bench/results/cpu-<date>.json)
 *   BENCH_VERBOSE=1                          print every timed call
 *   BENCH_NEXGRAD_THREADS=N | auto           nexgrad CPU device threads (default: nexgrad's default device)
 *   BENCH_TFJS_TRAIN=train-slices,train-dwkernel  the tfjs training formulations to time (default
 *                                            both; see bench/tfjs_convnext.ts). The ratio column
 *                                            compares nexgrad with the fastest tfjs row.
 *
 * The warm-up count includes the first call (nexgrad's jit compile, tfjs's kernel set-up), whose
 * time is reported separately. tfjs-wasm runs single-threaded in Node; nexgrad uses its own
 * CPU backend's parallelism. Benchmarks are not part of the test suite.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { envInt, envList, formatTable, localDate, machineInfo, maxAbs, maxAbsDiff, median, repoRoot, timeCalls, type Timing } from './harness.js';
import { type AdamWConfig, disposeParams, forward, initTfjsWasm, loadParams, TfTrainer, TRAIN_MODES, type TrainMode } from './tfjs_convnext.js';
import { ATTO, makeImages, makeLabels, makeWeights, type NamedArray, paramTotal } from './weights.js';

type Framework = 'tfjs' | 'nexgrad';

interface Workload {
  id: string;
  kind: 'infer' | 'train';
  batch: number;
  size: number;
  warmup: number;
  repeats: number;
}

interface Result {
  framework: Framework;
  /** tfjs training formulation (see bench/tfjs_convnext.ts). */
  variant?: TrainMode;
  workload: string;
  kind: 'infer' | 'train';
  batch: number;
  size: number;
  status: 'ok' | 'unavailable' | 'failed';
  error?: string;
  imgPerSec?: number;
  medianMs?: number;
  minMs?: number;
  maxMs?: number;
  firstCallMs?: number;
  timesMs?: number[];
  /** Training: the loss of every step, in order (warm-up included). */
  losses?: number[];
}

const quick = process.argv.includes('--quick');
const OPT: AdamWConfig = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.05 };
const LOGIT_TOL = 1e-3;

function workloads(): Workload[] {
  // [warmup, repeats] (full, --quick). The full defaults take about 4 minutes on the 2-core machine
  // (tfjs-wasm per call: ~0.12 s infer-b1, ~0.8 s infer-b8, ~5-6 s train-b8, ~2-3 s train-b32-64,
  // two tfjs training formulations each; nexgrad's first calls compile, a few seconds each).
  const defs: [string, 'infer' | 'train', number, number, [number, number], [number, number]][] = [
    ['infer-b1', 'infer', 1, 224, [3, 30], [2, 5]],
    ['infer-b8', 'infer', 8, 224, [2, 10], [1, 2]],
    ['train-b8', 'train', 8, 224, [2, 4], [1, 1]],
    ['train-b32-64', 'train', 32, 64, [2, 8], [1, 2]],
  ];
  const only = envList('BENCH_WORKLOADS');
  if (only) {
    const bad = only.filter((o) => !defs.some((d) => d[0] === o));
    if (bad.length) throw new Error(`BENCH_WORKLOADS: unknown workload(s) ${bad.join(', ')}; expected ${defs.map((d) => d[0]).join(', ')}`);
  }
  return defs
    .filter(([id]) => (only ? only.includes(id) : !(quick && id === 'train-b8')))
    .map(([id, kind, batch, size, full, q]) => {
      const key = id.toUpperCase().replace(/-/g, '_');
      const [w0, r0] = quick ? q : full;
      const warmup = Math.max(1, envInt(`BENCH_WARMUP_${key}`, envInt('BENCH_WARMUP', w0)));
      const repeats = Math.max(1, envInt(`BENCH_REPEATS_${key}`, envInt('BENCH_REPEATS', r0)));
      return { id, kind, batch, size, warmup, repeats };
    });
}

const errText = (e: unknown): string => {
  const s = e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e);
  const line = s.split('\n')[0]!;
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
};

function summarise(r: Result, t: Timing): Result {
  const med = median(t.times);
  return {
    ...r,
    status: 'ok',
    imgPerSec: (r.batch * 1000) / med,
    medianMs: med,
    minMs: Math.min(...t.times),
    maxMs: Math.max(...t.times),
    firstCallMs: t.firstMs,
    timesMs: t.times.map((x) => Math.round(x * 100) / 100),
  };
}

const log = (s: string) => process.stdout.write(`${s}\n`);
const verbose = process.env.BENCH_VERBOSE === '1';
const each = (tag: string) => (i: number, ms: number) => {
  if (verbose || i < 0) log(`    ${tag} ${i < 0 ? 'first call' : `repeat ${i + 1}`}: ${(ms / 1000).toFixed(3)} s`);
};

async function main(): Promise<void> {
  const tStart = performance.now();
  const wls = workloads();
  const frameworks = (envList('BENCH_FRAMEWORKS') ?? ['tfjs', 'nexgrad']) as Framework[];
  for (const f of frameworks) if (f !== 'tfjs' && f !== 'nexgrad') throw new Error(`BENCH_FRAMEWORKS: unknown framework ${f}; expected tfjs, nexgrad`);
  const tfTrainModes = (envList('BENCH_TFJS_TRAIN') ?? [...TRAIN_MODES]) as TrainMode[];
  for (const t of tfTrainModes) if (!TRAIN_MODES.includes(t)) throw new Error(`BENCH_TFJS_TRAIN: unknown formulation ${t}; expected ${TRAIN_MODES.join(', ')}`);
  const m = ATTO;
  const ws: NamedArray[] = makeWeights(m, 1234);
  log(`ConvNeXt V2 atto: ${(paramTotal(ws) / 1e6).toFixed(3)}M parameters${quick ? '  [--quick]' : ''}`);
  const mi = machineInfo();
  const load0 = os.loadavg();
  log(`machine: ${mi.cpu}, ${mi.cores} cores, ${mi.memGiB} GiB, node ${mi.node}; load average ${load0.map((l) => l.toFixed(2)).join(' ')}`);
  if (load0[0]! > 0.5 * (mi.cores as number)) log(`  (the machine is busy: load ${load0[0]!.toFixed(2)} on ${mi.cores} cores; timings will be noisy)`);

  // --- frameworks
  let tfInfo: Awaited<ReturnType<typeof initTfjsWasm>> | undefined;
  let tfError: string | undefined;
  if (frameworks.includes('tfjs')) {
    try {
      tfInfo = await initTfjsWasm();
      log(`tfjs ${tfInfo.version}: backend ${tfInfo.backend}, simd ${tfInfo.simd}, threads ${tfInfo.threads}; training formulations: ${tfTrainModes.join(', ')}`);
    } catch (e) {
      tfError = errText(e);
      log(`tfjs: unavailable: ${tfError}`);
    }
  }
  let ngError: string | undefined;
  let ngDevice: string | undefined;
  const jitStats: Record<string, unknown> = {};
  let nx: typeof import('./nexgrad_convnext.js') | undefined;
  let ng: Awaited<ReturnType<typeof import('./nexgrad_convnext.js').loadNexgrad>> | undefined;
  if (frameworks.includes('nexgrad')) {
    try {
      nx = await import('./nexgrad_convnext.js');
      ng = await nx.loadNexgrad();
      ngDevice = await nx.configureDevice();
      log(`nexgrad: cpu backend loaded, device ${ngDevice}`);
    } catch (e) {
      ngError = errText(e);
      log(`nexgrad: unavailable: ${ngError}`);
    }
  }

  const results: Result[] = [];
  const checks: Record<string, unknown> = {};
  const base = (f: Framework, w: Workload): Result => ({ framework: f, workload: w.id, kind: w.kind, batch: w.batch, size: w.size, status: 'ok' });
  const unavailable = (f: Framework, w: Workload, error: string): Result => ({ ...base(f, w), status: 'unavailable', error });

  for (const w of wls) {
    log(`\n== ${w.id}: ${w.kind === 'infer' ? 'inference' : 'training step'}, batch ${w.batch}, ${w.size}x${w.size} (warm-up ${w.warmup}, repeats ${w.repeats})`);
    const imgShape = [w.batch, m.inChans, w.size, w.size];
    const images = makeImages(w.batch, m.inChans, w.size, w.size, 100 + w.batch * 7 + w.size);
    const labels = makeLabels(w.batch, m.numClasses, 200 + w.batch);

    // ---------------------------------------------------------------- inference
    if (w.kind === 'infer') {
      let tfLogits: Float32Array | undefined;
      if (frameworks.includes('tfjs')) {
        if (!tfInfo) results.push(unavailable('tfjs', w, tfError!));
        else {
          const P = loadParams(ws);
          const x = tf.tensor4d(images, imgShape as [number, number, number, number]);
          try {
            const run = () => tf.tidy(() => forward('native', P, m, x).dataSync() as Float32Array);
            tfLogits = run();
            // The formulations used by the training steps compute the same function.
            for (const mode of tfTrainModes) {
              const d = maxAbsDiff(tfLogits, tf.tidy(() => forward(mode, P, m, x).dataSync() as Float32Array));
              checks[`${w.id}: tfjs native vs tfjs ${mode}, max |dlogits|`] = d;
              log(`  check: tfjs native vs tfjs ${mode} forward: max |dlogits| = ${d.toExponential(2)} (|logits| <= ${maxAbs(tfLogits).toFixed(3)})`);
            }
            const t = timeCalls(() => void run(), w.warmup, w.repeats, each('tfjs'));
            results.push(summarise(base('tfjs', w), t));
          } catch (e) {
            results.push({ ...base('tfjs', w), status: 'failed', error: errText(e) });
          } finally {
            x.dispose();
            disposeParams(P);
          }
        }
      }
      if (frameworks.includes('nexgrad')) {
        if (!ng || !nx) results.push(unavailable('nexgrad', w, ngError!));
        else {
          try {
            const fwd = nx.makeForward(ng);
            const p = nx.buildParams(ng, ws);
            const x = nx.imagesTensor(ng, images, imgShape);
            let out: Float32Array | undefined;
            const t = timeCalls(() => void (out = fwd(p, x).dataSync() as Float32Array), w.warmup, w.repeats, each('nexgrad'));
            if (tfLogits && out) {
              const d = maxAbsDiff(out, tfLogits);
              checks[`${w.id}: nexgrad vs tfjs, max |dlogits|`] = d;
              log(`  check: nexgrad vs tfjs logits: max |d| = ${d.toExponential(2)}${d > LOGIT_TOL || Number.isNaN(d) ? '  <-- MISMATCH' : ''}`);
            }
            results.push(summarise(base('nexgrad', w), t));
            jitStats[w.id] = { ...fwd.stats };
          } catch (e) {
            results.push({ ...base('nexgrad', w), status: 'failed', error: errText(e) });
            log(`  nexgrad failed: ${errText(e)}`);
          }
        }
      }
    }

    // ---------------------------------------------------------------- training
    if (w.kind === 'train') {
      let tfLosses: number[] | undefined;
      if (frameworks.includes('tfjs')) {
        for (const mode of tfTrainModes) {
          if (!tfInfo) {
            results.push({ ...unavailable('tfjs', w, tfError!), variant: mode });
            continue;
          }
          const P = loadParams(ws, true);
          const trainer = new TfTrainer(P, m, OPT, mode);
          const x = tf.tensor4d(images, imgShape as [number, number, number, number]);
          const y = tf.tensor1d(labels, 'int32');
          const losses: number[] = [];
          try {
            const t = timeCalls(() => void losses.push(trainer.step(x, y)), w.warmup, w.repeats, each(`tfjs ${mode}`));
            results.push({ ...summarise(base('tfjs', w), t), variant: mode, losses });
            if (tfLosses) {
              const d = maxAbsDiff(losses, tfLosses);
              checks[`${w.id}: tfjs ${mode} vs tfjs ${tfTrainModes[0]}, max |dloss|`] = d;
            }
            tfLosses ??= losses;
            log(`  tfjs ${mode} losses: ${losses.map((l) => l.toFixed(5)).join(' ')}  (tfjs tensors live after the steps: ${(tf.memory().numBytes / 2 ** 20).toFixed(0)} MiB)`);
          } catch (e) {
            results.push({ ...base('tfjs', w), variant: mode, status: 'failed', error: errText(e) });
            log(`  tfjs ${mode} failed: ${errText(e)}`);
          } finally {
            x.dispose();
            y.dispose();
            trainer.dispose();
          }
        }
      }
      if (frameworks.includes('nexgrad')) {
        if (!ng || !nx) results.push(unavailable('nexgrad', w, ngError!));
        else {
          try {
            const tr = nx.makeTrainer(ng, OPT);
            let p = nx.buildParams(ng, ws);
            let s = tr.initState(p);
            const x = nx.imagesTensor(ng, images, imgShape);
            const y = nx.labelsTensor(ng, labels);
            const losses: number[] = [];
            const t = timeCalls(
              () => {
                const r = tr.step(p, s, x, y);
                p = r.params;
                s = r.state;
                losses.push(r.loss.item() as number);
              },
              w.warmup,
              w.repeats,
              each('nexgrad'),
            );
            results.push({ ...summarise(base('nexgrad', w), t), losses });
            jitStats[w.id] = { ...tr.step.stats };
            log(`  nexgrad losses: ${losses.map((l) => l.toFixed(5)).join(' ')}`);
            if (tfLosses) {
              const n = Math.min(tfLosses.length, losses.length);
              const d = maxAbsDiff(losses.slice(0, n), tfLosses.slice(0, n));
              checks[`${w.id}: nexgrad vs tfjs, max |dloss| over ${n} steps from the same weights`] = d;
              log(`  check: nexgrad vs tfjs loss over ${n} steps: max |d| = ${d.toExponential(2)}${d > LOGIT_TOL || Number.isNaN(d) ? '  <-- MISMATCH' : ''}`);
            }
          } catch (e) {
            results.push({ ...base('nexgrad', w), status: 'failed', error: errText(e) });
            log(`  nexgrad failed: ${errText(e)}`);
          }
        }
      }
    }
    for (const r of results.filter((r) => r.workload === w.id)) {
      log(
        r.status === 'ok'
          ? `  ${r.framework}${r.variant ? ` ${r.variant}` : ''}: ${r.imgPerSec!.toFixed(2)} img/s (median ${(r.medianMs! / 1000).toFixed(3)} s, min ${(r.minMs! / 1000).toFixed(3)}, max ${(r.maxMs! / 1000).toFixed(3)}, first call ${(r.firstCallMs! / 1000).toFixed(2)} s)`
          : `  ${r.framework}: ${r.status}: ${r.error}`,
      );
    }
  }

  // ---------------------------------------------------------------- report
  const rows: string[][] = [];
  for (const w of wls) {
    const tfOk = results.filter((r) => r.workload === w.id && r.framework === 'tfjs' && r.status === 'ok');
    const best = tfOk.length ? Math.max(...tfOk.map((r) => r.imgPerSec!)) : undefined;
    for (const r of results.filter((r) => r.workload === w.id)) {
      const ratio = r.framework === 'nexgrad' && r.status === 'ok' && best ? `${(r.imgPerSec! / best).toFixed(2)}x` : '';
      rows.push([
        r.framework === 'tfjs'
          ? `tfjs-wasm 4.22 (1 thread)${r.variant ? `, ${r.variant}` : ''}`
          : `nexgrad (jit cpu${ngDevice ? `, ${ngDevice.replace(/^cpu:/, '')}` : ''})`,
        `${w.id} (${w.kind} bs${w.batch} @${w.size})`,
        r.status === 'ok' ? r.imgPerSec!.toFixed(2) : `${r.status}: ${r.error}`,
        r.status === 'ok' ? (r.medianMs! / 1000).toFixed(3) : '',
        r.status === 'ok' ? (r.firstCallMs! / 1000).toFixed(2) : '',
        ratio,
      ]);
    }
  }
  const table = formatTable(['framework', 'workload', 'img/s', 'median s', 'first call s', 'nexgrad / best tfjs'], rows);
  const totalS = (performance.now() - tStart) / 1000;
  const load1 = os.loadavg();
  log(`\n${table}\n\ntotal bench time ${totalS.toFixed(1)} s${quick ? ' (--quick)' : ''}; load average at the end ${load1.map((l) => l.toFixed(2)).join(' ')}`);

  const outEnv = process.env.BENCH_OUT;
  if (outEnv !== 'none') {
    const file = outEnv ? path.resolve(outEnv) : path.join(repoRoot(), 'bench', 'results', `cpu-${localDate()}${quick ? '-quick' : ''}.json`);
    const json = {
      bench: 'cpu',
      date: new Date().toISOString(),
      quick,
      model: { name: 'convnextv2_atto', params: paramTotal(ws), numClasses: m.numClasses, dtype: 'f32' },
      optimizer: { name: 'adamw', ...OPT, weightDecayOn: 'all parameters' },
      machine: { ...mi, loadAverageStart: load0, loadAverageEnd: load1 },
      frameworks: {
        tfjs: tfInfo
          ? {
              ...tfInfo,
              trainingFormulations: tfTrainModes,
              note: 'inference: fused conv2d/depthwiseConv2d/matMul kernels; training: patch matMuls for the strided convs, explicit-transpose matMul gradients, depthwise 7x7 as 49 shifted slices with a hand-written gradient (train-slices) or forward kernel + shifted-slice dw (train-dwkernel)',
            }
          : { unavailable: tfError ?? 'not run' },
        nexgrad: ng ? { backend: 'cpu', device: ngDevice, jit: true, donate: 'params and optimizer state in the training step', jitStats } : { unavailable: ngError ?? 'not run' },
      },
      workloads: wls,
      checks,
      results,
      table: rows.map(([framework, workload, imgPerSec, medianS, firstCallS, ratio]) => ({ framework, workload, imgPerSec, medianS, firstCallS, ratioToBestTfjs: ratio })),
      totalSeconds: Math.round(totalS * 10) / 10,
    };
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
    log(`wrote ${path.relative(process.cwd(), file)}`);
  }
}

main().then(
  () => process.exit(0), // worker threads of a CPU backend must not keep the process alive
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
