/**
 * Weights and inputs shared by every framework in the CPU benchmark: ConvNeXt V2 parameters under
 * their official PyTorch names and layouts (conv OIHW, linear (out, in), GRN (1,1,1,4C)), built
 * once as Float32Arrays from a seeded generator, plus NCHW images and integer labels.
 *
 * Every parameter is random (not only the conv/linear weights): LayerNorm weights 1 + N(0, 0.02),
 * biases, GRN gamma/beta and the rest N(0, 0.02), so that a logits comparison between two
 * implementations exercises every term (GRN is the identity at the official zero init).
 */

export interface ModelDims {
  depths: readonly number[];
  dims: readonly number[];
  numClasses: number;
  inChans: number;
  stemStride: number;
}

export const ATTO: ModelDims = { depths: [2, 2, 6, 2], dims: [40, 80, 160, 320], numClasses: 1000, inChans: 3, stemStride: 4 };

export interface NamedArray {
  /** PyTorch state-dict name, e.g. `stages.0.1.pwconv1.weight`. */
  name: string;
  /** PyTorch shape. */
  shape: number[];
  data: Float32Array;
}

/** A small, fast, seeded generator (mulberry32) with Box-Muller normals. */
export class Rng {
  private s: number;
  private spare: number | undefined;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  uniform(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    const th = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }
  /** Standard normal truncated to [-2, 2] (resampled), times std, plus mean. */
  truncNormal(std: number, mean = 0): number {
    for (;;) {
      const z = this.normal();
      if (z >= -2 && z <= 2) return mean + std * z;
    }
  }
  fill(n: number, f: () => number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = f();
    return a;
  }
}

const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** The parameter names and PyTorch shapes of a ConvNeXt V2 model, in state-dict order. */
export function paramShapes(m: ModelDims): { name: string; shape: number[]; kind: 'weight' | 'ln' | 'other' }[] {
  const out: { name: string; shape: number[]; kind: 'weight' | 'ln' | 'other' }[] = [];
  const add = (name: string, shape: number[], kind: 'weight' | 'ln' | 'other') => out.push({ name, shape, kind });
  const { dims, depths, inChans, stemStride: s } = m;
  add('downsample_layers.0.0.weight', [dims[0]!, inChans, s, s], 'weight');
  add('downsample_layers.0.0.bias', [dims[0]!], 'other');
  add('downsample_layers.0.1.weight', [dims[0]!], 'ln');
  add('downsample_layers.0.1.bias', [dims[0]!], 'other');
  for (let i = 1; i < dims.length; i++) {
    add(`downsample_layers.${i}.0.weight`, [dims[i - 1]!], 'ln');
    add(`downsample_layers.${i}.0.bias`, [dims[i - 1]!], 'other');
    add(`downsample_layers.${i}.1.weight`, [dims[i]!, dims[i - 1]!, 2, 2], 'weight');
    add(`downsample_layers.${i}.1.bias`, [dims[i]!], 'other');
  }
  depths.forEach((d, i) => {
    const c = dims[i]!;
    for (let b = 0; b < d; b++) {
      const p = `stages.${i}.${b}`;
      add(`${p}.dwconv.weight`, [c, 1, 7, 7], 'weight');
      add(`${p}.dwconv.bias`, [c], 'other');
      add(`${p}.norm.weight`, [c], 'ln');
      add(`${p}.norm.bias`, [c], 'other');
      add(`${p}.pwconv1.weight`, [4 * c, c], 'weight');
      add(`${p}.pwconv1.bias`, [4 * c], 'other');
      add(`${p}.grn.gamma`, [1, 1, 1, 4 * c], 'other');
      add(`${p}.grn.beta`, [1, 1, 1, 4 * c], 'other');
      add(`${p}.pwconv2.weight`, [c, 4 * c], 'weight');
      add(`${p}.pwconv2.bias`, [c], 'other');
    }
  });
  const c3 = dims[dims.length - 1]!;
  add('norm.weight', [c3], 'ln');
  add('norm.bias', [c3], 'other');
  add('head.weight', [m.numClasses, c3], 'weight');
  add('head.bias', [m.numClasses], 'other');
  return out;
}

/** Random parameters (see the file comment), deterministic in `seed`. */
export function makeWeights(m: ModelDims, seed = 1234): NamedArray[] {
  const rng = new Rng(seed);
  return paramShapes(m).map(({ name, shape, kind }) => {
    const n = prod(shape);
    const data =
      kind === 'weight' ? rng.fill(n, () => rng.truncNormal(0.02)) : kind === 'ln' ? rng.fill(n, () => 1 + 0.02 * rng.normal()) : rng.fill(n, () => 0.02 * rng.normal());
    return { name, shape, data };
  });
}

export function paramTotal(ws: readonly NamedArray[]): number {
  return ws.reduce((a, w) => a + w.data.length, 0);
}

/** N(0, 1) images, NCHW. */
export function makeImages(n: number, c: number, h: number, w: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return rng.fill(n * c * h * w, () => rng.normal());
}

/** Labels in [0, classes). */
export function makeLabels(n: number, classes: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.floor(rng.uniform() * classes);
  return a;
}

// ---------------------------------------------------------------------------------------
// layout conversions (PyTorch -> channels-last frameworks)

/** OIHW (O, I, kh, kw) -> HWIO (kh, kw, I, O). */
export function oihwToHwio(src: Float32Array, [o, i, kh, kw]: readonly number[]): Float32Array {
  const dst = new Float32Array(src.length);
  for (let a = 0; a < o!; a++) {
    for (let b = 0; b < i!; b++) {
      for (let h = 0; h < kh!; h++) {
        for (let w = 0; w < kw!; w++) dst[((h * kw! + w) * i! + b) * o! + a] = src[((a * i! + b) * kh! + h) * kw! + w]!;
      }
    }
  }
  return dst;
}

/** A 2-D transpose: (rows, cols) -> (cols, rows). */
export function transpose2d(src: Float32Array, rows: number, cols: number): Float32Array {
  const dst = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c]!;
  return dst;
}

/** A depthwise kernel (C, 1, kh, kw) -> (kh*kw, C). */
export function depthwiseToTapsC(src: Float32Array, [c, , kh, kw]: readonly number[]): Float32Array {
  const taps = kh! * kw!;
  return transpose2d(src, c!, taps);
}
