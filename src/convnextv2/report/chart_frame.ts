/**
 * The frame shared by the line and bar charts: margins for the title, axis labels and legend,
 * and the plot rectangle the data maps into. Exported so callers (and tests) can find where a
 * value was drawn.
 */
import { GRID, INK } from './colors.js';
import { fmt, text } from './svg.js';

export interface PlotRect {
  readonly left: number;
  readonly top: number;
  readonly right: number;
  readonly bottom: number;
}

export const CHART_SIZE = { width: 760, height: 460 } as const;
const MARGIN = { left: 78, top: 46, bottom: 58 } as const;

/** The plot rectangle of a chart `width` x `height` whose legend column is `legendWidth` wide. */
export function plotRect(width: number, height: number, legendWidth = 0): PlotRect {
  return { left: MARGIN.left, top: MARGIN.top, right: width - 24 - legendWidth, bottom: height - MARGIN.bottom };
}

export interface AxisSpec {
  readonly ticks: readonly number[];
  /** Pixel position of a value along the axis. */
  readonly at: (v: number) => number;
  readonly label: string;
}

export interface TickLabels {
  /** x-axis labels at given pixel positions instead of numeric ticks (bar charts). */
  readonly x?: readonly { at: number; text: string }[];
}

/** Title, grid lines, axes, tick labels and axis labels as SVG elements. */
export function frameSvg(r: PlotRect, title: string, x: AxisSpec | undefined, y: AxisSpec, labels: TickLabels = {}): string[] {
  const out: string[] = [text((r.left + r.right) / 2, 28, title, { size: 17, anchor: 'middle', weight: 'bold' })];
  for (const t of y.ticks) {
    const py = y.at(t);
    out.push(`<line x1="${r.left}" y1="${py}" x2="${r.right}" y2="${py}" stroke="${GRID}" stroke-width="1"/>`);
    out.push(text(r.left - 8, py + 4, fmt(t), { size: 12, anchor: 'end' }));
  }
  if (x) {
    for (const t of x.ticks) {
      const px = x.at(t);
      out.push(`<line x1="${px}" y1="${r.top}" x2="${px}" y2="${r.bottom}" stroke="${GRID}" stroke-width="1"/>`);
      out.push(text(px, r.bottom + 18, fmt(t), { size: 12, anchor: 'middle' }));
    }
  }
  for (const l of labels.x ?? []) out.push(text(l.at, r.bottom + 18, l.text, { size: 12, anchor: 'middle' }));
  out.push(`<rect x="${r.left}" y="${r.top}" width="${r.right - r.left}" height="${r.bottom - r.top}" fill="none" stroke="${INK}" stroke-width="1"/>`);
  if (x) out.push(text((r.left + r.right) / 2, r.bottom + 44, x.label, { size: 13, anchor: 'middle' }));
  out.push(text(20, (r.top + r.bottom) / 2, y.label, { size: 13, anchor: 'middle', rotate: -90 }));
  return out;
}

/** A legend column to the right of the plot: a colour swatch and a name per entry. */
export function legendSvg(r: PlotRect, entries: readonly { name: string; color: string }[]): string[] {
  return entries.flatMap((e, i) => {
    const y = r.top + 10 + i * 22;
    return [
      `<rect x="${r.right + 14}" y="${y}" width="16" height="10" fill="${e.color}"/>`,
      text(r.right + 36, y + 10, e.name, { size: 12 }),
    ];
  });
}
