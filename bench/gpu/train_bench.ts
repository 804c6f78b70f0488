/**
 * ConvNeXt V2 on the CUDA backend, for a GPU host (bench/gpu/check.sh bench runs it there):
 *   node dist/bench/gpu/train_bench.js [--out DIR] [--models atto,tiny] [--precisions f32,tf32,bf16]
 *        [--steps 10] [--image 224] [--batch-atto 256] [--batch-tiny 128] [--no-warm]
 * For each model and precision: the training step (forward, cross-entropy, backward, AdamW,
 * params and optimizer state donated) and inference in images/s, the training step's cold
 * compile time (empty caches: trace, passes, code generation, NVRTC) and warm compile time
 * (a second process reading the jit and cubin disk caches), and peak device memory, beside the
 * PyTorch numbers of ../shared/ANCHORS.md (H100). Writes DIR/cuda-bench.json. Exit status 2
 * with the reason when CUDA is unavailable.
 *
 * Precisions: f32 (exact f32 GEMMs), tf32 (f32 GEMMs on tensor cores as tf32, PyTorch's "TF32
 * allowed"), bf16 (jit precision 'bf16', like torch.autocast).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CudaDeviceOptions, createCudaDevice } from '../../src/codegen/cuda/device.js';
import type { CudaRuntime } from '../../src/codegen/cuda/runtime.js';
import { config } from '../../src/convnextv2/config.js';
import { type ConvNeXtV2Params, paramSpec } from '../../src/convnextv2/model.js';
import * as ng from '../../src/index.js';
import { specEntries, unflattenParams } from '../../src/nn/init.js';
import { getDevice } from '../../src/passes/backends.js';
import { flag, option, outDir, writeJson } from './report.js';

type Model = 'atto' | 'tiny';
type Precision = 'f32' | 'tf32' | 'bf16';

/** PyTorch 2.11 on an H100 (ANCHORS.md): training img/s eager / torch.compile, first-step seconds. */
const ANCHORS: Readonly<Record<string, Record<string, number>>> = {
  'atto/bf16': { eagerImgPerS: 3401, compiledImgPerS: 9915, eagerFirstStepS: 21, compiledFirstStepS: 37, inferenceEagerImgPerS: 10275 },
  'atto/tf32': { eagerImgPerS: 2388, compiledImgPerS: 3717, eagerFirstStepS: 20, compiledFirstStepS: 63 },
  'tiny/bf16': { eagerImgPerS: 1128, compiledImgPerS: 3173, eagerFirstStepS: 8.5, compiledFirstStepS: 61, inferenceEagerImgPerS: 4003 },
  'tiny/tf32': { eagerImgPerS: 730, eagerFirstStepS: 6.5 },
};

/** The backend a precision runs on: 'cuda', or a tf32 device sharing its runtime. */
function backendFor(p: Precision): string {
  if (p !== 'tf32') return 'cuda';
  const rt = (getDevice('cuda') as unknown as { runtime: CudaRuntime }).runtime;
  const opts: CudaDeviceOptions = { tf32: true, name: 'cuda-tf32' };
  const dev = createCudaDevice(rt, opts);
  ng.registerBackend('cuda-tf32', () => dev);
  return 'cuda-tf32';
}

function setup(model: Model, precision: Precision, batch: number, image: number) {
  const backend = backendFor(precision);
  const cfg = config(model);
  const opt = ng.nn.adamw({ lr: 1e-3, weightDecay: 0.05 });
  const jitPrecision = precision === 'bf16' ? 'bf16' : 'f32';
  const lossFn = (p: ConvNeXtV2Params, x: ng.Tensor, y: ng.Tensor): ng.Tensor => ng.nn.crossEntropy(ng.convnextv2.apply(p, x, { cfg }), y);
  const step = ng.jit(
    (p: ConvNeXtV2Params, s: any, x: ng.Tensor, y: ng.Tensor) => {
      const [loss, g] = ng.valueAndGrad(lossFn)(p, x, y) as [ng.Tensor, ConvNeXtV2Params];
      const u = opt.update(g, s, p);
      return { loss, params: u.params, state: u.state };
    },
    { backend, donate: [0, 1], precision: jitPrecision },
  );
  const infer = ng.jit((p: ConvNeXtV2Params, x: ng.Tensor) => ng.convnextv2.apply(p, x, { cfg }), { backend, precision: jitPrecision });
  const dev = (t: ng.Tensor): ng.Tensor => t.to(backend);
  const params = ng.treeMap<ConvNeXtV2Params>(dev, unflattenParams(specEntries(paramSpec(cfg)).map(([n, s]) => [n, ng.random.normal(ng.random.key(n.length), s.shape).mul(0.02)] as const)));
  const state = ng.treeMap<ReturnType<typeof opt.init>>(dev, opt.init(params));
  const x = dev(ng.random.normal(ng.random.key(7), [batch, 3, image, image]));
  const y = dev(ng.tensor(Array.from({ length: batch }, (_, i) => (i * 37) % cfg.numClasses), { dtype: 'i32' }));
  return { backend, step, infer, params, state, x, y };
}

async function sync(backend: string): Promise<void> {
  await getDevice(backend).sync();
}

/** Compiles the training step only (the warm-compile child process). */
function compileOnly(model: Model, precision: Precision, batch: number, image: number): number {
  const s = setup(model, precision, batch, image);
  const t0 = performance.now();
  s.step.lower(s.params, s.state, s.x, s.y);
  return performance.now() - t0;
}

async function measure(model: Model, precision: Precision, batch: number, image: number, steps: number, warm: boolean): Promise<Record<string, unknown>> {
  const s = setup(model, precision, batch, image);
  const rt = (getDevice('cuda') as unknown as { runtime: CudaRuntime }).runtime;
  rt.resetPeak();
  const t0 = performance.now();
  s.step.lower(s.params, s.state, s.x, s.y);
  const coldCompileMs = performance.now() - t0;
  let p = s.params;
  let st = s.state;
  const run = () => {
    const o = s.step(p, st, s.x, s.y) as unknown as { loss: ng.Tensor; params: ConvNeXtV2Params; state: typeof st };
    p = o.params;
    st = o.state;
    return o.loss;
  };
  const t1 = performance.now();
  await run().data();
  const firstStepMs = performance.now() - t1;
  await run().data(); // the graph is recorded here
  await sync(s.backend);
  const t2 = performance.now();
  let loss: ng.Tensor | undefined;
  for (let i = 0; i < steps; i++) loss = run();
  const lastLoss = (await loss!.data())[0]!;
  await sync(s.backend);
  const trainS = (performance.now() - t2) / 1000;
  const trainPeak = rt.memoryStats().peakBytesInUse;
  // inference
  const i0 = performance.now();
  await s.infer(p, s.x).data();
  const inferCompileAndFirstMs = performance.now() - i0;
  await s.infer(p, s.x).data();
  const i1 = performance.now();
  let logits: ng.Tensor | undefined;
  for (let i = 0; i < steps; i++) logits = s.infer(p, s.x);
  await logits!.data();
  const inferS = (performance.now() - i1) / 1000;
  let warmCompileMs: number | undefined;
  if (warm) {
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--compile-only', model, '--precision-only', precision, '--batch', String(batch), '--image', String(image)], { env: process.env, encoding: 'utf8' });
    const m = /^compileMs (\d+(?:\.\d+)?)$/m.exec(child.stdout);
    warmCompileMs = m ? Number(m[1]) : undefined;
    if (!m) console.log(`warm compile child failed:\n${child.stdout}\n${child.stderr}`);
  }
  const exec = s.step.lower(p, st, s.x, s.y).exec;
  return {
    model,
    precision,
    batch,
    image,
    kernels: exec.kernelCount,
    trainImgPerS: (steps * batch) / trainS,
    inferImgPerS: (steps * batch) / inferS,
    coldCompileMs,
    warmCompileMs,
    firstStepMs,
    inferCompileAndFirstMs,
    peakTrainBytes: trainPeak,
    peakBytes: rt.memoryStats().peakBytesInUse,
    lastLoss,
    pytorchH100: ANCHORS[`${model}/${precision}`],
  };
}

async function main(): Promise<number> {
  const image = Number(option('image', '224'));
  const batchOf = (m: Model): number => Number(option(`batch-${m}`, m === 'atto' ? '256' : '128'));
  if (flag('compile-only')) {
    await ng.init('cuda');
    const model = option('compile-only', 'atto') as Model;
    console.log(`compileMs ${compileOnly(model, option('precision-only', 'bf16') as Precision, Number(option('batch', String(batchOf(model)))), Number(option('image', '224'))).toFixed(1)}`);
    return 0;
  }
  // empty jit and cubin caches: the first compile is cold; the warm child reads them
  process.env.NEXGRAD_CACHE_DIR ??= mkdtempSync(path.join(os.tmpdir(), 'nexgrad-bench-cache-'));
  const out = path.join(outDir(), 'cuda-bench.json');
  const report: Record<string, unknown> = { when: new Date().toISOString(), node: process.version, cacheDir: process.env.NEXGRAD_CACHE_DIR };
  const available = await ng.init('cuda');
  if (!available.includes('cuda')) {
    const reason = ng.unavailableReasons().cuda ?? 'unknown';
    console.log(reason);
    writeJson(out, { ...report, available: false, reason });
    return 2;
  }
  const rt = (getDevice('cuda') as unknown as { runtime: CudaRuntime }).runtime;
  report.device = rt.device;
  report.nvrtc = rt.nvrtcVersion;
  const results: Record<string, unknown>[] = [];
  const models = option('models', 'atto,tiny').split(',') as Model[];
  const precisions = option('precisions', 'bf16,tf32,f32').split(',') as Precision[];
  for (const model of models) {
    for (const precision of precisions) {
      try {
        const r = await measure(model, precision, batchOf(model), image, Number(option('steps', '10')), !flag('no-warm'));
        results.push(r);
        console.log(JSON.stringify(r));
      } catch (e) {
        results.push({ model, precision, error: (e as Error).message });
        console.log(`${model} ${precision}: ${(e as Error).message}`);
      }
      writeJson(out, { ...report, available: true, results });
      rt.trim();
    }
  }
  console.log(`results in ${out}`);
  return results.some((r) => 'error' in r) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
