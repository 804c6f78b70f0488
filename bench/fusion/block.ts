/**
 * One ConvNeXt V2 block forward, fused vs unfused, side by side in one process: the block at
 * each stage shape of atto and tiny (224x224 input: 56, 28, 14, 7 pixels a side), batch 32, on
 * the CPU device (native C where a compiler exists, else WebAssembly). "fused" is the graph the
 * CPU's capabilities give (LayerNorm statistics in pwconv1's prologue, GRN's sum of squares in
 * its epilogue: 4 kernels); "unfused" the same program lowered with those capabilities off (6
 * kernels). Both run on the same device with the same inputs; their outputs are compared before
 * anything is timed. Kernels and bytes moved come from the cost report (each kernel's buffers
 * read and written once); times are medians, repeats alternating between the two. The block's
 * forward + backward (gradients of <block(p, x), ct> for every parameter and the input) is
 * measured the same way: fused (the CPU's caps: extra epilogue outputs and reducing epilogues in
 * the backward too) vs unfused, every gradient compared, kernels, bytes and median times.
 *
 *   npm run bench:fusion
 *
 * Environment: BENCH_REPEATS (default 5), BENCH_WARMUP (default 1), BENCH_BATCH (default 32),
 * BENCH_WORKLOADS=id,id (a subset, e.g. atto-s0), BENCH_OUT=path.json | none (default
 * bench/results/fusion-<date>.json). Not part of the test suite.
 */
import * as path from 'node:path';
import { cpuDeviceFor } from '../../src/codegen/cpu/device.js';
import { graphCost } from '../../src/codegen/kernel/cost.js';
import type { Device, DeviceCaps, Executable } from '../../src/codegen/kernel/device.js';
import type { KernelGraph } from '../../src/codegen/kernel/kernel_graph.js';
import { block, type BlockParams, blockSpec } from '../../src/convnextv2/model.js';
import { writeFileAtomic } from '../../src/convnextv2/report/png.js';
import { traceTree } from '../../src/ir/functional.js';
import { HostArray } from '../../src/ir/host.js';
import * as ops from '../../src/ir/ops.js';
import { treeFlatten } from '../../src/ir/pytree.js';
import * as random from '../../src/ir/random.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { initFromSpec } from '../../src/nn/init.js';
import { lower } from '../../src/passes/pipeline.js';
import { grad } from '../../src/autodiff/index.js';
import { envInt, envList, formatTable, localDate, machineInfo, median, repoRoot } from '../harness.js';

interface Workload {
  readonly id: string;
  readonly dim: number;
  readonly hw: number;
}

/** Stage shapes of atto (dims 40..320) and tiny (96..768) at 224x224. */
const WORKLOADS: readonly Workload[] = [
  ...[40, 80, 160, 320].map((dim, s) => ({ id: `atto-s${s}`, dim, hw: 56 >> s })),
  ...[96, 192, 384, 768].map((dim, s) => ({ id: `tiny-s${s}`, dim, hw: 56 >> s })),
];

interface Side {
  readonly graph: KernelGraph;
  readonly exe: Executable;
  readonly times: number[];
  compileMs: number;
}

function compile(dev: Device, w: Workload, batch: number, caps: DeviceCaps) {
  const p = initFromSpec<BlockParams>(random.key(0), blockSpec(w.dim), 'f32');
  // LayerNorm and GRN parameters away from 1/0, so every path is live
  const params: BlockParams = {
    ...p,
    norm: { weight: random.normal(random.key(5), [w.dim], { mean: 1, std: 0.2 }), bias: random.normal(random.key(6), [w.dim], { std: 0.2 }) },
    grn: { gamma: random.normal(random.key(7), [1, 1, 1, 4 * w.dim], { std: 0.2 }), beta: random.normal(random.key(8), [1, 1, 1, 4 * w.dim], { std: 0.2 }) },
  };
  const x = random.normal(random.key(1), [batch, w.hw, w.hw, w.dim]);
  const { program } = traceTree('block', (pp: BlockParams, xx: Tensor) => block(pp, xx), [params, x]);
  const inputs = (treeFlatten([params, x]).leaves as Tensor[]).map((t) => new HostArray('f32', [...t.shape], Float32Array.from(ops.cast(t, 'f32').dataSync() as ArrayLike<number>)));
  const t0 = performance.now();
  const { graph, plan } = lower(program, undefined, caps);
  const exe = dev.compile(graph, plan);
  return { graph, exe, inputs, compileMs: performance.now() - t0 };
}

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / (s + 1e-30);
}

/** The block's forward + backward program (gradients w.r.t. params and input) and its inputs. */
function fwdBwdCase(w: Workload, batch: number) {
  const p = initFromSpec<BlockParams>(random.key(0), blockSpec(w.dim), 'f32');
  const params: BlockParams = { ...p, grn: { gamma: random.normal(random.key(7), [1, 1, 1, 4 * w.dim], { std: 0.2 }), beta: random.normal(random.key(8), [1, 1, 1, 4 * w.dim], { std: 0.2 }) } };
  const x = random.normal(random.key(1), [batch, w.hw, w.hw, w.dim]);
  const ct = random.normal(random.key(2), [batch, w.hw, w.hw, w.dim]);
  const g = grad((pp: BlockParams, xx: Tensor, c: Tensor) => ops.sum(ops.mul(block(pp, xx), c)), { argnums: [0, 1] });
  const { program } = traceTree('block_grad', g, [params, x, ct]);
  const inputs = (treeFlatten([params, x, ct]).leaves as Tensor[]).map((t) => new HostArray('f32', [...t.shape], Float32Array.from(ops.cast(t, 'f32').dataSync() as ArrayLike<number>)));
  return { program, inputs };
}

/** Fused vs unfused forward + backward: every gradient compared, then timed alternately. */
function fwdBwd(dev: Device, w: Workload, batch: number, warmup: number, repeats: number) {
  const c = fwdBwdCase(w, batch);
  const side = (caps: DeviceCaps) => {
    const { graph, plan } = lower(c.program, undefined, caps);
    const cost = graphCost(graph);
    return { graph, exe: dev.compile(graph, plan), kernels: graph.kernels.length, bytes: cost.bytesRead + cost.bytesWritten, times: [] as number[] };
  };
  const sides = { fused: side(dev.caps), unfused: side({ ...dev.caps, prologueStats: false, reducingEpilogues: false }) };
  const call = (s: 'fused' | 'unfused') => sides[s].exe.run(c.inputs) as HostArray[];
  const a = call('fused');
  const b = call('unfused');
  const diff = Math.max(...a.map((x, i) => relDiff(x.data as ArrayLike<number>, b[i]!.data as ArrayLike<number>)));
  if (!(diff < 1e-4)) throw new Error(`${w.id}: fused and unfused gradients differ (${diff})`);
  for (let i = 1; i < warmup; i++) for (const s of ['fused', 'unfused'] as const) call(s);
  for (let i = 0; i < repeats; i++) {
    for (const s of (i % 2 ? ['unfused', 'fused'] : ['fused', 'unfused']) as ('fused' | 'unfused')[]) {
      const t = performance.now();
      call(s);
      sides[s].times.push(performance.now() - t);
    }
  }
  const out = (s: 'fused' | 'unfused') => ({ kernels: sides[s].kernels, bytes: sides[s].bytes, medianMs: median(sides[s].times), timesMs: sides[s].times });
  return { fused: out('fused'), unfused: out('unfused'), relDiff: diff };
}

async function run(dev: Device, w: Workload, batch: number, warmup: number, repeats: number, log: (s: string) => void) {
  const f = compile(dev, w, batch, dev.caps);
  const u = compile(dev, w, batch, { ...dev.caps, prologueStats: false, reducingEpilogues: false });
  const sides: Record<'fused' | 'unfused', Side> = { fused: { graph: f.graph, exe: f.exe, times: [], compileMs: f.compileMs }, unfused: { graph: u.graph, exe: u.exe, times: [], compileMs: u.compileMs } };
  const call = (s: 'fused' | 'unfused'): HostArray => sides[s].exe.run(f.inputs)[0] as HostArray;
  const diff = relDiff(call('fused').data as ArrayLike<number>, call('unfused').data as ArrayLike<number>);
  if (!(diff < 1e-4)) throw new Error(`${w.id}: fused and unfused outputs differ (${diff})`);
  for (let i = 1; i < warmup; i++) for (const s of ['fused', 'unfused'] as const) call(s);
  for (let i = 0; i < repeats; i++) {
    for (const s of (i % 2 ? ['unfused', 'fused'] : ['fused', 'unfused']) as ('fused' | 'unfused')[]) {
      const t = performance.now();
      call(s);
      sides[s].times.push(performance.now() - t);
    }
  }
  const cost = (g: KernelGraph) => {
    const c = graphCost(g);
    return { kernels: g.kernels.length, bytes: c.bytesRead + c.bytesWritten, flops: c.flops };
  };
  const fb = fwdBwd(dev, w, batch, warmup, repeats);
  const r = { workload: w, fwdBwd: fb, fused: { ...cost(f.graph), medianMs: median(sides.fused.times), timesMs: sides.fused.times, compileMs: f.compileMs }, unfused: { ...cost(u.graph), medianMs: median(sides.unfused.times), timesMs: sides.unfused.times, compileMs: u.compileMs }, relDiff: diff };
  log(`${w.id} (C=${w.dim}, ${w.hw}x${w.hw}): unfused ${r.unfused.kernels} kernels ${(r.unfused.bytes / 2 ** 20).toFixed(1)} MiB ${r.unfused.medianMs.toFixed(1)} ms; fused ${r.fused.kernels} kernels ${(r.fused.bytes / 2 ** 20).toFixed(1)} MiB ${r.fused.medianMs.toFixed(1)} ms; fwd+bwd ${fb.unfused.kernels} -> ${fb.fused.kernels} kernels, ${(fb.unfused.bytes / 2 ** 20).toFixed(1)} -> ${(fb.fused.bytes / 2 ** 20).toFixed(1)} MiB, ${fb.unfused.medianMs.toFixed(1)} -> ${fb.fused.medianMs.toFixed(1)} ms`);
  return r;
}

async function main(): Promise<void> {
  const log = (s: string) => console.log(s);
  const repeats = envInt('BENCH_REPEATS', 5);
  const warmup = Math.max(1, envInt('BENCH_WARMUP', 1));
  const batch = envInt('BENCH_BATCH', 32);
  const only = envList('BENCH_WORKLOADS');
  const chosen = WORKLOADS.filter((w) => !only || only.includes(w.id));
  const dev = cpuDeviceFor();
  log(`device ${dev.id}, batch ${batch}, ${repeats} repeats`);
  const started = performance.now();
  const results = [];
  for (const w of chosen) results.push(await run(dev, w, batch, warmup, repeats, log));
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  const rows = results.map((r) => [
    r.workload.id,
    `${r.workload.dim}x${r.workload.hw}x${r.workload.hw}`,
    `${r.unfused.kernels} -> ${r.fused.kernels}`,
    `${mib(r.unfused.bytes)} -> ${mib(r.fused.bytes)}`,
    r.unfused.medianMs.toFixed(1),
    r.fused.medianMs.toFixed(1),
    `${(r.unfused.medianMs / r.fused.medianMs).toFixed(2)}x`,
    `${r.fwdBwd.unfused.kernels} -> ${r.fwdBwd.fused.kernels}`,
    `${mib(r.fwdBwd.unfused.bytes)} -> ${mib(r.fwdBwd.fused.bytes)}`,
    r.fwdBwd.unfused.medianMs.toFixed(1),
    r.fwdBwd.fused.medianMs.toFixed(1),
    `${(r.fwdBwd.unfused.medianMs / r.fwdBwd.fused.medianMs).toFixed(2)}x`,
  ]);
  log(formatTable([`block fwd, batch ${batch}`, 'C x H x W', 'kernels', 'MiB moved', 'unfused ms', 'fused ms', 'speed-up', 'fwd+bwd kernels', 'fwd+bwd MiB', 'unfused ms', 'fused ms', 'speed-up'], rows));
  const out = process.env.BENCH_OUT ?? path.join(repoRoot(), 'bench', 'results', `fusion-${localDate()}.json`);
  if (out !== 'none') {
    const json = {
      bench: 'fusion/block',
      date: new Date().toISOString(),
      command: 'npm run bench:fusion',
      device: dev.id,
      batch,
      machine: { ...machineInfo(), loadAverageStart: (await import('node:os')).loadavg() },
      repeats,
      warmup,
      results: results.map((r) => ({ workload: r.workload.id, dim: r.workload.dim, hw: r.workload.hw, relDiff: r.relDiff, unfused: r.unfused, fused: r.fused, speedup: r.unfused.medianMs / r.fused.medianMs, forwardBackward: { ...r.fwdBwd, speedup: r.fwdBwd.unfused.medianMs / r.fwdBwd.fused.medianMs } })),
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
