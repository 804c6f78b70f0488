/**
 * Batch mixing: mixup and CutMix (as timm does them, each image against its partner B - 1 - i,
 * the batch flipped) and the soft targets that go with them, label smoothing included.
 */
import type { AugmentPlan, CropBox, SampleShape } from './augment.js';
import type { HostStream } from './host_random.js';

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
