/**
 * A stride-1 'same' convolution (ConvNeXt's depthwise 7x7) whose input is zero at masked sites,
 * computed at the visible sites only. Two routes, picked by a cost rule:
 *
 * - halo tiles: gather each kept patch's (s+lo+hi)^2 neighbourhood from the compact tensor
 *   (zeros where a neighbour is masked or outside the image) and run a VALID convolution on the
 *   tiles (batch M). Exactly the visible work, but the tiles repeat cells: (s+6)^2 / s^2 = 3x at
 *   s = 8, 16x at s = 2, 49x at s = 1.
 * - dense: scatter the compact input to the grid (zeros at masked sites), convolve densely,
 *   gather the visible cells back. All the work, no repeated cells.
 *
 * The cost of each is its multiply-adds plus GATHER_COST per element a gather or scatter moves;
 * the smaller wins (the halo route at s = 8 and 4 for ConvNeXt at 224, the dense one at s = 1).
 */
import type { ConvParams } from '../../ir/primitive.js';
import { bind1 } from '../../ir/trace.js';
import type { Tensor } from '../../ir/tensor.js';
import { compactRows, type MaskGeometry } from './geometry.js';
import type { MaskTables } from './index_tables.js';

/** Multiply-adds one moved element is worth (a data-dependent load and a store). */
export const GATHER_COST = 4;

export type ConvRoute = 'halo' | 'dense';

export interface SameConv {
  readonly s: number;
  readonly channelsIn: number;
  readonly channelsOut: number;
  readonly window: readonly [number, number];
  readonly groups: number;
}

export function chooseRoute(g: MaskGeometry, c: SameConv): ConvRoute {
  const m = compactRows(g);
  const [kh, kw] = c.window;
  const macsPerCell = kh * kw * (c.channelsIn / c.groups) * c.channelsOut;
  const visible = m * c.s * c.s;
  const grid = g.n * g.L * c.s * c.s;
  const tiles = m * (c.s + kh - 1) * (c.s + kw - 1) * c.channelsIn;
  const halo = visible * macsPerCell + GATHER_COST * tiles;
  const dense = grid * macsPerCell + GATHER_COST * (grid * c.channelsIn + visible * c.channelsOut);
  return halo <= dense ? 'halo' : 'dense';
}

/** The convolution of the compact input `xc` [M, s, s, C] by `w`, at the visible sites: [M, s, s, Cout]. */
export function maskedSameConv(tables: MaskTables, xc: Tensor, w: Tensor, params: ConvParams, c: SameConv): Tensor {
  const route = chooseRoute(tables.g, c);
  if (route === 'halo') {
    const pads = [params.padding[0]!, params.padding[1]!] as const;
    const tiles = tables.haloTiles(xc, c.s, pads);
    return bind1('conv_general', [tiles, w], { ...params, padding: [[0, 0], [0, 0]] });
  }
  const y = bind1('conv_general', [tables.toDense(xc, c.s), w], params);
  return tables.toCompact(y, c.s);
}
