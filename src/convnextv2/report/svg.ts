/** Small SVG-building helpers: escaping, number labels, tick positions, text. */
import { INK } from './colors.js';

export const FONT = 'DejaVu Sans, Verdana, sans-serif';

/** Escapes text for SVG content and attribute values (titles and class names come from users). */
export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A short label for a tick value. */
export function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(1).replace('e+', 'e');
  return String(Number.parseFloat(v.toPrecision(4)));
}

/** A "nice" step (1, 2 or 5 times a power of ten) giving about `target` intervals over the span. */
export function niceStep(span: number, target: number): number {
  const raw = span / Math.max(1, target);
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/** A linear axis range covering [lo, hi], widened to nice ticks, and its ticks. */
export function linearAxis(lo: number, hi: number, target = 5, exact = false): { lo: number; hi: number; ticks: number[] } {
  if (!(hi > lo)) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo, target);
  const a = exact ? lo : Math.floor(lo / step + 1e-9) * step;
  const b = exact ? hi : Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let t = Math.ceil(a / step - 1e-9) * step; t <= b + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return { lo: a, hi: b, ticks };
}

/** The nearest of 1, 2, 5 times a power of ten below (or above) v > 0. */
function snap125(v: number, dir: 'down' | 'up'): number {
  const e = Math.floor(Math.log10(v) + 1e-9);
  const grid = [1, 2, 5, 10].map((m) => m * 10 ** e);
  if (dir === 'down') return grid.filter((g) => g <= v * (1 + 1e-9)).pop() ?? grid[0]!;
  return grid.find((g) => g >= v * (1 - 1e-9)) ?? grid[3]!;
}

/** A log10 axis covering [lo, hi] (both > 0), bounds snapped to 1-2-5 unless exact; ticks at 1, 2, 5 per decade when few. */
export function logAxis(lo: number, hi: number, exact = false): { lo: number; hi: number; ticks: number[] } {
  if (!(hi > lo)) {
    lo /= 2;
    hi *= 2;
  }
  const a = exact ? lo : snap125(lo, 'down');
  const b = exact ? hi : snap125(hi, 'up');
  const decades = Math.log10(b / a);
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(a) + 1e-9); e <= Math.ceil(Math.log10(b) - 1e-9); e++) {
    for (const m of decades <= 2 ? [1, 2, 5] : [1]) {
      const t = m * 10 ** e;
      if (t >= a * (1 - 1e-9) && t <= b * (1 + 1e-9)) ticks.push(t);
    }
  }
  return { lo: a, hi: b, ticks };
}

export interface TextOptions {
  size?: number;
  anchor?: 'start' | 'middle' | 'end';
  weight?: 'normal' | 'bold';
  fill?: string;
  rotate?: number;
}

export function text(x: number, y: number, s: string, o: TextOptions = {}): string {
  const rot = o.rotate ? ` transform="rotate(${o.rotate} ${x} ${y})"` : '';
  return `<text x="${x}" y="${y}" font-family="${FONT}" font-size="${o.size ?? 13}" text-anchor="${o.anchor ?? 'start'}" font-weight="${o.weight ?? 'normal'}" fill="${o.fill ?? INK}"${rot}>${esc(s)}</text>`;
}

export function svgDocument(width: number, height: number, body: readonly string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>${body.join('')}</svg>`;
}

/** Rough text width (DejaVu Sans averages ~0.6 em per character), for laying out legends. */
export function textWidth(s: string, size = 13): number {
  return s.length * size * 0.6;
}

/** An SVG with no background, to composite over pixels. */
export function svgDocumentTransparent(width: number, height: number, body: readonly string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${body.join('')}</svg>`;
}
