/**
 * Learning-rate schedules: plain functions from the step number (0-based, the number of
 * updates done before this one) to the learning rate, as a number. Pass the value to the
 * optimizer (as a scalar Tensor inside a jitted step, so it does not retrace).
 */
import { OpError } from '../ir/errors.js';

export type Schedule = (step: number) => number;

function checkNonNeg(op: string, what: string, x: unknown): number {
  if (typeof x !== 'number' || !Number.isFinite(x) || x < 0) throw new OpError(op, `${what} must be a finite number >= 0, got ${String(x)}`);
  return x;
}

function checkStep(op: string, step: unknown): number {
  if (typeof step !== 'number' || !Number.isFinite(step) || step < 0) throw new OpError(op, `step must be a finite number >= 0, got ${String(step)}`);
  return step;
}

/** The same learning rate at every step. */
export function constant(lr: number): Schedule {
  checkNonNeg('constant', 'lr', lr);
  return (step) => {
    checkStep('constant', step);
    return lr;
  };
}

export interface LinearWarmupOptions {
  baseLr: number;
  warmupSteps: number;
}

/** baseLr * step / warmupSteps during warmup, then baseLr. */
export function linearWarmup(opts: LinearWarmupOptions): Schedule {
  const op = 'linearWarmup';
  const base = checkNonNeg(op, 'baseLr', opts.baseLr);
  const w = checkNonNeg(op, 'warmupSteps', opts.warmupSteps);
  return (step) => {
    checkStep(op, step);
    return step < w ? (base * step) / w : base;
  };
}

export interface CosineOptions {
  baseLr: number;
  /** The final learning rate (default 0). */
  minLr?: number;
  warmupSteps: number;
  totalSteps: number;
}

/**
 * The official `adjust_learning_rate` (ConvNeXt V2 / MAE utils), per step:
 *   step < warmup:  baseLr * step / warmup                      (linear from 0)
 *   otherwise:      minLr + (baseLr - minLr) * 0.5 * (1 + cos(pi * (step - warmup) / (total - warmup)))
 * The official code evaluates it at the fractional epoch `iter / itersPerEpoch + epoch`; with
 * warmup and total counted in steps it is the same function of the step. Steps at or past
 * totalSteps give minLr (the official loop never gets there).
 */
export function cosineSchedule(opts: CosineOptions): Schedule {
  const op = 'cosineSchedule';
  const base = checkNonNeg(op, 'baseLr', opts.baseLr);
  const min = checkNonNeg(op, 'minLr', opts.minLr ?? 0);
  const w = checkNonNeg(op, 'warmupSteps', opts.warmupSteps);
  const total = checkNonNeg(op, 'totalSteps', opts.totalSteps);
  if (total <= w) throw new OpError(op, `totalSteps (${total}) must be greater than warmupSteps (${w})`);
  return (step) => {
    checkStep(op, step);
    if (step < w) return (base * step) / w;
    if (step >= total) return min;
    return min + (base - min) * 0.5 * (1 + Math.cos((Math.PI * (step - w)) / (total - w)));
  };
}

export interface CosineEpochOptions {
  baseLr: number;
  minLr?: number;
  warmupEpochs: number;
  epochs: number;
  stepsPerEpoch: number;
}

/**
 * The same schedule computed the way the official training loop does, on the fractional
 * epoch e = i / stepsPerEpoch + epoch with step = epoch * stepsPerEpoch + i:
 *   e < warmupEpochs: baseLr * e / warmupEpochs; else
 *   minLr + (baseLr - minLr) * 0.5 * (1 + cos(pi * (e - warmupEpochs) / (epochs - warmupEpochs))).
 * It equals cosineSchedule with warmupSteps = warmupEpochs * stepsPerEpoch up to rounding.
 */
export function cosineScheduleEpochs(opts: CosineEpochOptions): Schedule {
  const op = 'cosineScheduleEpochs';
  const base = checkNonNeg(op, 'baseLr', opts.baseLr);
  const min = checkNonNeg(op, 'minLr', opts.minLr ?? 0);
  const we = checkNonNeg(op, 'warmupEpochs', opts.warmupEpochs);
  const epochs = checkNonNeg(op, 'epochs', opts.epochs);
  const n = opts.stepsPerEpoch;
  if (!Number.isInteger(n) || n < 1) throw new OpError(op, `stepsPerEpoch must be an integer >= 1, got ${String(n)}`);
  if (epochs <= we) throw new OpError(op, `epochs (${epochs}) must be greater than warmupEpochs (${we})`);
  return (step) => {
    checkStep(op, step);
    const e = (step % n) / n + Math.floor(step / n);
    if (e < we) return (base * e) / we;
    if (e >= epochs) return min;
    return min + (base - min) * 0.5 * (1 + Math.cos((Math.PI * (e - we)) / (epochs - we)));
  };
}
