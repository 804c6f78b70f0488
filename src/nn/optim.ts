/**
 * Optimizers as pure functions over parameter pytrees.
 *
 * An optimizer is `{init(params) -> state, update(grads, state, params, {lr?, step?}) ->
 * {params, state}}`. Everything is written with Tensor ops, so `update` runs eagerly and
 * inside trace/jit alike; the state is a plain pytree (the step count is an i32 scalar tensor)
 * that can be donated to a jitted step and saved with the parameters.
 *
 * Hyper-parameters that change from step to step (the learning rate) may be numbers or scalar
 * Tensors: pass a Tensor to a jitted step so a new value does not retrace. Per-parameter
 * weight decay and learning-rate scale come from parameter groups (see
 * src/convnextv2/param_groups.ts), given either as a tree of `{wd, lrScale}` with the
 * parameters' structure or as a function of the parameter's dotted name.
 */
import { type DType } from '../ir/dtype.js';
import { OpError } from '../ir/errors.js';
import * as ops from '../ir/ops.js';
import { treeFlatten, treeLeavesLike, treeUnflatten, type TreeDef } from '../ir/pytree.js';
import { fmtShape } from '../ir/shape.js';
import { Tensor } from '../ir/tensor.js';
import { alignedMeta, namedLeaves } from './tree_paths.js';

/** A scalar hyper-parameter: a number, or a Tensor with one element (for jit). */
export type ScalarLike = number | Tensor;

/** Per-parameter settings: the weight decay and the multiplier of the learning rate. */
export interface LeafGroup {
  /** Weight decay of this parameter (absolute, replaces the optimizer's weightDecay). */
  wd: number;
  /** Multiplier of the learning rate (layer-wise lr decay); 1 for none. */
  lrScale: number;
}

/**
 * Parameter groups: a tree with the parameters' structure whose leaves are `{wd?, lrScale?}`,
 * or a function from (dotted name, parameter) to those. Missing fields take the optimizer's
 * weightDecay and a scale of 1.
 */
export type GroupSpec = GroupTree | GroupFn;

/** A tree with the parameters' structure and `{wd?, lrScale?}` leaves (see paramGroups). */
export type GroupTree = Partial<LeafGroup> | null | undefined | readonly GroupTree[] | { readonly [k: string]: GroupTree };

/** Groups as a function of the parameter's dotted name (`stages.0.1.grn.gamma`). */
export type GroupFn = (name: string, p: Tensor) => Partial<LeafGroup>;

export interface UpdateOptions {
  /** The learning rate for this step (overrides the one given at construction). */
  lr?: ScalarLike;
  /**
   * The 1-based number of this step, used for Adam's bias correction, instead of
   * state.step + 1. The new state holds this value.
   */
  step?: ScalarLike;
}

export interface Optimizer<S> {
  init<P>(params: P): S;
  update<P>(grads: P, state: S, params: P, opts?: UpdateOptions): { params: P; state: S };
}

export interface AdamWOptions {
  lr: ScalarLike;
  /** (beta1, beta2), default (0.9, 0.999). */
  betas?: readonly [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay, default 0.01 (torch.optim.AdamW's default). */
  weightDecay?: number;
  groups?: GroupSpec;
}

export interface AdamWState {
  /** The number of updates done so far (i32 scalar). */
  step: Tensor;
  /** First moments (exp_avg), one per parameter. */
  m: unknown;
  /** Second moments (exp_avg_sq), one per parameter. */
  v: unknown;
}

export interface SgdOptions {
  lr: ScalarLike;
  /** Default 0 (no momentum buffer). */
  momentum?: number;
  /** Default 0. */
  dampening?: number;
  /** Default false; needs momentum > 0 and dampening 0, as in torch. */
  nesterov?: boolean;
  /** L2 weight decay added to the gradient (coupled, as torch.optim.SGD), default 0. */
  weightDecay?: number;
  groups?: GroupSpec;
}

export interface SgdState {
  step: Tensor;
  /** Momentum buffers, or null when momentum is 0. */
  momentum: unknown;
}

// ---------------------------------------------------------------------------------------
// helpers

type S = number | Tensor;

function checkScalar(op: string, what: string, x: unknown): ScalarLike {
  if (typeof x === 'number') {
    if (!Number.isFinite(x)) throw new OpError(op, `${what} must be a finite number, got ${x}`);
    return x;
  }
  if (x instanceof Tensor) {
    if (x.size !== 1) throw new OpError(op, `${what} must be a scalar, got a tensor of shape ${fmtShape(x.shape)}`);
    return x;
  }
  throw new OpError(op, `${what} must be a number or a scalar Tensor, got ${x === null ? 'null' : typeof x}`);
}

function checkNumber(op: string, what: string, x: unknown, lo: number, hi: number, hiOpen = false): number {
  if (typeof x !== 'number' || !(x >= lo) || !(hiOpen ? x < hi : x <= hi)) {
    throw new OpError(op, `${what} must be a number in [${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${String(x)}`);
  }
  return x;
}

/** The dtype updates are computed in: f64 for f64 parameters, f32 otherwise. */
function computeDType(d: DType): DType {
  if (d === 'f64') return 'f64';
  if (d === 'f32' || d === 'f16' || d === 'bf16') return 'f32';
  throw new OpError('optimizer', `parameters must be floating point, got ${d}`);
}

/** A scalar in `dtype`: numbers stay numbers (exact JS arithmetic), tensors become rank-0. */
function inDType(x: ScalarLike, dtype: DType): S {
  if (typeof x === 'number') return x;
  return ops.cast(x.ndim === 0 ? x : ops.reshape(x, []), dtype);
}

const mulS = (a: S, b: S): S => (typeof a === 'number' && typeof b === 'number' ? a * b : ops.mul(a, b));
const subS = (a: S, b: S): S => (typeof a === 'number' && typeof b === 'number' ? a - b : ops.sub(a, b));
const divS = (a: S, b: S): S => (typeof a === 'number' && typeof b === 'number' ? a / b : ops.div(a, b));
const isZero = (a: S): boolean => typeof a === 'number' && a === 0;

/** Multiplies a tensor by a scalar (skipped when the scalar is the number 1). */
function scale(t: Tensor, s: S): Tensor {
  if (typeof s === 'number' && s === 1) return t;
  return ops.mul(t, s);
}

function isGroupLeaf(x: unknown): x is Partial<LeafGroup> {
  if (x === null || typeof x !== 'object' || Array.isArray(x) || x instanceof Tensor) return false;
  const o = x as Record<string, unknown>;
  const keys = Object.keys(o);
  return keys.length > 0 && keys.every((k) => k === 'wd' || k === 'lrScale' || k === 'layerId') &&
    (o.wd === undefined || typeof o.wd === 'number') && (o.lrScale === undefined || typeof o.lrScale === 'number');
}

interface Flat {
  tree: unknown;
  def: TreeDef;
  names: string[];
  params: Tensor[];
}

function flattenParams(op: string, params: unknown): Flat {
  const { def, leaves } = treeFlatten(params, op, 'params');
  const names = namedLeaves(params, op).map((l) => l.name);
  return { tree: params, def, names, params: leaves };
}

/** Leaves of `tree` (grads, a state tree), checked against the parameters one by one. */
function leavesLike(op: string, what: string, tree: unknown, flat: Flat): Tensor[] {
  // matched by key, never by position: {b: gb, a: ga} must not update a with gb
  const leaves = treeLeavesLike(op, flat.tree, tree, ['params', what]);
  leaves.forEach((t, i) => {
    const p = flat.params[i]!;
    if (t.ndim !== p.ndim || t.shape.some((d, j) => d !== p.shape[j])) {
      throw new OpError(op, `${what} for parameter ${JSON.stringify(flat.names[i])} has shape ${fmtShape(t.shape)}, the parameter ${fmtShape(p.shape)}`);
    }
  });
  return leaves;
}

function resolveGroups(op: string, groups: GroupSpec | undefined, params: unknown, flat: Flat, weightDecay: number): LeafGroup[] {
  const fill = (g: Partial<LeafGroup>, name: string): LeafGroup => {
    const wd = g.wd ?? weightDecay;
    const lrScale = g.lrScale ?? 1;
    if (!Number.isFinite(wd) || wd < 0) throw new OpError(op, `group weight decay of ${JSON.stringify(name)} must be >= 0, got ${wd}`);
    if (!Number.isFinite(lrScale) || lrScale < 0) throw new OpError(op, `group lrScale of ${JSON.stringify(name)} must be >= 0, got ${lrScale}`);
    return { wd, lrScale };
  };
  if (groups === undefined || groups === null) return flat.names.map(() => ({ wd: weightDecay, lrScale: 1 }));
  if (typeof groups === 'function') {
    const f = groups as GroupFn;
    return flat.names.map((n, i) => fill(f(n, flat.params[i]!) ?? {}, n));
  }
  const meta = alignedMeta(params, groups, isGroupLeaf, op);
  return meta.map((g, i) => fill(g, flat.names[i]!));
}

/** The new step count: state.step + 1, or the explicit step. */
function nextStep(op: string, step: Tensor, explicit: ScalarLike | undefined): Tensor {
  if (explicit === undefined) return ops.add(step, 1);
  const s = checkScalar(op, 'step', explicit);
  if (typeof s === 'number') {
    if (!Number.isInteger(s) || s < 1) throw new OpError(op, `step must be an integer >= 1, got ${s}`);
    return ops.scalar(s, 'i32');
  }
  return ops.cast(s.ndim === 0 ? s : ops.reshape(s, []), 'i32');
}

function checkState(op: string, state: unknown, keys: readonly string[]): void {
  if (state === null || typeof state !== 'object' || !keys.every((k) => k in (state as object))) {
    throw new OpError(op, `state must be the object returned by init() (with ${keys.join(', ')})`);
  }
  const step = (state as { step: unknown }).step;
  if (!(step instanceof Tensor) || step.size !== 1) throw new OpError(op, 'state.step must be a scalar Tensor');
}

// ---------------------------------------------------------------------------------------
// AdamW

/**
 * AdamW exactly as torch.optim.AdamW (amsgrad off), per parameter with lr' = lr * lrScale and
 * wd = its group's weight decay, at step t (1-based):
 *   p <- p * (1 - lr' * wd)
 *   m <- b1 * m + (1 - b1) * g;   v <- b2 * v + (1 - b2) * g^2
 *   p <- p - (lr' / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Moments are kept in f32 (f64 for f64 parameters); f16/bf16 parameters are updated in f32
 * and rounded back.
 */
export function adamw(options: AdamWOptions): Optimizer<AdamWState> {
  const op = 'adamw';
  if (options === null || typeof options !== 'object') throw new OpError(op, 'expected an options object {lr, betas?, eps?, weightDecay?, groups?}');
  const baseLr = checkScalar(op, 'lr', options.lr);
  const [b1, b2] = options.betas ?? [0.9, 0.999];
  checkNumber(op, 'beta1', b1, 0, 1, true);
  checkNumber(op, 'beta2', b2, 0, 1, true);
  const eps = checkNumber(op, 'eps', options.eps ?? 1e-8, 0, Infinity);
  const weightDecay = checkNumber(op, 'weightDecay', options.weightDecay ?? 0.01, 0, Infinity);
  const groups = options.groups;

  return {
    init<P>(params: P): AdamWState {
      const flat = flattenParams(op, params);
      const zeros = flat.params.map((p) => ops.zeros(p.shape, computeDType(p.dtype)));
      return {
        step: ops.scalar(0, 'i32'),
        m: treeUnflatten(flat.def, zeros),
        v: treeUnflatten(flat.def, zeros),
      };
    },

    update<P>(grads: P, state: AdamWState, params: P, opts: UpdateOptions = {}): { params: P; state: AdamWState } {
      checkState(op, state, ['step', 'm', 'v']);
      const flat = flattenParams(op, params);
      const gs = leavesLike(op, 'grads', grads, flat);
      const ms = leavesLike(op, 'state.m', state.m, flat);
      const vs = leavesLike(op, 'state.v', state.v, flat);
      const hyper = resolveGroups(op, groups, params, flat, weightDecay);
      const lr = opts.lr === undefined ? baseLr : checkScalar(op, 'lr', opts.lr);
      const step = nextStep(op, state.step, opts.step);

      // Bias corrections, once per compute dtype.
      const corr = new Map<DType, { bc1: Tensor; sqrtBc2: Tensor; lr: S }>();
      const correction = (dt: DType) => {
        let c = corr.get(dt);
        if (!c) {
          const t = ops.cast(step, dt);
          c = {
            bc1: ops.sub(1, ops.pow(ops.scalar(b1, dt), t)),
            sqrtBc2: ops.sqrt(ops.sub(1, ops.pow(ops.scalar(b2, dt), t))),
            lr: inDType(lr, dt),
          };
          corr.set(dt, c);
        }
        return c;
      };

      const newP: Tensor[] = [];
      const newM: Tensor[] = [];
      const newV: Tensor[] = [];
      flat.params.forEach((p0, i) => {
        const dt = computeDType(p0.dtype);
        const { bc1, sqrtBc2, lr: lrD } = correction(dt);
        const { wd, lrScale } = hyper[i]!;
        const lrLeaf = mulS(lrD, lrScale);
        let p = ops.cast(p0, dt);
        const g = ops.cast(gs[i]!, dt);
        if (wd !== 0 && lrScale !== 0) p = scale(p, subS(1, mulS(lrLeaf, wd)));
        const m = ops.add(ops.mul(ms[i]!, b1), ops.mul(g, 1 - b1));
        const v = ops.add(ops.mul(vs[i]!, b2), ops.mul(ops.mul(g, g), 1 - b2));
        const denom = ops.add(ops.div(ops.sqrt(v), sqrtBc2), eps);
        const stepSize = divS(lrLeaf, bc1);
        if (!isZero(lrLeaf)) p = ops.sub(p, ops.mul(ops.div(m, denom), stepSize));
        newP.push(ops.cast(p, p0.dtype));
        newM.push(m);
        newV.push(v);
      });
      return {
        params: treeUnflatten<P>(flat.def, newP),
        state: { step, m: treeUnflatten(flat.def, newM), v: treeUnflatten(flat.def, newV) },
      };
    },
  };
}

// ---------------------------------------------------------------------------------------
// SGD

/**
 * SGD exactly as torch.optim.SGD, per parameter with lr' = lr * lrScale and its group's
 * weight decay wd:
 *   d = g + wd * p
 *   buf <- d at the first step, else momentum * buf + (1 - dampening) * d
 *   d <- d + momentum * buf (nesterov) or buf
 *   p <- p - lr' * d
 */
export function sgd(options: SgdOptions): Optimizer<SgdState> {
  const op = 'sgd';
  if (options === null || typeof options !== 'object') throw new OpError(op, 'expected an options object {lr, momentum?, dampening?, nesterov?, weightDecay?, groups?}');
  const baseLr = checkScalar(op, 'lr', options.lr);
  const momentum = checkNumber(op, 'momentum', options.momentum ?? 0, 0, Infinity);
  const dampening = checkNumber(op, 'dampening', options.dampening ?? 0, 0, 1);
  const nesterov = options.nesterov ?? false;
  const weightDecay = checkNumber(op, 'weightDecay', options.weightDecay ?? 0, 0, Infinity);
  if (nesterov && (momentum <= 0 || dampening !== 0)) {
    throw new OpError(op, `nesterov momentum requires momentum > 0 and dampening 0 (got momentum ${momentum}, dampening ${dampening})`);
  }
  const groups = options.groups;

  return {
    init<P>(params: P): SgdState {
      const flat = flattenParams(op, params);
      return {
        step: ops.scalar(0, 'i32'),
        momentum: momentum === 0 ? null : treeUnflatten(flat.def, flat.params.map((p) => ops.zeros(p.shape, computeDType(p.dtype)))),
      };
    },

    update<P>(grads: P, state: SgdState, params: P, opts: UpdateOptions = {}): { params: P; state: SgdState } {
      checkState(op, state, ['step', 'momentum']);
      const flat = flattenParams(op, params);
      const gs = leavesLike(op, 'grads', grads, flat);
      const bufs = momentum === 0 ? null : leavesLike(op, 'state.momentum', state.momentum, flat);
      const hyper = resolveGroups(op, groups, params, flat, weightDecay);
      const lr = opts.lr === undefined ? baseLr : checkScalar(op, 'lr', opts.lr);
      // torch starts the buffer at d itself (no dampening) on the first step.
      const first = bufs && dampening !== 0 ? ops.equal(state.step, 0) : null;
      const step = nextStep(op, state.step, opts.step);

      const newP: Tensor[] = [];
      const newB: Tensor[] = [];
      flat.params.forEach((p0, i) => {
        const dt = computeDType(p0.dtype);
        const { wd, lrScale } = hyper[i]!;
        const lrLeaf = mulS(inDType(lr, dt), lrScale);
        const p = ops.cast(p0, dt);
        let d = ops.cast(gs[i]!, dt);
        if (wd !== 0) d = ops.add(d, ops.mul(p, wd));
        if (bufs) {
          let buf = ops.add(ops.mul(bufs[i]!, momentum), dampening === 0 ? d : ops.mul(d, 1 - dampening));
          if (first) buf = ops.where(first, d, buf);
          newB.push(buf);
          d = nesterov ? ops.add(d, ops.mul(buf, momentum)) : buf;
        }
        const out = isZero(lrLeaf) ? p : ops.sub(p, scale(d, lrLeaf));
        newP.push(ops.cast(out, p0.dtype));
      });
      return {
        params: treeUnflatten<P>(flat.def, newP),
        state: { step, momentum: bufs ? treeUnflatten(flat.def, newB) : null },
      };
    },
  };
}
