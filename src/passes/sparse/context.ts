/**
 * What the masked sparse rules see while the driver rebuilds a program: for each var of the
 * source program its representation(s) in the program being built (dense, and/or compact
 * [M, s, s, ...rest]), the facts and demand of the analysis, and the mask's index tables.
 */
import * as ops from '../../ir/ops.js';
import { type Atom, Literal, type Var } from '../../ir/program.js';
import type { Tensor } from '../../ir/tensor.js';
import { bind1, literalTensor } from '../../ir/trace.js';
import { NexgradError } from '../../ir/errors.js';
import type { Analysis, Facts } from './facts.js';
import { NO_FACTS } from './facts.js';
import { compactShape, type MaskGeometry, siteScale } from './geometry.js';
import type { MaskTables } from './index_tables.js';
import type { ConvRoute } from './masked_conv.js';

/** A source var's value in the program being built. */
export interface Rep {
  dense?: Tensor;
  /** [M, s, s, ...rest]: the var at the visible sites (site vars only). */
  compact?: Tensor;
}

export class RuleContext {
  readonly reps = new Map<Var, Rep>();
  private readonly derivedMemo = new Map<Var, Tensor>();
  /** Number of rules that fired here and in nested bodies. */
  fired = 0;
  /** Called with each source var's dense value as it is defined (the driver watches for the mask). */
  onDefined?: (v: Var, t: Tensor) => void;

  constructor(
    readonly g: MaskGeometry,
    readonly analysis: Analysis,
    /** The mask's tables, once the mask is defined in the program being built. */
    public tables: MaskTables | undefined,
    readonly opts: { readonly plainAutodiff?: boolean; readonly convRoute?: ConvRoute },
  ) {}

  rep(a: Atom): Rep {
    if (a instanceof Literal) return { dense: literalTensor(a) };
    const r = this.reps.get(a);
    if (!r) throw new NexgradError('internal: masked sparse rewrite read a var before its definition');
    return r;
  }

  facts(a: Atom): Facts {
    return a instanceof Literal ? NO_FACTS : (this.analysis.facts.get(a) ?? NO_FACTS);
  }

  scale(a: Atom): number | undefined {
    return siteScale(this.g, a.aval.shape);
  }

  /** A site var whose masked sites nobody observes or hold zeros: it may live compact only. */
  compactable(v: Var): boolean {
    if (this.scale(v) === undefined) return false;
    return (this.analysis.unobserved.get(v) ?? false) || this.facts(v).zero;
  }

  /** The dense value, scattered from the compact form (zeros at masked sites) when that is all there is. */
  dense(a: Atom): Tensor {
    const r = this.rep(a);
    if (r.dense) return r.dense;
    if (!r.compact || !this.tables) throw new NexgradError('internal: masked sparse rewrite lost a value');
    r.dense = this.tables.toDense(r.compact, this.scale(a)!);
    return r.dense;
  }

  /** The compact form if the var already has one. */
  compact(a: Atom): Tensor | undefined {
    return a instanceof Literal ? undefined : this.rep(a).compact;
  }

  /**
   * The compact form without moving data: a keep/mask field is all ones/zeros there, and a
   * broadcast of a value constant over the grid (a bias, a per-sample statistic) is broadcast
   * to the compact shape directly.
   */
  derived(a: Atom): Tensor | undefined {
    if (a instanceof Literal || this.scale(a) === undefined) return undefined;
    const have = this.derivedMemo.get(a);
    if (have) return have;
    const t = this.derive(a);
    if (t) this.derivedMemo.set(a, t);
    return t;
  }

  private derive(v: Var): Tensor | undefined {
    const shape = compactShape(this.g, v.aval.shape);
    const f = this.facts(v).field;
    if (f && f.s !== 'NL') return ops.broadcastTo(ops.scalar(f.pol === 'keep' ? 1 : 0, v.aval.dtype), shape);
    const e = this.analysis.producer.get(v);
    if (!e || e.prim !== 'broadcast_in_dim') return undefined;
    const x = e.inputs[0]!;
    const dims = e.params.dims;
    // the operand must be constant over the grid: its axes landing on rows/columns have size 1
    if (dims.some((d, i) => (d === 1 || d === 2) && x.aval.shape[i] !== 1)) return undefined;
    // constant over samples too (a bias): broadcast straight to the compact shape
    if (!dims.some((d, i) => d === 0 && x.aval.shape[i] !== 1)) return bind1('broadcast_in_dim', [this.dense(x)], { shape, dims: [...dims] });
    // per sample (a GRN statistic): along [N, K, s, s, ...] so that row m reads sample m / K
    const { n, lenKeep } = this.g;
    const s = shape[1]!;
    const perSample = [n, lenKeep, s, s, ...shape.slice(3)];
    const b = bind1('broadcast_in_dim', [this.dense(x)], { shape: perSample, dims: dims.map((d) => (d === 0 ? 0 : d + 1)) });
    return ops.reshape(b, shape);
  }

  /** The compact form, gathering the dense value's visible patches if needed (and keeping it). */
  gathered(a: Var): Tensor | undefined {
    const r = this.rep(a);
    if (r.compact) return r.compact;
    const s = this.scale(a);
    if (!this.tables || s === undefined) return undefined;
    r.compact = this.tables.toCompact(this.dense(a), s);
    return r.compact;
  }

  /** Compact if available without a gather, else gathered. */
  anyCompact(a: Atom): Tensor | undefined {
    if (a instanceof Literal) return undefined;
    return this.compact(a) ?? this.derived(a) ?? this.gathered(a);
  }
}
