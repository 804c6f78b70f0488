/**
 * ConvNeXt V2 configurations: the eight variants of spec 1.4 and custom ones.
 */
import { NexgradError } from '../ir/errors.js';
import type { FloatDType } from '../nn/init.js';

export interface ConvNeXtV2Config {
  /** Variant name ('atto', ..., 'huge') or 'custom'. */
  readonly name: string;
  /** Blocks per stage. */
  readonly depths: readonly number[];
  /** Channels per stage (C0..C3). */
  readonly dims: readonly number[];
  /** Classes of the head (default 1000). */
  readonly numClasses: number;
  /** Stochastic-depth rate of the last block; block k gets linspace(0, rate, sum(depths))[k]. */
  readonly dropPathRate: number;
  /** Multiplies the head's initial weight and bias (1 in the class, 0.001 in main_finetune). */
  readonly headInitScale: number;
  /** Image channels (default 3). */
  readonly inChans: number;
  /** Kernel size and stride of the stem conv (default 4). */
  readonly stemStride: number;
  /** eps of every LayerNorm (1e-6). */
  readonly layerNormEps: number;
  /** eps of GRN (1e-6). */
  readonly grnEps: number;
  /** dtype of `init` (default f32). */
  readonly dtype: FloatDType;
}

export type VariantName = 'atto' | 'femto' | 'pico' | 'nano' | 'tiny' | 'base' | 'large' | 'huge';

/** depths / dims of each variant (spec 1.4). */
export const VARIANTS: Readonly<Record<VariantName, { readonly depths: readonly number[]; readonly dims: readonly number[] }>> = Object.freeze({
  atto: { depths: [2, 2, 6, 2], dims: [40, 80, 160, 320] },
  femto: { depths: [2, 2, 6, 2], dims: [48, 96, 192, 384] },
  pico: { depths: [2, 2, 6, 2], dims: [64, 128, 256, 512] },
  nano: { depths: [2, 2, 8, 2], dims: [80, 160, 320, 640] },
  tiny: { depths: [3, 3, 9, 3], dims: [96, 192, 384, 768] },
  base: { depths: [3, 3, 27, 3], dims: [128, 256, 512, 1024] },
  large: { depths: [3, 3, 27, 3], dims: [192, 384, 768, 1536] },
  huge: { depths: [3, 3, 27, 3], dims: [352, 704, 1408, 2816] },
});

export const VARIANT_NAMES = Object.freeze(Object.keys(VARIANTS) as VariantName[]);

export type ConfigOverrides = Partial<Omit<ConvNeXtV2Config, 'name'>> & { name?: string };

function positiveInt(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/**
 * A configuration: `config('atto')`, `config('tiny', {numClasses: 10, dropPathRate: 0.2})`, or a
 * custom one, `config('custom', {depths, dims, ...})` or `config({depths, dims, ...})`.
 */
export function config(name: VariantName | 'custom' | ConfigOverrides, overrides: ConfigOverrides = {}): ConvNeXtV2Config {
  let o: ConfigOverrides;
  let base: { depths?: readonly number[]; dims?: readonly number[] };
  let nm: string;
  if (typeof name === 'object' && name !== null) {
    o = { ...name, ...overrides };
    base = {};
    nm = o.name ?? 'custom';
  } else if (name === 'custom') {
    o = overrides;
    base = {};
    nm = o.name ?? 'custom';
  } else if (typeof name === 'string' && Object.prototype.hasOwnProperty.call(VARIANTS, name)) {
    o = overrides;
    base = VARIANTS[name];
    nm = name;
  } else {
    throw new NexgradError(`convnextv2.config: unknown variant ${JSON.stringify(name)}; expected one of ${VARIANT_NAMES.join(', ')} or 'custom' with depths and dims`);
  }
  const depths = [...(o.depths ?? base.depths ?? [])];
  const dims = [...(o.dims ?? base.dims ?? [])];
  const cfg: ConvNeXtV2Config = {
    name: nm,
    depths,
    dims,
    numClasses: o.numClasses ?? 1000,
    dropPathRate: o.dropPathRate ?? 0,
    headInitScale: o.headInitScale ?? 1,
    inChans: o.inChans ?? 3,
    stemStride: o.stemStride ?? 4,
    layerNormEps: o.layerNormEps ?? 1e-6,
    grnEps: o.grnEps ?? 1e-6,
    dtype: o.dtype ?? 'f32',
  };
  validateConfig(cfg);
  return Object.freeze(cfg);
}

export function validateConfig(cfg: ConvNeXtV2Config): void {
  const bad = (m: string): never => {
    throw new NexgradError(`convnextv2.config: ${m}`);
  };
  if (!Array.isArray(cfg.depths) || cfg.depths.length === 0 || !cfg.depths.every((d) => Number.isInteger(d) && d >= 0)) {
    bad(`depths must be a non-empty array of non-negative integers, got ${JSON.stringify(cfg.depths)}`);
  }
  if (!Array.isArray(cfg.dims) || cfg.dims.length !== cfg.depths.length || !cfg.dims.every(positiveInt)) {
    bad(`dims must be ${cfg.depths.length} positive integers (one per stage, like depths), got ${JSON.stringify(cfg.dims)}`);
  }
  if (!(Number.isInteger(cfg.numClasses) && cfg.numClasses >= 0)) bad(`numClasses must be a non-negative integer, got ${cfg.numClasses}`);
  if (!(cfg.dropPathRate >= 0 && cfg.dropPathRate < 1)) bad(`dropPathRate must be in [0, 1), got ${cfg.dropPathRate}`);
  if (!(typeof cfg.headInitScale === 'number' && Number.isFinite(cfg.headInitScale))) bad(`headInitScale must be a finite number, got ${cfg.headInitScale}`);
  if (!positiveInt(cfg.inChans)) bad(`inChans must be a positive integer, got ${cfg.inChans}`);
  if (!positiveInt(cfg.stemStride)) bad(`stemStride must be a positive integer, got ${cfg.stemStride}`);
  if (!(cfg.layerNormEps > 0) || !(cfg.grnEps >= 0)) bad('layerNormEps must be positive and grnEps non-negative');
  if (!['f32', 'f64', 'f16', 'bf16'].includes(cfg.dtype)) bad(`dtype must be f32, f64, f16 or bf16, got ${JSON.stringify(cfg.dtype)}`);
}

/** The total downsampling factor: stemStride * 2^(stages - 1) (32 for every variant). */
export function totalStride(cfg: Pick<ConvNeXtV2Config, 'stemStride' | 'depths'>): number {
  return cfg.stemStride * 2 ** (cfg.depths.length - 1);
}

/** Drop-path rate of every block in order: linspace(0, dropPathRate, sum(depths)). */
export function dropPathRates(cfg: Pick<ConvNeXtV2Config, 'depths' | 'dropPathRate'>): number[] {
  const n = cfg.depths.reduce((a, b) => a + b, 0);
  if (n === 1) return [0];
  return Array.from({ length: n }, (_, k) => (cfg.dropPathRate * k) / (n - 1));
}
