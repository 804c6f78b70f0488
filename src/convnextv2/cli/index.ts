/**
 * The nexgrad command line (commander): pretrain, finetune, eval, bench, ir, inspect. Every
 * command has -h/--help; unknown flags, bad values and missing files are rejected with a
 * message naming the flag and the expected form. Exit codes: 0 done, 1 failed, 2 bad usage,
 * 130 interrupted (a checkpoint was saved).
 */
import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { NexgradError } from '../../ir/errors.js';
import '../../passes/eager.js'; // eager operations run compiled on the CPU backend
import { benchCommand, runBench } from './bench.js';
import { evalCommand, runEval } from './eval.js';
import { finetuneCommand, runFinetune } from './finetune.js';
import { inspectCommand, runInspect } from './inspect.js';
import { irCommand, runIr } from './ir.js';
import { pretrainCommand, runPretrain } from './pretrain.js';
import { UsageError } from './usage_error.js';

function version(): string {
  try {
    // dist/src/convnextv2/cli or src/convnextv2/cli -> the package root's package.json
    const req = createRequire(import.meta.url);
    for (const p of ['../../../../package.json', '../../../package.json']) {
      try {
        const pkg = req(p) as { name?: string; version?: string };
        if (pkg.name === 'nexgrad' && pkg.version) return pkg.version;
      } catch {
        // try the next layout
      }
    }
  } catch {
    // fall through
  }
  return 'unknown';
}

type Runner = (cmd: Command) => Promise<number>;

const COMMANDS: readonly [() => Command, Runner][] = [
  [pretrainCommand, runPretrain],
  [finetuneCommand, runFinetune],
  [evalCommand, runEval],
  [benchCommand, runBench],
  [irCommand, runIr],
  [inspectCommand, runInspect],
];

/** Runs the CLI on `argv` (without node and the script); resolves to the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  let code = 0;
  let current = '';
  const program = new Command('nexgrad')
    .description('nexgrad: ConvNeXt V2 and FCMAE training on a TypeScript tensor compiler')
    .version(version(), '-v, --version')
    .showSuggestionAfterError(true)
    .exitOverride();
  for (const [make, run] of COMMANDS) {
    const cmd = make();
    cmd.exitOverride().showSuggestionAfterError(true);
    cmd.action(async () => {
      current = cmd.name();
      code = await run(cmd);
    });
    program.addCommand(cmd);
  }
  try {
    if (argv.length === 0) {
      program.outputHelp();
      return 2;
    }
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has printed its message (and help for --help / --version: exit 0)
      return e.exitCode === 0 ? 0 : 2;
    }
    const where = `nexgrad${current ? ` ${current}` : ''}`;
    if (e instanceof UsageError) {
      process.stderr.write(`${where}: error: ${e.message}\n`);
      return 2;
    }
    if (e instanceof NexgradError || (e instanceof Error && e.name === 'SafetensorsError')) {
      process.stderr.write(`${where}: error: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
