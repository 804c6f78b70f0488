import { describe, expect, it } from 'vitest';
import { valueAndGrad } from '../../src/autodiff/index.js';
import { trace } from '../../src/ir/functional.js';
import * as ops from '../../src/ir/ops.js';
import { treeMap } from '../../src/ir/pytree.js';
import * as random from '../../src/ir/random.js';
import type { Tensor } from '../../src/ir/tensor.js';
import * as convnextv2 from '../../src/convnextv2/index.js';
import { type ConvNeXtV2Params } from '../../src/convnextv2/model.js';
import { flattenParams, unflattenParams } from '../../src/nn/init.js';
import { softmaxCrossEntropy } from '../../src/nn/losses.js';
import { loadRefs, relErr } from '../helpers/refs.js';

// Tolerance: max-norm relative error max|a - b| / max|b| per tensor against PyTorch float64.
function tinyRefs() {
  const r = loadRefs('tiny');
  const params = unflattenParams<ConvNeXtV2Params>(r.withPrefix('param.'));
  const cfg = convnextv2.config('custom', { depths: [1, 1, 2, 1], dims: [8, 16, 32, 64], numClasses: 10 });
  return { r, params, cfg };
}

function runTiny(dtype: 'f64' | 'f32') {
  const { r, params, cfg } = tinyRefs();
  const cast = (t: Tensor) => (dtype === 'f64' ? t : ops.cast(t, dtype));
  const p = treeMap<ConvNeXtV2Params>(cast, params);
  const x = cast(r.get('input'));
  const labels = r.get('labels');
  const f = (pp: ConvNeXtV2Params, xx: Tensor) => {
    const lg = convnextv2.apply(pp, xx, { cfg });
    return [softmaxCrossEntropy(lg, labels), lg];
  };
  const [[loss, logits], [gp, gx]] = valueAndGrad(f, { argnums: [0, 1], hasAux: true })(p, x);
  const errs: Record<string, number> = {};
  const up = (t: Tensor) => ops.cast(t, 'f64');
  errs.logits = relErr(up(logits), r.get('logits'));
  errs.loss = relErr(up(ops.reshape(loss, [1])), r.get('loss'));
  errs['grad.input'] = relErr(up(gx), r.get('grad.input'));
  const flat = flattenParams(gp);
  for (const [name] of r.withPrefix('param.')) {
    const g = flat.get(name);
    errs[`grad.${name}`] = g ? relErr(up(g), r.get(`grad.${name}`)) : Infinity;
  }
  expect(flat.size).toBe(r.withPrefix('param.').length);
  return errs;
}

function worstOf(errs: Record<string, number>): [string, number] {
  return Object.entries(errs).reduce((a, b) => (b[1] > a[1] ? b : a), ['', -1]);
}

describe('ConvNeXt V2 against PyTorch (tiny.safetensors: depths 1,1,2,1, dims 8..64, 10 classes)', () => {
  it('float64: logits, loss, every parameter gradient and the input gradient within 1e-9', () => {
    const errs = runTiny('f64');
    const [k, v] = worstOf(errs);
    console.log(`tiny f64: logits ${errs.logits!.toExponential(2)}, loss ${errs.loss!.toExponential(2)}, grad.input ${errs['grad.input']!.toExponential(2)}, worst ${k} ${v.toExponential(2)}`);
    for (const [name, e] of Object.entries(errs)) expect(e, name).toBeLessThanOrEqual(1e-9);
  });

  it('float32: the same within 1e-4', () => {
    const errs = runTiny('f32');
    const [k, v] = worstOf(errs);
    console.log(`tiny f32: logits ${errs.logits!.toExponential(2)}, loss ${errs.loss!.toExponential(2)}, worst ${k} ${v.toExponential(2)}`);
    for (const [name, e] of Object.entries(errs)) expect(e, name).toBeLessThanOrEqual(1e-4);
  });

  it('features: per-stage NCHW outputs; the traced program names its regions', () => {
    const { r, params, cfg } = tinyRefs();
    const x = r.get('input');
    const fs = convnextv2.features(params, x, cfg);
    expect(fs.map((f) => f.shape)).toEqual([
      [2, 8, 16, 16],
      [2, 16, 8, 8],
      [2, 32, 4, 4],
      [2, 64, 2, 2],
    ]);
    const prog = trace((p: ConvNeXtV2Params, xx: Tensor) => convnextv2.apply(p, xx, { cfg }), params, x).toString();
    for (const name of ['layer_norm', 'gelu', 'grn', 'global_avg_pool']) expect(prog).toContain(name);
  });
});

describe('ConvNeXt V2 configs, init and parameter counts', () => {
  // spec 1.4 "#params computed" (1000-class head): 8C^2+65C per block plus stem, downsamplers, norm, head.
  const expected: Record<string, number> = {
    atto: 3_708_400,
    femto: 5_233_240,
    pico: 9_066_280,
    nano: 15_623_800,
    tiny: 28_635_496,
    base: 88_717_800,
    large: 197_956_840,
    huge: 660_289_640,
  };

  it('every variant counts the spec table (shape-only count)', () => {
    for (const name of convnextv2.VARIANT_NAMES) {
      const n = convnextv2.paramCountOf(convnextv2.config(name));
      expect(n, name).toBe(expected[name]);
      const spec = { atto: 3.71, femto: 5.23, pico: 9.07, nano: 15.62, tiny: 28.64, base: 88.72, large: 197.96, huge: 660.29 }[name]!;
      expect(Math.round(n / 1e4) / 100, name).toBe(spec);
    }
  });

  it('atto init has exactly 3,708,400 parameters in the official layout', () => {
    const cfg = convnextv2.config('atto');
    const params = convnextv2.init(random.key(0), cfg);
    expect(convnextv2.paramCount(params)).toBe(3_708_400);
    const flat = flattenParams(params);
    expect(flat.size).toBe(140);
    expect(flat.get('downsample_layers.0.0.weight')!.shape).toEqual([40, 3, 4, 4]);
    expect(flat.get('downsample_layers.1.0.weight')!.shape).toEqual([40]);
    expect(flat.get('downsample_layers.3.1.weight')!.shape).toEqual([320, 160, 2, 2]);
    expect(flat.get('stages.2.5.pwconv1.weight')!.shape).toEqual([640, 160]);
    expect(flat.get('stages.0.0.grn.gamma')!.shape).toEqual([1, 1, 1, 160]);
    expect(flat.get('head.weight')!.shape).toEqual([1000, 320]);
    expect(flat.get('stages.0.1.norm.weight')!.dataSync().every((v) => v === 1)).toBe(true);
    expect(flat.get('stages.0.1.grn.beta')!.dataSync().every((v) => v === 0)).toBe(true);
  });

  it('config overrides, custom configs and head init scale', () => {
    const c = convnextv2.config('tiny', { numClasses: 10, dropPathRate: 0.2 });
    expect(c.depths).toEqual([3, 3, 9, 3]);
    expect(c.numClasses).toBe(10);
    const small = convnextv2.config({ depths: [1, 1], dims: [4, 8], numClasses: 3, headInitScale: 0.001, stemStride: 2, dtype: 'f64' });
    const p = convnextv2.init(random.key(1), small);
    const q = convnextv2.init(random.key(1), { ...small, headInitScale: 1 });
    expect(relErr(p.head.weight, ops.mul(q.head.weight, 0.001))).toBeLessThan(1e-15);
    expect(relErr(p.stages[0]![0]!.pwconv1.weight, q.stages[0]![0]!.pwconv1.weight)).toBe(0);
    const x = random.normal(random.key(2), [2, 3, 8, 8], { dtype: 'f64' });
    expect(convnextv2.apply(p, x, { cfg: small }).shape).toEqual([2, 3]);
    // cfg inferred from the params
    expect(relErr(convnextv2.apply(p, x), convnextv2.apply(p, x, { cfg: small }))).toBe(0);
    expect(() => convnextv2.config('gigantic' as 'atto')).toThrow(/unknown variant "gigantic"/);
    expect(() => convnextv2.config('custom', { depths: [1, 1], dims: [4] })).toThrow(/dims/);
  });

  it('training mode applies drop path from the key; eval ignores it', () => {
    const cfg = convnextv2.config({ depths: [2, 2], dims: [4, 8], numClasses: 3, stemStride: 2, dropPathRate: 0.5, dtype: 'f64' });
    const p = treeMap<ConvNeXtV2Params>((t) => ops.add(t, random.normal(random.key(t.size), t.shape, { dtype: 'f64', std: 0.3 })), convnextv2.init(random.key(3), cfg));
    const x = random.normal(random.key(4), [4, 3, 8, 8], { dtype: 'f64' });
    const ev = convnextv2.apply(p, x, { cfg });
    const tr1 = convnextv2.apply(p, x, { cfg, train: true, key: random.key(5) });
    const tr2 = convnextv2.apply(p, x, { cfg, train: true, key: random.key(5) });
    expect(relErr(tr1, tr2)).toBe(0);
    expect(relErr(tr1, ev)).toBeGreaterThan(1e-6);
    expect(relErr(convnextv2.apply(p, x, { cfg, train: false, key: random.key(5) }), ev)).toBe(0);
    expect(() => convnextv2.apply(p, x, { cfg, train: true })).toThrow(/needs a PRNG key/);
    expect(convnextv2.dropPathRates(cfg)).toEqual([0, 0.5 / 3, 1 / 3, 0.5]);
  });

  it('bad input: image size, channels, missing and mis-shaped params', () => {
    const { r, params, cfg } = tinyRefs();
    const x = r.get('input');
    expect(() => convnextv2.apply(params, ops.slice(x, [0, 0, 0, 0], [2, 3, 48, 40]), { cfg })).toThrow(/image size 48x40 is not a multiple of 32 \(the model's total stride/);
    expect(() => convnextv2.apply(params, ops.slice(x, [0, 0, 0, 0], [2, 2, 64, 64]), { cfg })).toThrow(
      /have 2 channels but the stem \(downsample_layers\.0\.0\.weight \[8,3,4,4\]\) expects 3/,
    );
    const missing = unflattenParams<ConvNeXtV2Params>([...flattenParams(params)].filter(([k]) => k !== 'stages.2.1.pwconv1.weight'));
    expect(() => convnextv2.apply(missing, x, { cfg })).toThrow(/params are missing "stages\.2\.1\.pwconv1\.weight"/);
    const noHead = unflattenParams<ConvNeXtV2Params>([...flattenParams(params)].filter(([k]) => !k.startsWith('head.')));
    expect(() => convnextv2.apply(noHead, x, { cfg })).toThrow(/params are missing "head\.weight"/);
    const wrong = unflattenParams<ConvNeXtV2Params>(
      [...flattenParams(params)].map(([k, v]) => [k, k === 'norm.weight' ? ops.zeros([32], 'f64') : v] as [string, Tensor]),
    );
    expect(() => convnextv2.apply(wrong, x, { cfg })).toThrow(/"norm\.weight" has shape \[32\], expected \[64\]/);
    expect(() => convnextv2.apply(params, ops.cast(x, 'f32'), { cfg })).toThrow(/f32.*f64|f64.*f32/);
  });
});
