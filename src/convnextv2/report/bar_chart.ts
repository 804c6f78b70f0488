/** Grouped bar charts (e.g. per-layer cosine distance, ConvNeXt V2 against GRN disabled). */
import { CHART_SIZE, frameSvg, legendSvg, plotRect, type PlotRect } from './chart_frame.js';
import { ReportError, checkSeriesName, checkText } from './checks.js';
import { SERIES_COLORS } from './colors.js';
import { svgToPng, writeFileAtomic } from './png.js';
import { linearAxis, svgDocument, textWidth } from './svg.js';

export interface BarSeries {
  name: string;
  values: readonly number[];
}

export interface BarChartSpec {
  title: string;
  /** One label per group (x axis). */
  labels: readonly string[];
  /** One bar per group (a single unnamed series); or use `series`. */
  values?: readonly number[];
  /** Several named series: one bar of each per group, side by side. */
  series?: readonly BarSeries[];
  yLabel?: string;
  /** y range used exactly as given (default: 0 and the data, widened to nice ticks). */
  yRange?: [number, number];
  width?: number;
  height?: number;
}

export interface BarRect {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly color: string;
}

export interface BarChartLayout {
  readonly rect: PlotRect;
  readonly y: (v: number) => number;
  /** bars[s][g]: series s, group g. */
  readonly bars: readonly (readonly BarRect[])[];
}

function seriesOf(spec: BarChartSpec): readonly BarSeries[] {
  if (spec === null || typeof spec !== 'object') throw new ReportError('barChart: expected { title, labels, values | series }');
  checkText('barChart', 'title', spec.title);
  if (!Array.isArray(spec.labels) || spec.labels.length === 0) throw new ReportError('barChart: labels must be a non-empty array of strings');
  spec.labels.forEach((l, i) => checkText('barChart', `labels[${i}]`, l));
  if ((spec.values === undefined) === (spec.series === undefined)) throw new ReportError('barChart: give exactly one of values and series');
  const series = spec.series ?? [{ name: '', values: spec.values! }];
  series.forEach((s, i) => {
    checkSeriesName('barChart', i, s);
    if (!Array.isArray(s.values) || s.values.length !== spec.labels.length || !s.values.every((v) => typeof v === 'number')) {
      throw new ReportError(`barChart: series[${i}] needs ${spec.labels.length} numbers (one per label), got ${Array.isArray(s.values) ? s.values.length : typeof s.values}`);
    }
  });
  if (spec.yRange !== undefined && !(Array.isArray(spec.yRange) && spec.yRange.length === 2 && spec.yRange[1] > spec.yRange[0])) {
    throw new ReportError(`barChart: yRange must be [low, high] with low < high, got ${JSON.stringify(spec.yRange)}`);
  }
  return series;
}

function yAxis(spec: BarChartSpec, series: readonly BarSeries[]) {
  const vs = series.flatMap((s) => s.values.filter(Number.isFinite));
  const lo = spec.yRange?.[0] ?? Math.min(0, ...vs);
  const hi = spec.yRange?.[1] ?? Math.max(0, ...vs);
  return linearAxis(lo, hi, 5, spec.yRange !== undefined);
}

export function barChartLayout(spec: BarChartSpec): BarChartLayout {
  const series = seriesOf(spec);
  const width = spec.width ?? CHART_SIZE.width;
  const height = spec.height ?? CHART_SIZE.height;
  const named = spec.series !== undefined;
  const rect = plotRect(width, height, named ? 44 + Math.max(...series.map((s) => textWidth(s.name, 12))) : 0);
  const axis = yAxis(spec, series);
  const y = (v: number): number => rect.bottom - ((v - axis.lo) / (axis.hi - axis.lo)) * (rect.bottom - rect.top);
  const groups = spec.labels.length;
  const groupW = (rect.right - rect.left) / groups;
  const barW = (groupW * 0.8) / series.length;
  const base = y(Math.min(Math.max(0, axis.lo), axis.hi));
  const bars = series.map((s, si) =>
    s.values.map((v, g) => {
      const top = Number.isFinite(v) ? Math.min(Math.max(y(v), rect.top), rect.bottom) : base;
      return {
        x: rect.left + g * groupW + groupW * 0.1 + si * barW,
        y: Math.min(top, base),
        width: barW,
        height: Math.abs(base - top),
        color: SERIES_COLORS[si % SERIES_COLORS.length]!,
      };
    }),
  );
  return { rect, y, bars };
}

export function barChartSvg(spec: BarChartSpec): string {
  const L = barChartLayout(spec);
  const series = seriesOf(spec);
  const axis = yAxis(spec, series);
  const groupW = (L.rect.right - L.rect.left) / spec.labels.length;
  // Long labels for many groups would collide: keep every k-th.
  const every = Math.max(1, Math.ceil((Math.max(...spec.labels.map((l) => textWidth(l, 12))) + 8) / groupW));
  const xLabels = spec.labels.flatMap((l, g) => (g % every === 0 ? [{ at: L.rect.left + (g + 0.5) * groupW, text: l }] : []));
  const body = frameSvg(L.rect, spec.title, undefined, { ticks: axis.ticks, at: L.y, label: spec.yLabel ?? '' }, { x: xLabels });
  for (const s of L.bars) {
    for (const b of s) body.push(`<rect x="${b.x}" y="${b.y}" width="${b.width}" height="${b.height}" fill="${b.color}" shape-rendering="crispEdges"/>`);
  }
  if (spec.series) body.push(...legendSvg(L.rect, series.map((s, i) => ({ name: s.name, color: L.bars[i]![0]!.color }))));
  return svgDocument(spec.width ?? CHART_SIZE.width, spec.height ?? CHART_SIZE.height, body);
}

export function barChart(spec: BarChartSpec): Promise<Uint8Array> {
  return svgToPng(barChartSvg(spec));
}

export async function writeBarChart(path: string, spec: BarChartSpec): Promise<void> {
  writeFileAtomic(path, await barChart(spec));
}
