/** The per-kernel state of scalar-expression building (see build.ts). */
import type { Idx } from '../../codegen/kernel/index_expr.js';
import { idx, idxKey, idxSubst, type Ranges } from '../../codegen/kernel/index_expr.js';
import type { Axis } from '../../codegen/kernel/axis.js';
import type { ReduceOp, SExpr } from '../../codegen/kernel/kernel_graph.js';
import type { DType } from '../../ir/dtype.js';
import type { Var } from '../../ir/program.js';

export interface Reduction {
  id: number;
  op: ReduceOp;
  expr: SExpr;
  dtype: DType;
}

export interface Ctx {
  readonly ranges: Map<Axis, number>;
  readonly memo: Map<string, SExpr>;
  /** Row layout: the full index space F and its reduced axes. */
  readonly layout?: {
    readonly F: readonly number[];
    readonly axes: readonly number[];
    readonly outerIdx: readonly Idx[];
    /** Where a phase reads its input (default: outer axes at kept dims, row axes at reduced ones). */
    readonly fullIdx?: readonly Idx[];
    /** The reduction ops allowed as phases here (default: all). */
    readonly ops?: ReadonlySet<ReduceOp>;
  };
  /** Reduction phases registered in this kernel. */
  readonly reductions: Reduction[];
  readonly reduceIds: Map<Var, number>;
  /** The anchor whose accumulator this kernel's epilogue reads. */
  readonly anchor?: { readonly v: Var; readonly index: readonly Idx[] };
  /** The materialised variable this kernel computes (its value is inlined, not loaded). */
  readonly root?: Var;
  /** Further materialised variables this kernel computes and stores (an anchor's extra outputs). */
  readonly inline?: ReadonlySet<Var>;
}

export function newCtx(ranges: Map<Axis, number>, extra: Partial<Ctx> = {}): Ctx {
  return { ranges, memo: new Map(), reductions: [], reduceIds: new Map(), ...extra };
}

/** Equal index lists, where a loop axis of extent 1 equals 0. */
export function sameIndex(a: readonly Idx[], b: readonly Idx[], ranges: Ranges): boolean {
  const unit = new Map<Axis, Idx>([...ranges].filter(([, n]) => n === 1).map(([k]) => [k, idx.const(0)]));
  const norm = (x: Idx): string => idxKey(unit.size ? idxSubst(x, unit, ranges) : x);
  return a.length === b.length && a.every((x, i) => norm(x) === norm(b[i]!));
}
