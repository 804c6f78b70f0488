/** Where the cells of a picture grid go: the image grid and the heatmap grid share this. */
export interface GridLayout {
  readonly width: number;
  readonly height: number;
  /** Top-left pixel of cell (row, col). */
  readonly origin: (row: number, col: number) => { x: number; y: number };
}

export interface GridSpec {
  readonly rows: number;
  readonly cols: number;
  readonly cellWidth: number;
  readonly cellHeight: number;
  readonly gap: number;
  /** Space kept free left of and above the cells (row labels, a title). */
  readonly left: number;
  readonly top: number;
}

export function gridLayout(g: GridSpec): GridLayout {
  return {
    width: g.left + g.gap + g.cols * (g.cellWidth + g.gap),
    height: g.top + g.gap + g.rows * (g.cellHeight + g.gap),
    origin: (r, c) => ({ x: g.left + g.gap + c * (g.cellWidth + g.gap), y: g.top + g.gap + r * (g.cellHeight + g.gap) }),
  };
}

/** Fills a width x height RGB canvas with one colour. */
export function canvas(width: number, height: number, rgb: readonly [number, number, number]): Uint8Array {
  const px = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) px.set(rgb, i * 3);
  return px;
}
