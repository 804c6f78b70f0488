/**
 * Host-side augmentation: per-sample random resized crop and horizontal flip, per-batch mixup /
 * CutMix with soft targets, and per-channel normalisation. Each function takes its randomness
 * from a HostStream it is given, so the loader decides which key each draw comes from.
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
  const known = new Set(['randomResizedCrop', 'horizontalFlip', 'mixup', 'cutmix', 'mixProb', 'switchProb', 'labelSmoothing']);
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
 * One sample's crop and flip, written into `out` at `offset` (the output image is
 * plan.crop.size square, or the input's size without a crop).
 */
export function augmentSample(rng: HostStream, plan: AugmentPlan, image: Float32Array, s: SampleShape, out: Float32Array, offset: number): void {
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

/** What one batch's mix did: partner of i is B - 1 - i (the flipped batch, as timm does). */
export interface MixRecord {
  readonly kind: 'none' | 'mixup' | 'cutmix';
  /** Weight of each image's own label in its target. */
  readonly lambda: number;
  readonly box?: CropBox;
}

/** timm's rand_bbox: a box of side sqrt(1 - lambda) times the image's, centred uniformly, clipped. */
function cutmixBox(rng: HostStream, lambda: number, height: number, width: number): CropBox {
  const cut = Math.sqrt(1 - lambda);
  const ch = Math.floor(height * cut);
  const cw = Math.floor(width * cut);
  const cy = rng.int(0, height);
  const cx = rng.int(0, width);
  const clip = (v: number, hi: number): number => Math.min(Math.max(v, 0), hi);
  const y0 = clip(cy - Math.floor(ch / 2), height);
  const y1 = clip(cy + Math.floor(ch / 2), height);
  const x0 = clip(cx - Math.floor(cw / 2), width);
  const x1 = clip(cx + Math.floor(cw / 2), width);
  return { top: y0, left: x0, height: y1 - y0, width: x1 - x0 };
}

/**
 * Mixes a batch in place (images [B, C, H, W]): with probability mixProb, CutMix (probability
 * switchProb when both are on) or mixup with lambda ~ Beta(alpha, alpha), each image against
 * its partner B - 1 - i. CutMix's lambda is the kept area fraction of the clipped box.
 */
export function mixBatch(rng: HostStream, plan: AugmentPlan, images: Float32Array, b: number, s: SampleShape): MixRecord {
  if (plan.mixup <= 0 && plan.cutmix <= 0) return { kind: 'none', lambda: 1 };
  if (rng.uniform() >= plan.mixProb) return { kind: 'none', lambda: 1 };
  const useCutmix = plan.cutmix > 0 && (plan.mixup <= 0 || rng.uniform() < plan.switchProb);
  const alpha = useCutmix ? plan.cutmix : plan.mixup;
  const per = s.channels * s.height * s.width;
  const original = images.slice(0, b * per);
  let lambda = rng.beta(alpha, alpha);
  if (!useCutmix) {
    for (let i = 0; i < b; i++) {
      const own = i * per;
      const other = (b - 1 - i) * per;
      for (let k = 0; k < per; k++) images[own + k] = lambda * original[own + k]! + (1 - lambda) * original[other + k]!;
    }
    return { kind: 'mixup', lambda };
  }
  const box = cutmixBox(rng, lambda, s.height, s.width);
  lambda = 1 - (box.height * box.width) / (s.height * s.width);
  for (let i = 0; i < b; i++) {
    for (let c = 0; c < s.channels; c++) {
      for (let y = box.top; y < box.top + box.height; y++) {
        const row = c * s.height * s.width + y * s.width;
        for (let x = box.left; x < box.left + box.width; x++) images[i * per + row + x] = original[(b - 1 - i) * per + row + x]!;
      }
    }
  }
  return { kind: 'cutmix', lambda, box };
}

/** Soft targets [B, K]: lambda * smooth(onehot(y_i)) + (1 - lambda) * smooth(onehot(y_{B-1-i})). */
export function softTargets(labels: Int32Array, numClasses: number, mix: MixRecord, smoothing: number): Float32Array {
  const b = labels.length;
  const off = smoothing / numClasses;
  const on = 1 - smoothing + off;
  const t = new Float32Array(b * numClasses).fill(off);
  for (let i = 0; i < b; i++) {
    t[i * numClasses + labels[i]!]! += mix.lambda * (on - off);
    t[i * numClasses + labels[b - 1 - i]!]! += (1 - mix.lambda) * (on - off);
  }
  return t;
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
