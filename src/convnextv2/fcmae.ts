/**
 * FCMAE: fully convolutional masked-autoencoder pretraining of ConvNeXt V2 (spec section 3),
 * with the encoder in its dense-masked form (spec 3.4, exactly as ../shared/refs/README.md
 * describes for fcmae_tiny):
 *   - the stem output is multiplied by the keep mask (1 - mask);
 *   - each downsampling LayerNorm's output is masked before its conv;
 *   - in each block the depthwise conv reads the zero-masked input and its output is masked,
 *     masked sites are excluded from GRN's statistics (per sample by default; the official
 *     sparse code's batch-pooled statistics with grnStats 'batch-pooled', spec 3.7), and the
 *     branch output is masked before the residual add.
 * Then the decoder (spec 3.5): proj (1x1 conv), mask token at removed patches, dense decoder
 * blocks, pred (1x1 conv to patch*patch*3), and the masked MSE of spec 3.6.
 *
 * Masks are (N, L) with 1 = removed, L = (imgSize/patch)^2 patches in row-major order.
 *
 * Parameters: { encoder: {downsample_layers, stages}, proj: {weight (D,C3,1,1), bias},
 * mask_token (1,D,1,1), decoder: [block...], pred: {weight (p*p*C, D, 1, 1), bias} }, the
 * FCMAE state-dict names with the dense encoder layout.
 */
import { namedScope } from '../ir/trace.js';
import { isFloat } from '../ir/dtype.js';
import { OpError } from '../ir/errors.js';
import * as ops from '../ir/ops.js';
import * as random from '../ir/random.js';
import { fmtShape } from '../ir/shape.js';
import { Tensor } from '../ir/tensor.js';
import { checkParams, initFromSpec, paramCount as countParams, ParamSpec, type SpecTree, specParamCount } from '../nn/init.js';
import { type GrnStats, linear, type LinearParams } from '../nn/layers.js';
import { maskedMse } from '../nn/losses.js';
import { type ConfigOverrides, type ConvNeXtV2Config, config as modelConfig, totalStride, type VariantName, dropPathRates } from './config.js';
import { block, type BlockParams, blockSpec, checkImages, downsample, encoderSpec, type EncoderParams, stem } from './model.js';

// ---------------------------------------------------------------------------------------
// configuration

export interface FcmaeOptions {
  /** Decoder width D (default 512). */
  decoderDim: number;
  /** Number of dense decoder blocks (default 1). */
  decoderDepth: number;
  /** Patch size (default 32); must equal the encoder's total stride. */
  patchSize: number;
  /** Fraction of patches removed (default 0.6; len_keep = floor(L (1 - ratio))). */
  maskRatio: number;
  /** Normalise each target patch by its mean and (unbiased) variance (default true, as main_pretrain). */
  normPixLoss: boolean;
  /** Image size (default 224). */
  imgSize: number;
  /**
   * GRN statistics in the masked encoder: 'per-sample' over visible sites (default; the JAX/dense
   * behaviour and the refs) or 'batch-pooled' (the official sparse MinkowskiGRN, spec 3.7).
   */
  grnStats: GrnStats;
  /**
   * eps inside the square root of the masked GRN, Gx = sqrt(sum x^2 + grnSqrtEps). Default 0,
   * as the PyTorch reference (refs/fcmae_tiny: the official GRN applied to the zero-masked
   * input, no eps in the norm); the authors' JAX GRN (spec 3.4) uses 1e-6.
   */
  grnSqrtEps: number;
}

export interface FcmaeConfig extends FcmaeOptions {
  readonly encoder: ConvNeXtV2Config;
}

/**
 * `config('atto')`, `config('tiny', {maskRatio: 0.6})`, or a custom encoder
 * `config({depths, dims}, {decoderDim: 16, imgSize: 64})`. The encoder has no final norm/head.
 */
export function config(encoder: VariantName | ConfigOverrides | ConvNeXtV2Config, opts: Partial<FcmaeOptions> = {}): FcmaeConfig {
  const enc = typeof encoder === 'string' ? modelConfig(encoder) : modelConfig(encoder as ConfigOverrides);
  const cfg: FcmaeConfig = {
    encoder: enc,
    decoderDim: opts.decoderDim ?? 512,
    decoderDepth: opts.decoderDepth ?? 1,
    patchSize: opts.patchSize ?? 32,
    maskRatio: opts.maskRatio ?? 0.6,
    normPixLoss: opts.normPixLoss ?? true,
    imgSize: opts.imgSize ?? 224,
    grnStats: opts.grnStats ?? 'per-sample',
    grnSqrtEps: opts.grnSqrtEps ?? 0,
  };
  const bad = (m: string): never => {
    throw new OpError('fcmae.config', m);
  };
  if (!(Number.isInteger(cfg.decoderDim) && cfg.decoderDim > 0)) bad(`decoderDim must be a positive integer, got ${cfg.decoderDim}`);
  if (!(Number.isInteger(cfg.decoderDepth) && cfg.decoderDepth >= 0)) bad(`decoderDepth must be a non-negative integer, got ${cfg.decoderDepth}`);
  if (cfg.patchSize !== totalStride(enc)) {
    bad(`patchSize ${cfg.patchSize} must equal the encoder's total stride ${totalStride(enc)} (stem ${enc.stemStride} x 2^${enc.depths.length - 1}), so that each patch is one output cell`);
  }
  if (!(cfg.maskRatio >= 0 && cfg.maskRatio < 1)) bad(`maskRatio must be in [0, 1), got ${cfg.maskRatio}`);
  if (cfg.imgSize % cfg.patchSize !== 0 || cfg.imgSize <= 0) bad(`image size ${cfg.imgSize} is not a multiple of the patch size ${cfg.patchSize}`);
  if (cfg.grnStats !== 'per-sample' && cfg.grnStats !== 'batch-pooled') bad(`grnStats must be 'per-sample' or 'batch-pooled', got ${JSON.stringify(cfg.grnStats)}`);
  if (!(cfg.grnSqrtEps >= 0)) bad(`grnSqrtEps must be >= 0, got ${cfg.grnSqrtEps}`);
  return Object.freeze(cfg);
}

// ---------------------------------------------------------------------------------------
// parameters

export interface FcmaeParams {
  encoder: EncoderParams;
  proj: LinearParams & { bias: Tensor };
  mask_token: Tensor;
  decoder: BlockParams[];
  pred: LinearParams & { bias: Tensor };
}

/**
 * The parameter structure. Init follows the fine-tuning model's rules everywhere (std 0.02
 * trunc normal for conv/linear weights, biases 0, LN 1/0, GRN 0/0) and mask_token ~ N(0, 0.02),
 * the spec's recommendation (3.8) rather than the std-1.0 init the official code happens to do.
 */
export function paramSpec(cfg: FcmaeConfig): SpecTree {
  const c3 = cfg.encoder.dims[cfg.encoder.dims.length - 1]!;
  const d = cfg.decoderDim;
  const k = cfg.patchSize * cfg.patchSize * cfg.encoder.inChans;
  return {
    encoder: encoderSpec(cfg.encoder),
    proj: { weight: new ParamSpec([d, c3, 1, 1], 'trunc_normal'), bias: new ParamSpec([d], 'zeros') },
    mask_token: new ParamSpec([1, d, 1, 1], 'normal', 0.02),
    decoder: Array.from({ length: cfg.decoderDepth }, () => blockSpec(d)),
    pred: { weight: new ParamSpec([k, d, 1, 1], 'trunc_normal'), bias: new ParamSpec([k], 'zeros') },
  };
}

export function init(key: Tensor, cfg: FcmaeConfig): FcmaeParams {
  return initFromSpec<FcmaeParams>(key, paramSpec(cfg), cfg.encoder.dtype);
}

export function paramCount(params: unknown): number {
  return countParams(params);
}

export function paramCountOf(cfg: FcmaeConfig): number {
  return specParamCount(paramSpec(cfg));
}

// ---------------------------------------------------------------------------------------
// masks and patches

function checkGrid(op: string, imgSize: number, patch: number): number {
  if (!(Number.isInteger(patch) && patch > 0)) throw new OpError(op, `patch size must be a positive integer, got ${patch}`);
  if (!(Number.isInteger(imgSize) && imgSize > 0) || imgSize % patch !== 0) {
    throw new OpError(op, `image size ${imgSize} is not a multiple of the patch size ${patch}`);
  }
  return imgSize / patch;
}

/**
 * A random patch mask (N, L), 1 = removed (spec 3.2): noise ~ N(0,1) of shape (N, L) from
 * `key`; the len_keep = floor(L (1 - ratio)) patches with the lowest noise are kept. Ranks are
 * computed without a sort: rank[l] = #{j : noise[j] < noise[l], or equal with j < l}, and a
 * patch is removed when rank >= len_keep (what argsort + gather does).
 */
export function randomMask(key: Tensor, n: number, imgSize: number, patch: number, ratio: number, dtype: 'f32' | 'f64' = 'f32'): Tensor {
  const op = 'fcmae.randomMask';
  const side = checkGrid(op, imgSize, patch);
  if (!(Number.isInteger(n) && n >= 0)) throw new OpError(op, `batch size must be a non-negative integer, got ${n}`);
  if (!(ratio >= 0 && ratio <= 1)) throw new OpError(op, `mask ratio must be in [0, 1], got ${ratio}`);
  const L = side * side;
  const lenKeep = Math.floor(L * (1 - ratio));
  const noise = random.normal(key, [n, L], { dtype: 'f32' });
  const a = ops.reshape(noise, [n, L, 1]); // noise[l]
  const b = ops.reshape(noise, [n, 1, L]); // noise[j]
  const idx = ops.iota([L, L], 0, 'i32');
  const jdx = ops.iota([L, L], 1, 'i32');
  const before = ops.logicalOr(ops.less(b, a), ops.logicalAnd(ops.equal(b, a), ops.less(jdx, idx)));
  const rank = ops.sum(ops.cast(before, 'i32'), 2);
  return ops.cast(ops.greaterEqual(rank, lenKeep), dtype);
}

/**
 * (N, L) -> (N, side*scale, side*scale) with side = sqrt(L): each patch entry repeated `scale`
 * times along H and W (spec 3.2 `upsample_mask`).
 */
export function upsampleMask(mask: Tensor, scale: number): Tensor {
  const op = 'fcmae.upsampleMask';
  if (!(mask instanceof Tensor) || mask.ndim !== 2) throw new OpError(op, `mask must be (N, L), got ${mask instanceof Tensor ? fmtShape(mask.shape) : typeof mask}`);
  if (!(Number.isInteger(scale) && scale >= 1)) throw new OpError(op, `scale must be a positive integer, got ${scale}`);
  const [n, L] = mask.shape as [number, number];
  const side = Math.round(Math.sqrt(L));
  if (side * side !== L) throw new OpError(op, `mask has ${L} patches, not a square number`);
  if (scale === 1) return ops.reshape(mask, [n, side, side]);
  const m = ops.broadcastTo(ops.reshape(mask, [n, side, 1, side, 1]), [n, side, scale, side, scale]);
  return ops.reshape(m, [n, side * scale, side * scale]);
}

/**
 * NCHW images -> (N, L, p*p*C) patches, L row-major over the (H/p, W/p) grid and each patch's
 * elements in (py, px, c) order, c fastest (spec 3.6).
 */
export function patchify(imgs: Tensor, patch: number): Tensor {
  const op = 'fcmae.patchify';
  if (!(imgs instanceof Tensor) || imgs.ndim !== 4) throw new OpError(op, `images must be (N, C, H, W), got ${imgs instanceof Tensor ? fmtShape(imgs.shape) : typeof imgs}`);
  const [n, c, H, W] = imgs.shape as [number, number, number, number];
  if (H !== W) throw new OpError(op, `images must be square, got ${H}x${W}`);
  const h = checkGrid(op, H, patch);
  const x = ops.reshape(imgs, [n, c, h, patch, h, patch]);
  return ops.reshape(ops.transpose(x, [0, 2, 4, 3, 5, 1]), [n, h * h, patch * patch * c]);
}

/** The inverse of patchify: (N, L, p*p*C) -> (N, C, H, W). */
export function unpatchify(x: Tensor, patch: number, channels = 3): Tensor {
  const op = 'fcmae.unpatchify';
  if (!(x instanceof Tensor) || x.ndim !== 3) throw new OpError(op, `patches must be (N, L, p*p*C), got ${x instanceof Tensor ? fmtShape(x.shape) : typeof x}`);
  const [n, L, k] = x.shape as [number, number, number];
  const h = Math.round(Math.sqrt(L));
  if (h * h !== L || k !== patch * patch * channels) {
    throw new OpError(op, `patches ${fmtShape(x.shape)} do not fit a square grid of ${patch}x${patch}x${channels} patches`);
  }
  const y = ops.reshape(x, [n, h, h, patch, patch, channels]);
  return ops.reshape(ops.transpose(y, [0, 5, 1, 3, 2, 4]), [n, channels, h * patch, h * patch]);
}

// ---------------------------------------------------------------------------------------
// loss

/**
 * The loss of spec 3.6 from NCHW images, the prediction (N, p*p*C, h, w) and the mask (N, L):
 * target = patchify(imgs); with normPixLoss each target patch becomes
 * (t - mean) / sqrt(var + 1e-6), var unbiased; loss = masked MSE over removed patches.
 */
export function loss(imgs: Tensor, pred: Tensor, mask: Tensor, opts: { normPixLoss?: boolean; patchSize?: number } = {}): Tensor {
  const op = 'fcmae.loss';
  const p = opts.patchSize ?? 32;
  if (!(pred instanceof Tensor) || pred.ndim !== 4) throw new OpError(op, `pred must be (N, p*p*C, h, w), got ${pred instanceof Tensor ? fmtShape(pred.shape) : typeof pred}`);
  const [n, k, h, w] = pred.shape as [number, number, number, number];
  return patchLoss(imgs, ops.reshape(ops.transpose(pred, [0, 2, 3, 1]), [n, h * w, k]), mask, opts.normPixLoss ?? true, p);
}

function patchLoss(imgs: Tensor, predPatches: Tensor, mask: Tensor, normPixLoss: boolean, patch: number): Tensor {
  let target = patchify(imgs, patch);
  if (target.shape.join() !== predPatches.shape.join()) {
    throw new OpError('fcmae.loss', `the prediction has ${fmtShape(predPatches.shape)} patches, the images give ${fmtShape(target.shape)}`);
  }
  if (normPixLoss) {
    const mean = ops.mean(target, -1, true);
    const v = ops.variance(target, -1, true, 1);
    target = ops.div(ops.sub(target, mean), ops.sqrt(ops.add(v, 1e-6)));
  }
  return maskedMse(predPatches, target, mask);
}

// ---------------------------------------------------------------------------------------
// forward

export interface ForwardOptions {
  cfg: FcmaeConfig;
  /** Overrides cfg.normPixLoss. */
  normPixLoss?: boolean;
  /** Overrides cfg.grnStats. */
  grnMode?: GrnStats;
  /** Drop path in the encoder (cfg.encoder.dropPathRate), from foldIn(key, block index). */
  train?: boolean;
  key?: Tensor;
}

function checkMask(op: string, mask: unknown, n: number, L: number, dtype: Tensor['dtype']): Tensor {
  if (!(mask instanceof Tensor) || mask.ndim !== 2 || mask.shape[0] !== n || mask.shape[1] !== L) {
    throw new OpError(op, `mask must be (N, L) = [${n},${L}] (1 = removed), got ${mask instanceof Tensor ? fmtShape(mask.shape) : typeof mask}`);
  }
  return mask.dtype === dtype ? mask : ops.cast(mask, dtype);
}

/**
 * The dense-masked encoder on NCHW images; returns the last stage NHWC (N, h, w, C3) with
 * garbage at removed patches.
 */
export function encode(params: EncoderParams, imgs: Tensor, mask: Tensor, opts: ForwardOptions): Tensor {
  const cfg = opts.cfg;
  const enc = cfg.encoder;
  const n = imgs.shape[0]!;
  const side = imgs.shape[2]! / cfg.patchSize;
  const m = checkMask('fcmae.encode', mask, n, side * side, imgs.dtype);
  const train = opts.train ?? false;
  if (train && enc.dropPathRate > 0 && !(opts.key instanceof Tensor)) {
    throw new OpError('fcmae.forward', `training with dropPathRate ${enc.dropPathRate} needs a PRNG key (opts.key)`);
  }
  const rates = dropPathRates(enc);
  const keepAt = (i: number): Tensor => {
    const up = upsampleMask(m, cfg.patchSize / (enc.stemStride * 2 ** i));
    return ops.sub(1, ops.reshape(up, [...up.shape, 1]));
  };
  let x = ops.transpose(imgs, [0, 2, 3, 1]);
  let prevKeep: Tensor | undefined;
  let k = 0;
  for (let i = 0; i < enc.depths.length; i++) {
    const keep = keepAt(i);
    const xi = x;
    const prev = prevKeep;
    x = namedScope(`encoder.downsample_layers.${i}`, () => (i === 0 ? ops.mul(stem(params.downsample_layers[0]!, xi, enc), keep) : downsample(params.downsample_layers[i]!, xi, enc, prev)));
    for (let b = 0; b < enc.depths[i]!; b++, k++) {
      const rate = rates[k]!;
      const xb = x;
      const kb = k;
      x = namedScope(`encoder.stages.${i}.${b}`, () =>
        block(params.stages[i]![b]!, xb, {
          layerNormEps: enc.layerNormEps,
          grnEps: enc.grnEps,
          keep,
          grnStats: opts.grnMode ?? cfg.grnStats,
          grnSqrtEps: cfg.grnSqrtEps,
          dropPath: train && rate > 0 ? { rate, train, key: random.foldIn(opts.key!, kb) } : undefined,
        }),
      );
    }
    prevKeep = keep;
  }
  return x;
}

/**
 * FCMAE forward and loss: imgs (N, C, H, W) with H = W a multiple of the patch size, mask
 * (N, L) with 1 = removed. Returns the loss (a scalar) and pred (N, p*p*C, H/p, W/p).
 */
export function forward(params: FcmaeParams, imgs: Tensor, mask: Tensor, opts: ForwardOptions): { loss: Tensor; pred: Tensor } {
  const op = 'fcmae.forward';
  const cfg = opts?.cfg;
  if (!cfg || !cfg.encoder) throw new OpError(op, 'opts.cfg (from fcmae.config) is required');
  const enc = cfg.encoder;
  checkParams(op, params, paramSpec(cfg));
  const stemW = params.encoder.downsample_layers[0]![0]!.weight;
  checkImages(op, imgs, enc, stemW, cfg.patchSize, `the patch size`);
  if (!isFloat(imgs.dtype) || imgs.dtype !== stemW.dtype) throw new OpError(op, `images are ${imgs.dtype} but the params are ${stemW.dtype}; cast one of them`);
  if (imgs.shape[2] !== imgs.shape[3]) throw new OpError(op, `images must be square, got ${imgs.shape[2]}x${imgs.shape[3]}`);
  const n = imgs.shape[0]!;
  const side = imgs.shape[2]! / cfg.patchSize;
  const m = checkMask(op, mask, n, side * side, imgs.dtype);

  // encoder (N, h, w, C3), garbage at removed patches
  let x = encode(params.encoder, imgs, m, opts);
  // decoder
  const d = cfg.decoderDim;
  const c3 = enc.dims[enc.dims.length - 1]!;
  x = linear({ weight: ops.reshape(params.proj.weight, [d, c3]), bias: params.proj.bias }, x);
  const m4 = ops.reshape(m, [n, side, side, 1]);
  x = ops.add(ops.mul(x, ops.sub(1, m4)), ops.mul(ops.reshape(params.mask_token, [d]), m4));
  params.decoder.forEach((p, j) => {
    const xd = x;
    x = namedScope(`decoder.${j}`, () => block(p, xd, { layerNormEps: enc.layerNormEps, grnEps: enc.grnEps }));
  });
  const k = cfg.patchSize * cfg.patchSize * enc.inChans;
  const predNHWC = linear({ weight: ops.reshape(params.pred.weight, [k, d]), bias: params.pred.bias }, x);
  const predPatches = ops.reshape(predNHWC, [n, side * side, k]);
  const l = patchLoss(imgs, predPatches, m, opts.normPixLoss ?? cfg.normPixLoss, cfg.patchSize);
  return { loss: l, pred: ops.transpose(predNHWC, [0, 3, 1, 2]) };
}
