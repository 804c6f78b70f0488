/**
 * One training step of a CLI workload (`nexgrad bench`'s), timed per call in wall time and in the
 * process's CPU time, from the build in a given `dist` directory: run it alternately on two builds
 * (say main's and a branch's) for an interleaved A/B on a shared machine, where wall time counts
 * the time other processes held the cores and CPU time mostly does not. Prints one JSON line.
 *
 *   node dist/bench/cpu_train_ab.js <dist dir> <threads> [--model atto] [--size 224] [--batch 8]
 *     [--channels 3] [--classes 1000] [--dims 32,64 --depths 2,2 --stem-stride 2] [--mode finetune|pretrain] [--steps 6]
 */
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

interface Out {
  state: { key: unknown };
  loss: { item(): number };
}

async function main(): Promise<void> {
  const [distArg, threadsArg, ...rest] = process.argv.slice(2);
  if (!distArg || !threadsArg) throw new Error('usage: cpu_train_ab.js <dist dir> <threads> [workload options]');
  const dist = pathToFileURL(path.resolve(distArg)).href;
  const opt = (n: string, d: string): string => (rest.includes(n) ? rest[rest.indexOf(n) + 1]! : d);
  const list = (n: string): number[] | undefined => (rest.includes(n) ? opt(n, '').split(',').map(Number) : undefined);
  const ng = (await import(`${dist}/src/index.js`)) as typeof import('../src/index.js');
  const { modelConfig } = (await import(`${dist}/src/convnextv2/cli/model_options.js`)) as typeof import('../src/convnextv2/cli/model_options.js');
  const { workload } = (await import(`${dist}/src/convnextv2/cli/workloads.js`)) as typeof import('../src/convnextv2/cli/workloads.js');
  // the CPU backend's own dialect choice on these threads, as the CLI's --threads sets it
  // (NEXGRAD_CPU_THREADS=2 would select the WebAssembly path: src/passes/backends.ts)
  const { cpuDeviceFor } = (await import(`${dist}/src/codegen/cpu/device.js`)) as typeof import('../src/codegen/cpu/device.js');
  const dev = cpuDeviceFor(Number(threadsArg));
  ng.registerBackend('cpu', () => dev);
  const model = opt('--model', 'atto') as Parameters<typeof modelConfig>[0]['model'];
  const [classes, channels] = [Number(opt('--classes', '1000')), Number(opt('--channels', '3'))];
  const cfg = modelConfig({ model, dims: list('--dims'), depths: list('--depths'), stemStride: rest.includes('--stem-stride') ? Number(opt('--stem-stride', '4')) : undefined, dropPath: 0, precision: 'f32' }, classes, channels);
  const mode = opt('--mode', 'finetune') as 'finetune' | 'pretrain';
  const w = workload(cfg, { mode, imageSize: Number(opt('--size', '224')), batchSize: Number(opt('--batch', '8')), channels, classes });
  const fn = ng.jit(w.fn, { backend: 'cpu', donate: w.donate });
  let args = w.args();
  const call = (): void => {
    const o = fn(...args) as Out;
    const { key, ...donated } = o.state;
    args = [donated, key, args[2]];
    o.loss.item();
  };
  for (let i = 0; i < 3; i++) call();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < Number(opt('--steps', '6')); i++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    call();
    const c = process.cpuUsage(c0);
    wall.push(performance.now() - t0);
    cpu.push((c.user + c.system) / 1000);
  }
  const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const r = (x: number): number => Math.round(x * 100) / 100;
  console.log(JSON.stringify({ dist: distArg, model: cfg.name, mode, batch: w.batch, threads: Number(threadsArg), wallMs: r(med(wall)), cpuMs: r(med(cpu)), imgPerSecWall: r((w.batch * 1000) / med(wall)), imgPerSecCpu: r((w.batch * 1000) / med(cpu)) }));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
