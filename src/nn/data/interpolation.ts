/**
 * 1-D interpolation weights, shared by the `resize` op (as dense matrices) and the host-side
 * random resized crop (as sparse taps). Sample positions use half-pixel centres: output pixel o
 * of a window [offset, offset + length) resized to `outSize` looks at input coordinate
 * offset + (o + 0.5) * length / outSize - 0.5 (PyTorch's align_corners=False, jax.image.resize).
 *
 * - bilinear: the triangle kernel of radius 1 or, with antialias when downscaling by s > 1, of
 *   radius s; weights are normalised over the taps inside the window (which at the borders is
 *   the same as clamping the coordinate).
 * - nearest: the input pixel that contains the output pixel's centre.
 */
export type InterpolationMethod = 'bilinear' | 'nearest';

export interface TapOptions {
  method: InterpolationMethod;
  antialias: boolean;
  /** The window of the input that is resized (default: all of it). */
  offset?: number;
  length?: number;
}

/** For each output position, its first input index and the weights of consecutive inputs. */
export interface Taps {
  readonly start: Int32Array;
  readonly weights: readonly Float64Array[];
}

export function resizeTaps(inSize: number, outSize: number, opts: TapOptions): Taps {
  const offset = opts.offset ?? 0;
  const length = opts.length ?? inSize;
  const scale = length / outSize;
  const start = new Int32Array(outSize);
  const weights: Float64Array[] = [];
  for (let o = 0; o < outSize; o++) {
    if (opts.method === 'nearest') {
      start[o] = offset + Math.min(Math.floor((o + 0.5) * scale), length - 1);
      weights.push(Float64Array.of(1));
      continue;
    }
    const radius = opts.antialias && scale > 1 ? scale : 1;
    const centre = offset + (o + 0.5) * scale - 0.5;
    const lo = Math.max(offset, Math.ceil(centre - radius));
    const hi = Math.min(offset + length - 1, Math.floor(centre + radius));
    const w = new Float64Array(hi - lo + 1);
    let total = 0;
    for (let j = lo; j <= hi; j++) {
      const v = Math.max(0, 1 - Math.abs(j - centre) / radius);
      w[j - lo] = v;
      total += v;
    }
    for (let k = 0; k < w.length; k++) w[k]! /= total;
    start[o] = lo;
    weights.push(w);
  }
  return { start, weights };
}

/** The taps as a dense row-major [outSize, inSize] matrix. */
export function resizeMatrix(inSize: number, outSize: number, opts: TapOptions): Float64Array {
  const { start, weights } = resizeTaps(inSize, outSize, opts);
  const m = new Float64Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const w = weights[o]!;
    for (let k = 0; k < w.length; k++) m[o * inSize + start[o]! + k] = w[k]!;
  }
  return m;
}

/**
 * Resizes one CHW float image window to outH x outW with separable taps (rows, then columns),
 * writing into `out` at `outOffset`. `flip` mirrors the output horizontally.
 */
export function resampleImage(
  src: Float32Array, channels: number, height: number, width: number,
  rows: Taps, cols: Taps, out: Float32Array, outOffset: number, flip: boolean,
): void {
  const outH = rows.start.length;
  const outW = cols.start.length;
  const tmp = new Float64Array(outH * width);
  for (let c = 0; c < channels; c++) {
    const plane = c * height * width;
    for (let o = 0; o < outH; o++) {
      const w = rows.weights[o]!;
      const s = rows.start[o]!;
      for (let x = 0; x < width; x++) {
        let acc = 0;
        for (let k = 0; k < w.length; k++) acc += w[k]! * src[plane + (s + k) * width + x]!;
        tmp[o * width + x] = acc;
      }
    }
    const dst = outOffset + c * outH * outW;
    for (let y = 0; y < outH; y++) {
      for (let o = 0; o < outW; o++) {
        const w = cols.weights[o]!;
        const s = cols.start[o]!;
        let acc = 0;
        for (let k = 0; k < w.length; k++) acc += w[k]! * tmp[y * width + s + k]!;
        out[dst + y * outW + (flip ? outW - 1 - o : o)] = acc;
      }
    }
  }
}
