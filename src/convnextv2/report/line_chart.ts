/** Line charts (loss and accuracy curves), linear or log-scale y. */
import { CHART_SIZE, frameSvg, legendSvg, plotRect, type PlotRect } from './chart_frame.js';
import { SERIES_COLORS } from './colors.js';
import { writeFileAtomic, svgToPng } from './png.js';
import { linearAxis, logAxis, svgDocument, textWidth } from './svg.js';
import { checkSeriesName, checkText, ReportError } from './checks.js';

export interface LineSeries {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly LineSeries[];
  /** Log-scale y (for losses); points with y <= 0 are left out. */
  logY?: boolean;
  /** Axis ranges used exactly as given (default: the data's, widened to nice ticks). */
  xRange?: [number, number];
  yRange?: [number, number];
  width?: number;
  height?: number;
}

/** Where things are in a line chart: the plot rectangle and the data-to-pixel maps. */
export interface LineChartLayout {
  readonly rect: PlotRect;
  readonly x: (v: number) => number;
  readonly y: (v: number) => number;
  readonly colors: readonly string[];
}

function finitePoints(s: LineSeries, logY: boolean): [number, number][] {
  return s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0)).map(([x, y]) => [x, y]);
}

function checkSpec(spec: LineChartSpec): void {
  checkText('lineChart', 'title', spec?.title);
  checkText('lineChart', 'xLabel', spec.xLabel);
  checkText('lineChart', 'yLabel', spec.yLabel);
  if (!Array.isArray(spec.series)) throw new ReportError('lineChart: series must be an array of { name, points }');
  spec.series.forEach((s, i) => {
    checkSeriesName('lineChart', i, s);
    if (!Array.isArray(s.points) || !s.points.every((p: unknown) => Array.isArray(p) && p.length === 2 && p.every((v: unknown) => typeof v === 'number'))) {
      throw new ReportError(`lineChart: series[${i}] (${JSON.stringify(s.name)}) points must be [x, y] number pairs`);
    }
  });
  for (const k of ['xRange', 'yRange'] as const) {
    const r = spec[k];
    if (r !== undefined && !(Array.isArray(r) && r.length === 2 && Number.isFinite(r[0]) && Number.isFinite(r[1]) && r[1] > r[0])) {
      throw new ReportError(`lineChart: ${k} must be [low, high] with low < high, got ${JSON.stringify(r)}`);
    }
  }
  if (spec.logY && spec.yRange && spec.yRange[0] <= 0) throw new ReportError(`lineChart: a log-scale yRange must be positive, got ${JSON.stringify(spec.yRange)}`);
}

function axes(spec: LineChartSpec, pts: [number, number][][]) {
  const all = pts.flat();
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const xr = spec.xRange ?? [xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1];
  const yr = spec.yRange ?? (ys.length ? [Math.min(...ys), Math.max(...ys)] : spec.logY ? [1, 10] : [0, 1]);
  const x = linearAxis(xr[0], xr[1], 6, spec.xRange !== undefined);
  const y = spec.logY ? logAxis(yr[0], yr[1], spec.yRange !== undefined) : linearAxis(yr[0], yr[1], 5, spec.yRange !== undefined);
  return { x, y };
}

/** The layout lineChart will use for `spec`. */
export function lineChartLayout(spec: LineChartSpec): LineChartLayout {
  checkSpec(spec);
  const width = spec.width ?? CHART_SIZE.width;
  const height = spec.height ?? CHART_SIZE.height;
  const legend = spec.series.length > 1 ? 44 + Math.max(...spec.series.map((s) => textWidth(s.name, 12))) : 0;
  const rect = plotRect(width, height, legend);
  const { x, y } = axes(spec, spec.series.map((s) => finitePoints(s, spec.logY ?? false)));
  const ly = (v: number): number => (spec.logY ? Math.log10(v) : v);
  return {
    rect,
    x: (v) => rect.left + ((v - x.lo) / (x.hi - x.lo)) * (rect.right - rect.left),
    y: (v) => rect.bottom - ((ly(v) - ly(y.lo)) / (ly(y.hi) - ly(y.lo))) * (rect.bottom - rect.top),
    colors: spec.series.map((_, i) => SERIES_COLORS[i % SERIES_COLORS.length]!),
  };
}

export function lineChartSvg(spec: LineChartSpec): string {
  const L = lineChartLayout(spec);
  const width = spec.width ?? CHART_SIZE.width;
  const height = spec.height ?? CHART_SIZE.height;
  const pts = spec.series.map((s) => finitePoints(s, spec.logY ?? false));
  const { x, y } = axes(spec, pts);
  const body = frameSvg(L.rect, spec.title, { ticks: x.ticks, at: L.x, label: spec.xLabel }, { ticks: y.ticks, at: L.y, label: spec.yLabel + (spec.logY ? ' (log)' : '') });
  const r = L.rect;
  body.push(`<clipPath id="plot"><rect x="${r.left}" y="${r.top}" width="${r.right - r.left}" height="${r.bottom - r.top}"/></clipPath>`);
  pts.forEach((p, i) => {
    const color = L.colors[i]!;
    const coords = p.map(([px, py]) => `${L.x(px).toFixed(2)},${L.y(py).toFixed(2)}`).join(' ');
    if (p.length > 1) body.push(`<polyline clip-path="url(#plot)" points="${coords}" fill="none" stroke="${color}" stroke-width="2.5" stroke-linejoin="round"/>`);
    else if (p.length === 1) body.push(`<circle clip-path="url(#plot)" cx="${L.x(p[0]![0])}" cy="${L.y(p[0]![1])}" r="3" fill="${color}"/>`);
  });
  if (spec.series.length > 1) body.push(...legendSvg(r, spec.series.map((s, i) => ({ name: s.name, color: L.colors[i]! }))));
  return svgDocument(width, height, body);
}

/** A line chart as PNG bytes. */
export function lineChart(spec: LineChartSpec): Promise<Uint8Array> {
  return svgToPng(lineChartSvg(spec));
}

export async function writeLineChart(path: string, spec: LineChartSpec): Promise<void> {
  writeFileAtomic(path, await lineChart(spec));
}
