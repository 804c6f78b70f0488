/** Argument checks shared by the pictures, with errors that name the function and the argument. */
import { NexgradError } from '../../ir/errors.js';

export class ReportError extends NexgradError {
  constructor(message: string) {
    super(message);
    this.name = 'ReportError';
  }
}

export function checkText(fn: string, what: string, v: unknown): string {
  if (typeof v !== 'string') throw new ReportError(`${fn}: ${what} must be a string, got ${v === null ? 'null' : typeof v}`);
  if (v.length > 500) throw new ReportError(`${fn}: ${what} is ${v.length} characters long; at most 500 fit`);
  return v;
}

export function checkSeriesName(fn: string, i: number, s: unknown): void {
  if (s === null || typeof s !== 'object') throw new ReportError(`${fn}: series[${i}] must be an object with a name`);
  checkText(fn, `series[${i}].name`, (s as { name?: unknown }).name);
}

export function checkPositiveInt(fn: string, what: string, v: unknown, max = 1 << 14): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new ReportError(`${fn}: ${what} must be an integer in [1, ${max}], got ${String(v)}`);
  return v;
}

/** Largest picture side in pixels: keeps a bad argument from allocating gigabytes. */
export const MAX_SIDE = 16384;

export function checkCanvas(fn: string, width: number, height: number): void {
  if (width > MAX_SIDE || height > MAX_SIDE) throw new ReportError(`${fn}: the picture would be ${width}x${height} pixels; at most ${MAX_SIDE} on a side`);
}
