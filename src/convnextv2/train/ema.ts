/**
 * EMA of the parameters for the trainers: a private copy to start from (the EMA and the
 * parameters are both donated to the jitted step, so they must not share buffers) and the
 * decay per step.
 */
import { OpError } from '../../ir/errors.js';
import { fromHost } from '../../ir/ops.js';
import { treeFlatten, treeUnflatten } from '../../ir/pytree.js';
import type { Tensor } from '../../ir/tensor.js';
import type { BackendName } from '../../passes/backends.js';
import { toDevice } from './runtime.js';

/** A deep copy of a tree of tensors with storage of its own, on `backend`. */
export async function copyTree<T>(tree: T, backend: BackendName): Promise<T> {
  const { leaves, def } = treeFlatten(tree, 'copyTree', 'tree');
  const copies: Tensor[] = [];
  for (const t of leaves) copies.push(toDevice(fromHost(t.dtype, t.shape, (await t.data()).slice()), backend));
  return treeUnflatten<T>(def, copies);
}

/**
 * The EMA decay at a (0-based) step: `decay`, or with warmup min(decay, (1 + step) / (10 + step)),
 * so that a short run's EMA is not dominated by its random initialisation.
 */
export function emaDecayAt(step: number, decay: number, warmup: boolean): number {
  if (!(decay >= 0 && decay < 1)) throw new OpError('emaDecayAt', `decay must be in [0, 1), got ${decay}`);
  return warmup ? Math.min(decay, (1 + step) / (10 + step)) : decay;
}
