/**
 * `resize` as a tensor op: the last two axes (H, W) of a float tensor are resized by two small
 * interpolation matrices applied with dot_general, so it traces, differentiates (its VJP is the
 * transposed matrices) and compiles on every backend like any other matmul. Region `resize`.
 */
import { isFloat } from '../../ir/dtype.js';
import { OpError } from '../../ir/errors.js';
import { region } from '../../ir/functional.js';
import * as ops from '../../ir/ops.js';
import { fmtShape } from '../../ir/shape.js';
import type { Tensor } from '../../ir/tensor.js';
import { type InterpolationMethod, resizeMatrix } from './interpolation.js';

export interface ResizeOptions {
  /** 'bilinear' (default) or 'nearest'. */
  method?: InterpolationMethod;
  /** Widen the bilinear kernel when downscaling, as PyTorch's antialias=True (default true). */
  antialias?: boolean;
}

function checkSize(size: unknown): [number, number] {
  if (!Array.isArray(size) || size.length !== 2 || !size.every((d) => Number.isSafeInteger(d) && d >= 1)) {
    throw new OpError('resize', `size must be [height, width] with positive integers, got ${JSON.stringify(size)}`);
  }
  return [size[0] as number, size[1] as number];
}

/** Resizes x[..., H, W] to x[..., size[0], size[1]]. */
export function resize(x: Tensor, size: [number, number], opts: ResizeOptions = {}): Tensor {
  const [outH, outW] = checkSize(size);
  if (x.ndim < 2) throw new OpError('resize', `input must have at least 2 axes (..., H, W), got ${fmtShape(x.shape)}`);
  if (!isFloat(x.dtype)) throw new OpError('resize', `input must be a float tensor, got ${x.dtype}${fmtShape(x.shape)}`);
  const method = opts.method ?? 'bilinear';
  if (method !== 'bilinear' && method !== 'nearest') throw new OpError('resize', `method must be 'bilinear' or 'nearest', got ${JSON.stringify(method)}`);
  const antialias = opts.antialias ?? true;
  const r = x.ndim;
  const inH = x.shape[r - 2]!;
  const inW = x.shape[r - 1]!;
  if (inH === 0 || inW === 0) throw new OpError('resize', `input has an empty spatial axis: ${fmtShape(x.shape)}`);
  const doRows = inH !== outH;
  const doCols = inW !== outW;
  if (!doRows && !doCols) return x;
  const matrix = (n: number, m: number): Tensor =>
    ops.tensor(resizeMatrix(n, m, { method, antialias }), { dtype: x.dtype, shape: [m, n] });
  const wy = matrix(inH, outH);
  const wx = matrix(inW, outW);
  const fn = region(
    'resize',
    (xx: Tensor, my: Tensor, mx: Tensor) => {
      // Contracting H gives [..., W, outH]; contracting that W gives [..., outH, outW].
      if (!doCols) return ops.moveAxis(ops.dotGeneral(xx, my, [[r - 2], [1]]), r - 1, r - 2);
      if (!doRows) return ops.dotGeneral(xx, mx, [[r - 1], [1]]);
      return ops.dotGeneral(ops.dotGeneral(xx, my, [[r - 2], [1]]), mx, [[r - 2], [1]]);
    },
    { size: [outH, outW], method, antialias },
  );
  return fn(x, wy, wx);
}
