/**
 * CPU benchmark against onnxruntime-node: ConvNeXt V2 atto from the same weights (bench/weights.ts;
 * the ONNX graph is exported by bench/onnx/atto_onnx.ts), side by side in one process, logits
 * cross-checked, contenders timed round-robin (one call each per round, so a load change on this
 * shared machine hits all of them alike), medians over the rounds.
 *
 *   node dist/bench/cpu_ort.js        (npm run bench:cpu runs it after bench/cpu.js)
 *
 * Contenders: onnxruntime-node (1 and 2 intra-op threads), nexgrad's native C path and its
 * WebAssembly path, each with 1 and 2 threads; the WebAssembly path's GEMM uses relaxed SIMD's
 * FMA (turned on in Node 20's V8 by src/relaxed_simd_flag.ts; on by default in Chrome and Node
 * 22), and `wasm-nofma-*` runs it with multiply + add (what Node 20 runs without the flag). Workloads: inference bs1 / bs8 at 224, training
 * step (forward + cross-entropy + backward + AdamW, params and state donated) bs8 at 224 and
 * bs32 at 64. Environment: BENCH_ROUNDS (default 7 inference, 3 training), BENCH_WORKLOADS,
 * BENCH_CONTENDERS (e.g. ort-1t,native-1t), BENCH_OUT=path.json | none, BENCH_BASELINE_DIST (another
 * build's dist: its WebAssembly path beside this one, for before/after), BENCH_WARMUP_MS (least
 * warm-up per contender, default 1500).
 */
import '../src/relaxed_simd_flag.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { envInt, envList, formatTable, localDate, machineInfo, maxAbsDiff, median, repoRoot } from './harness.js';
import { attoOnnx } from './onnx/atto_onnx.js';
import { ATTO, makeImages, makeLabels, makeWeights } from './weights.js';
import * as ng from '../src/index.js';
import { cpuDeviceFor, createCpuDevice } from '../src/codegen/cpu/device.js';
import { buildParams, imagesTensor, labelsTensor } from './nexgrad_convnext.js';

type Params = import('../src/convnextv2/model.js').ConvNeXtV2Params;
type AdamWState = import('../src/nn/optim.js').AdamWState;
type Ort = typeof import('onnxruntime-node');

const log = (s: string): void => void process.stdout.write(`${s}\n`);

interface Workload {
  id: string;
  kind: 'infer' | 'train';
  batch: number;
  size: number;
}
const WORKLOADS: Workload[] = [
  { id: 'infer-b1', kind: 'infer', batch: 1, size: 224 },
  { id: 'infer-b8', kind: 'infer', batch: 8, size: 224 },
  { id: 'train-b8', kind: 'train', batch: 8, size: 224 },
  { id: 'train-b32-64', kind: 'train', batch: 32, size: 64 },
];

interface Contender {
  id: string;
  framework: 'onnxruntime' | 'nexgrad';
  threads: number;
  /** A call for the workload (null when the contender does not run it), made once (compiles, warms up). */
  prepare(w: Workload, images: Float32Array, labels: Int32Array): (() => Float32Array | number) | null;
}

const m = ATTO;
/** Least warm-up time per contender and workload (ms). */
const WARMUP_MS = envInt('BENCH_WARMUP_MS', 1500);
const ws = makeWeights(m, 1234);

function ortContender(ort: Ort, threads: number): Contender {
  const model = attoOnnx(m, ws);
  let session: import('onnxruntime-node').InferenceSession | undefined;
  return {
    id: `ort-${threads}t`,
    framework: 'onnxruntime',
    threads,
    // onnxruntime-node runs asynchronously: main() calls ready() and session.run instead
    prepare: () => null,
    async ready() {
      // force_spinning_stop: its intra-op threads stop spinning when a run ends (they spin on by
      // default, holding a core while the next contender of the round-robin runs); nexgrad's
      // native pool likewise spins only while a call runs
      session ??= await ort.InferenceSession.create(model, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        extra: { session: { force_spinning_stop: '1' } },
      });
      return session;
    },
  } as Contender & { ready(): Promise<import('onnxruntime-node').InferenceSession> };
}

/** Runs f with the WebAssembly GEMM's FMA off (NEXGRAD_WASM_FMA=0, read when kernels are compiled and instantiated). */
function withoutFma<T>(f: () => T): T {
  const prev = process.env.NEXGRAD_WASM_FMA;
  process.env.NEXGRAD_WASM_FMA = '0';
  try {
    return f();
  } finally {
    if (prev === undefined) delete process.env.NEXGRAD_WASM_FMA;
    else process.env.NEXGRAD_WASM_FMA = prev;
  }
}

function nexgradContender(dialect: 'native' | 'wasm' | 'wasm-nofma', threads: number): Contender {
  const name = `ng-${dialect}-${threads}`;
  const dev = dialect === 'native' ? cpuDeviceFor(threads, 'native') : createCpuDevice({ threads });
  ng.registerBackend(name, () => dev);
  const cfg = ng.convnextv2.config('atto');
  const prepareCall = (w: Workload, images: Float32Array, labels: Int32Array): (() => Float32Array | number) => {
    const x = imagesTensor(ng, images, [w.batch, m.inChans, w.size, w.size]);
    if (w.kind === 'infer') {
      const fwd = ng.jit((p: Params, xx: ng.Tensor) => ng.convnextv2.apply(p, xx, { cfg }), { backend: name });
      const p = buildParams(ng, ws);
      return () => fwd(p, x).dataSync() as Float32Array;
    }
    const adamw = ng.nn.adamw({ lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.05 });
    const lossFn = (p: Params, xx: ng.Tensor, y: ng.Tensor): ng.Tensor => ng.nn.crossEntropy(ng.convnextv2.apply(p, xx, { cfg }), y);
    const step = ng.jit(
      (p: Params, s: AdamWState, xx: ng.Tensor, y: ng.Tensor) => {
        const [loss, grads] = ng.valueAndGrad(lossFn)(p, xx, y) as [ng.Tensor, Params];
        const r = adamw.update(grads, s, p);
        return { loss, params: r.params, state: r.state };
      },
      { backend: name, donate: [0, 1] },
    );
    let p = buildParams(ng, ws);
    let s = adamw.init(p);
    const y = labelsTensor(ng, labels);
    return () => {
      const r = step(p, s, x, y) as { loss: ng.Tensor; params: Params; state: AdamWState };
      p = r.params;
      s = r.state;
      return r.loss.item() as number;
    };
  };
  return {
    id: `${dialect}-${threads}t`,
    framework: 'nexgrad',
    threads,
    prepare(w, images, labels) {
      const call = prepareCall(w, images, labels);
      return dialect === 'wasm-nofma' ? () => withoutFma(call) : call;
    },
  };
}

/**
 * BENCH_BASELINE_DIST=<another checkout's dist>: its WebAssembly path as contenders
 * `wasm-base-<n>t`, timed round-robin beside this build's (a before/after measured in one
 * process; same weights and inputs, its logits cross-checked like the others').
 */
async function baselineWasmContender(dist: string, threads: number): Promise<Contender> {
  const bng = (await import(path.resolve(dist, 'src/index.js'))) as typeof ng;
  const bdev = (await import(path.resolve(dist, 'src/codegen/cpu/device.js'))) as typeof import('../src/codegen/cpu/device.js');
  const bconv = (await import(path.resolve(dist, 'bench/nexgrad_convnext.js'))) as typeof import('./nexgrad_convnext.js');
  const name = `ng-base-wasm-${threads}`;
  bng.registerBackend(name, () => bdev.createCpuDevice({ threads }));
  const cfg = bng.convnextv2.config('atto');
  return {
    id: `wasm-base-${threads}t`,
    framework: 'nexgrad',
    threads,
    prepare(w, images) {
      if (w.kind !== 'infer') return null;
      const x = bconv.imagesTensor(bng, images, [w.batch, m.inChans, w.size, w.size]);
      const fwd = bng.jit((p: Params, xx: ng.Tensor) => bng.convnextv2.apply(p, xx, { cfg }), { backend: name });
      const p = bconv.buildParams(bng, ws);
      return () => fwd(p, x).dataSync() as Float32Array;
    },
  };
}

async function main(): Promise<void> {
  const mi = machineInfo();
  const load0 = os.loadavg();
  log(`machine: ${mi.cpu}, ${mi.cores} cores; load average ${load0.map((l) => l.toFixed(2)).join(' ')}`);
  const req = createRequire(import.meta.url);
  let ort: Ort | undefined;
  try {
    ort = req('onnxruntime-node') as Ort;
  } catch (e) {
    log(`onnxruntime-node: unavailable (${(e as Error).message.split('\n')[0]})`);
  }
  const want = envList('BENCH_CONTENDERS');
  const all: Contender[] = [];
  if (ort) for (const t of [1, 2]) all.push(ortContender(ort, t));
  for (const t of [1, 2]) all.push(nexgradContender('native', t));
  for (const t of [1, 2]) all.push(nexgradContender('wasm', t));
  for (const t of [1, 2]) all.push(nexgradContender('wasm-nofma', t));
  const base = process.env.BENCH_BASELINE_DIST;
  if (base) for (const t of [1, 2]) all.push(await baselineWasmContender(base, t));
  const contenders = all.filter((c) => !want || want.includes(c.id));
  const wls = WORKLOADS.filter((w) => !envList('BENCH_WORKLOADS') || envList('BENCH_WORKLOADS')!.includes(w.id));
  const results: Record<string, unknown>[] = [];
  const checks: Record<string, number> = {};
  for (const w of wls) {
    const rounds = envInt('BENCH_ROUNDS', w.kind === 'infer' ? 7 : 3);
    log(`\n== ${w.id}: ${w.kind === 'infer' ? 'inference' : 'training step'}, batch ${w.batch}, ${w.size}x${w.size}, ${rounds} rounds`);
    const images = makeImages(w.batch, m.inChans, w.size, w.size, 100 + w.batch * 7 + w.size);
    const labels = makeLabels(w.batch, m.numClasses, 200 + w.batch);
    const calls: { c: Contender; call: () => Promise<Float32Array | number>; first: number }[] = [];
    let ref: Float32Array | undefined;
    for (const c of contenders) {
      const t0 = performance.now();
      let call: (() => Promise<Float32Array | number>) | null;
      if (c.framework === 'onnxruntime') {
        if (w.kind !== 'infer') continue;
        const session = await (c as Contender & { ready(): Promise<import('onnxruntime-node').InferenceSession> }).ready();
        const feeds = { images: new ort!.Tensor('float32', images, [w.batch, m.inChans, w.size, w.size]) };
        call = async () => (await session.run(feeds)).logits!.data as Float32Array;
      } else {
        const sync = c.prepare(w, images, labels);
        call = sync ? async () => sync() : null;
      }
      if (!call) continue;
      const out = await call();
      const first = performance.now() - t0;
      if (out instanceof Float32Array) {
        if (!ref) ref = out;
        else checks[`${w.id}: ${c.id} vs ${contenders[0]!.id}, max |dlogits|`] = maxAbsDiff(out, ref);
      } else checks[`${w.id}: ${c.id} first loss`] = out;
      // warm-up to the steady state: at least two calls and a second of them (V8 compiles
      // WebAssembly with its baseline compiler first and tiers hot functions up while they run:
      // the WebAssembly path's first few bs1 calls took 38-51 ms, the later ones 33-35)
      const w0 = performance.now();
      for (let i = 0; i < 2 || (performance.now() - w0 < WARMUP_MS && i < 50); i++) await call();
      calls.push({ c, call, first });
      log(`  ${c.id}: ready (first call ${(first / 1000).toFixed(2)} s)`);
    }
    const times = new Map<string, number[]>(calls.map((x) => [x.c.id, []]));
    for (let r = 0; r < rounds; r++) {
      for (const { c, call } of calls) {
        const t0 = performance.now();
        await call();
        times.get(c.id)!.push(performance.now() - t0);
      }
    }
    for (const { c, first } of calls) {
      const ts = times.get(c.id)!;
      const med = median(ts);
      results.push({ workload: w.id, contender: c.id, framework: c.framework, threads: c.threads, medianMs: med, imgPerSec: (w.batch * 1000) / med, firstCallMs: first, timesMs: ts.map((t) => Math.round(t * 10) / 10) });
      log(`  ${c.id}: ${((w.batch * 1000) / med).toFixed(2)} img/s (median ${med.toFixed(1)} ms)`);
    }
  }
  for (const [k, v] of Object.entries(checks)) log(`check ${k}: ${typeof v === 'number' ? v.toExponential(2) : v}`);
  const rows = results.map((r) => {
    const ortSame = results.find((x) => x.workload === r.workload && x.framework === 'onnxruntime' && x.threads === r.threads);
    const ratio = ortSame && r.framework !== 'onnxruntime' ? `${((r.imgPerSec as number) / (ortSame.imgPerSec as number)).toFixed(2)}x` : '';
    return [String(r.workload), String(r.contender), (r.imgPerSec as number).toFixed(2), (r.medianMs as number).toFixed(1), ratio];
  });
  const load1 = os.loadavg();
  log(`\n${formatTable(['workload', 'contender', 'img/s', 'median ms', 'vs onnxruntime (same threads)'], rows)}\nload average at the end ${load1.map((l) => l.toFixed(2)).join(' ')}`);
  if (process.env.BENCH_OUT !== 'none') {
    const file = process.env.BENCH_OUT ? path.resolve(process.env.BENCH_OUT) : path.join(repoRoot(), 'bench', 'results', `cpu-ort-${localDate()}.json`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const json = { bench: 'cpu-ort', date: new Date().toISOString(), machine: { ...mi, loadAverageStart: load0, loadAverageEnd: load1 }, onnxruntime: ort ? req('onnxruntime-node/package.json').version : null, checks, results };
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, `${JSON.stringify(json, null, 2)}\n`);
    fs.renameSync(tmp, file);
    log(`wrote ${path.relative(process.cwd(), file)}`);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
