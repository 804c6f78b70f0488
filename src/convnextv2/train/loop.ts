/**
 * The training loop shared by pretraining and fine-tuning: batches from the DataLoader (the
 * epoch and the batch within it follow from the step, so a resumed run sees the same batches),
 * one jitted step per batch, the loss read back every `logEvery` steps (never after each step,
 * so a GPU is not stalled), metrics JSONL, progress, checkpoints every `checkpointEvery` steps
 * and at the end, and Ctrl-C (SIGINT) or SIGTERM: finish the current step, save, exit cleanly.
 */
import type { Batch } from '../../nn/data/index.js';
import type { Tensor } from '../../ir/tensor.js';
import { checkpointName, pruneCheckpoints, saveTrainCheckpoint } from './checkpoint_files.js';
import type { MetricsLog, MetricsRecord } from './metrics.js';
import type { Progress } from './progress.js';
import { readScalars } from './runtime.js';
import * as path from 'node:path';

/** What one step leaves to log: device scalars, read back later in a batch. */
export interface StepResult {
  loss: Tensor;
  gradNorm: Tensor;
  /** Correctly classified images of the batch (fine-tuning). */
  correct?: Tensor;
}

export interface Trainer {
  readonly kind: 'pretrain' | 'finetune';
  /** Runs step `step` (0-based) on `batch` with learning rate `lr`; the state stays on the device. */
  step(batch: Batch, step: number): StepResult;
  /** The learning rate of step `step`. */
  lrAt(step: number): number;
  /** The pytree saved in checkpoints (params, optimizer state, EMA, key). */
  stateTree(): unknown;
}

/** The part of a DataLoader the loop uses. */
export interface BatchSource {
  readonly batchesPerEpoch: number;
  epoch(e: number, from?: number): AsyncIterableIterator<Batch>;
}

export interface LoopOptions {
  trainer: Trainer;
  loader: BatchSource;
  batchSize: number;
  totalSteps: number;
  /** Steps already done (resume). */
  startStep: number;
  outDir: string;
  /** Save every this many steps (0: only at the end and on Ctrl-C). */
  checkpointEvery: number;
  /** Read the loss back and report every this many steps. */
  logEvery: number;
  metrics: MetricsLog;
  progress: Progress;
  /** Metadata of the run, stored in every checkpoint (configuration, data order). */
  meta: Record<string, unknown>;
  /** Called after the last step of each epoch (e.g. evaluation); its record goes to the metrics. */
  onEpochEnd?: (epoch: number, step: number) => Promise<MetricsRecord | undefined>;
  /** Install the SIGINT/SIGTERM handler (default true). */
  handleSignals?: boolean;
}

export interface LoopResult {
  step: number;
  interrupted: boolean;
  checkpoint: string | undefined;
  seconds: number;
}

interface Pending {
  step: number;
  epoch: number;
  lr: number;
  r: StepResult;
}

export async function trainLoop(o: LoopOptions): Promise<LoopResult> {
  const spe = o.loader.batchesPerEpoch;
  if (spe < 1) throw new Error(`the data gives no full batch of ${o.batchSize} images per epoch; lower --batch-size`);
  let stop = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stop) process.exit(130); // a second Ctrl-C: leave now
    stop = true;
    process.stderr.write(`\n${sig === 'SIGINT' ? 'interrupted' : `${sig} received`}: finishing this step and saving a checkpoint (Ctrl-C again to quit without saving)\n`);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  if (o.handleSignals ?? true) for (const s of signals) process.on(s, onSignal);

  const t0 = performance.now();
  let lastReport = { t: performance.now(), step: o.startStep };
  let pending: Pending[] = [];
  let lastCheckpoint: string | undefined;
  let step = o.startStep;

  const flush = async () => {
    if (!pending.length) return;
    const batch = pending;
    pending = [];
    const losses = await readScalars(batch.map((p) => p.r.loss));
    const norms = await readScalars(batch.map((p) => p.r.gradNorm));
    const correct = batch[0]!.r.correct ? await readScalars(batch.map((p) => p.r.correct!)) : undefined;
    const records: MetricsRecord[] = batch.map((p, i) => {
      const rec: MetricsRecord = { step: p.step, epoch: p.epoch, loss: losses[i]!, lr: p.lr, gradNorm: norms[i]! };
      if (correct) rec.trainAcc = correct[i]! / o.batchSize;
      return rec;
    });
    o.metrics.append(records);
    const now = performance.now();
    const sps = (step - lastReport.step) / ((now - lastReport.t) / 1000);
    lastReport = { t: now, step };
    const mean = losses.reduce((a, b) => a + b, 0) / losses.length;
    o.progress.update({ step, loss: mean, stepsPerSec: sps, imagesPerSec: sps * o.batchSize });
  };

  const save = async () => {
    await flush();
    const file = path.join(o.outDir, checkpointName(step));
    const epoch = Math.floor(step / spe);
    await saveTrainCheckpoint(file, o.trainer.stateTree(), {
      ...o.meta,
      step,
      totalSteps: o.totalSteps,
      data: { ...(o.meta.data as object | undefined), epoch, batch: step % spe, batchesPerEpoch: spe },
    });
    pruneCheckpoints(o.outDir, 2);
    lastCheckpoint = file;
  };

  try {
    outer: while (step < o.totalSteps) {
      const epoch = Math.floor(step / spe);
      for await (const batch of o.loader.epoch(epoch, step % spe)) {
        const r = o.trainer.step(batch, step);
        pending.push({ step, epoch, lr: o.trainer.lrAt(step), r });
        step++;
        const endOfEpoch = step % spe === 0;
        if (pending.length >= o.logEvery) await flush();
        if (endOfEpoch && o.onEpochEnd) {
          await flush();
          const rec = await o.onEpochEnd(epoch, step);
          if (rec) o.metrics.append([rec]);
        }
        // a turn of the event loop: signal handlers (Ctrl-C) run only between macrotasks, and
        // the batches arrive through microtasks
        await new Promise((resolve) => setImmediate(resolve));
        if (stop) break outer;
        if (step >= o.totalSteps) break outer;
        if (o.checkpointEvery > 0 && step % o.checkpointEvery === 0) await save();
      }
    }
    await save();
    return { step, interrupted: stop && step < o.totalSteps, checkpoint: lastCheckpoint, seconds: (performance.now() - t0) / 1000 };
  } finally {
    o.progress.stop();
    if (o.handleSignals ?? true) for (const s of signals) process.off(s, onSignal);
  }
}
