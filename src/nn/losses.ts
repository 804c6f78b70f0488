/**
 * Losses as pure functions. Each is one named region (softmax_cross_entropy,
 * soft_target_cross_entropy, masked_mse) with its hyper-parameters in the attrs.
 */
import { isFloat } from '../ir/dtype.js';
import { OpError } from '../ir/errors.js';
import { region } from '../ir/functional.js';
import * as ops from '../ir/ops.js';
import { fmtShape } from '../ir/shape.js';
import { Tensor } from '../ir/tensor.js';

export type Reduction = 'mean' | 'sum' | 'none';

function reduce(op: string, l: Tensor, reduction: Reduction): Tensor {
  switch (reduction) {
    case 'mean':
      return ops.mean(l);
    case 'sum':
      return ops.sum(l);
    case 'none':
      return l;
    default:
      throw new OpError(op, `reduction must be 'mean', 'sum' or 'none', got ${JSON.stringify(reduction)}`);
  }
}

function requireLogits(op: string, logits: unknown): Tensor {
  if (!(logits instanceof Tensor) || !isFloat(logits.dtype) || logits.ndim < 1) {
    throw new OpError(op, `logits must be a float tensor (..., classes), got ${logits instanceof Tensor ? `${logits.dtype}${fmtShape(logits.shape)}` : typeof logits}`);
  }
  return logits;
}

/** log_softmax over the last axis. */
export function logSoftmax(x: Tensor): Tensor {
  return ops.sub(x, ops.logSumExp(x, -1, true));
}

export interface CrossEntropyOptions {
  /** PyTorch's label_smoothing (default 0). */
  labelSmoothing?: number;
  /** Default 'mean' over all leading positions. */
  reduction?: Reduction;
}

/**
 * Softmax cross-entropy with integer labels, PyTorch semantics (F.cross_entropy with
 * label_smoothing ls): per example (1 - ls) * (-log p[label]) + ls * mean_k(-log p[k]).
 * logits (..., K), labels i32/u32 (...). Region `softmax_cross_entropy`, attrs
 * {labelSmoothing}; inputs (logits, labels); the region yields the per-example losses.
 */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const op = 'softmaxCrossEntropy';
  requireLogits(op, logits);
  if (!(labels instanceof Tensor) || (labels.dtype !== 'i32' && labels.dtype !== 'u32')) {
    throw new OpError(op, `labels must be an i32/u32 tensor of class indices, got ${labels instanceof Tensor ? `${labels.dtype}${fmtShape(labels.shape)}` : typeof labels}`);
  }
  const lead = logits.shape.slice(0, -1);
  if (labels.ndim !== lead.length || labels.shape.some((d, i) => d !== lead[i])) {
    throw new OpError(op, `labels ${fmtShape(labels.shape)} must have the shape of logits ${fmtShape(logits.shape)} without its last (class) axis, ${fmtShape(lead)}`);
  }
  const k = logits.shape[logits.ndim - 1]!;
  if (!labels.isTracer) {
    const d = labels.dataSync();
    for (let i = 0; i < d.length; i++) {
      if (!(d[i]! >= 0 && d[i]! < k)) throw new OpError(op, `label ${d[i]} at position ${i} is out of range for ${k} classes`);
    }
  }
  const ls = opts.labelSmoothing ?? 0;
  if (!(ls >= 0 && ls <= 1)) throw new OpError(op, `labelSmoothing must be in [0, 1], got ${ls}`);
  const fn = region(
    'softmax_cross_entropy',
    (lg: Tensor, lb: Tensor) => {
      const logp = logSoftmax(lg);
      // pick log p[label] with a select on (iota == label): elementwise, so it fuses into the
      // softmax kernel where a gather would need a kernel of its own. A select, not a product
      // with a one-hot vector: a -inf logit elsewhere would give -inf * 0 = NaN.
      const isLabel = ops.equal(ops.expandDims(lb, -1), ops.iota([...lb.shape, k], lb.ndim, lb.dtype));
      const nll = ops.neg(ops.sum(ops.where(isLabel, logp, 0), -1));
      if (ls === 0) return nll;
      const smooth = ops.neg(ops.mean(logp, -1));
      return ops.add(ops.mul(nll, 1 - ls), ops.mul(smooth, ls));
    },
    { labelSmoothing: ls },
  );
  return reduce(op, fn(logits, labels), opts.reduction ?? 'mean');
}

/** Alias of softmaxCrossEntropy. */
export const crossEntropy = softmaxCrossEntropy;

/**
 * Cross-entropy with soft targets (timm SoftTargetCrossEntropy, for mixup/cutmix):
 * per example sum_k -targets[k] * log_softmax(logits)[k]. Region `soft_target_cross_entropy`.
 */
export function softTargetCrossEntropy(logits: Tensor, targets: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  const op = 'softTargetCrossEntropy';
  requireLogits(op, logits);
  if (!(targets instanceof Tensor) || targets.dtype !== logits.dtype || targets.shape.join() !== logits.shape.join()) {
    throw new OpError(op, `targets must be ${logits.dtype}${fmtShape(logits.shape)} like the logits, got ${targets instanceof Tensor ? `${targets.dtype}${fmtShape(targets.shape)}` : typeof targets}`);
  }
  // Terms with target 0 are 0 even where log p is -inf (a product would give 0 * -inf = NaN).
  const fn = region(
    'soft_target_cross_entropy',
    (lg: Tensor, t: Tensor) => ops.neg(ops.sum(ops.where(ops.notEqual(t, 0), ops.mul(t, logSoftmax(lg)), 0), -1)),
    {},
  );
  return reduce(op, fn(logits, targets), opts.reduction ?? 'mean');
}

/**
 * Masked mean-squared error (FCMAE, spec 3.6): pred and target (N, L, K), mask (N, L) with
 * 1 = counted (a removed patch). l[n,l] = mean_k (pred - target)^2; the loss is
 * sum(l * mask) / sum(mask). Region `masked_mse`; inputs (pred, target, mask).
 */
export function maskedMse(pred: Tensor, target: Tensor, mask: Tensor): Tensor {
  const op = 'maskedMse';
  requireLogits(op, pred);
  if (!(target instanceof Tensor) || target.dtype !== pred.dtype || target.shape.join() !== pred.shape.join()) {
    throw new OpError(op, `target must be ${pred.dtype}${fmtShape(pred.shape)} like pred, got ${target instanceof Tensor ? `${target.dtype}${fmtShape(target.shape)}` : typeof target}`);
  }
  const lead = pred.shape.slice(0, -1);
  if (!(mask instanceof Tensor) || mask.shape.join() !== lead.join()) {
    throw new OpError(op, `mask must have shape ${fmtShape(lead)} (pred without its last axis), got ${mask instanceof Tensor ? fmtShape(mask.shape) : typeof mask}`);
  }
  const m = mask.dtype === pred.dtype ? mask : ops.cast(mask, pred.dtype);
  const fn = region(
    'masked_mse',
    (p: Tensor, t: Tensor, mm: Tensor) => {
      const d = ops.sub(p, t);
      const l = ops.mean(ops.mul(d, d), -1);
      return ops.div(ops.sum(ops.mul(l, mm)), ops.sum(mm));
    },
    {},
  );
  return fn(pred, target, m);
}
