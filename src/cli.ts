#!/usr/bin/env node
/**
 * The `nexgrad` bin: pretrain, finetune, eval, bench, ir, inspect (src/convnextv2/cli).
 * `nexgrad --help` lists them; `nexgrad <command> --help` lists a command's flags.
 */
import { runCli } from './convnextv2/cli/index.js';

process.exitCode = await runCli(process.argv.slice(2));
