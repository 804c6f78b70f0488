#!/usr/bin/env node
/**
 * The `nexgrad` bin: pretrain, finetune, eval, bench, ir, inspect (src/convnextv2/cli).
 * `nexgrad --help` lists them; `nexgrad <command> --help` lists a command's flags.
 */
import './relaxed_simd_flag.js';
import { runCli } from './convnextv2/cli/index.js';

// `nexgrad ... | head`: a closed pipe ends the output quietly instead of with a stack trace
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

process.exitCode = await runCli(process.argv.slice(2));
