/**
 * A grid of images (e.g. FCMAE's original / masked / reconstruction rows), drawn pixel for pixel:
 * each CHW image in [0, 1] becomes 8-bit grey or RGB, enlarged `scale` times by pixel
 * replication, so the PNG holds exactly the input values (rounded to 1/255).
 */
import { checkCanvas, checkPositiveInt, checkText, ReportError } from './checks.js';
import { BACKGROUND, hexToRgb } from './colors.js';
import { canvas, gridLayout, type GridLayout } from './grid_layout.js';
import { rgbToPng, writeFileAtomic } from './png.js';
import { svgDocumentTransparent, text, textWidth } from './svg.js';

export interface ImageGridOptions {
  channels: number;
  height: number;
  width: number;
  /** Pixel replication factor (default 1). */
  scale?: number;
  /** One label per row, drawn left of it. */
  labels?: readonly string[];
  /** Pixels between cells (default 2). */
  gap?: number;
}

const LABEL_SIZE = 13;

export function imageGridLayout(rows: readonly (readonly Float32Array[])[], o: ImageGridOptions): GridLayout {
  const fn = 'imageGrid';
  if (!Array.isArray(rows) || rows.length === 0 || !rows.every((r) => Array.isArray(r))) throw new ReportError(`${fn}: rows must be a non-empty array of arrays of images`);
  if (o === null || typeof o !== 'object') throw new ReportError(`${fn}: options { channels, height, width } are required`);
  if (o.channels !== 1 && o.channels !== 3) throw new ReportError(`${fn}: channels must be 1 (grey) or 3 (RGB), got ${String(o.channels)}`);
  const h = checkPositiveInt(fn, 'height', o.height);
  const w = checkPositiveInt(fn, 'width', o.width);
  const scale = checkPositiveInt(fn, 'scale', o.scale ?? 1, 64);
  const gap = o.gap ?? 2;
  if (!Number.isInteger(gap) || gap < 0 || gap > 256) throw new ReportError(`${fn}: gap must be an integer in [0, 256], got ${String(gap)}`);
  if (o.labels !== undefined) {
    if (!Array.isArray(o.labels) || o.labels.length !== rows.length) throw new ReportError(`${fn}: labels must have one string per row (${rows.length}), got ${Array.isArray(o.labels) ? o.labels.length : typeof o.labels}`);
    o.labels.forEach((l, i) => checkText(fn, `labels[${i}]`, l));
  }
  rows.forEach((r, i) => r.forEach((img, j) => {
    if (!(img instanceof Float32Array) || img.length !== o.channels * h * w) {
      throw new ReportError(`${fn}: rows[${i}][${j}] must be a Float32Array of ${o.channels}x${h}x${w} = ${o.channels * h * w} values, got ${img instanceof Float32Array ? img.length : typeof img}`);
    }
  }));
  const left = o.labels ? Math.ceil(Math.max(...o.labels.map((l) => textWidth(l, LABEL_SIZE)))) + 16 : 0;
  const cols = Math.max(1, ...rows.map((r) => r.length));
  const layout = gridLayout({ rows: rows.length, cols, cellWidth: w * scale, cellHeight: h * scale, gap, left, top: 0 });
  checkCanvas(fn, layout.width, layout.height);
  return layout;
}

/** An 8-bit value of a float in [0, 1] (NaN as 0). */
export function toByte(v: number): number {
  return Number.isNaN(v) ? 0 : Math.round(Math.min(1, Math.max(0, v)) * 255);
}

export function imageGrid(rows: readonly (readonly Float32Array[])[], o: ImageGridOptions): Promise<Uint8Array> {
  const L = imageGridLayout(rows, o);
  const { channels: c, height: h, width: w } = o;
  const scale = o.scale ?? 1;
  const px = canvas(L.width, L.height, hexToRgb(BACKGROUND));
  rows.forEach((row, r) => row.forEach((img, col) => {
    const { x: x0, y: y0 } = L.origin(r, col);
    for (let y = 0; y < h * scale; y++) {
      for (let x = 0; x < w * scale; x++) {
        const src = Math.floor(y / scale) * w + Math.floor(x / scale);
        const dst = ((y0 + y) * L.width + x0 + x) * 3;
        for (let k = 0; k < 3; k++) px[dst + k] = toByte(img[(c === 1 ? 0 : k) * h * w + src]!);
      }
    }
  }));
  const overlays = o.labels
    ? [svgDocumentTransparent(L.width, L.height, o.labels.map((l, r) => text(L.origin(r, 0).x - 10, L.origin(r, 0).y + (h * scale) / 2 + 4, l, { size: LABEL_SIZE, anchor: 'end' })))]
    : [];
  return rgbToPng(px, L.width, L.height, overlays);
}

export async function writeImageGrid(path: string, rows: readonly (readonly Float32Array[])[], o: ImageGridOptions): Promise<void> {
  writeFileAtomic(path, await imageGrid(rows, o));
}
