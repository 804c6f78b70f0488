/**
 * Where a ConvNeXt V2 atto training step (or inference) spends its time, per kernel, on the CPU
 * backend: each kernel of the compiled graph is timed on its own (the executable's profile mode),
 * summed over the timed calls, grouped by kernel kind and name and printed largest first.
 *
 * NEXGRAD_PROFILE_CLOCK=cpu times kernels in process CPU time (robust on a loaded machine; one thread).
 *
 *   node dist/bench/cpu_profile.js [--infer] [--batch 8] [--size 224] [--threads 2] [--wasm [--cpu-time]] [--reps 3] [--top 40]
 *   node dist/bench/cpu_profile.js --model custom --dims 32,64 --depths 2,2 --stem-stride 2 --channels 1 --classes 10
 *     --size 32 --batch 128 [--mode finetune|pretrain]   (the CLI's workloads, as `nexgrad bench` runs them)
 */
import { createCpuDevice } from '../src/codegen/cpu/device.js';
import type { CpuExecutable } from '../src/codegen/cpu/device.js';
import { createNativeCpuDevice, nativeSupport } from '../src/codegen/cpu/native/device.js';
import type { Device } from '../src/codegen/kernel/device.js';
import { type Kernel, type KernelGraph, kernelIO } from '../src/codegen/kernel/kernel_graph.js';
import * as ng from '../src/index.js';
import { buildParams, imagesTensor, labelsTensor } from './nexgrad_convnext.js';
import { ATTO, makeImages, makeLabels, makeWeights } from './weights.js';

type Params = import('../src/convnextv2/model.js').ConvNeXtV2Params;
type AdamWState = import('../src/nn/optim.js').AdamWState;

const args = process.argv.slice(2);
const opt = (name: string, def: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : def);
const infer = args.includes('--infer');
const wasm = args.includes('--wasm');
const batch = opt('--batch', 8);
const size = opt('--size', 224);
const threads = opt('--threads', 2);
const reps = opt('--reps', 3);
const top = opt('--top', 40);
/** Per-kernel CPU time instead of wall time (the WebAssembly path: what a loaded machine's other jobs do not inflate). */
const cpuTime = args.includes('--cpu-time');
/** Print the generated C of kernels whose name contains this. */
const dump = args.includes('--dump') ? args[args.indexOf('--dump') + 1] : undefined;

function profiledDevice(): { dev: Device; compiled: { graph: KernelGraph; ex: CpuExecutable }[] } {
  let base: Device;
  if (wasm) base = createCpuDevice({ threads, profile: cpuTime ? 'cpu' : true });
  else {
    const s = nativeSupport();
    if (typeof s === 'string') throw new Error(`native CPU path unavailable: ${s}`);
    base = createNativeCpuDevice(s, { threads, profile: true });
  }
  const compiled: { graph: KernelGraph; ex: CpuExecutable }[] = [];
  const dev: Device = {
    ...base,
    compile(graph, plan) {
      const ex = base.compile(graph, plan) as CpuExecutable;
      compiled.push({ graph, ex });
      return ex;
    },
  };
  return { dev, compiled };
}

/** A short description of a kernel: its kind and the sizes that decide its cost. */
function describe(k: Kernel): string {
  switch (k.kind) {
    case 'matmul':
      return `matmul b${k.batch} ${k.m}x${k.k}x${k.n} A:${k.a.kind === 'strided' ? k.a.strides.join(',') : k.a.kind} B:${k.b.kind === 'strided' ? k.b.strides.join(',') : k.b.kind}`;
    case 'conv':
      return `conv ${k.lhs.shape.join('x')} * ${k.rhs.shape.join('x')} -> ${k.outShape.join('x')} g${k.params.featureGroupCount} bg${k.params.batchGroupCount}`;
    case 'loop':
      return `loop outer[${k.outer.join(',')}] row[${k.row.join(',')}] red${k.reductions.length} outs${k.outerOutputs.length}/${k.rowOutputs.length}`;
    default:
      return k.kind;
  }
}

/** Multiply-add flops of a GEMM or convolution kernel (0 for the rest). */
function flopsOf(k: Kernel): number {
  const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);
  if (k.kind === 'matmul') return 2 * k.batch * k.m * k.n * k.k;
  if (k.kind !== 'conv') return 0;
  // output elements x the contraction per output (input channels per group x window)
  const d = k.params.dims;
  // (a weight gradient's rhs is the output gradient: its size over the output features is again the contraction)
  return (2 * prod(k.outShape) * prod(k.rhs.shape)) / k.rhs.shape[d.rhs[0]!]!;
}

/** Bytes of the distinct buffers a kernel reads and writes, each counted once (a lower bound on its traffic). */
function bytesOf(k: Kernel, sizes: ReadonlyMap<number, number>): number {
  const io = kernelIO(k);
  return [...new Set([...io.reads, ...io.writes])].reduce((a, b) => a + (sizes.get(b) ?? 0), 0);
}

async function main(): Promise<void> {
  const { dev, compiled } = profiledDevice();
  ng.registerBackend('cpu-prof', () => dev);
  const cfg = ng.convnextv2.config('atto');
  const ws = makeWeights(ATTO, 1234);
  const x = imagesTensor(ng, makeImages(batch, ATTO.inChans, size, size, 7), [batch, ATTO.inChans, size, size]);
  let call: () => void;
  const model = args.includes('--model') ? args[args.indexOf('--model') + 1]! : undefined;
  if (model) {
    // the CLI's workloads (nexgrad bench): e.g. --model custom --dims 32,64 --depths 2,2 --stem-stride 2 --channels 1 --classes 10 --mode finetune
    const list = (name: string): number[] | undefined => (args.includes(name) ? args[args.indexOf(name) + 1]!.split(',').map(Number) : undefined);
    const mode = (args.includes('--mode') ? args[args.indexOf('--mode') + 1] : 'finetune') as 'inference' | 'finetune' | 'pretrain';
    const { modelConfig } = await import('../src/convnextv2/cli/model_options.js');
    const { workload } = await import('../src/convnextv2/cli/workloads.js');
    const mcfg = modelConfig({ model: model as 'custom', dims: list('--dims'), depths: list('--depths'), stemStride: args.includes('--stem-stride') ? opt('--stem-stride', 4) : undefined, dropPath: 0, precision: 'f32' }, opt('--classes', 10), opt('--channels', 1));
    const w = workload(mcfg, { mode, imageSize: size, batchSize: batch, channels: opt('--channels', 1), classes: opt('--classes', 10) });
    const fn = ng.jit(w.fn, { backend: 'cpu-prof', donate: w.donate });
    let wargs = w.args();
    call = () => {
      const out = fn(...wargs) as { state?: { key: ng.Tensor }; loss?: ng.Tensor } | ng.Tensor;
      if (w.donate.length) {
        const o = out as { state: { key: ng.Tensor }; loss: ng.Tensor };
        const { key, ...donated } = o.state;
        wargs = [donated, key, wargs[2]];
        o.loss.item();
      } else (out as ng.Tensor).dataSync();
    };
  } else if (infer) {
    const fwd = ng.jit((p: Params, xx: ng.Tensor) => ng.convnextv2.apply(p, xx, { cfg }), { backend: 'cpu-prof' });
    const p = buildParams(ng, ws);
    call = () => void fwd(p, x).dataSync();
  } else {
    const adamw = ng.nn.adamw({ lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.05 });
    const lossFn = (p: Params, xx: ng.Tensor, y: ng.Tensor): ng.Tensor => ng.nn.crossEntropy(ng.convnextv2.apply(p, xx, { cfg }), y);
    const step = ng.jit(
      (p: Params, s: AdamWState, xx: ng.Tensor, y: ng.Tensor) => {
        const [loss, grads] = ng.valueAndGrad(lossFn)(p, xx, y) as [ng.Tensor, Params];
        const r = adamw.update(grads, s, p);
        return { loss, params: r.params, state: r.state };
      },
      { backend: 'cpu-prof', donate: [0, 1] },
    );
    let p = buildParams(ng, ws);
    let s = adamw.init(p);
    const y = labelsTensor(ng, makeLabels(batch, ATTO.numClasses, 9));
    call = () => {
      const r = step(p, s, x, y) as { loss: ng.Tensor; params: Params; state: AdamWState };
      p = r.params;
      s = r.state;
      r.loss.item();
    };
  }
  call();
  for (const { ex } of compiled) ex.kernelTimes?.fill(0);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let r = 0; r < reps; r++) call();
  const wall = (performance.now() - t0) / reps;
  const cu = process.cpuUsage(c0);
  const cpu = (cu.user + cu.system) / 1000 / reps;
  const rows: { name: string; desc: string; ms: number; flops: number; bytes: number }[] = [];
  for (const { graph, ex } of compiled) {
    const sizes = new Map(graph.buffers.map((b) => [b.id, b.size * (b.dtype === 'f64' ? 8 : b.dtype === 'bool' ? 1 : 4)]));
    graph.kernels.forEach((k, i) => rows.push({ name: k.name, desc: describe(k), ms: (ex.kernelTimes?.[i] ?? 0) / reps, flops: flopsOf(k), bytes: bytesOf(k, sizes) }));
  }
  const total = rows.reduce((a, r) => a + r.ms, 0);
  console.log(`${model ? `${model} ` : ''}${infer ? 'inference' : 'training step'} bs${batch} ${size}x${size}, ${wasm ? 'wasm' : 'native'} ${threads} threads: ${wall.toFixed(1)} ms per call (${((batch * 1000) / wall).toFixed(2)} img/s; CPU time ${cpu.toFixed(1)} ms, all threads), kernels${process.env.NEXGRAD_PROFILE_CLOCK === 'cpu' ? ' (CPU time)' : ''} ${total.toFixed(1)} ms in ${rows.length}`);
  const groups = new Map<string, { ms: number; n: number; flops: number; bytes: number }>();
  for (const r of rows) {
    const key = r.desc.split(' ')[0]! + (r.desc.startsWith('conv') ? ` g${r.desc.includes(' g1 ') ? '1' : 'N'}${r.desc.includes('bg1') ? '' : ' bgN'}` : '');
    const g = groups.get(key) ?? { ms: 0, n: 0, flops: 0, bytes: 0 };
    g.ms += r.ms;
    g.n++;
    g.flops += r.flops;
    g.bytes += r.bytes;
    groups.set(key, g);
  }
  // achieved rates: GFLOP/s for GEMMs and convolutions, GB/s (distinct buffers touched, each once) for all
  const rate = (flops: number, bytes: number, ms: number): string => `${flops ? `${(flops / ms / 1e6).toFixed(1).padStart(6)} GFLOP/s` : ''.padStart(14)} ${(bytes / ms / 1e6).toFixed(1).padStart(6)} GB/s`;
  for (const [k, g] of [...groups].sort((a, b) => b[1].ms - a[1].ms)) console.log(`  ${k.padEnd(20)} ${g.ms.toFixed(1).padStart(8)} ms ${((100 * g.ms) / total).toFixed(1).padStart(5)}%  (${g.n} kernels) ${rate(g.flops, g.bytes, g.ms)}`);
  console.log('');
  for (const r of rows.sort((a, b) => b.ms - a.ms).slice(0, top)) console.log(`${r.ms.toFixed(2).padStart(8)} ms ${rate(r.flops, r.bytes, r.ms)}  ${r.name.slice(0, 34).padEnd(34)} ${r.desc}`);
  const dumpC = args.includes('--dump-c') ? args[args.indexOf('--dump-c') + 1] : undefined;
  if (dumpC) {
    const fs = await import('node:fs');
    compiled.forEach(({ ex }, i) => {
      const c = (ex as CpuExecutable & { cSource?: string }).cSource;
      if (c) fs.writeFileSync(`${dumpC}.${i}.c`, c);
    });
  }
  if (dump) {
    for (const { ex } of compiled) {
      ex.kernelNames.forEach((n, i) => {
        const src = (ex as CpuExecutable & { sources?: readonly string[] }).sources?.[i];
        if (n.includes(dump)) console.log(`\n/* ${n} */\n${src ?? "(no source)"}`);
      });
    }
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
