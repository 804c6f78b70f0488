/**
 * A grid of activation maps (e.g. 64 channels of one layer), each normalised to its own
 * [min, max] and coloured with viridis; a constant map (a collapsed channel) is drawn as its
 * lowest colour.
 */
import { checkCanvas, checkPositiveInt, checkText, ReportError } from './checks.js';
import { BACKGROUND, hexToRgb, viridis } from './colors.js';
import { canvas, gridLayout, type GridLayout } from './grid_layout.js';
import { rgbToPng, writeFileAtomic } from './png.js';
import { svgDocumentTransparent, text } from './svg.js';

export interface HeatmapGridOptions {
  height: number;
  width: number;
  cols: number;
  /** Pixel replication factor (default 1). */
  scale?: number;
  gap?: number;
  title?: string;
}

const TITLE_HEIGHT = 30;

export function heatmapGridLayout(maps: readonly Float32Array[], o: HeatmapGridOptions): GridLayout {
  const fn = 'heatmapGrid';
  if (!Array.isArray(maps) || maps.length === 0) throw new ReportError(`${fn}: maps must be a non-empty array of Float32Array`);
  if (o === null || typeof o !== 'object') throw new ReportError(`${fn}: options { height, width, cols } are required`);
  const h = checkPositiveInt(fn, 'height', o.height);
  const w = checkPositiveInt(fn, 'width', o.width);
  const cols = checkPositiveInt(fn, 'cols', o.cols, 4096);
  const scale = checkPositiveInt(fn, 'scale', o.scale ?? 1, 64);
  const gap = o.gap ?? 2;
  if (!Number.isInteger(gap) || gap < 0 || gap > 256) throw new ReportError(`${fn}: gap must be an integer in [0, 256], got ${String(gap)}`);
  if (o.title !== undefined) checkText(fn, 'title', o.title);
  maps.forEach((m, i) => {
    if (!(m instanceof Float32Array) || m.length !== h * w) throw new ReportError(`${fn}: maps[${i}] must be a Float32Array of ${h}x${w} = ${h * w} values`);
  });
  const layout = gridLayout({ rows: Math.ceil(maps.length / cols), cols: Math.min(cols, maps.length), cellWidth: w * scale, cellHeight: h * scale, gap, left: 0, top: o.title ? TITLE_HEIGHT : 0 });
  checkCanvas(fn, layout.width, layout.height);
  return layout;
}

/** A map scaled to [0, 1] by its finite min and max (constant or empty: all 0; NaN stays NaN). */
export function normaliseMap(m: Float32Array): Float64Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of m) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  const span = hi - lo;
  return Float64Array.from(m, (v) => (span > 0 ? (v - lo) / span : Number.isNaN(v) ? NaN : 0));
}

export function heatmapGrid(maps: readonly Float32Array[], o: HeatmapGridOptions): Promise<Uint8Array> {
  const L = heatmapGridLayout(maps, o);
  const { height: h, width: w, cols } = o;
  const scale = o.scale ?? 1;
  const px = canvas(L.width, L.height, hexToRgb(BACKGROUND));
  maps.forEach((m, k) => {
    const norm = normaliseMap(m);
    const { x: x0, y: y0 } = L.origin(Math.floor(k / cols), k % cols);
    for (let y = 0; y < h * scale; y++) {
      for (let x = 0; x < w * scale; x++) {
        px.set(viridis(norm[Math.floor(y / scale) * w + Math.floor(x / scale)]!), ((y0 + y) * L.width + x0 + x) * 3);
      }
    }
  });
  const overlays = o.title ? [svgDocumentTransparent(L.width, L.height, [text(L.width / 2, 20, o.title, { size: 15, anchor: 'middle', weight: 'bold' })])] : [];
  return rgbToPng(px, L.width, L.height, overlays);
}

export async function writeHeatmapGrid(path: string, maps: readonly Float32Array[], o: HeatmapGridOptions): Promise<void> {
  writeFileAtomic(path, await heatmapGrid(maps, o));
}
