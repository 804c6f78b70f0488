/**
 * The trainers' optimizer: AdamW with the ConvNeXt V2 weight-decay groups and layer-wise lr
 * decay (param_groups.ts), and the learning-rate schedule (linear warmup, cosine decay; per
 * step, computed on the host and passed to the jitted step as a scalar tensor).
 */
import { OpError } from '../../ir/errors.js';
import { adamw, type AdamWState, type GroupTree, type LeafGroup, type Optimizer } from '../../nn/optim.js';
import { cosineSchedule, type Schedule } from '../../nn/schedule.js';
import { paramGroups, type WeightDecayRule } from '../param_groups.js';

export interface OptimConfig {
  /** Peak learning rate (reached after warmup). */
  lr: number;
  /** Final learning rate of the cosine decay. */
  minLr: number;
  warmupSteps: number;
  totalSteps: number;
  weightDecay: number;
  /** Layer-wise lr decay (1 = off). */
  layerDecay: number;
  betas: readonly [number, number];
  /** Clip gradients to this global norm (0 = off). */
  clipGrad: number;
}

export function checkOptimConfig(c: OptimConfig): void {
  const bad = (m: string): never => {
    throw new OpError('optimizer', m);
  };
  if (!(c.lr > 0 && Number.isFinite(c.lr))) bad(`lr must be a positive number, got ${c.lr}`);
  if (!(c.minLr >= 0 && c.minLr <= c.lr)) bad(`minLr must be in [0, lr], got ${c.minLr}`);
  if (!(Number.isInteger(c.totalSteps) && c.totalSteps >= 1)) bad(`the run must have at least one step, got ${c.totalSteps}`);
  if (!(Number.isInteger(c.warmupSteps) && c.warmupSteps >= 0 && c.warmupSteps < c.totalSteps)) bad(`warmup (${c.warmupSteps} steps) must be shorter than the run (${c.totalSteps} steps)`);
  if (!(c.weightDecay >= 0)) bad(`weightDecay must be >= 0, got ${c.weightDecay}`);
  if (!(c.layerDecay > 0 && c.layerDecay <= 1)) bad(`layerDecay must be in (0, 1], got ${c.layerDecay}`);
  if (!(c.clipGrad >= 0)) bad(`clipGrad must be >= 0 (0 = off), got ${c.clipGrad}`);
}

/** Sets lrScale 0 (and no decay) on the GRN parameters of a group tree. */
function freezeGrn(groups: GroupTree, inGrn = false): GroupTree {
  if (groups === null || groups === undefined) return groups;
  if (Array.isArray(groups)) return groups.map((g) => freezeGrn(g, inGrn));
  const o = groups as Record<string, GroupTree>;
  if ('lrScale' in o || 'wd' in o) return inGrn ? { ...(o as Partial<LeafGroup>), lrScale: 0, wd: 0 } : o;
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, freezeGrn(v, inGrn || k === 'grn')]));
}

/**
 * AdamW over `params` with decay groups ('finetune' or 'pretrain' exemptions) and layer decay.
 * `noGrn` freezes every GRN's gamma and beta: initialised at zero, GRN is then the identity
 * throughout training (the GRN-free block the paper compares against).
 */
export function makeOptimizer(params: unknown, depths: readonly number[], c: OptimConfig, rule: WeightDecayRule, opts: { noGrn?: boolean } = {}): Optimizer<AdamWState> {
  let groups = paramGroups(params, { depths, weightDecay: c.weightDecay, layerDecay: c.layerDecay, rule });
  if (opts.noGrn) groups = freezeGrn(groups);
  return adamw({ lr: c.lr, betas: [c.betas[0], c.betas[1]], weightDecay: c.weightDecay, groups });
}

/** Linear warmup to lr, then cosine to minLr at totalSteps (the official adjust_learning_rate). */
export function makeSchedule(c: OptimConfig): Schedule {
  if (c.warmupSteps === 0 && c.totalSteps === 0) return () => c.lr;
  return cosineSchedule({ baseLr: c.lr, minLr: c.minLr, warmupSteps: c.warmupSteps, totalSteps: c.totalSteps });
}
