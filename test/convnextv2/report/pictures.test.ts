import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import * as R from '../../../src/convnextv2/report/index.js';
import { ReportError } from '../../../src/convnextv2/report/index.js';

interface Decoded { width: number; height: number; px(x: number, y: number): [number, number, number] }

async function decode(png: Uint8Array): Promise<Decoded> {
  expect(Array.from(png.subarray(0, 8))).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return {
    width: info.width,
    height: info.height,
    px: (x, y) => {
      const i = (Math.floor(y) * info.width + Math.floor(x)) * info.channels;
      return [data[i]!, data[i + 1]!, data[i + 2]!];
    },
  };
}
const hex = (h: string): [number, number, number] => [1, 3, 5].map((i) => Number.parseInt(h.slice(i, i + 2), 16)) as [number, number, number];
const WHITE: [number, number, number] = [255, 255, 255];
function near(got: [number, number, number], want: [number, number, number], tol = 2): void {
  got.forEach((v, k) => expect(Math.abs(v - want[k]!), `got ${got}, want ${want}`).toBeLessThanOrEqual(tol));
}
/** Pixels darker than mid-grey in a rectangle: text was drawn there. */
function darkPixels(d: Decoded, x0: number, y0: number, x1: number, y1: number): number {
  let n = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (d.px(x, y)[0] < 128) n++;
  return n;
}
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nexgrad-report-'));

describe('imageGrid', () => {
  it('cells hold the input images pixel for pixel (scaled), gaps are white, row labels are drawn', async () => {
    const h = 5;
    const w = 4;
    const imgs = Array.from({ length: 6 }, (_, i) => Float32Array.from({ length: 3 * h * w }, (_, k) => ((i * 29 + k * 13) % 97) / 96));
    const rows = [imgs.slice(0, 3), imgs.slice(3, 5)];
    const png = await R.imageGrid(rows, { channels: 3, height: h, width: w, scale: 3, labels: ['original', 'reconstruction'] });
    const d = await decode(png);
    const L = R.imageGridLayout(rows, { channels: 3, height: h, width: w, scale: 3, labels: ['original', 'reconstruction'] });
    expect([d.width, d.height]).toEqual([L.width, L.height]);
    rows.forEach((row, r) => row.forEach((img, c) => {
      const o = L.origin(r, c);
      for (let y = 0; y < h * 3; y++) {
        for (let x = 0; x < w * 3; x++) {
          const src = Math.floor(y / 3) * w + Math.floor(x / 3);
          expect(d.px(o.x + x, o.y + y)).toEqual([0, 1, 2].map((ch) => Math.round(img[ch * h * w + src]! * 255)));
        }
      }
      expect(d.px(o.x - 1, o.y)).toEqual(WHITE); // the gap before the cell
    }));
    expect(d.px(L.origin(1, 2).x + 2, L.origin(1, 2).y + 2)).toEqual(WHITE); // the missing third image of row 1
    for (const r of [0, 1]) expect(darkPixels(d, 0, L.origin(r, 0).y, L.origin(r, 0).x - 2, L.origin(r, 0).y + h * 3)).toBeGreaterThan(20);
  });
  it('grey images are replicated to RGB; values are clamped to [0, 1]', async () => {
    const img = Float32Array.from([-0.5, 0, 0.5, 1.5]);
    const d = await decode(await R.imageGrid([[img]], { channels: 1, height: 2, width: 2, gap: 0 }));
    expect([d.width, d.height]).toEqual([2, 2]);
    expect([d.px(0, 0), d.px(1, 0), d.px(0, 1), d.px(1, 1)]).toEqual([[0, 0, 0], [0, 0, 0], [128, 128, 128], [255, 255, 255]]);
  });
  it('rejects a wrong image length, label count or channel count', async () => {
    expect(() => R.imageGridLayout([[new Float32Array(5)]], { channels: 1, height: 2, width: 2 })).toThrow(/rows\[0\]\[0\] must be a Float32Array of 1x2x2 = 4 values, got 5/);
    expect(() => R.imageGridLayout([[new Float32Array(4)]], { channels: 1, height: 2, width: 2, labels: ['a', 'b'] })).toThrow(/one string per row \(1\), got 2/);
    expect(() => R.imageGridLayout([[new Float32Array(8)]], { channels: 2, height: 2, width: 2 })).toThrow(ReportError);
    expect(() => R.imageGridLayout([[new Float32Array(4)]], { channels: 1, height: 2, width: 2, scale: 10000 })).toThrow(/scale must be an integer in \[1, 64\]/);
  });
});

describe('heatmapGrid', () => {
  it('each map is normalised on its own and coloured with viridis (anchors #440154, #21908c, #fde725)', async () => {
    const a = Float32Array.from([-3, 1, 5, 5]); // min -3, mid 1, max 5
    const b = Float32Array.from([100, 200, 300, 200]); // another range, same picture
    const flat = Float32Array.from([7, 7, 7, 7]); // a collapsed channel
    const opts = { height: 2, width: 2, cols: 2, scale: 2, title: '3 maps' };
    const d = await decode(await R.heatmapGrid([a, b, flat], opts));
    const L = R.heatmapGridLayout([a, b, flat], opts);
    expect([d.width, d.height]).toEqual([L.width, L.height]);
    const at = (k: number, i: number): [number, number, number] => {
      const o = L.origin(Math.floor(k / 2), k % 2);
      return d.px(o.x + (i % 2) * 2 + 1, o.y + Math.floor(i / 2) * 2 + 1);
    };
    expect([at(0, 0), at(0, 1), at(0, 2), at(0, 3)]).toEqual([hex('#440154'), hex('#21908c'), hex('#fde725'), hex('#fde725')]);
    expect([at(1, 0), at(1, 1), at(1, 2), at(1, 3)]).toEqual([hex('#440154'), hex('#21908c'), hex('#fde725'), hex('#21908c')]);
    for (let i = 0; i < 4; i++) expect(at(2, i)).toEqual(hex('#440154'));
    expect(darkPixels(d, 0, 0, d.width, 28)).toBeGreaterThan(30); // the title
  });
  it('rejects maps of the wrong size', () => {
    expect(() => R.heatmapGridLayout([new Float32Array(3)], { height: 2, width: 2, cols: 1 })).toThrow(/maps\[0\] must be a Float32Array of 2x2 = 4 values/);
  });
});

describe('lineChart', () => {
  it('draws each series in its colour where its values map, on a white plot, with a title', async () => {
    // Single series: no legend, so the plot is plotRect(760, 460) and the ranges are exact.
    const spec = { title: 'loss', xLabel: 'step', yLabel: 'loss', xRange: [0, 10] as [number, number], yRange: [0, 2] as [number, number], series: [{ name: 'train', points: [[0, 0.5], [10, 0.5]] as [number, number][] }] };
    const d = await decode(await R.lineChart(spec));
    expect([d.width, d.height]).toEqual([760, 460]);
    const r = R.plotRect(760, 460);
    const py = r.bottom - (0.5 / 2) * (r.bottom - r.top);
    for (const fx of [0.23, 0.51, 0.77]) near(d.px(r.left + fx * (r.right - r.left), py), hex('#1f77b4'));
    near(d.px(r.left + 0.33 * (r.right - r.left), r.top + 0.11 * (r.bottom - r.top)), WHITE, 0);
    expect(darkPixels(d, r.left, 5, r.right, 36)).toBeGreaterThan(40);
    expect(darkPixels(d, r.left, r.bottom + 30, r.right, 460)).toBeGreaterThan(20); // the x label
  });
  it('log y: 10 sits halfway between 1 and 100; two series get two colours and a legend', async () => {
    const spec = { title: 'loss', xLabel: 'step', yLabel: 'loss', logY: true, xRange: [0, 4] as [number, number], yRange: [1, 100] as [number, number],
      series: [{ name: 'train', points: [[0, 10], [4, 10]] as [number, number][] }, { name: 'val', points: [[0, 50], [2, 0], [4, 50]] as [number, number][] }] };
    const d = await decode(await R.lineChart(spec));
    const L = R.lineChartLayout(spec);
    expect(L.y(10)).toBeCloseTo((L.rect.top + L.rect.bottom) / 2, 9);
    near(d.px(L.x(1.3), L.y(10)), hex('#1f77b4'));
    // y = 0 cannot be drawn on a log axis: the val line joins (0, 50) and (4, 50) directly.
    near(d.px(L.x(3), L.y(50)), hex('#d62728'));
    expect(darkPixels(d, L.rect.right + 30, L.rect.top, 760, L.rect.top + 50)).toBeGreaterThan(20); // legend names
    near(d.px(L.rect.right + 20, L.rect.top + 15), hex('#1f77b4'), 0); // legend swatches
    near(d.px(L.rect.right + 20, L.rect.top + 37), hex('#d62728'), 0);
  });
  it('rejects bad specs with the argument named', () => {
    expect(() => R.lineChartLayout({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[1, 2, 3]] as unknown as [number, number][] }] })).toThrow(/series\[0\] \("a"\) points must be \[x, y\] number pairs/);
    expect(() => R.lineChartLayout({ title: 't', xLabel: 'x', yLabel: 'y', series: [], yRange: [2, 1] })).toThrow(/yRange must be \[low, high\] with low < high/);
    expect(() => R.lineChartLayout({ title: 't', xLabel: 'x', yLabel: 'y', series: [], logY: true, yRange: [0, 1] })).toThrow(/log-scale yRange must be positive/);
  });
});

describe('barChart', () => {
  it('bars rise from zero to their value, in series colours, grouped per label', async () => {
    const spec = { title: 'cosine distance', labels: ['s0', 's1', 's2'], yRange: [0, 4] as [number, number], series: [{ name: 'V2', values: [1, 2, 3] }, { name: 'GRN off', values: [3, 0.5, 2] }] };
    const d = await decode(await R.barChart(spec));
    const L = R.barChartLayout(spec);
    const r = L.rect;
    const groupW = (r.right - r.left) / 3;
    spec.series.forEach((s, si) => s.values.forEach((v, g) => {
      // Independent geometry: groups split the plot; 10% margins; bars side by side.
      const x = r.left + g * groupW + 0.1 * groupW + (si + 0.5) * 0.4 * groupW;
      const top = r.bottom - (v / 4) * (r.bottom - r.top);
      expect(d.px(x, (top + r.bottom) / 2)).toEqual(hex(si === 0 ? '#1f77b4' : '#d62728'));
      expect(d.px(x, top - 6)).toEqual(WHITE);
    }));
  });
  it('a single unnamed series needs no legend; mismatched lengths are refused', async () => {
    const d = await decode(await R.barChart({ title: 't', labels: ['a', 'b'], values: [1, -1] }));
    expect([d.width, d.height]).toEqual([760, 460]);
    expect(() => R.barChartLayout({ title: 't', labels: ['a', 'b'], values: [1] })).toThrow(/series\[0\] needs 2 numbers \(one per label\), got 1/);
    expect(() => R.barChartLayout({ title: 't', labels: ['a'], values: [1], series: [] })).toThrow(/exactly one of values and series/);
  });
});

describe('confusionMatrix', () => {
  it('cells are coloured by their share of the row (Blues: 0 #f7fbff, 1/2 #6baed6, 1 #08306b)', async () => {
    const counts = [[10, 0, 0], [5, 5, 0], [0, 0, 0]];
    const names = ['cat', 'dog', '<bird & co>'];
    const d = await decode(await R.confusionMatrix(counts, names, { title: 'eval' }));
    const L = R.confusionMatrixLayout(counts, names);
    expect([d.width, d.height]).toEqual([L.width, L.height]);
    const cell = (i: number, j: number): [number, number, number] => d.px(L.origin(i, j).x + 3, L.origin(i, j).y + 3);
    expect(cell(0, 0)).toEqual(hex('#08306b'));
    expect(cell(0, 1)).toEqual(hex('#f7fbff'));
    expect(cell(1, 0)).toEqual(hex('#6baed6'));
    expect(cell(1, 1)).toEqual(hex('#6baed6'));
    expect(cell(2, 2)).toEqual(hex('#f7fbff'));
    // the count is written in the middle of the dark cell, in white
    const o = L.origin(0, 0);
    let light = 0;
    for (let y = o.y + L.cell * 0.3; y < o.y + L.cell * 0.7; y++) for (let x = o.x + L.cell * 0.3; x < o.x + L.cell * 0.7; x++) if (d.px(x, y)[0] > 200) light++;
    expect(light).toBeGreaterThan(5);
    expect(darkPixels(d, 0, 5, d.width, 36)).toBeGreaterThan(40); // the title
  });
  it('refuses counts that do not match the classes', () => {
    expect(() => R.confusionMatrixLayout([[1, 2]], ['a', 'b'])).toThrow(/counts must have 2 rows/);
    expect(() => R.confusionMatrixLayout([[1, 2], [3]], ['a', 'b'])).toThrow(/counts\[1\] must have 2 entries, got 1/);
    expect(() => R.confusionMatrixLayout([[1, -2], [3, 4]], ['a', 'b'])).toThrow(/counts\[0\]\[1\] must be a non-negative number, got -2/);
  });
});

describe('write variants', () => {
  it('write the same bytes atomically, creating the folder, leaving no temporary file', async () => {
    const dir = path.join(tmp, 'nested', 'out');
    const spec = { title: 't', labels: ['a', 'b'], values: [1, 2] };
    await R.writeBarChart(path.join(dir, 'bars.png'), spec);
    await R.writeConfusionMatrix(path.join(dir, 'cm.png'), [[1, 0], [0, 1]], ['a', 'b']);
    await R.writeLineChart(path.join(dir, 'loss.png'), { title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[0, 1], [1, 2]] }] });
    await R.writeImageGrid(path.join(dir, 'grid.png'), [[new Float32Array(4)]], { channels: 1, height: 2, width: 2 });
    await R.writeHeatmapGrid(path.join(dir, 'heat.png'), [new Float32Array(4)], { height: 2, width: 2, cols: 1 });
    expect(fs.readdirSync(dir).sort()).toEqual(['bars.png', 'cm.png', 'grid.png', 'heat.png', 'loss.png']);
    expect(new Uint8Array(fs.readFileSync(path.join(dir, 'bars.png')))).toEqual(await R.barChart(spec));
    // Overwriting keeps one file; a failing write leaves the old one in place.
    await R.writeBarChart(path.join(dir, 'bars.png'), { ...spec, values: [2, 1] });
    expect(fs.readdirSync(dir).length).toBe(5);
    fs.mkdirSync(path.join(dir, 'taken.png'));
    await expect(R.writeBarChart(path.join(dir, 'taken.png'), spec)).rejects.toThrow(/cannot write .*taken\.png/);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
