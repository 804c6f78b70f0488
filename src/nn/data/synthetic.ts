/**
 * A synthetic, learnable image dataset: each class is a smooth random pattern (a few Gaussian
 * blobs at class-specific places), each example its class's pattern, shifted by up to two
 * pixels, scaled in contrast and with pixel noise. Everything comes from Threefry under
 * (seed, class) and (seed, index), so example i is the same wherever and whenever it is read.
 */
import { hostFoldPath, hostKey, HostStream } from './host_random.js';
import { type Example, type ImageDataset, requireInt } from './types.js';

export interface SyntheticOptions {
  n: number;
  channels?: number;
  size?: number;
  numClasses?: number;
  seed?: number;
}

const BLOBS = 3;
const CLASS_STREAM = 0;
const EXAMPLE_STREAM = 1;

class SyntheticDataset implements ImageDataset {
  readonly height: number;
  readonly width: number;
  readonly classNames: readonly string[];
  private readonly templates: Float32Array[];
  constructor(readonly length: number, readonly channels: number, size: number, readonly numClasses: number, private readonly seed: number) {
    this.height = size;
    this.width = size;
    this.classNames = Object.freeze(Array.from({ length: numClasses }, (_, k) => `class ${k}`));
    this.templates = Array.from({ length: numClasses }, (_, k) => this.template(k));
  }

  private template(k: number): Float32Array {
    const rng = new HostStream(hostFoldPath(hostKey(this.seed), CLASS_STREAM, k));
    const s = this.height;
    const img = new Float32Array(this.channels * s * s);
    for (let c = 0; c < this.channels; c++) {
      for (let b = 0; b < BLOBS; b++) {
        const cy = rng.range(0.15, 0.85) * s;
        const cx = rng.range(0.15, 0.85) * s;
        const r = rng.range(0.08, 0.2) * s;
        const amp = rng.range(0.4, 1);
        for (let y = 0; y < s; y++) {
          for (let x = 0; x < s; x++) img[(c * s + y) * s + x]! += amp * Math.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r));
        }
      }
    }
    return img;
  }

  get(i: number): Example {
    requireInt('synthetic dataset', 'index', i, 0, this.length - 1);
    const rng = new HostStream(hostFoldPath(hostKey(this.seed), EXAMPLE_STREAM, i));
    const label = rng.int(0, this.numClasses);
    const t = this.templates[label]!;
    const s = this.height;
    const dy = rng.int(-2, 3);
    const dx = rng.int(-2, 3);
    const contrast = rng.range(0.7, 1);
    const image = new Float32Array(t.length);
    for (let c = 0; c < this.channels; c++) {
      for (let y = 0; y < s; y++) {
        for (let x = 0; x < s; x++) {
          const sy = Math.min(s - 1, Math.max(0, y - dy));
          const sx = Math.min(s - 1, Math.max(0, x - dx));
          const v = contrast * t[(c * s + sy) * s + sx]! + 0.1 * rng.normal();
          image[(c * s + y) * s + x] = Math.min(1, Math.max(0, v));
        }
      }
    }
    return { image, label };
  }
}

/** n synthetic examples (default 1 channel, 28x28, 10 classes, seed 0). */
export function synthetic(opts: SyntheticOptions): ImageDataset {
  const w = 'synthetic';
  const n = requireInt(w, 'n', opts?.n, 0, 1 << 30);
  const channels = requireInt(w, 'channels', opts.channels ?? 1, 1, 64);
  const size = requireInt(w, 'size', opts.size ?? 28, 1, 4096);
  const numClasses = requireInt(w, 'numClasses', opts.numClasses ?? 10, 1, 1 << 20);
  const seed = requireInt(w, 'seed', opts.seed ?? 0, -(2 ** 53) + 1);
  return new SyntheticDataset(n, channels, size, numClasses, seed);
}
