/**
 * The geometry of a patch mask as the masked sparse rewrite sees it: N samples, an L = side^2
 * grid of patches, exactly lenKeep visible (kept) patches per sample, known statically from the
 * `fcmae.patch_mask` region that made the mask.
 *
 * A *site var* is an NHWC-like value [N, side*s, side*s, ...rest] whose axes 1 and 2 are the
 * image grid at s cells per patch side; its *compact* form is [M, s, s, ...rest] with
 * M = N * lenKeep: the kept patches of each sample in increasing patch order, sample after
 * sample (row m is sample floor(m / lenKeep)).
 */
import type { Shape } from '../../ir/shape.js';

export const PATCH_MASK_REGION = 'fcmae.patch_mask';
export const UPSAMPLE_MASK_REGION = 'fcmae.upsample_mask';

export interface MaskGeometry {
  readonly n: number;
  readonly L: number;
  readonly side: number;
  readonly lenKeep: number;
}

/** Rows of a compact tensor. */
export const compactRows = (g: MaskGeometry): number => g.n * g.lenKeep;

/**
 * The geometry a `fcmae.patch_mask` region's attrs and output shape declare, or undefined when
 * they are inconsistent (then the mask is treated as any other tensor: the dense path).
 */
export function geometryOf(attrs: Readonly<Record<string, unknown>>, outShape: Shape): MaskGeometry | undefined {
  const { n, L, lenKeep } = attrs as { n?: unknown; L?: unknown; lenKeep?: unknown };
  const int = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  if (!int(n) || !int(L) || !int(lenKeep) || lenKeep > L || n === 0 || L === 0) return undefined;
  if (outShape.length !== 2 || outShape[0] !== n || outShape[1] !== L) return undefined;
  const side = Math.round(Math.sqrt(L));
  if (side * side !== L) return undefined;
  return { n, L, side, lenKeep };
}

/** s when `shape` is a site var's [N, side*s, side*s, ...rest], else undefined. */
export function siteScale(g: MaskGeometry, shape: Shape): number | undefined {
  if (shape.length < 3 || shape[0] !== g.n || shape[1] !== shape[2]) return undefined;
  const h = shape[1]!;
  if (h === 0 || h % g.side !== 0) return undefined;
  return h / g.side;
}

/** The compact shape [M, s, s, ...rest] of a site var's shape. */
export function compactShape(g: MaskGeometry, shape: Shape): number[] {
  const s = siteScale(g, shape)!;
  return [compactRows(g), s, s, ...shape.slice(3)];
}

/** The three leading (sample, row, column) axes of a site var. */
export const SITE_AXES: readonly number[] = [0, 1, 2];

/** True when a list of axes avoids the site axes. */
export const avoidsSites = (axes: readonly number[]): boolean => axes.every((a) => a > 2);
