/**
 * The pictures a run leaves in its output directory, drawn with the report module: loss and
 * accuracy curves from metrics.jsonl, the pretraining grid (original / masked / reconstructed)
 * and the confusion matrix of an evaluation.
 */
import * as path from 'node:path';
import { writeConfusionMatrix, writeImageGrid, writeLineChart } from '../report/index.js';
import type { LineSeries } from '../report/index.js';

type Rec = Record<string, unknown>;

const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** Moving average over `window` points (a smoother curve to read the trend). */
export function movingAverage(points: readonly [number, number][], window: number): [number, number][] {
  const out: [number, number][] = [];
  let sum = 0;
  points.forEach(([x, y], i) => {
    sum += y;
    if (i >= window) sum -= points[i - window]![1];
    if (i >= window - 1) out.push([x, sum / window]);
  });
  return out;
}

/** loss.png (log scale) and, for fine-tuning, accuracy.png; returns the files written. */
export async function writeCurves(outDir: string, records: readonly Rec[], kind: 'pretrain' | 'finetune'): Promise<string[]> {
  const steps = records.filter((r) => num(r.step) && num(r.loss));
  if (steps.length < 2) return [];
  const loss = steps.map((r) => [r.step as number, r.loss as number] as [number, number]);
  const window = Math.max(1, Math.min(50, Math.floor(loss.length / 10)));
  const written: string[] = [];
  const lossFile = path.join(outDir, 'loss.png');
  await writeLineChart(lossFile, {
    title: kind === 'pretrain' ? 'FCMAE pretraining loss (masked patches)' : 'Fine-tuning loss',
    xLabel: 'step',
    yLabel: 'loss',
    logY: true,
    series: [
      { name: 'per step', points: loss },
      { name: `mean of ${window} steps`, points: movingAverage(loss, window) },
    ],
  });
  written.push(lossFile);
  if (kind === 'finetune') {
    const series: LineSeries[] = [];
    const acc = steps.filter((r) => num(r.trainAcc)).map((r) => [r.step as number, r.trainAcc as number] as [number, number]);
    if (acc.length >= window) series.push({ name: `train batches (mean of ${window})`, points: movingAverage(acc, window) });
    const test = records.filter((r) => num(r.testAcc) && num(r.atStep)).map((r) => [r.atStep as number, r.testAcc as number] as [number, number]);
    if (test.length) series.push({ name: 'test set', points: test });
    if (series.length) {
      const accFile = path.join(outDir, 'accuracy.png');
      await writeLineChart(accFile, { title: 'Accuracy', xLabel: 'step', yLabel: 'top-1 accuracy', series });
      written.push(accFile);
    }
  }
  return written;
}

/** Normalised CHW images back to [0,1] for display. */
export function denormalize(images: Float32Array, n: number, mean: readonly number[], std: readonly number[]): Float32Array[] {
  const per = images.length / n;
  const c = mean.length;
  const hw = per / c;
  return Array.from({ length: n }, (_, i) => {
    const out = new Float32Array(per);
    for (let ch = 0; ch < c; ch++) {
      for (let k = 0; k < hw; k++) {
        const v = images[i * per + ch * hw + k]! * std[ch]! + mean[ch]!;
        out[ch * hw + k] = Math.min(1, Math.max(0, v));
      }
    }
    return out;
  });
}

/** reconstruction.png: one row each of originals, masked inputs and reconstructions. */
export async function writeReconstruction(
  outDir: string,
  rows: { images: Float32Array; masked: Float32Array; recon: Float32Array },
  n: number,
  shape: { channels: number; height: number; width: number },
  norm: { mean: number[]; std: number[] },
): Promise<string> {
  const file = path.join(outDir, 'reconstruction.png');
  const d = (x: Float32Array) => denormalize(x, n, norm.mean, norm.std);
  await writeImageGrid(file, [d(rows.images), d(rows.masked), d(rows.recon)], {
    ...shape,
    scale: Math.max(1, Math.floor(96 / shape.height)),
    labels: ['original', 'masked', 'reconstruction'],
  });
  return file;
}

export async function writeConfusion(outDir: string, counts: number[][], classNames: readonly string[], title: string): Promise<string> {
  const file = path.join(outDir, 'confusion.png');
  await writeConfusionMatrix(file, counts, classNames, { title });
  return file;
}
