/**
 * Small images on models whose stride does not divide them (Fashion-MNIST's 28x28 on a model of
 * total stride 8): the batch is padded, centred, to the next multiple inside the jitted step,
 * with each channel's background value (the normalised 0), so the padding looks like the
 * image's own border.
 */
import { OpError } from '../../ir/errors.js';
import * as ops from '../../ir/ops.js';
import type { Tensor } from '../../ir/tensor.js';

export interface PadSpec {
  /** Side of the padded (square) images. */
  readonly size: number;
  /** Value of the padding per channel (after normalisation). */
  readonly background: readonly number[];
}

/** The padding that makes h x w images a multiple of `multiple` (undefined when they already are). */
export function padFor(h: number, w: number, multiple: number, background: readonly number[]): PadSpec | undefined {
  if (h % multiple === 0 && w % multiple === 0 && h === w) return undefined;
  const size = Math.ceil(Math.max(h, w) / multiple) * multiple;
  return { size, background: [...background] };
}

/** NCHW images padded to spec.size x spec.size, centred, with the background per channel. */
export function padImages(x: Tensor, spec: PadSpec | undefined): Tensor {
  if (!spec) return x;
  const [, c, h, w] = x.shape as [number, number, number, number];
  if (spec.background.length !== c) throw new OpError('padImages', `background has ${spec.background.length} values for ${c} channels`);
  if (h > spec.size || w > spec.size) throw new OpError('padImages', `images ${h}x${w} are larger than the padded size ${spec.size}`);
  const top = Math.floor((spec.size - h) / 2);
  const left = Math.floor((spec.size - w) / 2);
  const widths: [number, number][] = [[0, 0], [0, 0], [top, spec.size - h - top], [left, spec.size - w - left]];
  const bg = spec.background;
  if (bg.every((v) => v === bg[0])) return ops.pad(x, widths, bg[0]);
  const shift = ops.reshape(ops.tensor([...bg], { dtype: x.dtype }), [1, c, 1, 1]);
  return ops.add(ops.pad(ops.sub(x, shift), widths, 0), shift);
}
