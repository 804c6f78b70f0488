/**
 * ConvNeXt V2 (spec section 1) as pure functions over a parameter tree.
 *
 * Parameters mirror the official PyTorch state dict (facebookresearch/ConvNeXt-V2
 * models/convnextv2.py), numeric segments as array indices:
 *   downsample_layers[0] = [stem conv {weight (C0,inChans,s,s), bias}, LayerNorm {weight, bias}]
 *   downsample_layers[i] = [LayerNorm (C_{i-1}), conv {weight (C_i,C_{i-1},2,2), bias}]   (i >= 1)
 *   stages[i][b] = {dwconv, norm, pwconv1, grn: {gamma, beta (1,1,1,4C)}, pwconv2}
 *   norm, head
 * Weights keep PyTorch layouts (conv OIHW, linear (out, in)).
 *
 * The model takes NCHW images (as PyTorch), transposes once to NHWC and computes channels-last
 * throughout (convolutions with layout NHWC and OIHW kernels; the official channels_first
 * LayerNorm is LayerNorm over the last axis there).
 */
import { namedScope } from '../ir/trace.js';
import { isFloat } from '../ir/dtype.js';
import { OpError } from '../ir/errors.js';
import * as ops from '../ir/ops.js';
import * as random from '../ir/random.js';
import { fmtShape } from '../ir/shape.js';
import { Tensor } from '../ir/tensor.js';
import {
  checkParams,
  initFromSpec,
  paramCount as countParams,
  ParamSpec,
  type SpecTree,
  specParamCount,
} from '../nn/init.js';
import {
  type Conv2dParams,
  conv2d,
  depthwiseConv2d,
  dropPath,
  gelu,
  globalAvgPool,
  grn,
  type GrnParams,
  type GrnStats,
  layerNorm,
  type LayerNormParams,
  linear,
  type LinearParams,
  maskedGrn,
} from '../nn/layers.js';
import { type ConvNeXtV2Config, config as makeConfig, dropPathRates, totalStride } from './config.js';

// ---------------------------------------------------------------------------------------
// parameter types and specs

export interface BlockParams {
  dwconv: Conv2dParams;
  norm: LayerNormParams;
  pwconv1: LinearParams;
  grn: GrnParams;
  pwconv2: LinearParams;
}

/** A weight-and-bias pair: a conv or a LayerNorm of a downsample layer. */
export interface WeightBias {
  weight: Tensor;
  bias: Tensor;
}

export interface EncoderParams {
  /** [stem conv, LN] then [LN, conv] per later stage. */
  downsample_layers: WeightBias[][];
  stages: BlockParams[][];
}

export interface ConvNeXtV2Params extends EncoderParams {
  norm: LayerNormParams;
  head: LinearParams;
}

const tn = (shape: number[], scale = 1) => new ParamSpec(shape, 'trunc_normal', 0.02, scale);
const z = (shape: number[], scale = 1) => new ParamSpec(shape, 'zeros', 0.02, scale);
const o = (shape: number[]) => new ParamSpec(shape, 'ones');

/** The parameters of one Block(C): 8C^2 + 65C of them. */
export function blockSpec(c: number): SpecTree {
  return {
    dwconv: { weight: tn([c, 1, 7, 7]), bias: z([c]) },
    norm: { weight: o([c]), bias: z([c]) },
    pwconv1: { weight: tn([4 * c, c]), bias: z([4 * c]) },
    grn: { gamma: z([1, 1, 1, 4 * c]), beta: z([1, 1, 1, 4 * c]) },
    pwconv2: { weight: tn([c, 4 * c]), bias: z([c]) },
  };
}

/** Stem, downsamplers and stages (no final norm or head). */
export function encoderSpec(cfg: ConvNeXtV2Config): SpecTree {
  const { dims, depths, stemStride: s, inChans } = cfg;
  const down: SpecTree[] = [[{ weight: tn([dims[0]!, inChans, s, s]), bias: z([dims[0]!]) }, { weight: o([dims[0]!]), bias: z([dims[0]!]) }]];
  for (let i = 1; i < dims.length; i++) {
    down.push([{ weight: o([dims[i - 1]!]), bias: z([dims[i - 1]!]) }, { weight: tn([dims[i]!, dims[i - 1]!, 2, 2]), bias: z([dims[i]!]) }]);
  }
  const stages = depths.map((d, i) => Array.from({ length: d }, () => blockSpec(dims[i]!)));
  return { downsample_layers: down, stages };
}

/** The whole model: encoder, final LayerNorm, head (scaled by headInitScale at init). */
export function paramSpec(cfg: ConvNeXtV2Config): SpecTree {
  const c3 = cfg.dims[cfg.dims.length - 1]!;
  return {
    ...(encoderSpec(cfg) as Record<string, SpecTree>),
    norm: { weight: o([c3]), bias: z([c3]) },
    head: { weight: tn([cfg.numClasses, c3], cfg.headInitScale), bias: z([cfg.numClasses], cfg.headInitScale) },
  };
}

/**
 * Random parameters (spec 1.3): conv and linear weights trunc_normal(std 0.02, absolute cut
 * +-2), biases 0, LayerNorm 1/0, GRN 0/0, head times headInitScale; in cfg.dtype.
 */
export function init(key: Tensor, cfg: ConvNeXtV2Config): ConvNeXtV2Params {
  return initFromSpec<ConvNeXtV2Params>(key, paramSpec(cfg), cfg.dtype);
}

/** The number of parameters in a tree (e.g. from init or a checkpoint). */
export function paramCount(params: unknown): number {
  return countParams(params);
}

/** The number of parameters of a configuration, from shapes alone (no tensors are made). */
export function paramCountOf(cfg: ConvNeXtV2Config): number {
  return specParamCount(paramSpec(cfg));
}

/** Infers a configuration (depths, dims, classes, stem) from a parameter tree. */
export function configFromParams(params: Partial<ConvNeXtV2Params>): ConvNeXtV2Config {
  const op = 'convnextv2.configFromParams';
  const stem = params?.downsample_layers?.[0]?.[0]?.weight;
  if (!(stem instanceof Tensor) || stem.ndim !== 4) throw new OpError(op, 'params are missing "downsample_layers.0.0.weight" (the stem conv); pass opts.cfg');
  if (!Array.isArray(params.stages)) throw new OpError(op, 'params are missing "stages"; pass opts.cfg');
  const depths = params.stages.map((s) => (Array.isArray(s) ? s.length : 0));
  const dims = params.stages.map((_, i) => {
    const w = i === 0 ? stem : params.downsample_layers?.[i]?.[1]?.weight;
    if (!(w instanceof Tensor)) throw new OpError(op, `params are missing "downsample_layers.${i}.1.weight"; pass opts.cfg`);
    return w.shape[0]!;
  });
  const head = params.head?.weight;
  return makeConfig('custom', {
    depths,
    dims,
    numClasses: head instanceof Tensor ? head.shape[0] : 0,
    inChans: stem.shape[1],
    stemStride: stem.shape[2],
    dtype: stem.dtype as ConvNeXtV2Config['dtype'],
  });
}

// ---------------------------------------------------------------------------------------
// building blocks (NHWC)

export interface BlockOptions {
  layerNormEps?: number;
  grnEps?: number;
  /** Stochastic depth for this block (identity unless train and rate > 0). */
  dropPath?: { rate: number; train?: boolean; key?: Tensor };
  /**
   * FCMAE's dense-masked block (spec 3.4, refs/README): keep = 1 - mask as (N,H,W,1), 1 at
   * visible sites. The dwconv reads the masked input and its output is masked, GRN takes its
   * statistics over visible sites only (maskedGrn), and the branch is masked before the residual
   * add. Values at masked sites are garbage and never reach visible ones.
   */
  keep?: Tensor;
  /** maskedGrn statistics and sqrt-eps (masked block only). */
  grnStats?: GrnStats;
  grnSqrtEps?: number;
}

/**
 * Block(C) on NHWC input: dwconv 7x7 -> LayerNorm -> pwconv1 -> GELU (erf) -> GRN -> pwconv2 ->
 * drop path -> residual add.
 */
export function block(p: BlockParams, x: Tensor, opts: BlockOptions = {}): Tensor {
  const eps = opts.layerNormEps ?? 1e-6;
  const keep = opts.keep;
  let y = keep ? ops.mul(x, keep) : x;
  y = depthwiseConv2d(p.dwconv, y, { layout: 'NHWC' });
  if (keep) y = ops.mul(y, keep);
  y = layerNorm(p.norm, y, { eps });
  y = linear(p.pwconv1, y);
  y = gelu(y);
  y = keep
    ? maskedGrn(p.grn, y, ops.sub(1, keep), { eps: opts.grnEps ?? 1e-6, sqrtEps: opts.grnSqrtEps, stats: opts.grnStats })
    : grn(p.grn, y, { eps: opts.grnEps ?? 1e-6 });
  y = linear(p.pwconv2, y);
  if (keep) y = ops.mul(y, keep);
  if (opts.dropPath) y = dropPath(y, opts.dropPath);
  return ops.add(x, y);
}

/** The stem on NHWC input: conv k=s=stemStride, then LayerNorm. */
export function stem(p: WeightBias[], x: Tensor, cfg: ConvNeXtV2Config): Tensor {
  const y = conv2d(p[0]!, x, { stride: cfg.stemStride, layout: 'NHWC' });
  return layerNorm(p[1]!, y, { eps: cfg.layerNormEps });
}

/** A downsampler on NHWC input: LayerNorm, then conv k=2 s=2. `keep` masks the LN output. */
export function downsample(p: WeightBias[], x: Tensor, cfg: ConvNeXtV2Config, keep?: Tensor): Tensor {
  let y = layerNorm(p[0]!, x, { eps: cfg.layerNormEps });
  if (keep) y = ops.mul(y, keep);
  return conv2d(p[1]!, y, { stride: 2, layout: 'NHWC' });
}

// ---------------------------------------------------------------------------------------
// checks

/** Checks an NCHW image batch against the configuration; returns it. */
export function checkImages(op: string, x: unknown, cfg: ConvNeXtV2Config, stemWeight?: Tensor, multiple = totalStride(cfg), why?: string): Tensor {
  if (!(x instanceof Tensor)) throw new OpError(op, `images must be a Tensor (N, C, H, W), got ${x === null ? 'null' : typeof x}`);
  if (!isFloat(x.dtype)) throw new OpError(op, `images must be a float tensor, got ${x.dtype}${fmtShape(x.shape)}`);
  if (x.ndim !== 4) throw new OpError(op, `images must be 4-D (N, C, H, W), got ${fmtShape(x.shape)}`);
  const c = x.shape[1]!;
  if (c !== cfg.inChans) {
    const w = stemWeight ? ` (downsample_layers.0.0.weight ${fmtShape(stemWeight.shape)})` : '';
    throw new OpError(op, `images ${fmtShape(x.shape)} have ${c} channels but the stem${w} expects ${cfg.inChans} (NCHW input)`);
  }
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  if (h % multiple !== 0 || w % multiple !== 0 || h === 0 || w === 0) {
    const reason = why ?? `the model's total stride: stem ${cfg.stemStride} x 2^${cfg.depths.length - 1} downsamplings`;
    throw new OpError(op, `image size ${h}x${w} is not a multiple of ${multiple} (${reason})`);
  }
  return x;
}

function stemWeightOf(params: unknown): Tensor | undefined {
  const w = (params as Partial<EncoderParams>)?.downsample_layers?.[0]?.[0]?.weight;
  return w instanceof Tensor ? w : undefined;
}

// ---------------------------------------------------------------------------------------
// forward

export interface ApplyOptions {
  /** The configuration; inferred from the params when absent. */
  cfg?: ConvNeXtV2Config;
  /** Training mode: drop path active (needs `key` when cfg.dropPathRate > 0). */
  train?: boolean;
  key?: Tensor;
}

interface EncodeOptions {
  train?: boolean;
  key?: Tensor;
  /** Called with each stage's NHWC output. */
  onStage?: (i: number, x: Tensor) => void;
}

/** Stem, downsamplers and stages on NHWC input; returns the last stage's NHWC output. */
export function encodeNHWC(params: EncoderParams, x: Tensor, cfg: ConvNeXtV2Config, opts: EncodeOptions = {}): Tensor {
  const train = opts.train ?? false;
  const rates = dropPathRates(cfg);
  if (train && cfg.dropPathRate > 0 && !(opts.key instanceof Tensor)) {
    throw new OpError('convnextv2.apply', `training with dropPathRate ${cfg.dropPathRate} needs a PRNG key (opts.key)`);
  }
  let k = 0;
  for (let i = 0; i < cfg.depths.length; i++) {
    // kernels are named after these scopes (the parameters' names)
    const xi = x;
    x = namedScope(`downsample_layers.${i}`, () => (i === 0 ? stem(params.downsample_layers[0]!, xi, cfg) : downsample(params.downsample_layers[i]!, xi, cfg)));
    for (let b = 0; b < cfg.depths[i]!; b++, k++) {
      const rate = rates[k]!;
      const xb = x;
      const kb = k;
      x = namedScope(`stages.${i}.${b}`, () =>
        block(params.stages[i]![b]!, xb, {
          layerNormEps: cfg.layerNormEps,
          grnEps: cfg.grnEps,
          dropPath: train && rate > 0 ? { rate, train, key: random.foldIn(opts.key!, kb) } : undefined,
        }),
      );
    }
    opts.onStage?.(i, x);
  }
  return x;
}

/**
 * Logits (N, numClasses) of NCHW images. With train and cfg.dropPathRate > 0, block k drops its
 * branch per sample with rate linspace(0, dropPathRate, sum(depths))[k], from foldIn(key, k).
 */
export function apply(params: ConvNeXtV2Params, x: Tensor, opts: ApplyOptions = {}): Tensor {
  const op = 'convnextv2.apply';
  const cfg = opts.cfg ?? configFromParams(params);
  checkParams(op, params, paramSpec(cfg));
  checkImages(op, x, cfg, stemWeightOf(params));
  if (params.downsample_layers[0]![0]!.weight.dtype !== x.dtype) {
    throw new OpError(op, `images are ${x.dtype} but the params are ${params.downsample_layers[0]![0]!.weight.dtype}; cast one of them`);
  }
  const h = encodeNHWC(params, ops.transpose(x, [0, 2, 3, 1]), cfg, opts);
  return namedScope('head', () => {
    const pooled = globalAvgPool(h, { layout: 'NHWC' });
    return linear(params.head, layerNorm(params.norm, pooled, { eps: cfg.layerNormEps }));
  });
}

/** The output of every stage, NCHW: [(N,C0,H/4,W/4), ..., (N,C3,H/32,W/32)] (eval mode). */
export function features(params: EncoderParams, x: Tensor, cfg?: ConvNeXtV2Config): Tensor[] {
  const op = 'convnextv2.features';
  const c = cfg ?? configFromParams(params);
  checkParams(op, params, encoderSpec(c));
  checkImages(op, x, c, stemWeightOf(params));
  const outs: Tensor[] = [];
  encodeNHWC(params, ops.transpose(x, [0, 2, 3, 1]), c, { onStage: (_, y) => outs.push(ops.transpose(y, [0, 3, 1, 2])) });
  return outs;
}
