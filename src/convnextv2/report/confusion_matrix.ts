/**
 * A confusion matrix: rows are the true class, columns the predicted one, each cell coloured by
 * its share of the row (so classes of any size compare) and labelled with its count; the title
 * carries the overall accuracy.
 */
import { checkCanvas, checkText, ReportError } from './checks.js';
import { blues, INK, rgbToHex } from './colors.js';
import { svgToPng, writeFileAtomic } from './png.js';
import { svgDocument, text, textWidth } from './svg.js';

export interface ConfusionMatrixOptions {
  title?: string;
}

export interface ConfusionLayout {
  readonly width: number;
  readonly height: number;
  readonly cell: number;
  /** Top-left pixel of cell (true class i, predicted class j). */
  readonly origin: (i: number, j: number) => { x: number; y: number };
}

const MAX_CLASSES = 1000;

function check(counts: readonly (readonly number[])[], classNames: readonly string[]): number {
  const fn = 'confusionMatrix';
  if (!Array.isArray(classNames) || classNames.length === 0 || classNames.length > MAX_CLASSES) {
    throw new ReportError(`${fn}: classNames must be 1..${MAX_CLASSES} strings`);
  }
  classNames.forEach((c, i) => checkText(fn, `classNames[${i}]`, c));
  const n = classNames.length;
  if (!Array.isArray(counts) || counts.length !== n) throw new ReportError(`${fn}: counts must have ${n} rows (one per class), got ${Array.isArray(counts) ? counts.length : typeof counts}`);
  counts.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== n) throw new ReportError(`${fn}: counts[${i}] must have ${n} entries, got ${Array.isArray(row) ? row.length : typeof row}`);
    row.forEach((v, j) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new ReportError(`${fn}: counts[${i}][${j}] must be a non-negative number, got ${String(v)}`);
    });
  });
  return n;
}

export function confusionMatrixLayout(counts: readonly (readonly number[])[], classNames: readonly string[]): ConfusionLayout {
  const n = check(counts, classNames);
  const cell = Math.max(12, Math.min(48, Math.floor(560 / n)));
  const nameW = Math.ceil(Math.max(...classNames.map((c) => textWidth(c, 12))));
  const left = nameW + 46;
  const top = 60;
  const width = left + n * cell + 24;
  const height = top + n * cell + nameW + 46;
  checkCanvas('confusionMatrix', width, height);
  return { width, height, cell, origin: (i, j) => ({ x: left + j * cell, y: top + i * cell }) };
}

/** The share of row i in cell (i, j), 0 for an empty row. */
export function rowShare(counts: readonly (readonly number[])[], i: number, j: number): number {
  const total = counts[i]!.reduce((a, b) => a + b, 0);
  return total > 0 ? counts[i]![j]! / total : 0;
}

export function confusionMatrixSvg(counts: readonly (readonly number[])[], classNames: readonly string[], o: ConfusionMatrixOptions = {}): string {
  const L = confusionMatrixLayout(counts, classNames);
  const n = classNames.length;
  const total = counts.flat().reduce((a, b) => a + b, 0);
  const right = counts.reduce((a, row, i) => a + row[i]!, 0);
  const acc = total > 0 ? ` (accuracy ${((100 * right) / total).toFixed(2)}%)` : '';
  const body = [text(L.width / 2, 28, `${o.title ?? 'Confusion matrix'}${acc}`, { size: 16, anchor: 'middle', weight: 'bold' })];
  const { x: gx, y: gy } = L.origin(0, 0);
  const side = n * L.cell;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const share = rowShare(counts, i, j);
      const { x, y } = L.origin(i, j);
      body.push(`<rect x="${x}" y="${y}" width="${L.cell}" height="${L.cell}" fill="${rgbToHex(blues(share))}" shape-rendering="crispEdges"/>`);
      if (L.cell >= 22) {
        const size = Math.min(12, Math.floor(L.cell / 3.2));
        body.push(text(x + L.cell / 2, y + L.cell / 2 + size / 3, String(counts[i]![j]), { size, anchor: 'middle', fill: share > 0.5 ? '#ffffff' : INK }));
      }
    }
    body.push(text(gx - 8, gy + (i + 0.5) * L.cell + 4, classNames[i]!, { size: 12, anchor: 'end' }));
    const lx = gx + (i + 0.5) * L.cell + 4;
    body.push(text(lx, gy + side + 8, classNames[i]!, { size: 12, anchor: 'end', rotate: -90 }));
  }
  body.push(`<rect x="${gx}" y="${gy}" width="${side}" height="${side}" fill="none" stroke="${INK}" stroke-width="1"/>`);
  body.push(text(16, gy + side / 2, 'true class', { size: 13, anchor: 'middle', rotate: -90 }));
  body.push(text(gx + side / 2, L.height - 12, 'predicted class', { size: 13, anchor: 'middle' }));
  return svgDocument(L.width, L.height, body);
}

export function confusionMatrix(counts: readonly (readonly number[])[], classNames: readonly string[], o: ConfusionMatrixOptions = {}): Promise<Uint8Array> {
  return svgToPng(confusionMatrixSvg(counts, classNames, o));
}

export async function writeConfusionMatrix(path: string, counts: readonly (readonly number[])[], classNames: readonly string[], o: ConfusionMatrixOptions = {}): Promise<void> {
  writeFileAtomic(path, await confusionMatrix(counts, classNames, o));
}
