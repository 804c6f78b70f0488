/**
 * ConvNeXt V2 in TensorFlow.js (4.22, wasm backend), written as a TypeScript user would for the
 * benchmark: NHWC activations, weights converted once from the PyTorch layouts.
 *
 * Formulations of the same model (Mode):
 *  - 'native' (inference): fused conv2d / depthwiseConv2d / matMul kernels with bias.
 *  - 'train-slices' (training, as the issue describes it): tfjs-wasm has no backward kernels for
 *    depthwise or strided convolutions (Conv2DBackpropFilter, DepthwiseConv2dNativeBackprop* are
 *    not registered), so the stem 4x4/4 and the 2x2/2 downsamplers become reshape/transpose into
 *    patches + matMul, and the depthwise 7x7 becomes a sum of 49 shifted slices of the padded
 *    input times per-channel weights, with its gradient written from shifted slices too (plain
 *    autodiff of the 49-slice sum runs out of the 4 GiB wasm heap at batch 8, 224x224).
 *  - 'train-dwkernel' (training, the fastest a user can write here): as 'train-slices', but the
 *    depthwise forward and its input gradient use tfjs's forward depthwiseConv2d kernel (dx is the
 *    depthwise conv of dy with the kernel rotated 180 degrees); only dw uses shifted slices.
 *  - 'autodiff': the 'train-slices' ops left to tfjs's own autodiff (to check the hand-written
 *    gradients on small inputs; slower and far hungrier for memory).
 * In the training modes tfjs's own matMul gradient (transposed-operand matMuls, about 10x slower
 * than plain ones on this backend) is replaced by a customGrad that transposes explicitly, and
 * weights are stored pre-transposed as (in, out).
 *
 * Parameter layouts here: stem/downsample conv weights (kh*kw*I, O) (= HWIO flattened), depthwise
 * weights (49, C), linear weights (in, out), vectors (C).
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { depthwiseToTapsC, type ModelDims, type NamedArray, oihwToHwio, transpose2d } from './weights.js';

export type Mode = 'native' | 'train-slices' | 'train-dwkernel' | 'autodiff';
export const TRAIN_MODES = ['train-slices', 'train-dwkernel'] as const;
export type TrainMode = (typeof TRAIN_MODES)[number];

/** Loads the wasm backend from node_modules; returns a description of it. */
export async function initTfjsWasm(): Promise<{ backend: string; simd: boolean; threads: boolean; version: string }> {
  const require = createRequire(import.meta.url);
  const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep;
  setWasmPaths(dist);
  const ok = await tf.setBackend('wasm');
  if (!ok) throw new Error('tf.setBackend("wasm") failed');
  await tf.ready();
  return {
    backend: tf.getBackend(),
    simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT'),
    threads: tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT'),
    version: tf.version.tfjs,
  };
}

/** The tfjs parameters, keyed by the PyTorch names (layouts as in the file comment). */
export type TfParams = Map<string, tf.Tensor>;

/** Converts the shared PyTorch-layout arrays to tfjs tensors (or variables). */
export function loadParams(ws: readonly NamedArray[], asVariables = false): TfParams {
  const out: TfParams = new Map();
  for (const w of ws) {
    let data: Float32Array;
    let shape: number[];
    if (w.shape.length === 4 && w.shape[1] === 1 && w.shape[2] === 7) {
      data = depthwiseToTapsC(w.data, w.shape); // (C,1,7,7) -> (49, C)
      shape = [w.shape[2]! * w.shape[3]!, w.shape[0]!];
    } else if (w.shape.length === 4 && w.name.endsWith('.weight') && w.name.startsWith('downsample_layers')) {
      data = oihwToHwio(w.data, w.shape); // (O,I,kh,kw) -> (kh*kw*I, O)
      shape = [w.shape[1]! * w.shape[2]! * w.shape[3]!, w.shape[0]!];
    } else if (w.shape.length === 2) {
      data = transpose2d(w.data, w.shape[0]!, w.shape[1]!); // linear (out,in) -> (in,out)
      shape = [w.shape[1]!, w.shape[0]!];
    } else {
      data = w.data;
      shape = [w.data.length];
    }
    const t = tf.tensor(data, shape, 'float32');
    if (asVariables) {
      out.set(w.name, tf.variable(t, true, `${w.name}#${Math.random().toString(36).slice(2)}`));
      t.dispose();
    } else {
      out.set(w.name, t);
    }
  }
  return out;
}

export function disposeParams(p: TfParams): void {
  for (const t of p.values()) t.dispose();
  p.clear();
}

// ---------------------------------------------------------------------------------------
// building blocks

/** a @ b with a gradient made of explicit transposes and non-transposed matMuls. */
const matMulNN = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    // (tfjs runs a custom gradFunc outside any tidy: without one, its temporaries live until the
    // whole backward pass ends)
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
      tf.tidy(() => {
        const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
        return [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)];
      }),
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/** (M, K) @ (K, N) + bias. */
function dense(mode: Mode, x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): tf.Tensor {
  if (mode === 'native') return tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias: b });
  return tf.add(mode === 'autodiff' ? tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D) : matMulNN(x, w), b);
}

/** LayerNorm over the last axis. */
function layerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps = 1e-6): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), w), b);
}

/** The exact (erf) GELU. */
function gelu(x: tf.Tensor): tf.Tensor {
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
}

/** A non-overlapping k x k / k conv on NHWC as patches @ (k*k*I, O). */
function patchConv(mode: Mode, x: tf.Tensor4D, w: tf.Tensor, b: tf.Tensor, k: number): tf.Tensor4D {
  const [n, h, wd, c] = x.shape;
  const o = w.shape[1]!;
  if (mode === 'native') {
    return tf.fused.conv2d({ x, filter: tf.reshape(w, [k, k, c, o]) as tf.Tensor4D, strides: k, pad: 'valid', bias: b });
  }
  const ho = h / k;
  const wo = wd / k;
  const patches = tf.reshape(tf.transpose(tf.reshape(x, [n, ho, k, wo, k, c]), [0, 1, 3, 2, 4, 5]), [n * ho * wo, k * k * c]);
  return tf.reshape(dense(mode, patches, w, b), [n, ho, wo, o]);
}

/** The stem conv on NCHW images (the training modes patchify them directly, without an NHWC transpose). */
function stemConv(mode: Mode, x: tf.Tensor4D, w: tf.Tensor, b: tf.Tensor, k: number): tf.Tensor4D {
  if (mode === 'native') return patchConv(mode, tf.transpose(x, [0, 2, 3, 1]), w, b, k);
  const [n, c, h, wd] = x.shape;
  const ho = h / k;
  const wo = wd / k;
  // (N, C, Ho, kh, Wo, kw) -> (N, Ho, Wo, kh, kw, C): the (kh, kw, c) order of HWIO.
  const patches = tf.reshape(tf.transpose(tf.reshape(x, [n, c, ho, k, wo, k]), [0, 2, 4, 3, 5, 1]), [n * ho * wo, k * k * c]);
  return tf.reshape(dense(mode, patches, w, b), [n, ho, wo, w.shape[1]!]);
}

/**
 * Tap (i, j) of a padded NHWC tensor, (n, h, w, c): sliced from its (n, h+6, (w+6)*c) view, so
 * that the wasm Slice kernel (JavaScript, one copy per contiguous run) copies runs of w*c floats
 * instead of c.
 */
function tap(xp3: tf.Tensor, i: number, j: number, n: number, h: number, wd: number, c: number): tf.Tensor4D {
  return tf.reshape(tf.slice(xp3, [0, i, j * c], [n, h, wd * c]), [n, h, wd, c]);
}

/** sum over the 49 taps (i, j) of tap(xp, i, j) * taps[i*7+j] (flip: tap (6-i, 6-j)). */
function shiftedSum(xp: tf.Tensor, taps: tf.Tensor[], n: number, h: number, wd: number, c: number, flip: boolean): tf.Tensor4D {
  const xp3 = tf.reshape(xp, [n, h + 6, (wd + 6) * c]);
  const terms: tf.Tensor[] = [];
  for (let i = 0; i < 7; i++) {
    for (let j = 0; j < 7; j++) terms.push(tf.mul(flip ? tap(xp3, 6 - i, 6 - j, n, h, wd, c) : tap(xp3, i, j, n, h, wd, c), taps[i * 7 + j]!));
  }
  return tf.addN(terms) as tf.Tensor4D;
}

const PAD3: [number, number][] = [[0, 0], [3, 3], [3, 3], [0, 0]];

/** tfjs's depthwise forward kernel, 7x7, pad 3, on NHWC with w (49, C). */
function depthwiseKernel(x: tf.Tensor, w: tf.Tensor): tf.Tensor4D {
  const c = x.shape[3]!;
  return tf.depthwiseConv2d(x as tf.Tensor4D, tf.reshape(w, [7, 7, c, 1]) as tf.Tensor4D, 1, 'same');
}

/**
 * The depthwise 7x7 (pad 3, no bias) with a hand-written gradient: dx = the shifted sum of the
 * padded dy with the flipped taps (or tfjs's depthwise kernel with the rotated kernel), dw[t] =
 * sum over (n, h, w) of tap_t(xp) * dy. Only xp and w are kept for the backward pass.
 */
function makeDepthwise(useKernel: boolean): (x: tf.Tensor, w: tf.Tensor) => tf.Tensor4D {
  return tf.customGrad(((x: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
    const [n, h, wd, c] = x.shape as [number, number, number, number];
    const xp = tf.pad(x, PAD3);
    save([xp, w]);
    return {
      value: useKernel ? depthwiseKernel(x, w) : shiftedSum(xp, tf.unstack(w, 0), n, h, wd, c, false),
      // (tfjs runs a custom gradFunc outside any tidy: without one its temporaries would live
      // until the whole backward pass ends)
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [sxp, sw] = saved as [tf.Tensor4D, tf.Tensor2D];
          const dx = useKernel ? depthwiseKernel(dy, tf.reverse(sw, 0)) : shiftedSum(tf.pad(dy, PAD3), tf.unstack(sw, 0), n, h, wd, c, true);
          // dw[t, c] = sum over rows m of tap_t(xp)[m, c] * dy[m, c], as ones(1, M) @ (tap * dy): a
          // plain matMul, faster here than Sum over the leading axes (which transposes first).
          const m = n * h * wd;
          const xp3 = tf.reshape(sxp, [n, h + 6, (wd + 6) * c]);
          const ones = tf.ones([1, m]) as tf.Tensor2D;
          const dws: tf.Tensor[] = [];
          for (let i = 0; i < 7; i++) {
            for (let j = 0; j < 7; j++) dws.push(tf.tidy(() => tf.matMul(ones, tf.reshape(tf.mul(tap(xp3, i, j, n, h, wd, c), dy), [m, c]) as tf.Tensor2D)));
          }
          return [dx, tf.concat(dws, 0)];
        }),
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor4D;
}

const depthwiseSlices = makeDepthwise(false);
const depthwiseViaKernel = makeDepthwise(true);

/** Depthwise 7x7, pad 3, with bias, on NHWC; w is (49, C). */
function depthwise7(mode: Mode, x: tf.Tensor4D, w: tf.Tensor, b: tf.Tensor): tf.Tensor4D {
  const [n, h, wd, c] = x.shape;
  if (mode === 'native') {
    return tf.fused.depthwiseConv2d({ x, filter: tf.reshape(w, [7, 7, c, 1]) as tf.Tensor4D, strides: 1, pad: 'same', bias: b });
  }
  const y =
    mode === 'train-slices' ? depthwiseSlices(x, w) : mode === 'train-dwkernel' ? depthwiseViaKernel(x, w) : shiftedSum(tf.pad(x, PAD3), tf.unstack(w, 0), n, h, wd, c, false);
  return tf.add(y, b) as tf.Tensor4D;
}

function block(mode: Mode, P: TfParams, pre: string, x: tf.Tensor4D): tf.Tensor4D {
  const g = (k: string): tf.Tensor => P.get(`${pre}.${k}`)!;
  const [n, h, wd, c] = x.shape;
  let y: tf.Tensor = depthwise7(mode, x, g('dwconv.weight'), g('dwconv.bias'));
  y = layerNorm(tf.reshape(y, [n * h * wd, c]), g('norm.weight'), g('norm.bias'));
  y = gelu(dense(mode, y, g('pwconv1.weight'), g('pwconv1.bias')));
  // GRN over (N, H*W, 4C): L2 norm over space per sample and channel, divided by its channel mean.
  const y3 = tf.reshape(y, [n, h * wd, 4 * c]);
  const gx = tf.sqrt(tf.sum(tf.square(y3), 1, true));
  const nx = tf.div(gx, tf.add(tf.mean(gx, -1, true), 1e-6));
  const z = tf.add(tf.add(tf.mul(g('grn.gamma'), tf.mul(y3, nx)), g('grn.beta')), y3);
  y = dense(mode, tf.reshape(z, [n * h * wd, 4 * c]), g('pwconv2.weight'), g('pwconv2.bias'));
  return tf.add(x, tf.reshape(y, [n, h, wd, c]));
}

/** Logits (N, classes) of NCHW images. */
export function forward(mode: Mode, P: TfParams, m: ModelDims, images: tf.Tensor4D): tf.Tensor2D {
  const g = (k: string): tf.Tensor => P.get(k)!;
  let x = stemConv(mode, images, g('downsample_layers.0.0.weight'), g('downsample_layers.0.0.bias'), m.stemStride);
  x = layerNorm(x, g('downsample_layers.0.1.weight'), g('downsample_layers.0.1.bias')) as tf.Tensor4D;
  for (let i = 0; i < m.depths.length; i++) {
    if (i > 0) {
      const ln = layerNorm(x, g(`downsample_layers.${i}.0.weight`), g(`downsample_layers.${i}.0.bias`)) as tf.Tensor4D;
      x = patchConv(mode, ln, g(`downsample_layers.${i}.1.weight`), g(`downsample_layers.${i}.1.bias`), 2);
    }
    for (let b = 0; b < m.depths[i]!; b++) x = block(mode, P, `stages.${i}.${b}`, x);
  }
  const pooled = layerNorm(tf.mean(x, [1, 2]), g('norm.weight'), g('norm.bias'));
  return dense(mode, pooled, g('head.weight'), g('head.bias')) as tf.Tensor2D;
}

/** Mean softmax cross-entropy with integer labels. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  const logp = tf.logSoftmax(logits);
  const onehot = tf.oneHot(labels, logits.shape[1]);
  return tf.neg(tf.mean(tf.sum(tf.mul(onehot, logp), 1))) as tf.Scalar;
}

export interface AdamWConfig {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

/**
 * A training step (forward in a training mode + cross-entropy + backward + AdamW, torch.optim.AdamW
 * semantics with weight decay on every parameter) over variables made by loadParams(ws, true).
 */
export class TfTrainer {
  private readonly vars: tf.Variable[];
  private readonly names: string[];
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private t = 0;
  constructor(
    readonly P: TfParams,
    readonly dims: ModelDims,
    readonly opt: AdamWConfig,
    readonly mode: Mode = 'train-slices',
  ) {
    this.names = [...P.keys()];
    this.vars = this.names.map((k) => P.get(k) as tf.Variable);
    this.m = this.vars.map((p) => tf.variable(tf.zerosLike(p), false));
    this.v = this.vars.map((p) => tf.variable(tf.zerosLike(p), false));
  }

  /** One step; returns the loss (before the update). */
  step(images: tf.Tensor4D, labels: tf.Tensor1D): number {
    this.t++;
    const { lr, betas: [b1, b2], eps, weightDecay: wd } = this.opt;
    const bc1 = 1 - b1 ** this.t;
    const sqrtBc2 = Math.sqrt(1 - b2 ** this.t);
    let loss = NaN;
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => crossEntropy(forward(this.mode, this.P, this.dims, images), labels), this.vars);
      this.vars.forEach((p, i) => {
        const g = grads[p.name]!;
        const m = tf.add(tf.mul(this.m[i]!, b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(this.v[i]!, b2), tf.mul(tf.square(g), 1 - b2));
        const denom = tf.add(tf.div(tf.sqrt(v), sqrtBc2), eps);
        const decayed = tf.mul(p, 1 - lr * wd);
        p.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), lr / bc1)));
        this.m[i]!.assign(m);
        this.v[i]!.assign(v);
      });
      loss = value.dataSync()[0]!;
    });
    return loss;
  }

  /** The current value of a parameter (tfjs layout). */
  param(name: string): Float32Array {
    return this.P.get(name)!.dataSync() as Float32Array;
  }

  dispose(): void {
    for (const t of [...this.vars, ...this.m, ...this.v]) t.dispose();
  }
}
