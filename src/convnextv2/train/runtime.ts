/**
 * The training product's view of the runtime: which backend to compile for, and reading
 * values back. Tensors may live on a device (cpu, wgsl, cuda), so values are read with
 * `await t.data()`, which works everywhere; the trainers read the loss every few steps, never
 * after each one.
 */
import { NexgradError } from '../../ir/errors.js';
import type { Tensor } from '../../ir/tensor.js';
import * as backends from '../../passes/backends.js';
import type { BackendName } from '../../passes/backends.js';

export type BackendChoice = BackendName | 'auto';

/** Preference order of `--backend auto`: the fastest device that is available. */
export const AUTO_ORDER: readonly BackendName[] = Object.freeze(['cuda', 'wgsl', 'cpu']);
export const BACKEND_CHOICES: readonly BackendChoice[] = Object.freeze(['auto', 'cpu', 'wgsl', 'cuda']);

/** The backend a choice resolves to; an unavailable explicit choice is an error saying which are. */
export function resolveBackend(choice: BackendChoice): BackendName {
  const available = backends.availableBackends();
  if (choice === 'auto') {
    const b = AUTO_ORDER.find((name) => available.includes(name));
    if (!b) throw new NexgradError(`no backend is available (tried ${AUTO_ORDER.join(', ')})`);
    return b;
  }
  if (!(AUTO_ORDER as readonly string[]).includes(choice)) throw new NexgradError(`unknown backend ${JSON.stringify(choice)}; expected one of ${BACKEND_CHOICES.join(', ')}`);
  // getDevice throws the backend's own reason (no GPU adapter, no CUDA driver, ...)
  backends.getDevice(choice);
  return choice;
}

/** `t` on `backend`'s device (unchanged when it is already there). */
export function toDevice<T extends Tensor>(t: T, backend: BackendName): T {
  return backends.devicePut(t, backend);
}

/** The values of scalar tensors as numbers (one await per tensor, in order). */
export async function readScalars(ts: readonly Tensor[]): Promise<number[]> {
  const out: number[] = [];
  for (const t of ts) {
    const d = await t.data();
    out.push(Number(d[0]));
  }
  return out;
}
