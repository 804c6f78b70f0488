/**
 * Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_: the norm of all
 * gradients together, and every gradient scaled by min(1, maxNorm / (norm + 1e-6)).
 * Pure tensor code: it runs eagerly and inside the jitted steps.
 */
import { OpError } from '../../ir/errors.js';
import * as ops from '../../ir/ops.js';
import { treeFlatten, treeUnflatten } from '../../ir/pytree.js';
import type { Tensor } from '../../ir/tensor.js';

/** sqrt(sum over every leaf of sum(g^2)), an f32 scalar (f64 when the leaves are f64). */
export function globalNorm(tree: unknown): Tensor {
  const { leaves } = treeFlatten(tree, 'globalNorm', 'grads');
  if (leaves.length === 0) throw new OpError('globalNorm', 'the tree has no tensors');
  const dt = leaves.every((l) => l.dtype === 'f64') ? 'f64' : 'f32';
  const squares = leaves.map((g) => {
    const x = g.dtype === dt ? g : ops.cast(g, dt);
    return ops.sum(ops.mul(x, x));
  });
  return ops.sqrt(squares.reduce((a, b) => ops.add(a, b)));
}

/** The torch rule's epsilon: clip_coef = max_norm / (total_norm + 1e-6). */
export const CLIP_EPS = 1e-6;

/**
 * Scales `grads` so their global norm is at most `maxNorm`. Returns the clipped gradients and
 * the norm before clipping. maxNorm 0 (or Infinity) means no clipping.
 */
export function clipByGlobalNorm<T>(grads: T, maxNorm: number): { grads: T; norm: Tensor } {
  if (typeof maxNorm !== 'number' || !(maxNorm >= 0)) throw new OpError('clipByGlobalNorm', `maxNorm must be a number >= 0 (0 = off), got ${String(maxNorm)}`);
  const norm = globalNorm(grads);
  if (maxNorm === 0 || maxNorm === Infinity) return { grads, norm };
  const coef = ops.minimum(ops.div(maxNorm, ops.add(norm, CLIP_EPS)), 1);
  const { leaves, def } = treeFlatten(grads, 'clipByGlobalNorm', 'grads');
  const scaled = leaves.map((g) => ops.mul(g, g.dtype === coef.dtype ? coef : ops.cast(coef, g.dtype)));
  return { grads: treeUnflatten<T>(def, scaled), norm };
}
