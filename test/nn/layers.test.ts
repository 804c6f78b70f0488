import { describe, expect, it } from 'vitest';
import { grad, vjp } from '../../src/autodiff/index.js';
import { trace } from '../../src/ir/functional.js';
import * as ops from '../../src/ir/ops.js';
import * as random from '../../src/ir/random.js';
import type { Tensor } from '../../src/ir/tensor.js';
import * as init from '../../src/nn/init.js';
import * as nn from '../../src/nn/layers.js';
import * as losses from '../../src/nn/losses.js';
import { loadRefs, relErr } from '../helpers/refs.js';

// Tolerance: max-norm relative error max|a - b| / max|b| against PyTorch float64.
const TOL = 1e-10;
const worst: Record<string, number> = {};

function check(name: string, got: Tensor, want: Tensor, tol = TOL): void {
  const e = relErr(got, want);
  worst[name] = Math.max(worst[name] ?? 0, e);
  expect(e, `${name}: relative error ${e}`).toBeLessThanOrEqual(tol);
}

/** Forward and input gradients (for the ref's dout) of one op group of ops.safetensors. */
function checkOp(group: string, names: string[], fn: (...xs: Tensor[]) => Tensor): void {
  const r = loadRefs('ops');
  const ins = names.map((n) => r.get(`${group}.in.${n}`));
  const [out, back] = vjp(fn, ...ins);
  check(`${group}.out`, out, r.get(`${group}.out`));
  const grads = back(r.get(`${group}.dout`));
  names.forEach((n, i) => check(`${group}.grad.${n}`, grads[i], r.get(`${group}.grad.${n}`)));
}

describe('nn layers against PyTorch float64 (ops.safetensors)', () => {
  it('layernorm_cf: channels_first LayerNorm over axis 1 of NCHW', () => {
    checkOp('layernorm_cf', ['x', 'w', 'b'], (x, w, b) => nn.layerNorm({ weight: w, bias: b }, x, { dataFormat: 'channels_first' }));
  });
  it('layernorm_cf equals channels_last LayerNorm on the NHWC transpose', () => {
    checkOp('layernorm_cf', ['x', 'w', 'b'], (x, w, b) =>
      ops.transpose(nn.layerNorm({ weight: w, bias: b }, ops.transpose(x, [0, 2, 3, 1])), [0, 3, 1, 2]),
    );
  });
  it('layernorm_cl: over the last axis', () => {
    checkOp('layernorm_cl', ['x', 'w', 'b'], (x, w, b) => nn.layerNorm({ weight: w, bias: b }, x, { eps: 1e-6 }));
  });
  it('grn (NHWC), and the same maths in NCHW layout', () => {
    checkOp('grn', ['x', 'gamma', 'beta'], (x, g, b) => nn.grn({ gamma: g, beta: b }, x));
    checkOp('grn', ['x', 'gamma', 'beta'], (x, g, b) =>
      ops.transpose(nn.grn({ gamma: g, beta: b }, ops.transpose(x, [0, 3, 1, 2]), { layout: 'NCHW' }), [0, 2, 3, 1]),
    );
  });
  it('dwconv7: depthwise 7x7, NCHW and NHWC', () => {
    checkOp('dwconv7', ['x', 'w', 'b'], (x, w, b) => nn.conv2d({ weight: w, bias: b }, x, { groups: 8, padding: 3 }));
    checkOp('dwconv7', ['x', 'w', 'b'], (x, w, b) =>
      ops.transpose(nn.depthwiseConv2d({ weight: w, bias: b }, ops.transpose(x, [0, 2, 3, 1]), { layout: 'NHWC' }), [0, 3, 1, 2]),
    );
  });
  it('stem4: conv 4x4 stride 4, NCHW and NHWC', () => {
    checkOp('stem4', ['x', 'w', 'b'], (x, w, b) => nn.conv2d({ weight: w, bias: b }, x, { stride: 4 }));
    checkOp('stem4', ['x', 'w', 'b'], (x, w, b) =>
      ops.transpose(nn.conv2d({ weight: w, bias: b }, ops.transpose(x, [0, 2, 3, 1]), { stride: 4, layout: 'NHWC' }), [0, 3, 1, 2]),
    );
  });
  it('down2: conv 2x2 stride 2, NCHW and NHWC', () => {
    checkOp('down2', ['x', 'w', 'b'], (x, w, b) => nn.conv2d({ weight: w, bias: b }, x, { stride: 2 }));
    checkOp('down2', ['x', 'w', 'b'], (x, w, b) =>
      ops.transpose(nn.conv2d({ weight: w, bias: b }, ops.transpose(x, [0, 2, 3, 1]), { stride: [2, 2], layout: 'NHWC' }), [0, 3, 1, 2]),
    );
  });
  it('linear: x W^T + b over the last axis', () => {
    checkOp('linear', ['x', 'w', 'b'], (x, w, b) => nn.linear({ weight: w, bias: b }, x));
  });
  it('gelu (erf) and gelu (tanh)', () => {
    checkOp('gelu', ['x'], (x) => nn.gelu(x));
    checkOp('gelu_tanh', ['x'], (x) => nn.gelu(x, { approximate: 'tanh' }));
  });
  it('softmax cross-entropy, label smoothing 0 and 0.1 (mean over the batch)', () => {
    const r = loadRefs('ops');
    const labels = r.get('xent.in.labels');
    for (const [tag, ls] of [['xent_ls0', 0], ['xent_ls1', 0.1]] as const) {
      const logits = r.get(`${tag}.in.logits`);
      const f = (lg: Tensor) => losses.softmaxCrossEntropy(lg, labels, { labelSmoothing: ls });
      check(`${tag}.out`, ops.reshape(f(logits), [1]), r.get(`${tag}.out`));
      check(`${tag}.grad.logits`, grad(f)(logits), r.get(`${tag}.grad.logits`));
    }
  });
  it('reports the worst errors', () => {
    console.log('ops.safetensors max relative errors:', worst);
  });
});

describe('nn layers: f32, regions and errors', () => {
  it('every layer runs in f32 close to the f64 refs', () => {
    const r = loadRefs('ops');
    const f32 = (k: string) => ops.cast(r.get(k), 'f32');
    const y = nn.grn({ gamma: f32('grn.in.gamma'), beta: f32('grn.in.beta') }, f32('grn.in.x'));
    expect(y.dtype).toBe('f32');
    expect(relErr(ops.cast(y, 'f64'), r.get('grn.out'))).toBeLessThan(1e-5);
    const z = nn.layerNorm({ weight: f32('layernorm_cf.in.w'), bias: f32('layernorm_cf.in.b') }, f32('layernorm_cf.in.x'), { dataFormat: 'channels_first' });
    expect(relErr(ops.cast(z, 'f64'), r.get('layernorm_cf.out'))).toBeLessThan(1e-5);
    expect(relErr(ops.cast(nn.gelu(f32('gelu.in.x')), 'f64'), r.get('gelu.out'))).toBeLessThan(1e-6);
  });

  it('composite ops are named regions with their hyper-parameters as attrs', () => {
    const x = ops.ones([1, 2, 2, 4], 'f64');
    const p = { weight: ops.ones([4], 'f64'), bias: ops.zeros([4], 'f64') };
    const text = trace((a: Tensor) => nn.gelu(nn.layerNorm(p, a, { eps: 1e-5 }), { approximate: 'tanh' }), x).toString();
    expect(text).toMatch(/layer_norm/);
    expect(text).toMatch(/1e-5|0\.00001/);
    expect(text).toMatch(/gelu/);
    expect(text).toMatch(/tanh/);
    const g = { gamma: ops.zeros([1, 1, 1, 4], 'f64'), beta: ops.zeros([1, 1, 1, 4], 'f64') };
    expect(trace((a: Tensor) => nn.grn(g, a), x).toString()).toMatch(/grn/);
    const m = ops.zeros([1, 2, 2], 'f64');
    expect(trace((a: Tensor) => nn.maskedGrn(g, a, m), x).toString()).toMatch(/masked_grn/);
    const key = random.key(1);
    expect(trace((a: Tensor) => nn.dropPath(a, { rate: 0.5, train: true, key }), x).toString()).toMatch(/drop_path/);
    const lg = ops.zeros([2, 3], 'f64');
    const lb = ops.tensor([0, 2], { dtype: 'i32' });
    expect(trace((a: Tensor) => losses.softmaxCrossEntropy(a, lb, { labelSmoothing: 0.1 }), lg).toString()).toMatch(/softmax_cross_entropy/);
  });

  it('GRN at an all-zero input has a finite (zero-norm) gradient', () => {
    const g = { gamma: ops.full([1, 1, 1, 3], 0.5, 'f64'), beta: ops.full([1, 1, 1, 3], 0.1, 'f64') };
    const x = ops.zeros([1, 2, 2, 3], 'f64');
    const gx = grad((a: Tensor) => nn.grn(g, a).sum())(x) as Tensor;
    for (const v of gx.dataSync()) expect(Number.isFinite(v)).toBe(true);
  });

  it('maskedGrn: per-sample statistics over visible sites only; batch-pooled shares them', () => {
    const rng = (s: number) => random.normal(random.key(s), [2, 3, 3, 4], { dtype: 'f64' });
    const x = rng(1);
    const gamma = random.normal(random.key(2), [1, 1, 1, 4], { dtype: 'f64' });
    const beta = random.normal(random.key(3), [1, 1, 1, 4], { dtype: 'f64' });
    const mask = ops.cast(ops.greater(random.uniform(random.key(4), [2, 3, 3], { dtype: 'f64' }), 0.5), 'f64');
    const y = nn.maskedGrn({ gamma, beta }, x, mask, { sqrtEps: 1e-6 }).dataSync();
    // hand computation
    const xs = x.dataSync();
    const ms = mask.dataSync();
    const gs = gamma.dataSync();
    const bs = beta.dataSync();
    const hand = (pooled: boolean, sqrtEps: number): Float64Array => {
      const out = new Float64Array(xs.length);
      const gx = new Float64Array(2 * 4);
      for (let n = 0; n < 2; n++) for (let s = 0; s < 9; s++) for (let c = 0; c < 4; c++) {
        const v = xs[(n * 9 + s) * 4 + c]! * (1 - ms[n * 9 + s]!);
        for (const t of pooled ? [0, 1] : [n]) gx[t * 4 + c] += v * v;
      }
      for (let i = 0; i < gx.length; i++) gx[i] = Math.sqrt(gx[i]! + sqrtEps);
      for (let n = 0; n < 2; n++) {
        const mean = (gx[n * 4]! + gx[n * 4 + 1]! + gx[n * 4 + 2]! + gx[n * 4 + 3]!) / 4;
        for (let s = 0; s < 9; s++) for (let c = 0; c < 4; c++) {
          const i = (n * 9 + s) * 4 + c;
          out[i] = gs[c]! * (xs[i]! * (gx[n * 4 + c]! / (mean + 1e-6))) + bs[c]! + xs[i]!;
        }
      }
      return out;
    };
    const want = hand(false, 1e-6);
    for (let i = 0; i < want.length; i++) expect(y[i]).toBeCloseTo(want[i]!, 12);
    const yp = nn.maskedGrn({ gamma, beta }, x, mask, { sqrtEps: 0, stats: 'batch-pooled' }).dataSync();
    const wp = hand(true, 0);
    for (let i = 0; i < wp.length; i++) expect(yp[i]).toBeCloseTo(wp[i]!, 12);
    // without a mask and without eps it is the dense GRN
    const dense = nn.grn({ gamma, beta }, x);
    expect(relErr(nn.maskedGrn({ gamma, beta }, x, ops.zeros([2, 3, 3], 'f64'), { sqrtEps: 0 }), dense)).toBeLessThan(1e-15);
  });

  it('dropPath: identity in eval or at rate 0; per sample, scaled by 1/keep, from the key', () => {
    const x = ops.ones([64, 2, 2, 3], 'f64');
    expect(nn.dropPath(x, { rate: 0.3, train: false })).toBe(x);
    expect(nn.dropPath(x, { rate: 0, train: true })).toBe(x);
    const y = nn.dropPath(x, { rate: 0.25, train: true, key: random.key(7) });
    const d = y.dataSync();
    let kept = 0;
    for (let n = 0; n < 64; n++) {
      const v = d[n * 12]!;
      expect([0, 1 / 0.75]).toContain(v);
      for (let j = 1; j < 12; j++) expect(d[n * 12 + j]).toBe(v);
      if (v !== 0) kept++;
    }
    expect(kept).toBeGreaterThan(32);
    expect(kept).toBeLessThan(64);
    expect(nn.dropPath(x, { rate: 0.25, train: true, key: random.key(7) }).dataSync()).toEqual(d);
    expect(() => nn.dropPath(x, { rate: 0.25, train: true })).toThrow(/key/);
    expect(() => nn.dropPath(x, { rate: 1, train: true, key: random.key(1) })).toThrow(/\[0, 1\)/);
  });

  it('label smoothing follows PyTorch: (1-ls) nll + ls mean_k(-log p_k)', () => {
    const lg = ops.tensor([[1, 2, 3], [0.5, -1, 2]], { dtype: 'f64' });
    const lb = ops.tensor([2, 0], { dtype: 'i32' });
    const l = losses.softmaxCrossEntropy(lg, lb, { labelSmoothing: 0.2, reduction: 'none' }).dataSync();
    const rows = [[1, 2, 3], [0.5, -1, 2]];
    rows.forEach((row, i) => {
      const lse = Math.log(row.reduce((a, v) => a + Math.exp(v), 0));
      const logp = row.map((v) => v - lse);
      const want = 0.8 * -logp[[2, 0][i]!]! + 0.2 * (-logp.reduce((a, b) => a + b, 0) / 3);
      expect(l[i]).toBeCloseTo(want, 13);
    });
    // soft targets equal to the smoothed one-hot give the same loss
    const soft = ops.add(ops.mul(ops.oneHot(lb, 3, 'f64'), 0.8), 0.2 / 3);
    expect(losses.softTargetCrossEntropy(lg, soft).item()).toBeCloseTo(losses.softmaxCrossEntropy(lg, lb, { labelSmoothing: 0.2 }).item(), 13);
    expect(() => losses.softmaxCrossEntropy(lg, ops.tensor([3, 0], { dtype: 'i32' }))).toThrow(/out of range/);
  });

  it('maskedMse averages over masked rows only', () => {
    const p = ops.tensor([[[1, 2], [3, 4]], [[0, 0], [1, 1]]], { dtype: 'f64' });
    const t = ops.zeros([2, 2, 2], 'f64');
    const m = ops.tensor([[1, 0], [0, 1]], { dtype: 'f64' });
    expect(losses.maskedMse(p, t, m).item()).toBeCloseTo((2.5 + 1) / 2, 14);
  });

  it('globalAvgPool in both layouts', () => {
    const x = ops.reshape(ops.arange(0, 16, 1, 'f64'), [1, 4, 2, 2]);
    expect(nn.globalAvgPool(x).tolist()).toEqual([[1.5, 5.5, 9.5, 13.5]]);
    expect(nn.globalAvgPool(ops.transpose(x, [0, 2, 3, 1]), { layout: 'NHWC' }).tolist()).toEqual([[1.5, 5.5, 9.5, 13.5]]);
  });

  it('init: trunc normal std 0.02 with absolute +-2 bounds, zeros/ones, head scale', () => {
    const w = init.truncNormal(random.key(0), [200, 50]);
    expect(w.dtype).toBe('f32');
    const d = w.dataSync();
    let s = 0;
    let s2 = 0;
    for (const v of d) {
      s += v;
      s2 += v * v;
      expect(Math.abs(v)).toBeLessThan(2);
    }
    const mean = s / d.length;
    const std = Math.sqrt(s2 / d.length - mean * mean);
    expect(Math.abs(mean)).toBeLessThan(0.002);
    expect(std).toBeGreaterThan(0.019);
    expect(std).toBeLessThan(0.021);
    // tight absolute bounds do truncate
    const t = init.truncNormal(random.key(1), [1000], { std: 1, lower: -0.5, upper: 0.5, dtype: 'f64' }).dataSync();
    for (const v of t) expect(Math.abs(v)).toBeLessThan(0.5);
    const lin = nn.initLinear(random.key(3), { inFeatures: 4, outFeatures: 3, dtype: 'f64' });
    expect(lin.weight.shape).toEqual([3, 4]);
    expect(lin.bias!.tolist()).toEqual([0, 0, 0]);
    const scaled = init.scaleInit(lin, 0.001);
    expect(relErr(scaled.weight, ops.mul(lin.weight, 0.001))).toBe(0);
    expect(nn.initLayerNorm(null, { dim: 2 }).weight.tolist()).toEqual([1, 1]);
    expect(nn.initGrn(null, { dim: 2 }).gamma.shape).toEqual([1, 1, 1, 2]);
  });

  it('flattenParams / unflattenParams round-trip with numeric segments as array indices', () => {
    const a = ops.zeros([1]);
    const tree = { downsample_layers: [[{ weight: a }], [{ weight: a }, { bias: a }]], head: { weight: a } };
    const flat = init.flattenParams(tree);
    expect([...flat.keys()]).toEqual(['downsample_layers.0.0.weight', 'downsample_layers.1.0.weight', 'downsample_layers.1.1.bias', 'head.weight']);
    const back = init.unflattenParams(flat) as typeof tree;
    expect(back.downsample_layers[1]![1]!.bias).toBe(a);
    expect(Array.isArray(back.downsample_layers)).toBe(true);
    expect(() => init.unflattenParams([['s.0.w', a], ['s.2.w', a]])).toThrow(/s\.1 is missing/);
  });

  it('bad input is named', () => {
    const x = ops.ones([1, 3, 8, 8], 'f64');
    expect(() => nn.conv2d({ weight: ops.ones([4, 2, 3, 3], 'f64') }, x)).toThrow(/3 channels.*expects 2/);
    expect(() => nn.linear({ weight: ops.ones([4, 5], 'f64') }, ops.ones([2, 3], 'f64'))).toThrow(/expects 5/);
    expect(() => nn.layerNorm({ weight: ops.ones([4], 'f64'), bias: ops.ones([4], 'f64') }, ops.ones([2, 3], 'f64'))).toThrow(/expected 3/);
    expect(() => nn.linear({ weight: ops.ones([4, 3], 'f32') }, ops.ones([2, 3], 'f64'))).toThrow(/f32/);
  });
});
