/**
 * Host-side per-sample augmentation (random resized crop, horizontal flip, random shift), the checked plan of
 * all augmentation options, and per-channel normalisation. Randomness comes from a HostStream
 * the loader gives, so it decides which key each draw comes from. Batch mixing is in mix.ts.
 */
import { type HostStream } from './host_random.js';
import { resampleImage, resizeTaps, type Taps } from './interpolation.js';
import { type Augment, DataError, requireInt, requireNumber } from './types.js';

export interface CropBox {
  readonly top: number;
  readonly left: number;
  readonly height: number;
  readonly width: number;
}

/** The checked augmentation settings, defaults filled in. */
export interface AugmentPlan {
  readonly crop?: { readonly size: number; readonly scale: [number, number]; readonly ratio: [number, number] };
  readonly flip: number;
  /** Largest translation in pixels along each axis (0 = off). */
  readonly shift: number;
  readonly mixup: number;
  readonly cutmix: number;
  readonly mixProb: number;
  readonly switchProb: number;
  readonly labelSmoothing: number;
}

function pair(where: string, what: string, v: unknown, dflt: [number, number], min: number, max: number): [number, number] {
  if (v === undefined) return dflt;
  if (!Array.isArray(v) || v.length !== 2) throw new DataError(`${where}: ${what} must be [low, high], got ${JSON.stringify(v)}`);
  const lo = requireNumber(where, `${what}[0]`, v[0], min, max);
  const hi = requireNumber(where, `${what}[1]`, v[1], min, max);
  if (lo > hi) throw new DataError(`${where}: ${what} must have low <= high, got [${lo}, ${hi}]`);
  return [lo, hi];
}

export function planAugment(a: Augment | undefined): AugmentPlan {
  const w = 'DataLoader augment';
  const known = new Set(['randomResizedCrop', 'horizontalFlip', 'randomShift', 'mixup', 'cutmix', 'mixProb', 'switchProb', 'labelSmoothing']);
  for (const k of Object.keys(a ?? {})) if (!known.has(k)) throw new DataError(`${w}: unknown option ${JSON.stringify(k)}; expected one of ${[...known].join(', ')}`);
  const rrc = a?.randomResizedCrop;
  const crop = rrc === undefined ? undefined : {
    size: requireInt(w, 'randomResizedCrop.size', rrc.size, 1, 8192),
    scale: pair(w, 'randomResizedCrop.scale', rrc.scale, [0.08, 1], 1e-6, 1),
    ratio: pair(w, 'randomResizedCrop.ratio', rrc.ratio, [3 / 4, 4 / 3], 1e-3, 1e3),
  };
  return {
    ...(crop ? { crop } : {}),
    flip: requireNumber(w, 'horizontalFlip', a?.horizontalFlip ?? 0, 0, 1),
    shift: requireInt(w, 'randomShift', a?.randomShift ?? 0, 0, 1024),
    mixup: requireNumber(w, 'mixup', a?.mixup ?? 0, 0, 1e6),
    cutmix: requireNumber(w, 'cutmix', a?.cutmix ?? 0, 0, 1e6),
    mixProb: requireNumber(w, 'mixProb', a?.mixProb ?? 1, 0, 1),
    switchProb: requireNumber(w, 'switchProb', a?.switchProb ?? 0.5, 0, 1),
    labelSmoothing: requireNumber(w, 'labelSmoothing', a?.labelSmoothing ?? 0, 0, 1),
  };
}

/**
 * torchvision's RandomResizedCrop box: up to ten tries of an area fraction from `scale` and a
 * log-uniform aspect ratio from `ratio`; else the whole image cropped to the nearest allowed ratio.
 */
export function randomCropBox(rng: HostStream, height: number, width: number, scale: [number, number], ratio: [number, number]): CropBox {
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * rng.range(scale[0], scale[1]);
    const aspect = Math.exp(rng.range(logLo, logHi));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return { top: rng.int(0, height - h + 1), left: rng.int(0, width - w + 1), height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

export interface SampleShape {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
}

/**
 * One sample's crop, flip and shift, written into `out` at `offset` (the output image is
 * plan.crop.size square, or the input's size without a crop).
 */
export function augmentSample(rng: HostStream, plan: AugmentPlan, image: Float32Array, s: SampleShape, out: Float32Array, offset: number): void {
  cropAndFlip(rng, plan, image, s, out, offset);
  if (plan.shift > 0) {
    const size = plan.crop ? { ...s, height: plan.crop.size, width: plan.crop.size } : s;
    shiftSample(out, offset, size, rng.int(-plan.shift, plan.shift + 1), rng.int(-plan.shift, plan.shift + 1));
  }
}

/**
 * Translates one sample in place by (dy, dx) pixels, filling what comes in with 0 (before
 * normalisation: the zero padding of "pad and random crop", e.g. Fashion-MNIST's background).
 */
export function shiftSample(out: Float32Array, offset: number, s: SampleShape, dy: number, dx: number): void {
  if (dy === 0 && dx === 0) return;
  const { channels, height, width } = s;
  const plane = height * width;
  const src = out.slice(offset, offset + channels * plane);
  out.fill(0, offset, offset + channels * plane);
  const x0 = Math.max(0, dx);
  const x1 = Math.min(width, width + dx);
  if (x0 >= x1) return;
  for (let c = 0; c < channels; c++) {
    for (let y = Math.max(0, dy); y < Math.min(height, height + dy); y++) {
      const from = c * plane + (y - dy) * width - dx;
      out.set(src.subarray(from + x0, from + x1), offset + c * plane + y * width + x0);
    }
  }
}

function cropAndFlip(rng: HostStream, plan: AugmentPlan, image: Float32Array, s: SampleShape, out: Float32Array, offset: number): void {
  const box = plan.crop ? randomCropBox(rng, s.height, s.width, plan.crop.scale, plan.crop.ratio) : undefined;
  const flip = plan.flip > 0 && rng.uniform() < plan.flip;
  if (!box || !plan.crop) {
    if (!flip) {
      out.set(image, offset);
      return;
    }
    for (let c = 0; c < s.channels; c++) {
      for (let y = 0; y < s.height; y++) {
        const row = (c * s.height + y) * s.width;
        for (let x = 0; x < s.width; x++) out[offset + row + x] = image[row + s.width - 1 - x]!;
      }
    }
    return;
  }
  const size = plan.crop.size;
  const rows: Taps = resizeTaps(s.height, size, { method: 'bilinear', antialias: true, offset: box.top, length: box.height });
  const cols: Taps = resizeTaps(s.width, size, { method: 'bilinear', antialias: true, offset: box.left, length: box.width });
  resampleImage(image, s.channels, s.height, s.width, rows, cols, out, offset, flip);
}

/** (x - mean[c]) / std[c] over a batch [B, C, H, W] in place. */
export function normalizeBatch(images: Float32Array, b: number, s: SampleShape, mean: readonly number[], std: readonly number[]): void {
  const plane = s.height * s.width;
  for (let i = 0; i < b; i++) {
    for (let c = 0; c < s.channels; c++) {
      const m = mean[c]!;
      const inv = 1 / std[c]!;
      const base = (i * s.channels + c) * plane;
      for (let k = 0; k < plane; k++) images[base + k] = (images[base + k]! - m) * inv;
    }
  }
}
