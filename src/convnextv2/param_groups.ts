/**
 * Per-parameter optimizer metadata for ConvNeXt V2, decided from the official state-dict names
 * (spec sections 4.1, 4.2 and 4.4):
 *
 * - weight decay: fine-tuning (official optim_factory) exempts 1-D parameters and names ending
 *   in `.bias`, `.gamma` or `.beta` (GRN); FCMAE pretraining (timm 0.3.2 `add_weight_decay`)
 *   exempts only 1-D parameters and `.bias`, so GRN gamma/beta of shape (1,C) or (1,1,1,C) and
 *   mask_token (1,D,1,1) ARE decayed.
 * - layer-wise lr decay: a layer id per name ('single' or 'group'), and the lr scale
 *   decay^(nL + 1 - id).
 *
 * `paramGroups` returns a tree with the parameters' structure whose leaves are `{wd, lrScale}`;
 * pass it as `groups` to adamw/sgd (src/nn/optim.ts).
 */
import { OpError } from '../ir/errors.js';
import { Tensor } from '../ir/tensor.js';
import type { GroupTree, LeafGroup } from '../nn/optim.js';
import { namedLeaves } from '../nn/tree_paths.js';

export type WeightDecayRule = 'finetune' | 'pretrain';
export type LayerDecayMode = 'single' | 'group';

/** The part of a model config these rules need. */
export interface DepthsConfig {
  readonly depths: readonly number[];
}

/**
 * True when the parameter gets no weight decay.
 * 'finetune' (spec 4.2): 1-D, or the name ends with .bias, .gamma or .beta.
 * 'pretrain' (spec 4.1, timm 0.3.2): 1-D, or the name ends with .bias.
 * `skip` lists extra names exempt from decay (a model's no_weight_decay()).
 */
export function noWeightDecay(name: string, shape: readonly number[], rule: WeightDecayRule = 'finetune', skip: readonly string[] = []): boolean {
  if (rule !== 'finetune' && rule !== 'pretrain') throw new OpError('noWeightDecay', `rule must be 'finetune' or 'pretrain', got ${JSON.stringify(rule)}`);
  if (shape.length === 1 || name.endsWith('.bias') || skip.includes(name)) return true;
  return rule === 'finetune' && (name.endsWith('.gamma') || name.endsWith('.beta'));
}

function checkDepths(op: string, depths: readonly number[], mode: LayerDecayMode = 'single'): void {
  if (!Array.isArray(depths) || depths.length === 0 || !depths.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new OpError(op, `depths must be a non-empty array of non-negative integers, got ${JSON.stringify(depths)}`);
  }
  if (mode === 'group' && depths.length !== 4) {
    throw new OpError(op, `layer decay mode 'group' is defined for 4 stages (made for depths 3,3,27,3), got depths ${JSON.stringify(depths)}`);
  }
}

function checkMode(op: string, mode: unknown): asserts mode is LayerDecayMode {
  if (mode !== 'single' && mode !== 'group') throw new OpError(op, `mode must be 'single' or 'group', got ${JSON.stringify(mode)}`);
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** nL: Σdepths for 'single', 12 for 'group' (made for depths 3,3,27,3). Ids run 0..nL+1. */
export function numLayers(depths: readonly number[], mode: LayerDecayMode): number {
  checkMode('numLayers', mode);
  checkDepths('numLayers', depths, mode);
  return mode === 'single' ? sum(depths) : 12;
}

/** The stage index and block index in `downsample_layers.k...` / `stages.s.b...`. */
function parseName(op: string, name: string, nStages: number): { kind: 'down'; stage: number } | { kind: 'stage'; stage: number; block: number } | { kind: 'other' } {
  const segs = name.split('.');
  if (name.startsWith('downsample_layers')) {
    const k = Number(segs[1]);
    if (segs[0] !== 'downsample_layers' || !Number.isInteger(k) || k < 0 || k >= nStages) throw new OpError(op, `cannot read the stage index of ${JSON.stringify(name)}`);
    return { kind: 'down', stage: k };
  }
  if (name.startsWith('stages')) {
    const s = Number(segs[1]);
    const b = Number(segs[2]);
    if (segs[0] !== 'stages' || !Number.isInteger(s) || s < 0 || s >= nStages || !Number.isInteger(b) || b < 0) {
      throw new OpError(op, `cannot read the stage and block indices of ${JSON.stringify(name)}`);
    }
    return { kind: 'stage', stage: s, block: b };
  }
  return { kind: 'other' };
}

/**
 * The layer id of an official parameter name (spec 4.4, optim_factory):
 * 'single': downsample_layers.k -> Σdepths[:k] + 1; stages.s.b -> Σdepths[:s] + b + 1;
 *           anything else -> Σdepths + 1.
 * 'group':  downsample_layers.0 -> 0, .1 -> 2, .2 -> 3, .3 -> 12; stages.0 -> 1, stages.1 -> 2,
 *           stages.2.b -> 3 + floor(b/3), stages.3 -> 12; anything else -> 13.
 * Like the official code, names are matched by prefix, so FCMAE names (`encoder.*`, decoder,
 * mask_token) count as "anything else".
 */
export function layerId(name: string, depths: readonly number[], mode: LayerDecayMode = 'single'): number {
  const op = 'layerId';
  checkMode(op, mode);
  checkDepths(op, depths, mode);
  const p = parseName(op, name, depths.length);
  if (mode === 'single') {
    if (p.kind === 'down') return sum(depths.slice(0, p.stage)) + 1;
    if (p.kind === 'stage') return sum(depths.slice(0, p.stage)) + p.block + 1;
    return sum(depths) + 1;
  }
  if (p.kind === 'down') return [0, 2, 3, 12][p.stage]!;
  if (p.kind === 'stage') {
    if (p.stage === 0 || p.stage === 1) return p.stage + 1;
    if (p.stage === 2) return 3 + Math.floor(p.block / 3);
    return 12;
  }
  return 13;
}

/** decay^(nL + 1 - id) for a layer id. */
export function layerScaleForId(id: number, depths: readonly number[], mode: LayerDecayMode, decay: number): number {
  const nL = numLayers(depths, mode);
  if (!Number.isInteger(id) || id < 0 || id > nL + 1) throw new OpError('layerScale', `layer id ${id} is outside 0..${nL + 1}`);
  if (!(decay > 0) || !Number.isFinite(decay)) throw new OpError('layerScale', `layer decay must be a positive number, got ${decay}`);
  return Math.pow(decay, nL + 1 - id);
}

/** The lr scale of a parameter name: decay^(nL + 1 - layerId(name)) (spec 4.4). */
export function layerScale(name: string, depths: readonly number[], mode: LayerDecayMode, decay: number): number {
  return layerScaleForId(layerId(name, depths, mode), depths, mode, decay);
}

/** All the scales decay^(nL + 1 - i) for i = 0..nL+1, as the official assigner's list. */
export function layerScales(depths: readonly number[], mode: LayerDecayMode, decay: number): number[] {
  const nL = numLayers(depths, mode);
  return Array.from({ length: nL + 2 }, (_, i) => Math.pow(decay, nL + 1 - i));
}

export interface ParamGroupOptions {
  depths: readonly number[];
  /** Layer-wise lr decay; 1 (the default) gives every parameter scale 1. */
  layerDecay?: number;
  /** Default 'single'. */
  mode?: LayerDecayMode;
  weightDecay: number;
  /** 'finetune' (default) or 'pretrain' weight-decay exemptions. */
  rule?: WeightDecayRule;
  /** Extra names without weight decay. */
  skip?: readonly string[];
}

export interface ParamGroupLeaf extends LeafGroup {
  /** The layer id used for lrScale (informative). */
  layerId: number;
}

/**
 * A tree with the structure of `params` whose leaves are `{wd, lrScale, layerId}`: wd is 0 for
 * exempt parameters and `weightDecay` otherwise; lrScale is the layer-decay scale (1 when
 * layerDecay is 1, as the official code assigns no scale then).
 */
export function paramGroups<P>(params: P, opts: ParamGroupOptions): GroupTree {
  const op = 'paramGroups';
  if (opts === null || typeof opts !== 'object') throw new OpError(op, 'expected options {depths, weightDecay, layerDecay?, mode?, rule?}');
  const mode = opts.mode ?? 'single';
  const decay = opts.layerDecay ?? 1;
  const rule = opts.rule ?? 'finetune';
  if (!(opts.weightDecay >= 0)) throw new OpError(op, `weightDecay must be >= 0, got ${opts.weightDecay}`);
  checkMode(op, mode);
  checkDepths(op, opts.depths, mode);
  const leafFor = (name: string, shape: readonly number[]): ParamGroupLeaf => {
    const id = layerId(name, opts.depths, mode);
    return {
      wd: noWeightDecay(name, shape, rule, opts.skip) ? 0 : opts.weightDecay,
      lrScale: decay === 1 ? 1 : layerScaleForId(id, opts.depths, mode, decay),
      layerId: id,
    };
  };
  const names = namedLeaves(params, op);
  let i = 0;
  const build = (x: unknown): unknown => {
    if (x === null || x === undefined) return x;
    if (Array.isArray(x)) return x.map(build);
    if (x instanceof Tensor) {
      const leaf = names[i++]!;
      return leafFor(leaf.name, leaf.tensor.shape);
    }
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(x as object)) o[k] = build((x as Record<string, unknown>)[k]);
    return o;
  };
  return build(params) as GroupTree;
}
