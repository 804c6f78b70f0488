import { describe, expect, it } from 'vitest';
import * as ops from '../../src/ir/ops.js';
import { layerId, layerScale, layerScales, noWeightDecay, numLayers, paramGroups, type ParamGroupLeaf } from '../../src/convnextv2/param_groups.js';
import { templateFromConfig } from '../../src/convnextv2/checkpoint.js';
import { adamw } from '../../src/nn/optim.js';
import { namedLeaves } from '../../src/nn/tree_paths.js';

const ATTO = [2, 2, 6, 2];
const BASE = [3, 3, 27, 3];

describe('layerId (spec 4.4)', () => {
  it("atto 'single': nL = 12; stem 1, downsamplers share their stage's first block id, norm/head 13", () => {
    expect(numLayers(ATTO, 'single')).toBe(12);
    const cases: [string, number][] = [
      ['downsample_layers.0.0.weight', 1], // Σdepths[:0] + 1
      ['downsample_layers.0.1.bias', 1],
      ['downsample_layers.1.0.weight', 3], // 2 + 1
      ['downsample_layers.1.1.weight', 3],
      ['downsample_layers.2.1.bias', 5], // 4 + 1
      ['downsample_layers.3.1.weight', 11], // 10 + 1
      ['stages.0.0.dwconv.weight', 1],
      ['stages.0.1.grn.gamma', 2],
      ['stages.1.0.pwconv1.weight', 3],
      ['stages.1.1.norm.bias', 4],
      ['stages.2.0.dwconv.bias', 5],
      ['stages.2.5.pwconv2.weight', 10],
      ['stages.3.0.grn.beta', 11],
      ['stages.3.1.pwconv2.bias', 12],
      ['norm.weight', 13],
      ['head.weight', 13],
      ['head.bias', 13],
    ];
    for (const [name, id] of cases) expect([name, layerId(name, ATTO, 'single')]).toEqual([name, id]);
  });

  it("base 'group': nL = 12; stem 0, stage0 1, down1+stage1 2, down2 3, stage2 3 + b//3, down3+stage3 12, rest 13", () => {
    expect(numLayers(BASE, 'group')).toBe(12);
    const cases: [string, number][] = [
      ['downsample_layers.0.0.weight', 0],
      ['downsample_layers.0.1.weight', 0],
      ['stages.0.0.dwconv.weight', 1],
      ['stages.0.2.pwconv1.bias', 1],
      ['downsample_layers.1.0.weight', 2],
      ['downsample_layers.1.1.bias', 2],
      ['stages.1.0.grn.gamma', 2],
      ['stages.1.2.norm.weight', 2],
      ['downsample_layers.2.1.weight', 3],
      ['stages.2.0.dwconv.weight', 3],
      ['stages.2.2.dwconv.weight', 3],
      ['stages.2.3.dwconv.weight', 4],
      ['stages.2.14.pwconv1.weight', 7],
      ['stages.2.26.pwconv2.bias', 11],
      ['downsample_layers.3.0.bias', 12],
      ['downsample_layers.3.1.weight', 12],
      ['stages.3.0.grn.beta', 12],
      ['stages.3.2.pwconv2.weight', 12],
      ['norm.bias', 13],
      ['head.weight', 13],
    ];
    for (const [name, id] of cases) expect([name, layerId(name, BASE, 'group')]).toEqual([name, id]);
  });

  it("base 'single': nL = 36", () => {
    expect(numLayers(BASE, 'single')).toBe(36);
    expect(layerId('downsample_layers.2.0.weight', BASE, 'single')).toBe(7);
    expect(layerId('stages.2.26.grn.gamma', BASE, 'single')).toBe(33);
    expect(layerId('stages.3.2.grn.gamma', BASE, 'single')).toBe(36);
    expect(layerId('head.bias', BASE, 'single')).toBe(37);
  });

  it('scales are decay^(nL + 1 - id)', () => {
    expect(layerScale('head.weight', ATTO, 'single', 0.9)).toBe(1);
    expect(layerScale('stages.3.1.pwconv1.weight', ATTO, 'single', 0.9)).toBeCloseTo(0.9, 15);
    expect(layerScale('downsample_layers.0.0.weight', ATTO, 'single', 0.9)).toBeCloseTo(0.9 ** 12, 15);
    expect(layerScale('stages.2.5.dwconv.weight', ATTO, 'single', 0.9)).toBeCloseTo(0.9 ** 3, 15);
    expect(layerScale('downsample_layers.0.0.weight', BASE, 'group', 0.6)).toBeCloseTo(0.6 ** 13, 15);
    expect(layerScale('stages.2.26.dwconv.weight', BASE, 'group', 0.6)).toBeCloseTo(0.6 ** 2, 15);
    const all = layerScales(BASE, 'group', 0.6);
    expect(all.length).toBe(14);
    expect(all[0]).toBeCloseTo(0.6 ** 13, 15);
    expect(all[13]).toBe(1);
  });

  it('rejects bad input', () => {
    expect(() => layerId('stages.x.0.dwconv.weight', ATTO, 'single')).toThrow(/stage and block/);
    expect(() => layerId('head.weight', [3, 3, 9], 'group')).toThrow(/4 stages/);
    expect(() => layerId('head.weight', ATTO, 'mixed' as never)).toThrow(/mode/);
  });
});

describe('noWeightDecay', () => {
  it("fine-tuning (spec 4.2): 1-D, .bias, .gamma, .beta are exempt", () => {
    expect(noWeightDecay('stages.0.0.grn.gamma', [1, 1, 1, 160], 'finetune')).toBe(true);
    expect(noWeightDecay('stages.0.0.grn.beta', [1, 1, 1, 160], 'finetune')).toBe(true);
    expect(noWeightDecay('stages.0.0.dwconv.bias', [40], 'finetune')).toBe(true);
    expect(noWeightDecay('stages.0.0.norm.weight', [40], 'finetune')).toBe(true);
    expect(noWeightDecay('norm.weight', [320], 'finetune')).toBe(true);
    expect(noWeightDecay('head.bias', [1000], 'finetune')).toBe(true);
    expect(noWeightDecay('stages.0.0.pwconv1.weight', [160, 40], 'finetune')).toBe(false);
    expect(noWeightDecay('stages.0.0.dwconv.weight', [40, 1, 7, 7], 'finetune')).toBe(false);
    expect(noWeightDecay('head.weight', [1000, 320], 'finetune')).toBe(false);
  });

  it('FCMAE pretraining (spec 4.1, timm 0.3.2): only 1-D and .bias; GRN gamma/beta and mask_token decay', () => {
    expect(noWeightDecay('encoder.stages.0.0.grn.gamma', [1, 160], 'pretrain')).toBe(false);
    expect(noWeightDecay('encoder.stages.0.0.grn.beta', [1, 1, 1, 160], 'pretrain')).toBe(false);
    expect(noWeightDecay('decoder.0.grn.gamma', [1, 1, 1, 2048], 'pretrain')).toBe(false);
    expect(noWeightDecay('mask_token', [1, 512, 1, 1], 'pretrain')).toBe(false);
    expect(noWeightDecay('encoder.stages.0.0.dwconv.bias', [1, 40], 'pretrain')).toBe(true);
    expect(noWeightDecay('encoder.downsample_layers.1.0.weight', [40], 'pretrain')).toBe(true);
    expect(noWeightDecay('proj.weight', [512, 320, 1, 1], 'pretrain')).toBe(false);
    expect(noWeightDecay('pred.bias', [3072], 'pretrain')).toBe(true);
  });
});

describe('paramGroups', () => {
  it('atto fine-tuning tree: wd 0 exactly on 1-D/bias/GRN leaves, lr scales from layer ids', () => {
    const params = templateFromConfig({ depths: ATTO, dims: [40, 80, 160, 320], numClasses: 10 });
    const groups = paramGroups(params, { depths: ATTO, layerDecay: 0.9, mode: 'single', weightDecay: 0.3 });
    const named = namedLeaves(params);
    const g = groups as { stages: ParamGroupLeaf[][][]; downsample_layers: { weight: ParamGroupLeaf }[][]; head: { weight: ParamGroupLeaf; bias: ParamGroupLeaf } };
    // spot checks through the structure
    const grn = (g.stages[2]![5] as unknown as { grn: { gamma: ParamGroupLeaf } }).grn.gamma;
    expect(grn).toEqual({ wd: 0, lrScale: 0.9 ** 3, layerId: 10 });
    const pw = (g.stages[2]![5] as unknown as { pwconv1: { weight: ParamGroupLeaf } }).pwconv1.weight;
    expect(pw.wd).toBe(0.3);
    expect(pw.lrScale).toBeCloseTo(0.9 ** 3, 15);
    expect(g.downsample_layers[0]![0]!.weight).toEqual({ wd: 0.3, lrScale: 0.9 ** 12, layerId: 1 });
    expect(g.head.weight).toEqual({ wd: 0.3, lrScale: 1, layerId: 13 });
    expect(g.head.bias.wd).toBe(0);
    // counts: decayed = 4-D conv weights (4 + 12 dwconv) + 2-D linears (24 + head) = 41 of 140
    let decayed = 0;
    const walk = (x: unknown): void => {
      if (x && typeof x === 'object' && 'wd' in (x as object)) decayed += (x as ParamGroupLeaf).wd > 0 ? 1 : 0;
      else if (Array.isArray(x)) x.forEach(walk);
      else if (x && typeof x === 'object') Object.values(x).forEach(walk);
    };
    walk(groups);
    expect(named.length).toBe(140);
    expect(decayed).toBe(41);
  });

  it('feeds adamw: a no-decay, scaled leaf moves by exactly lr*scale on the first step', () => {
    const params = { stages: [[{ grn: { gamma: ops.tensor([0.5], { dtype: 'f64', shape: [1, 1, 1, 1] }) } }]], head: { weight: ops.tensor([[2]], { dtype: 'f64' }) } };
    const groups = paramGroups(params, { depths: [1, 1, 1, 1], layerDecay: 0.5, weightDecay: 0.1 });
    const opt = adamw({ lr: 0.1, eps: 0, groups });
    const grads = { stages: [[{ grn: { gamma: ops.tensor([3], { dtype: 'f64', shape: [1, 1, 1, 1] }) } }]], head: { weight: ops.tensor([[-1]], { dtype: 'f64' }) } };
    const r = opt.update(grads, opt.init(params), params);
    // gamma: id 1 of nL 4 -> scale 0.5^4; no decay; Adam's first step is lr * sign(g)
    expect(r.params.stages[0]![0]!.grn.gamma.item()).toBeCloseTo(0.5 - 0.1 * 0.5 ** 4, 15);
    // head: scale 1, decay 0.1: 2 * (1 - 0.01) + 0.1
    expect(r.params.head.weight.item()).toBeCloseTo(2 * 0.99 + 0.1, 15);
  });

  it('pretraining rule on an FCMAE-shaped tree decays GRN and mask_token', () => {
    const t = (shape: number[]) => ops.zeros(shape, 'f32');
    const params = {
      encoder: { stages: [[{ grn: { gamma: t([1, 1, 1, 8]), beta: t([1, 1, 1, 8]) }, dwconv: { weight: t([2, 1, 7, 7]), bias: t([2]) } }]] },
      mask_token: t([1, 4, 1, 1]),
    };
    const g = paramGroups(params, { depths: [1, 1, 1, 1], weightDecay: 0.05, rule: 'pretrain' }) as any;
    expect(g.encoder.stages[0][0].grn.gamma.wd).toBe(0.05);
    expect(g.encoder.stages[0][0].grn.beta.wd).toBe(0.05);
    expect(g.encoder.stages[0][0].dwconv.bias.wd).toBe(0);
    expect(g.mask_token).toEqual({ wd: 0.05, lrScale: 1, layerId: 5 });
    const f = paramGroups(params, { depths: [1, 1, 1, 1], weightDecay: 0.05, rule: 'finetune' }) as any;
    expect(f.encoder.stages[0][0].grn.gamma.wd).toBe(0);
  });
});
