/**
 * Evaluation: top-1 accuracy and the confusion matrix of a classifier over a dataset, with the
 * predictions computed by a jitted forward pass and read back once per batch.
 */
import type { Tensor } from '../../ir/tensor.js';
import type { Batch } from '../../nn/data/index.js';

export interface EvalResult {
  accuracy: number;
  correct: number;
  total: number;
  /** confusion[true][predicted] counts. */
  confusion: number[][];
}

/** Accumulates predictions against labels. */
export class ConfusionCounter {
  readonly confusion: number[][];
  correct = 0;
  total = 0;
  constructor(readonly numClasses: number) {
    this.confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  }
  add(labels: ArrayLike<number>, predicted: ArrayLike<number>): void {
    for (let i = 0; i < labels.length; i++) {
      const t = labels[i]!;
      const p = predicted[i]!;
      this.confusion[t]![p]!++;
      if (t === p) this.correct++;
      this.total++;
    }
  }
  result(): EvalResult {
    return { accuracy: this.total ? this.correct / this.total : 0, correct: this.correct, total: this.total, confusion: this.confusion };
  }
}

/**
 * Runs `predict(images) -> i32[N] classes` over every batch of `batches` (one pass, in order)
 * and counts. `onBatch` sees each batch and its predictions (for pictures of examples).
 */
export async function evaluate(
  predict: (images: Tensor) => Tensor,
  batches: AsyncIterable<Batch>,
  numClasses: number,
  onBatch?: (batch: Batch, predicted: ArrayLike<number>) => void,
): Promise<EvalResult> {
  const counter = new ConfusionCounter(numClasses);
  for await (const batch of batches) {
    const predicted = await predict(batch.images).data();
    const labels = await batch.labels.data();
    counter.add(labels, predicted);
    onBatch?.(batch, predicted);
  }
  return counter.result();
}
