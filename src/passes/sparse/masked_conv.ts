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
 * the smaller wins (the halo route at s = 8, 4 and 2 for ConvNeXt at 224, the dense one at s = 1).
 *
 * The halo route's backward, left to autodiff, would convolve the cotangent back onto every tile
 * cell and scatter-add the tiles ((s+6)^2/s^2 times the forward's work: 16x at s = 2). So the
 * halo convolution is a custom_vjp whose backward is the same masked convolution again: the
 * input cotangent is the transposed convolution (reversed, regrouped kernel; stride 1 'same')
 * of the compact output cotangent, run on its own halo tiles, and the kernel cotangent is the
 * conv_general rule's on the tiles. (Forward mode cannot go through a custom_vjp, so programs
 * rewritten for jvp keep the plain gather-and-convolve form.)
 */
import { NexgradError } from '../../ir/errors.js';
import * as ops from '../../ir/ops.js';
import type { ConvParams } from '../../ir/primitive.js';
import { PRIMS } from '../../ir/primitives/index.js';
import { bind, bind1, traceFlat } from '../../ir/trace.js';
import type { Tensor } from '../../ir/tensor.js';
import { dce } from '../simplify.js';
import { compactRows, type MaskGeometry } from './geometry.js';
import { gatherTiles, type MaskTables } from './index_tables.js';

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

type Pads = readonly [readonly [number, number], readonly [number, number]];

const VALID: Pads = [
  [0, 0],
  [0, 0],
];

/**
 * The transpose of a stride-1 'same' convolution with an OIHW kernel: a stride-1 'same'
 * convolution with the spatially reversed kernel, input and output features swapped within each
 * group, and the padding mirrored (what conv_general's own lhs-cotangent rule builds).
 */
function transposedSameConv(w: Tensor, p: ConvParams): { w: Tensor; params: ConvParams } {
  const [o, i, kh, kw] = w.shape as [number, number, number, number];
  const groups = p.featureGroupCount;
  const rev = bind1('rev', [w], { axes: [2, 3] });
  const regrouped = ops.reshape(ops.transpose(ops.reshape(rev, [groups, o / groups, i, kh, kw]), [0, 2, 1, 3, 4]), [groups * i, o / groups, kh, kw]);
  const padding = p.padding.map(([lo, hi]) => [hi, lo] as const);
  return { w: regrouped, params: { ...p, padding, dims: { ...p.dims, rhs: [0, 1, 2, 3] } } };
}

/**
 * The halo convolution as a custom_vjp (see the header). Inputs: xc, w, the halo table for the
 * forward padding and the one for the mirrored padding of the transposed convolution.
 */
function haloConvWithVjp(xc: Tensor, w: Tensor, fwdIdx: Tensor, bwdIdx: Tensor, params: ConvParams): Tensor {
  const valid: ConvParams = { ...params, padding: VALID };
  const forward = (x: Tensor, k: Tensor, idx: Tensor): Tensor => bind1('conv_general', [gatherTiles(x, idx), k], valid);
  const avals = [xc.aval, w.aval, fwdIdx.aval, bwdIdx.aval];
  const body = traceFlat((x, k, i1) => [forward(x!, k!, i1!)], avals);
  const fwd = traceFlat((x, k, i1, i2) => [forward(x!, k!, i1!), x!, k!, i1!, i2!], avals);
  const y = body.program.outputs[0]!.aval;
  const bwd = traceFlat(
    (x, k, i1, i2, ct) => {
      const t = transposedSameConv(k!, params);
      const dx = bind1('conv_general', [gatherTiles(ct!, i2!), t.w], { ...t.params, padding: VALID });
      const [, dk] = PRIMS.conv_general.vjp === 'structural' ? [] : PRIMS.conv_general.vjp([gatherTiles(x!, i1!), k!], [], [ct!], valid);
      return [dx, dk!, i1!, i2!];
    },
    [...avals, y],
  );
  if (body.captured.length || fwd.captured.length || bwd.captured.length) throw new NexgradError('internal: the masked convolution closed over a traced value');
  return bind('custom_vjp', [xc, w, fwdIdx, bwdIdx], { body: body.program, fwd: fwd.program, bwd: dce(bwd.program), numResiduals: 4 })[0]!;
}

/** Can the custom backward handle this convolution (OIHW kernel, no batch groups)? */
const customBackward = (p: ConvParams): boolean => p.dims.rhs.every((d, i) => d === i) && p.batchGroupCount === 1;

export interface MaskedConvOptions {
  /** No custom_vjp (the program is about to go through forward mode). */
  readonly plainAutodiff?: boolean;
  /** Overrides the cost rule. */
  readonly convRoute?: ConvRoute;
}

/**
 * The convolution at the visible sites, [M, s, s, Cout], of an input given compact [M, s, s, C]
 * or on the grid [N, H, W, C] (zero at masked sites).
 */
export function maskedSameConv(tables: MaskTables, input: { compact?: Tensor; dense?: Tensor }, w: Tensor, params: ConvParams, c: SameConv, opts: MaskedConvOptions = {}): Tensor {
  const route = opts.convRoute ?? chooseRoute(tables.g, c);
  const plainAutodiff = opts.plainAutodiff ?? false;
  if (route === 'halo') {
    const xc = input.compact ?? tables.toCompact(input.dense!, c.s);
    const pads: Pads = [params.padding[0]!, params.padding[1]!];
    if (plainAutodiff || !customBackward(params)) {
      return bind1('conv_general', [gatherTiles(xc, tables.halo(c.s, pads)), w], { ...params, padding: VALID });
    }
    const mirrored: Pads = [
      [pads[0][1], pads[0][0]],
      [pads[1][1], pads[1][0]],
    ];
    return haloConvWithVjp(xc, w, tables.halo(c.s, pads), tables.halo(c.s, mirrored), params);
  }
  const y = bind1('conv_general', [input.dense ?? tables.toDense(input.compact!, c.s), w], params);
  return tables.toCompact(y, c.s);
}

