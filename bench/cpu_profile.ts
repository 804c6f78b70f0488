/**
 * Where a ConvNeXt V2 atto training step (or inference) spends its time, per kernel, on the CPU
 * backend: each kernel of the compiled graph is timed on its own (the executable's profile mode),
 * summed over the timed calls, grouped by kernel kind and name and printed largest first.
 *
 *   node dist/bench/cpu_profile.js [--infer] [--batch 8] [--size 224] [--threads 2] [--wasm [--cpu-time]] [--reps 3] [--top 40]
 */
import { createCpuDevice } from '../src/codegen/cpu/device.js';
import type { CpuExecutable } from '../src/codegen/cpu/device.js';
import { createNativeCpuDevice, nativeSupport } from '../src/codegen/cpu/native/device.js';
import type { Device } from '../src/codegen/kernel/device.js';
import type { Kernel, KernelGraph } from '../src/codegen/kernel/kernel_graph.js';
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

async function main(): Promise<void> {
  const { dev, compiled } = profiledDevice();
  ng.registerBackend('cpu-prof', () => dev);
  const cfg = ng.convnextv2.config('atto');
  const ws = makeWeights(ATTO, 1234);
  const x = imagesTensor(ng, makeImages(batch, ATTO.inChans, size, size, 7), [batch, ATTO.inChans, size, size]);
  let call: () => void;
  if (infer) {
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
  for (let r = 0; r < reps; r++) call();
  const wall = (performance.now() - t0) / reps;
  const rows: { name: string; desc: string; ms: number }[] = [];
  for (const { graph, ex } of compiled) {
    graph.kernels.forEach((k, i) => rows.push({ name: k.name, desc: describe(k), ms: (ex.kernelTimes?.[i] ?? 0) / reps }));
  }
  const total = rows.reduce((a, r) => a + r.ms, 0);
  console.log(`${infer ? 'inference' : 'training step'} bs${batch} ${size}x${size}, ${wasm ? 'wasm' : 'native'} ${threads} threads: ${wall.toFixed(1)} ms per call (${((batch * 1000) / wall).toFixed(2)} img/s), kernels ${total.toFixed(1)} ms in ${rows.length}`);
  const groups = new Map<string, { ms: number; n: number }>();
  for (const r of rows) {
    const key = r.desc.split(' ')[0]! + (r.desc.startsWith('conv') ? ` g${r.desc.includes(' g1 ') ? '1' : 'N'}${r.desc.includes('bg1') ? '' : ' bgN'}` : '');
    const g = groups.get(key) ?? { ms: 0, n: 0 };
    g.ms += r.ms;
    g.n++;
    groups.set(key, g);
  }
  for (const [k, g] of [...groups].sort((a, b) => b[1].ms - a[1].ms)) console.log(`  ${k.padEnd(20)} ${g.ms.toFixed(1).padStart(8)} ms ${((100 * g.ms) / total).toFixed(1).padStart(5)}%  (${g.n} kernels)`);
  console.log('');
  for (const r of rows.sort((a, b) => b.ms - a.ms).slice(0, top)) console.log(`${r.ms.toFixed(2).padStart(8)} ms  ${r.name.slice(0, 40).padEnd(40)} ${r.desc}`);
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
