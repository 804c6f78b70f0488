/**
 * `nexgrad bench`: images per second of ConvNeXt V2 inference, the fine-tuning step or the
 * FCMAE pretraining step on a backend (median of timed repeats after a call that compiles and
 * a few untimed warm-up calls).
 */
import { Command, Option } from 'commander';
import type { Tensor } from '../../ir/tensor.js';
import { jit } from '../../passes/jit.js';
import { BACKEND_CHOICES, type BackendChoice } from '../train/runtime.js';
import { addModelOptions, type ModelFlags, modelConfig } from './model_options.js';
import { choice, positiveInt, threads } from './parse.js';
import { setupBackend } from './run.js';
import { addWorkloadOptions, type WorkloadFlags, workload } from './workloads.js';

interface BenchFlags extends ModelFlags, WorkloadFlags {
  steps: number;
  backend: BackendChoice;
  threads?: number | 'auto';
}

export function benchCommand(): Command {
  const cmd = new Command('bench').description('images per second of inference or a whole training step');
  addModelOptions(cmd, { model: 'mini' });
  addWorkloadOptions(cmd, { imageSize: 32, batchSize: 128 });
  return cmd
    .addOption(new Option('--steps <n>', 'timed calls').argParser(positiveInt(10)).default(10))
    .addOption(new Option('--backend <name>', `where to run: ${BACKEND_CHOICES.join(', ')}`).argParser(choice(BACKEND_CHOICES)).default('auto'))
    .addOption(new Option('--threads <n>', "CPU threads (a number, or 'auto': every core up to 8)").argParser(threads));
}

export async function runBench(cmd: Command): Promise<number> {
  const f = cmd.opts() as BenchFlags;
  const backend = await setupBackend(f);
  const cfg = modelConfig(f, f.classes, f.channels);
  const w = workload(cfg, f);
  const fn = jit(w.fn, { backend, donate: w.donate });
  let args = w.args();
  // a call counts until its result can be read (a GPU runs asynchronously); a training step's
  // outputs carry the state it donated: fed back to the next call
  const call = async () => {
    const out = fn(...args) as { state?: unknown; loss?: Tensor } | Tensor;
    if (w.donate.length) {
      const o = out as { state: { key: Tensor }; loss: Tensor };
      const { key, ...donated } = o.state;
      args = [donated, key, args[2]];
      await o.loss.data();
    } else {
      await (out as Tensor).data();
    }
  };
  const t0 = performance.now();
  await call();
  const compileMs = performance.now() - t0;
  // untimed calls after compilation: worker threads, caches and the allocator settle
  for (let i = 0; i < Math.max(1, Math.floor(f.steps / 4)); i++) await call();
  const times: number[] = [];
  for (let i = 0; i < f.steps; i++) {
    const t = performance.now();
    await call();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)]!;
  console.log(`${cfg.name} ${w.mode}, batch ${w.batch}, ${f.imageSize}x${f.imageSize}, ${backend}: ${((w.batch * 1000) / med).toFixed(1)} img/s (median ${med.toFixed(1)} ms per call over ${f.steps}; first call ${(compileMs / 1000).toFixed(1)} s with compilation)`);
  return 0;
}
