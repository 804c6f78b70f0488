/**
 * The paper's feature-collapse view (ConvNeXt V2, section 3.1): the activations of each block's
 * dimension-expansion MLP layer (pwconv1, GELU and GRN: the input of pwconv2, 4C channels), and per layer
 * the average pair-wise cosine distance between channels,
 *   d(X) = 1/C^2 sum_i sum_j (1 - cos(X_i, X_j)) / 2,   X_i the H*W map of channel i,
 * averaged over images. Collapsed (redundant or dead) channels give a low distance. `grn:
 * false` runs the same weights with GRN removed, the comparison that shows what GRN does.
 */
import { OpError } from '../ir/errors.js';
import * as ops from '../ir/ops.js';
import type { Tensor } from '../ir/tensor.js';
import { depthwiseConv2d, gelu, globalAvgPool, grn, layerNorm, linear } from '../nn/layers.js';
import type { ConvNeXtV2Config } from './config.js';
import { type BlockParams, checkImages, type ConvNeXtV2Params, downsample, type EncoderParams, stem } from './model.js';

export interface TapOptions {
  /** Apply GRN (default true); false removes it (identity), as a model without GRN. */
  grn?: boolean;
}

export interface LayerTap {
  /** Block name as in the state dict: `stages.<stage>.<block>`. */
  name: string;
  /** The expansion layer's output (after GRN when it is on), NHWC (N, H, W, 4C). */
  activation: Tensor;
}

function blockTapped(p: BlockParams, x: Tensor, cfg: ConvNeXtV2Config, useGrn: boolean, taps: (y: Tensor) => void): Tensor {
  let y = depthwiseConv2d(p.dwconv, x, { layout: 'NHWC' });
  y = layerNorm(p.norm, y, { eps: cfg.layerNormEps });
  y = gelu(linear(p.pwconv1, y));
  if (useGrn) y = grn(p.grn, y, { eps: cfg.grnEps });
  taps(y);
  return ops.add(x, linear(p.pwconv2, y));
}

/** The encoder on NCHW images (eval mode) with every block's expansion activation. */
export function encoderTaps(params: EncoderParams, images: Tensor, cfg: ConvNeXtV2Config, opts: TapOptions = {}): { features: Tensor; taps: LayerTap[] } {
  checkImages('inspect', images, cfg);
  const useGrn = opts.grn ?? true;
  const taps: LayerTap[] = [];
  let x = ops.transpose(images, [0, 2, 3, 1]);
  for (let i = 0; i < cfg.depths.length; i++) {
    x = i === 0 ? stem(params.downsample_layers[0]!, x, cfg) : downsample(params.downsample_layers[i]!, x, cfg);
    for (let b = 0; b < cfg.depths[i]!; b++) {
      x = blockTapped(params.stages[i]![b]!, x, cfg, useGrn, (y) => taps.push({ name: `stages.${i}.${b}`, activation: y }));
    }
  }
  return { features: x, taps };
}

/** Logits of the tapped forward pass (equal to convnextv2.apply in eval mode when grn is on). */
export function logitsWithTaps(params: ConvNeXtV2Params, images: Tensor, cfg: ConvNeXtV2Config, opts: TapOptions = {}): { logits: Tensor; taps: LayerTap[] } {
  const { features, taps } = encoderTaps(params, images, cfg, opts);
  const pooled = globalAvgPool(features, { layout: 'NHWC' });
  return { logits: linear(params.head, layerNorm(params.norm, pooled, { eps: cfg.layerNormEps })), taps };
}

/**
 * The paper's measure for one activation (N, H, W, C): per image, 1/C^2 sum_ij (1 - cos_ij) / 2
 * over the channels' H*W maps; the mean over images. A channel that is zero everywhere has
 * cosine 0 with every channel (eps in the norm).
 */
export function cosineDistance(activation: Tensor): Tensor {
  if (activation.ndim !== 4) throw new OpError('cosineDistance', `expected an NHWC activation (N, H, W, C), got rank ${activation.ndim}`);
  const [n, h, w, c] = activation.shape as [number, number, number, number];
  const x = ops.reshape(activation, [n, h * w, c]);
  const norm = ops.sqrt(ops.add(ops.sum(ops.mul(x, x), 1, true), 1e-12));
  const u = ops.div(x, norm);
  // (N, C, C) cosines: u^T u per image
  const cos = ops.dotGeneral(u, u, [[1], [1]], [[0], [0]]);
  const d = ops.div(ops.sub(1, ops.mean(cos, [1, 2])), 2);
  return ops.mean(d);
}

/** Per block: its name, its channel count and the mean cosine distance (device scalars). */
export function featureCollapse(params: EncoderParams, images: Tensor, cfg: ConvNeXtV2Config, opts: TapOptions = {}): { name: string; channels: number; distance: Tensor }[] {
  return encoderTaps(params, images, cfg, opts).taps.map((t) => ({ name: t.name, channels: t.activation.shape[3]!, distance: cosineDistance(t.activation) }));
}

/** The first `count` channels of image 0's activation as H*W maps (for a heatmap grid). */
export async function channelMaps(activation: Tensor, count: number): Promise<Float32Array[]> {
  const [, h, w, c] = activation.shape as [number, number, number, number];
  const k = Math.min(count, c);
  const data = await activation.data();
  const maps: Float32Array[] = [];
  for (let ch = 0; ch < k; ch++) {
    const m = new Float32Array(h * w);
    for (let p = 0; p < h * w; p++) m[p] = Number(data[p * c + ch]);
    maps.push(m);
  }
  return maps;
}
