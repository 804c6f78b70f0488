/**
 * The plumbing of a training run: the backend (and CPU threads), the output directory, which
 * checkpoint `--resume` means, the run's own settings as stored in checkpoints, and the run
 * length in steps.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { cpuDeviceFor } from '../../codegen/cpu/device.js';
import type { Device } from '../../codegen/kernel/device.js';
import { type BackendName, init as initBackends, registerBackend } from '../../passes/backends.js';
import { CheckpointFileError, listCheckpoints, readTrainCheckpoint } from '../train/checkpoint_files.js';
import { resolveBackend } from '../train/runtime.js';
import { PLUMBING, type TrainFlags } from './train_options.js';
import { UsageError } from './usage_error.js';

/**
 * Applies --threads to the CPU backend, sets up the asynchronous backends (a GPU adapter, a CUDA
 * context; ng.init never throws for one that is missing) and resolves --backend.
 */
export async function setupBackend(f: Pick<TrainFlags, 'backend' | 'threads'>): Promise<BackendName> {
  if (f.threads !== undefined) {
    // the CPU backend's own choice of dialect (native C where a compiler exists), on these threads
    let dev: Device | undefined;
    const threads = f.threads === 'auto' ? Math.min(os.availableParallelism(), 8) : f.threads;
    registerBackend('cpu', () => (dev ??= cpuDeviceFor(threads)));
  }
  await initBackends(...(f.backend === 'auto' ? [] : [f.backend]));
  return resolveBackend(f.backend);
}

/**
 * The checkpoint `--resume` names: the file itself, or the newest checkpoint of a directory
 * (`--resume` alone: the --out directory). The file is checked whole before the run starts; a
 * bad newest checkpoint is refused, naming the previous one if that one is good.
 */
export function resumeCheckpoint(f: Pick<TrainFlags, 'resume' | 'out'>): string | undefined {
  if (f.resume === undefined) return undefined;
  const target = f.resume === true ? f.out : f.resume;
  if (!fs.existsSync(target)) throw new UsageError(`--resume ${JSON.stringify(target)}: no such file or directory`);
  if (!fs.statSync(target).isDirectory()) {
    readTrainCheckpoint(target);
    return target;
  }
  const list = listCheckpoints(target);
  if (!list.length) throw new UsageError(`--resume: ${JSON.stringify(target)} holds no checkpoint-*.safetensors files`);
  try {
    readTrainCheckpoint(list[0]!.file);
  } catch (e) {
    if (!(e instanceof CheckpointFileError)) throw e;
    const prev = list[1];
    let hint = '';
    if (prev) {
      try {
        readTrainCheckpoint(prev.file);
        hint = `\nthe previous checkpoint ${prev.file} is intact: resume from it with --resume ${prev.file}`;
      } catch {
        hint = `\nthe previous checkpoint ${prev.file} is damaged too`;
      }
    }
    throw new CheckpointFileError(e.file, `${e.message.slice(`checkpoint ${e.file}: `.length)}${hint}`);
  }
  return list[0]!.file;
}

/** A new run must not mix its checkpoints with another run's. */
export function checkFreshOut(out: string): void {
  const list = listCheckpoints(out);
  if (list.length) {
    throw new UsageError(`--out ${JSON.stringify(out)} already holds checkpoints of a run (newest ${list[0]!.file}); pass --resume to continue it, or choose another --out`);
  }
}

/** The command line of the run's own settings (no plumbing), to store in checkpoints. */
export function runArgv(cmd: Command): string[] {
  const opts = cmd.opts() as Record<string, unknown>;
  const argv: string[] = [];
  for (const o of cmd.options) {
    const key = o.attributeName();
    if (PLUMBING.includes(key) || !o.long) continue;
    const v = opts[key];
    if (v === undefined) continue;
    if (typeof v === 'boolean') {
      // --x / --no-x pairs: write the flag that gives this value
      if (o.negate ? !v : v) argv.push(o.long);
      continue;
    }
    if (o.negate) continue;
    argv.push(o.long, Array.isArray(v) ? v.join(',') : String(v));
  }
  return argv;
}

/** The stored command line of a checkpoint's run (checked: strings only, bounded). */
export function storedArgv(meta: Record<string, unknown>, file: string): string[] {
  const a = meta.argv;
  if (!Array.isArray(a) || a.length > 200 || !a.every((x) => typeof x === 'string' && x.length < 4096)) {
    throw new CheckpointFileError(file, 'its run settings (argv) are missing or malformed');
  }
  return a as string[];
}

/** Steps of the run: --steps, else round(epochs * steps per epoch). */
export function totalStepsOf(f: Pick<TrainFlags, 'steps' | 'epochs'>, stepsPerEpoch: number): number {
  return f.steps ?? Math.max(1, Math.round(f.epochs * stepsPerEpoch));
}

/** Warmup in steps, shorter than the run. */
export function warmupStepsOf(f: Pick<TrainFlags, 'warmupEpochs'>, stepsPerEpoch: number, total: number): number {
  return Math.min(Math.round(f.warmupEpochs * stepsPerEpoch), total - 1);
}

/** Plumbing a checkpoint remembers, so a resumed run keeps its checkpoint and log cadence. */
export function plumbingToStore(f: Pick<TrainFlags, 'checkpointEvery' | 'logEvery'>): Record<string, number> {
  return { checkpointEvery: f.checkpointEvery, logEvery: f.logEvery };
}

/**
 * The settings of a resumed run: the checkpoint's own (`stored`), with the plumbing given on
 * this command line, else remembered by the checkpoint; the output directory is the
 * checkpoint's unless --out is given.
 */
export function mergeResumed<T extends TrainFlags>(cmd: Command, stored: T, file: string, meta: Record<string, unknown>): T {
  const opts = cmd.opts() as Record<string, unknown>;
  const remembered = meta.plumbing && typeof meta.plumbing === 'object' ? (meta.plumbing as Record<string, unknown>) : {};
  const merged: Record<string, unknown> = { ...(stored as unknown as Record<string, unknown>) };
  for (const k of PLUMBING) {
    if (cmd.getOptionValueSource(k) === 'cli') merged[k] = opts[k];
    else if ((k === 'checkpointEvery' || k === 'logEvery') && Number.isInteger(remembered[k]) && (remembered[k] as number) >= (k === 'logEvery' ? 1 : 0)) merged[k] = remembered[k];
    else if (opts[k] !== undefined) merged[k] = opts[k];
  }
  if (cmd.getOptionValueSource('out') !== 'cli') merged.out = path.dirname(file);
  merged.resume = file;
  return merged as T;
}

/**
 * A resumed run must see the same data order: the checkpoint's dataset size and steps per
 * epoch (the order itself is a function of the seed, epoch and batch) must match.
 */
export function checkDataOrder(meta: Record<string, unknown>, file: string, length: number, stepsPerEpoch: number): void {
  const d = (meta.data ?? {}) as Record<string, unknown>;
  if (d.length !== length || d.batchesPerEpoch !== stepsPerEpoch) {
    throw new CheckpointFileError(file, `was written for ${String(d.length)} training images in ${String(d.batchesPerEpoch)} batches per epoch, but the data now has ${length} images in ${stepsPerEpoch}; resuming would not reproduce the run`);
  }
}
