/** Colours of the pictures: a categorical palette for series and two colour maps. */
export type Rgb = readonly [number, number, number];

/** Series colours (matplotlib's tab10 order). */
export const SERIES_COLORS: readonly string[] = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

export const BACKGROUND = '#ffffff';
export const INK = '#222222';
export const GRID = '#e6e6e6';

export function hexToRgb(hex: string): Rgb {
  const v = Number.parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

export function rgbToHex(c: Rgb): string {
  return `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

/** Evenly spaced anchors of a colour map, linearly interpolated in RGB. */
function colormap(anchors: readonly string[]): (t: number) => Rgb {
  const rgb = anchors.map(hexToRgb);
  return (t: number): Rgb => {
    const x = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) * (rgb.length - 1) : 0;
    const i = Math.min(rgb.length - 2, Math.floor(x));
    const f = x - i;
    const a = rgb[i]!;
    const b = rgb[i + 1]!;
    return [0, 1, 2].map((k) => Math.round(a[k]! + f * (b[k]! - a[k]!))) as unknown as Rgb;
  };
}

/** Viridis at nine evenly spaced points: perceptually uniform, for activation maps. */
export const viridis = colormap(['#440154', '#472d7b', '#3b528b', '#2c728e', '#21908c', '#27ad81', '#5dc863', '#aadc32', '#fde725']);

/** ColorBrewer's sequential Blues, for the confusion matrix. */
export const blues = colormap(['#f7fbff', '#deebf7', '#c6dbef', '#9ecae1', '#6baed6', '#4292c6', '#2171b5', '#08519c', '#08306b']);
