/**
 * Neural-network layers as pure functions `(params, x, opts) => y`, with `init*(key, cfg)`
 * functions that make their parameters.
 *
 * Weights keep PyTorch layouts (conv OIHW, linear (out, in)), so PyTorch state dicts load
 * without transposes. Every composite op is one named `region` (layer_norm, gelu, grn,
 * masked_grn, drop_path, global_avg_pool) with its scalar hyper-parameters in the region's
 * attrs, so fusion passes can find them by name and autodiff goes through their bodies.
 *
 * Everything works in any float dtype (the dtype of x; params must match) and under
 * trace/jit/grad.
 */
import { isFloat } from '../ir/dtype.js';
import { OpError } from '../ir/errors.js';
import { region } from '../ir/functional.js';
import * as ops from '../ir/ops.js';
import * as random from '../ir/random.js';
import { fmtShape } from '../ir/shape.js';
import { Tensor } from '../ir/tensor.js';
import { type FloatDType, initFromSpec, ParamSpec } from './init.js';

export type Layout = 'NCHW' | 'NHWC';

function requireTensor(op: string, what: string, x: unknown): Tensor {
  if (!(x instanceof Tensor)) throw new OpError(op, `${what} must be a Tensor, got ${x === null ? 'null' : Array.isArray(x) ? 'an array' : typeof x}`);
  return x;
}

function requireFloatTensor(op: string, what: string, x: unknown): Tensor {
  const t = requireTensor(op, what, x);
  if (!isFloat(t.dtype)) throw new OpError(op, `${what} must be a float tensor, got ${t.dtype}${fmtShape(t.shape)}`);
  return t;
}

/** Option names each layer knows: a misspelt option is an error, never silently ignored. */
const OPTION_KEYS = {
  conv2d: ['stride', 'padding', 'dilation', 'groups', 'layout'],
  depthwiseConv2d: ['layout', 'padding'],
  layerNorm: ['eps', 'dataFormat'],
  gelu: ['approximate'],
  grn: ['eps', 'layout'],
  maskedGrn: ['eps', 'sqrtEps', 'stats'],
  dropPath: ['rate', 'train', 'key'],
  globalAvgPool: ['layout', 'keepdims'],
} as const satisfies Record<string, readonly string[]>;
const OPTION_SETS = Object.fromEntries(Object.entries(OPTION_KEYS).map(([k, v]) => [k, new Set<string>(v)])) as unknown as Record<keyof typeof OPTION_KEYS, ReadonlySet<string>>;

function checkLayerOptions(op: keyof typeof OPTION_KEYS, opts: unknown): void {
  ops.checkOptions(op, opts, OPTION_SETS[op]);
}

function requireLayout(op: string, what: string, v: unknown, allowed: readonly string[]): void {
  if (v !== undefined && !allowed.includes(v as string)) {
    throw new OpError(op, `${what} must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${JSON.stringify(v) ?? typeof v}`);
  }
}

/** eps-like options: finite and non-negative. */
function requireEps(op: string, what: string, v: unknown): void {
  if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
    throw new OpError(op, `${what} must be a finite non-negative number, got ${JSON.stringify(v) ?? typeof v}`);
  }
}

function sameDType(op: string, x: Tensor, what: string, p: Tensor): void {
  if (p.dtype !== x.dtype) throw new OpError(op, `${what} is ${p.dtype}${fmtShape(p.shape)} but the input is ${x.dtype}${fmtShape(x.shape)}; cast one of them`);
}

/** Reshapes a per-channel vector (any shape holding C elements) to broadcast along `axis`. */
function channelVector(op: string, what: string, v: Tensor, c: number, ndim: number, axis: number): Tensor {
  if (v.size !== c) throw new OpError(op, `${what} has shape ${fmtShape(v.shape)} (${v.size} elements), expected ${c} (one per channel)`);
  const shape = new Array<number>(ndim - axis).fill(1);
  shape[0] = c;
  return ops.reshape(v, shape);
}

// ---------------------------------------------------------------------------------------
// linear

export interface LinearParams {
  /** (out, in), as torch.nn.Linear. */
  weight: Tensor;
  bias?: Tensor | null;
}

/** y = x W^T + b over the last axis of x (torch.nn.Linear). */
export function linear(p: LinearParams, x: Tensor): Tensor {
  const op = 'linear';
  requireFloatTensor(op, 'input', x);
  const w = requireTensor(op, 'weight', p?.weight);
  if (w.ndim !== 2) throw new OpError(op, `weight must be (out, in), got ${fmtShape(w.shape)}`);
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== w.shape[1]) {
    throw new OpError(op, `input ${fmtShape(x.shape)} has ${x.shape[x.ndim - 1]} features in its last axis, the weight ${fmtShape(w.shape)} expects ${w.shape[1]}`);
  }
  sameDType(op, x, 'weight', w);
  let y = ops.dotGeneral(x, w, [[x.ndim - 1], [1]]);
  if (p.bias) {
    sameDType(op, x, 'bias', p.bias);
    if (p.bias.size !== w.shape[0]) throw new OpError(op, `bias has shape ${fmtShape(p.bias.shape)}, expected [${w.shape[0]}]`);
    y = ops.add(y, ops.reshape(p.bias, [w.shape[0]!]));
  }
  return y;
}

export interface LinearConfig {
  inFeatures: number;
  outFeatures: number;
  bias?: boolean;
  /** trunc-normal std of the weight (default 0.02). */
  std?: number;
  dtype?: FloatDType;
}

/** Weight ~ trunc_normal(std 0.02), bias 0 (ConvNeXt V2's `_init_weights`). */
export function initLinear(key: Tensor, cfg: LinearConfig): LinearParams {
  const spec: Record<string, ParamSpec> = { weight: new ParamSpec([cfg.outFeatures, cfg.inFeatures], 'trunc_normal', cfg.std ?? 0.02) };
  if (cfg.bias ?? true) spec.bias = new ParamSpec([cfg.outFeatures], 'zeros');
  return initFromSpec<LinearParams>(key, spec, cfg.dtype);
}

// ---------------------------------------------------------------------------------------
// conv2d

export interface Conv2dParams {
  /** (out, in/groups, kh, kw), as torch.nn.Conv2d. */
  weight: Tensor;
  bias?: Tensor | null;
}

export interface Conv2dOptions {
  stride?: number | readonly [number, number];
  /** A number for every side, 'SAME', 'VALID' or (lo, hi) per spatial axis; default 0. */
  padding?: ops.ConvOptions['padding'];
  dilation?: number | readonly [number, number];
  groups?: number;
  /** Activation layout (default NCHW); the weight is OIHW either way. */
  layout?: Layout;
}

/** A 2-D convolution with PyTorch weights (dense, strided, grouped or depthwise). */
export function conv2d(p: Conv2dParams, x: Tensor, opts: Conv2dOptions = {}): Tensor {
  const op = 'conv2d';
  checkLayerOptions(op, opts);
  requireLayout(op, 'layout', opts.layout, ['NCHW', 'NHWC']);
  requireFloatTensor(op, 'input', x);
  const w = requireTensor(op, 'weight', p?.weight);
  if (x.ndim !== 4) throw new OpError(op, `input must be 4-D (${opts.layout ?? 'NCHW'}), got ${fmtShape(x.shape)}`);
  if (w.ndim !== 4) throw new OpError(op, `weight must be 4-D (OIHW), got ${fmtShape(w.shape)}`);
  sameDType(op, x, 'weight', w);
  const layout = opts.layout ?? 'NCHW';
  const cAxis = layout === 'NCHW' ? 1 : 3;
  const groups = opts.groups ?? 1;
  const cin = x.shape[cAxis]!;
  if (!Number.isInteger(groups) || groups < 1 || cin % groups !== 0 || w.shape[0]! % groups !== 0) {
    throw new OpError(op, `groups ${groups} must divide the input channels (${cin}) and the output channels (${w.shape[0]})`);
  }
  if (w.shape[1]! * groups !== cin) {
    throw new OpError(op, `input ${fmtShape(x.shape)} (${layout}) has ${cin} channels, the weight ${fmtShape(w.shape)} with groups ${groups} expects ${w.shape[1]! * groups}`);
  }
  let y = ops.conv2d(x, w, {
    strides: opts.stride,
    padding: opts.padding ?? 0,
    dilation: opts.dilation,
    groups,
    layout,
    kernelLayout: 'OIHW',
  });
  if (p.bias) {
    sameDType(op, x, 'bias', p.bias);
    y = ops.add(y, channelVector(op, 'bias', p.bias, w.shape[0]!, 4, cAxis));
  }
  return y;
}

export interface Conv2dConfig {
  inChannels: number;
  outChannels: number;
  kernelSize: number | readonly [number, number];
  groups?: number;
  bias?: boolean;
  std?: number;
  dtype?: FloatDType;
}

/** Weight ~ trunc_normal(std 0.02), bias 0. */
export function initConv2d(key: Tensor, cfg: Conv2dConfig): Conv2dParams {
  const [kh, kw] = typeof cfg.kernelSize === 'number' ? [cfg.kernelSize, cfg.kernelSize] : cfg.kernelSize;
  const g = cfg.groups ?? 1;
  const spec: Record<string, ParamSpec> = { weight: new ParamSpec([cfg.outChannels, cfg.inChannels / g, kh, kw], 'trunc_normal', cfg.std ?? 0.02) };
  if (cfg.bias ?? true) spec.bias = new ParamSpec([cfg.outChannels], 'zeros');
  return initFromSpec<Conv2dParams>(key, spec, cfg.dtype);
}

/** Depthwise conv (groups = channels, 'same' padding for odd kernels): ConvNeXt's dwconv 7x7. */
export function depthwiseConv2d(p: Conv2dParams, x: Tensor, opts: { layout?: Layout; padding?: Conv2dOptions['padding'] } = {}): Tensor {
  checkLayerOptions('depthwiseConv2d', opts);
  requireLayout('depthwiseConv2d', 'layout', opts.layout, ['NCHW', 'NHWC']);
  requireFloatTensor('depthwiseConv2d', 'input', x);
  const w = requireTensor('depthwiseConv2d', 'weight', p?.weight);
  if (w.ndim !== 4 || x.ndim !== 4) throw new OpError('depthwiseConv2d', `expected a 4-D input and OIHW weight, got ${fmtShape(x.shape)} and ${fmtShape(w.shape)}`);
  const c = x.shape[(opts.layout ?? 'NCHW') === 'NCHW' ? 1 : 3]!;
  const pad = opts.padding ?? [[(w.shape[2]! - 1) >> 1, w.shape[2]! >> 1], [(w.shape[3]! - 1) >> 1, w.shape[3]! >> 1]];
  return conv2d(p, x, { groups: c, layout: opts.layout, padding: pad });
}

// ---------------------------------------------------------------------------------------
// layer norm

export interface LayerNormParams {
  weight: Tensor;
  bias: Tensor;
}

export interface LayerNormOptions {
  /** Added to the (biased) variance; default 1e-6 (every LayerNorm in ConvNeXt V2). */
  eps?: number;
  /**
   * 'channels_last' (default): over the last axis (F.layer_norm). 'channels_first': over axis 1
   * of NCHW (the official ConvNeXt LayerNorm); this equals channels_last on the NHWC tensor.
   */
  dataFormat?: 'channels_last' | 'channels_first';
}

/**
 * LayerNorm over one axis: (x - mean) / sqrt(var + eps) * weight + bias with the biased
 * variance. Region `layer_norm`, attrs {eps, axis}; inputs (x, weight, bias).
 */
export function layerNorm(p: LayerNormParams, x: Tensor, opts: LayerNormOptions = {}): Tensor {
  const op = 'layerNorm';
  checkLayerOptions(op, opts);
  requireEps(op, 'eps', opts.eps);
  requireLayout(op, 'dataFormat', opts.dataFormat, ['channels_last', 'channels_first']);
  requireFloatTensor(op, 'input', x);
  const eps = opts.eps ?? 1e-6;
  const cf = (opts.dataFormat ?? 'channels_last') === 'channels_first';
  if (cf && x.ndim < 2) throw new OpError(op, `channels_first needs an input with a channel axis 1, got ${fmtShape(x.shape)}`);
  if (x.ndim < 1) throw new OpError(op, 'input must have at least one axis');
  const axis = cf ? 1 : x.ndim - 1;
  const c = x.shape[axis]!;
  const w = requireTensor(op, 'weight', p?.weight);
  const b = requireTensor(op, 'bias', p?.bias);
  sameDType(op, x, 'weight', w);
  sameDType(op, x, 'bias', b);
  const wv = channelVector(op, 'weight', w, c, x.ndim, axis);
  const bv = channelVector(op, 'bias', b, c, x.ndim, axis);
  const fn = region(
    'layer_norm',
    (xx: Tensor, ww: Tensor, bb: Tensor) => {
      const u = ops.mean(xx, axis, true);
      const d = ops.sub(xx, u);
      const v = ops.mean(ops.mul(d, d), axis, true);
      return ops.add(ops.mul(ops.mul(d, ops.rsqrt(ops.add(v, eps))), ww), bb);
    },
    { eps, axis },
  );
  return fn(x, wv, bv);
}

export function initLayerNorm(_key: Tensor | null, cfg: { dim: number; dtype?: FloatDType }): LayerNormParams {
  return initFromSpec<LayerNormParams>(random.key(0), { weight: new ParamSpec([cfg.dim], 'ones'), bias: new ParamSpec([cfg.dim], 'zeros') }, cfg.dtype);
}

// ---------------------------------------------------------------------------------------
// GELU

export type GeluApproximate = 'none' | 'tanh';

/**
 * GELU: exact x/2 (1 + erf(x/sqrt 2)) (approximate 'none', default; nn.GELU()) or the tanh
 * form x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Region `gelu`, attrs {approximate}.
 */
export function gelu(x: Tensor, opts: { approximate?: GeluApproximate } = {}): Tensor {
  checkLayerOptions('gelu', opts);
  requireFloatTensor('gelu', 'input', x);
  const approximate = opts.approximate ?? 'none';
  if (approximate !== 'none' && approximate !== 'tanh') throw new OpError('gelu', `approximate must be 'none' or 'tanh', got ${JSON.stringify(approximate)}`);
  const fn = region(
    'gelu',
    (xx: Tensor) => {
      if (approximate === 'none') return ops.mul(ops.mul(xx, 0.5), ops.add(ops.erf(ops.mul(xx, Math.SQRT1_2)), 1));
      const inner = ops.mul(ops.add(xx, ops.mul(ops.mul(ops.mul(xx, xx), xx), 0.044715)), Math.sqrt(2 / Math.PI));
      return ops.mul(ops.mul(xx, 0.5), ops.add(ops.tanh(inner), 1));
    },
    { approximate },
  );
  return fn(x);
}

// ---------------------------------------------------------------------------------------
// GRN

export interface GrnParams {
  /** (1,1,1,C) as the official layer (any shape with C elements is accepted). */
  gamma: Tensor;
  beta: Tensor;
}

export interface GrnOptions {
  /** Added to the channel mean of the norms (default 1e-6). */
  eps?: number;
  /** Input layout (default NHWC, as in the ConvNeXt V2 block). */
  layout?: Layout;
}

/** sqrt(s) with value 0 and gradient 0 at s = 0 (torch.norm's subgradient), never NaN. */
function safeSqrt(s: Tensor): Tensor {
  const pos = ops.greater(s, 0);
  return ops.where(pos, ops.sqrt(ops.where(pos, s, 1)), 0);
}

function grnInputs(op: string, p: GrnParams, x: Tensor, layout: Layout): { cAxis: number; spatial: number[]; g: Tensor; b: Tensor } {
  requireFloatTensor(op, 'input', x);
  if (x.ndim !== 4) throw new OpError(op, `input must be 4-D (${layout}), got ${fmtShape(x.shape)}`);
  const cAxis = layout === 'NHWC' ? 3 : 1;
  const spatial = layout === 'NHWC' ? [1, 2] : [2, 3];
  const c = x.shape[cAxis]!;
  const g = requireTensor(op, 'gamma', p?.gamma);
  const b = requireTensor(op, 'beta', p?.beta);
  sameDType(op, x, 'gamma', g);
  sameDType(op, x, 'beta', b);
  return { cAxis, spatial, g: channelVector(op, 'gamma', g, c, 4, cAxis), b: channelVector(op, 'beta', b, c, 4, cAxis) };
}

/**
 * Global Response Normalization, dense (official ConvNeXt V2, spec 2.1):
 *   Gx[n,c] = sqrt(sum_{h,w} x^2)        (no eps; the L2 norm over the spatial axes)
 *   Nx      = Gx / (mean_c Gx + eps)
 *   y       = gamma * (x * Nx) + beta + x
 * At Gx = 0 the gradient of the norm is taken as 0 (as torch.norm), so it never yields NaN.
 * Region `grn`, attrs {eps, layout}; inputs (x, gamma, beta).
 */
export function grn(p: GrnParams, x: Tensor, opts: GrnOptions = {}): Tensor {
  checkLayerOptions('grn', opts);
  requireEps('grn', 'eps', opts.eps);
  requireLayout('grn', 'layout', opts.layout, ['NCHW', 'NHWC']);
  const layout = opts.layout ?? 'NHWC';
  const eps = opts.eps ?? 1e-6;
  const { cAxis, spatial, g, b } = grnInputs('grn', p, x, layout);
  const fn = region(
    'grn',
    (xx: Tensor, gg: Tensor, bb: Tensor) => {
      const gx = safeSqrt(ops.sum(ops.mul(xx, xx), spatial, true));
      const nx = ops.div(gx, ops.add(ops.mean(gx, cAxis, true), eps));
      return ops.add(ops.add(ops.mul(gg, ops.mul(xx, nx)), bb), xx);
    },
    { eps, layout },
  );
  return fn(x, g, b);
}

export type GrnStats = 'per-sample' | 'batch-pooled';

export interface MaskedGrnOptions {
  /** Added to the channel mean of the norms (default 1e-6). */
  eps?: number;
  /**
   * Added to the sum of squares INSIDE the square root: Gx = sqrt(sum x_m^2 + sqrtEps). The
   * authors' JAX GRN (TRAINING.md, spec 3.4) uses 1e-6, the default here; 0 gives the PyTorch
   * norm (with a zero gradient at Gx = 0 instead of NaN).
   */
  sqrtEps?: number;
  /**
   * 'per-sample' (default; the JAX/dense behaviour, spec 3.4): the norm of each sample over its
   * visible sites. 'batch-pooled': the official sparse MinkowskiGRN (spec 3.7), whose norm runs
   * over the visible sites of the WHOLE batch at once (one Gx per channel, shared by all
   * samples); a known mismatch with the dense model, kept for reproducing official runs.
   */
  stats?: GrnStats;
}

/**
 * GRN under a patch mask (FCMAE encoder, spec 3.4 / 3.7), NHWC. `mask` is (N,H,W) or
 * (N,H,W,1) with 1 = removed (masked) and 0 = visible:
 *   x_m = x * (1 - mask)
 *   Gx  = sqrt(sum_{h,w} x_m^2 + sqrtEps)          per sample (or sum_{n,h,w}: batch-pooled)
 *   Nx  = Gx / (mean_c Gx + eps)
 *   y   = gamma * (x * Nx) + beta + x               (x itself, unmasked, as in spec 3.4)
 * Values at masked sites are garbage the caller must discard (the FCMAE block re-masks).
 * Region `masked_grn`, attrs {eps, sqrtEps, stats}; inputs (x, keep, gamma, beta) where
 * keep = 1 - mask as (N,H,W,1).
 */
export function maskedGrn(p: GrnParams, x: Tensor, mask: Tensor, opts: MaskedGrnOptions = {}): Tensor {
  const op = 'maskedGrn';
  checkLayerOptions(op, opts);
  requireEps(op, 'eps', opts.eps);
  requireEps(op, 'sqrtEps', opts.sqrtEps);
  const eps = opts.eps ?? 1e-6;
  const sqrtEps = opts.sqrtEps ?? 1e-6;
  const stats = opts.stats ?? 'per-sample';
  if (stats !== 'per-sample' && stats !== 'batch-pooled') throw new OpError(op, `stats must be 'per-sample' or 'batch-pooled', got ${JSON.stringify(stats)}`);
  const { g, b } = grnInputs(op, p, x, 'NHWC');
  const keep = keepMask(op, mask, x);
  const axes = stats === 'per-sample' ? [1, 2] : [0, 1, 2];
  const fn = region(
    'masked_grn',
    (xx: Tensor, kk: Tensor, gg: Tensor, bb: Tensor) => {
      const xm = ops.mul(xx, kk);
      const ss = ops.sum(ops.mul(xm, xm), axes, true);
      const gx = sqrtEps > 0 ? ops.sqrt(ops.add(ss, sqrtEps)) : safeSqrt(ss);
      const nx = ops.div(gx, ops.add(ops.mean(gx, 3, true), eps));
      return ops.add(ops.add(ops.mul(gg, ops.mul(xx, nx)), bb), xx);
    },
    { eps, sqrtEps, stats },
  );
  return fn(x, keep, g, b);
}

/** keep = 1 - mask as (N,H,W,1) in x's dtype, from a (N,H,W) or (N,H,W,1) mask (1 = removed). */
export function keepMask(op: string, mask: Tensor, x: Tensor): Tensor {
  requireTensor(op, 'mask', mask);
  const [n, h, w] = x.shape;
  let m = mask;
  if (m.ndim === 3) m = ops.reshape(m, [...m.shape, 1]);
  if (m.ndim !== 4 || m.shape[0] !== n || m.shape[1] !== h || m.shape[2] !== w || m.shape[3] !== 1) {
    throw new OpError(op, `mask ${fmtShape(mask.shape)} does not match the input ${fmtShape(x.shape)} (NHWC): expected [${n},${h},${w}] or [${n},${h},${w},1]`);
  }
  if (m.dtype !== x.dtype) m = ops.cast(m, x.dtype);
  return ops.sub(1, m);
}

export function initGrn(_key: Tensor | null, cfg: { dim: number; dtype?: FloatDType }): GrnParams {
  return initFromSpec<GrnParams>(
    random.key(0),
    { gamma: new ParamSpec([1, 1, 1, cfg.dim], 'zeros'), beta: new ParamSpec([1, 1, 1, cfg.dim], 'zeros') },
    cfg.dtype,
  );
}

// ---------------------------------------------------------------------------------------
// drop path, pooling

export interface DropPathOptions {
  /** Probability of dropping a sample's residual branch, in [0, 1). */
  rate: number;
  train?: boolean;
  /** Required when train is true and rate > 0. */
  key?: Tensor;
}

/**
 * Stochastic depth (timm `drop_path`): per sample, keep the branch with probability
 * 1 - rate (random.bernoulli from `key`) and scale kept samples by 1/(1 - rate). The identity
 * when not training or when rate is 0. Region `drop_path`, attrs {rate}; inputs (x, keep mask
 * of shape (N,1,...,1) in x's dtype).
 */
export function dropPath(x: Tensor, opts: DropPathOptions): Tensor {
  const op = 'dropPath';
  if (opts === undefined || opts === null) throw new OpError(op, 'options {rate, train?, key?} are required');
  checkLayerOptions(op, opts);
  requireFloatTensor(op, 'input', x);
  const rate = opts.rate;
  if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) throw new OpError(op, `rate must be in [0, 1), got ${rate}`);
  if (!opts.train || rate === 0) return x;
  if (!(opts.key instanceof Tensor)) throw new OpError(op, `training with rate ${rate} needs a PRNG key (opts.key)`);
  const keepProb = 1 - rate;
  const n = x.shape[0]!;
  const keep = ops.reshape(ops.cast(random.bernoulli(opts.key, keepProb, [n]), x.dtype), [n, ...x.shape.slice(1).map(() => 1)]);
  const fn = region('drop_path', (xx: Tensor, kk: Tensor) => ops.mul(xx, ops.div(kk, keepProb)), { rate });
  return fn(x, keep);
}

/** Mean over the spatial axes: (N,C,H,W) -> (N,C) or (N,H,W,C) -> (N,C). Region `global_avg_pool`. */
export function globalAvgPool(x: Tensor, opts: { layout?: Layout; keepdims?: boolean } = {}): Tensor {
  checkLayerOptions('globalAvgPool', opts);
  requireLayout('globalAvgPool', 'layout', opts.layout, ['NCHW', 'NHWC']);
  requireFloatTensor('globalAvgPool', 'input', x);
  if (x.ndim !== 4) throw new OpError('globalAvgPool', `input must be 4-D, got ${fmtShape(x.shape)}`);
  const layout = opts.layout ?? 'NCHW';
  const keepdims = opts.keepdims ?? false;
  const axes = layout === 'NCHW' ? [2, 3] : [1, 2];
  return region('global_avg_pool', (xx: Tensor) => ops.mean(xx, axes, keepdims), { layout, keepdims })(x);
}
