#!/usr/bin/env node
/**
 * The nexgrad command line. Commands available in this version:
 *   nexgrad ir [--model atto] [--image 224] [--batch 1] [--train] [--print program|passes|kernels]
 *       traces ConvNeXt V2 inference (or a training step with --train), runs the compiler's
 *       passes and prints the program size, the kernels by kind and the memory plan.
 */
import * as ng from './index.js';
import { lower } from './passes/pipeline.js';
import { printKernelGraph } from './codegen/kernel/kernel_graph.js';
import { config, type VariantName } from './convnextv2/config.js';
import { paramSpec } from './convnextv2/model.js';
import { specEntries } from './nn/init.js';
import { unflattenParams } from './nn/init.js';

function parseFlags(argv: string[]): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${JSON.stringify(a)}`);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith('--')) out[a.slice(2)] = true;
    else {
      out[a.slice(2)] = next;
      i++;
    }
  }
  return out;
}

const USAGE = `usage: nexgrad <command> [flags]

commands:
  ir     trace ConvNeXt V2 and show what the compiler makes of it
         --model atto|femto|pico|nano|tiny|base|large|huge (default atto)
         --image N (default 224)  --batch N (default 1)  --train (a training step)
         --print program|passes|kernels (print that stage in full)`;

function irCommand(flags: Record<string, string | boolean>): void {
  const model = String(flags.model ?? 'atto') as VariantName;
  const image = Number(flags.image ?? 224);
  const batch = Number(flags.batch ?? 1);
  const cfg = config(model);
  // zero-valued parameters of the right shapes: tracing needs shapes only
  const params = unflattenParams(specEntries(paramSpec(cfg)).map(([name, s]) => [name, ng.zeros(s.shape)] as const));
  const x = ng.zeros([batch, 3, image, image]);
  const labels = ng.zeros([batch], 'i32');
  const fn = flags.train
    ? (p: unknown, xs: ng.Tensor, ys: ng.Tensor) => ng.valueAndGrad((q: unknown) => ng.nn.crossEntropy(ng.convnextv2.apply(q as never, xs, { cfg }), ys))(p)
    : (p: unknown, xs: ng.Tensor) => ng.convnextv2.apply(p as never, xs, { cfg });
  const t0 = performance.now();
  const program = ng.trace(fn, params, x, labels);
  const t1 = performance.now();
  if (flags.print === 'passes') process.env.NEXGRAD_DUMP = 'passes';
  const low = lower(program);
  const t2 = performance.now();
  if (flags.print === 'program') console.log(program.toString());
  if (flags.print === 'kernels') console.log(printKernelGraph(low.graph));
  const kinds = new Map<string, number>();
  for (const k of low.graph.kernels) kinds.set(k.kind, (kinds.get(k.kind) ?? 0) + 1);
  console.log(`${model} ${flags.train ? 'training step' : 'inference'}, batch ${batch}, ${image}x${image}`);
  console.log(`  traced: ${program.eqns.length} equations (${(t1 - t0).toFixed(0)} ms)`);
  console.log(`  after passes: ${low.optimized.eqns.length} equations; ${low.graph.kernels.length} kernels (${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ')}) (${(t2 - t1).toFixed(0)} ms)`);
  console.log(`  memory plan: ${(low.plan.peakBytes / 2 ** 20).toFixed(1)} MiB peak, ${low.plan.storageBytes.length} arena storages`);
}

function main(argv: string[]): number {
  const [cmd, ...rest] = argv;
  try {
    if (!cmd || cmd === '--help' || cmd === 'help') {
      console.log(USAGE);
      return cmd ? 0 : 1;
    }
    if (cmd === 'ir') {
      irCommand(parseFlags(rest));
      return 0;
    }
    console.error(`nexgrad: unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
    return 2;
  } catch (e) {
    console.error(`nexgrad ${cmd}: ${(e as Error).message}`);
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));
