/**
 * `nexgrad ir`: what the compiler makes of ConvNeXt V2 inference, of the whole fine-tuning step
 * (forward, loss, backward, clipping, AdamW, EMA) or of the FCMAE pretraining step: equation
 * counts before and after the passes, kernels by kind, the memory plan, operations and bytes
 * moved; optionally a stage in full (`--print kernels`: every kernel with its cost, then one line
 * per block).
 */
import { Command, Option } from 'commander';
import { kernelReport } from '../../codegen/kernel/report.js';
import { trace } from '../../ir/functional.js';
import { getDevice } from '../../passes/backends.js';
import { lower } from '../../passes/pipeline.js';
import { BACKEND_CHOICES, type BackendChoice } from '../train/runtime.js';
import { addModelOptions, type ModelFlags, modelConfig } from './model_options.js';
import { choice } from './parse.js';
import { setupBackend } from './run.js';
import { addWorkloadOptions, type WorkloadFlags, workload } from './workloads.js';

interface IrFlags extends ModelFlags, WorkloadFlags {
  print?: 'program' | 'passes' | 'kernels';
  backend: BackendChoice;
}

export function irCommand(): Command {
  const cmd = new Command('ir').description('trace ConvNeXt V2 (inference or a whole training step) and show what the compiler makes of it');
  addModelOptions(cmd, { model: 'atto' });
  addWorkloadOptions(cmd, { imageSize: 224, batchSize: 1 });
  return cmd
    .addOption(new Option('--backend <name>', `compile for this backend's capabilities (fusion obeys them): ${BACKEND_CHOICES.join(', ')}`).argParser(choice(BACKEND_CHOICES)).default('cpu'))
    .addOption(new Option('--print <stage>', 'print this stage in full: program, passes, kernels').argParser(choice(['program', 'passes', 'kernels'] as const)));
}

export async function runIr(cmd: Command): Promise<number> {
  const f = cmd.opts() as IrFlags;
  const backend = await setupBackend({ backend: f.backend, threads: undefined });
  const caps = getDevice(backend).caps;
  const cfg = modelConfig(f, f.classes, f.channels);
  const w = workload(cfg, f);
  const t0 = performance.now();
  const program = trace(w.fn, ...w.args());
  const t1 = performance.now();
  if (f.print === 'passes') process.env.NEXGRAD_DUMP = 'passes';
  const low = lower(program, undefined, caps);
  const t2 = performance.now();
  if (f.print === 'program') console.log(program.toString());
  const report = kernelReport(low.graph);
  if (f.print === 'kernels') console.log(`${report.kernels}\n\n${report.scopes}\n`);
  const kinds = new Map<string, number>();
  for (const k of low.graph.kernels) kinds.set(k.kind, (kinds.get(k.kind) ?? 0) + 1);
  const what = { inference: 'inference', finetune: 'fine-tuning step (forward, loss, backward, clipping, AdamW, EMA)', pretrain: 'FCMAE pretraining step (mask, forward, loss, backward, clipping, AdamW)' }[w.mode];
  console.log(`${cfg.name} ${what}, batch ${w.batch}, ${f.imageSize}x${f.imageSize}, compiled for ${backend}`);
  console.log(`  traced: ${program.eqns.length} equations (${(t1 - t0).toFixed(0)} ms)`);
  console.log(`  after passes: ${low.optimized.eqns.length} equations; ${low.graph.kernels.length} kernels (${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ')}) (${(t2 - t1).toFixed(0)} ms)`);
  console.log(`  memory plan: ${(low.plan.peakBytes / 2 ** 20).toFixed(1)} MiB peak, ${low.plan.storageBytes.length} arena storages`);
  const t = report.total;
  console.log(`  work: ${(t.flops / 1e9).toFixed(3)} G operations, ${((t.bytesRead + t.bytesWritten) / 2 ** 20).toFixed(1)} MiB moved (each kernel's buffers read and written once)`);
  return 0;
}
