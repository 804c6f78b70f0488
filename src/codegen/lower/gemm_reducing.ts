/**
 * The parts of a CPU GEMM template (JavaScript and C) for prologue statistics and reducing
 * epilogues, written once over the ScopeBuilder and a small loop-syntax table:
 *   - row statistics: before a row of A is packed, each reduction runs over r0 = 0..k-1 in order
 *     (LayerNorm's mean, then its variance, which reads the mean); the row is K values, so the
 *     second pass and the packing read it from cache;
 *   - reducing outputs: the range is counted in groups of reduceRows rows (one writer per group,
 *     so the sums are summed in row order whatever the thread split: deterministic), and each
 *     call zeroes its groups' elements before the GEMM adds into them.
 */
import { AX } from '../kernel/axis.js';
import type { DType } from '../../ir/dtype.js';
import type { GemmSpec } from './gemm_spec.js';
import type { ScopeBuilder } from './scope_builder.js';

/** How a CPU language spells the loops and accumulators these parts need. */
export interface CpuLoopSyntax {
  /** `for (v = 0; v < n; v++)` */
  readonly loop: (v: string, n: number) => string;
  /** `for (v = start; v < end; v++)` over the call's range */
  readonly rangeLoop: (v: string) => string;
  /** A mutable accumulator starting at 0, wide enough for a row sum (float64). */
  readonly accDecl: (name: string) => string;
}

export const JS_LOOPS: CpuLoopSyntax = {
  loop: (v, n) => `for (let ${v} = 0; ${v} < ${n}; ${v}++)`,
  rangeLoop: (v) => `for (let ${v} = start; ${v} < end; ${v}++)`,
  accDecl: (name) => `let ${name} = 0;`,
};

export const C_LOOPS: CpuLoopSyntax = {
  loop: (v, n) => `for (int64_t ${v} = 0; ${v} < ${n}; ${v}++)`,
  rangeLoop: (v) => `for (int64_t ${v} = start; ${v} < end; ${v}++)`,
  accDecl: (name) => `double ${name} = 0.0;`,
};

/**
 * Emits the row statistics of spec.aStats in the current scope (where b and m are defined) and
 * points the builder's `acc` nodes at them, for the A expression packed next.
 */
export function emitRowStats(cb: ScopeBuilder, spec: GemmSpec, syn: CpuLoopSyntax): void {
  const st = spec.aStats;
  if (!st) return;
  if (st.row.length !== 1 || st.row[0] !== spec.k) throw new Error(`${cb.dialect.name} codegen: matmul ${spec.name}: row statistics must run over one axis of extent k`);
  const depth = cb.depth;
  const names = st.reductions.map(() => cb.fresh('_st'));
  cb.accResolver = (id) => {
    const name = names[id];
    if (name === undefined) throw new Error(`${cb.dialect.name} codegen: matmul ${spec.name} prologue reads row statistic ${id}, which it lacks`);
    return { src: name, depth };
  };
  st.reductions.forEach((r, j) => {
    if (r.op !== 'sum' || r.id !== j) throw new Error(`${cb.dialect.name} codegen: matmul ${spec.name}: row statistic ${j} must be a sum with id ${j}`);
    cb.line(syn.accDecl(names[j]!));
    cb.open(AX.row(0).name);
    const v = cb.value(r.expr);
    cb.line(`${names[j]} += ${v};`);
    cb.close(syn.loop(AX.row(0).name, spec.k));
  });
}

/** Rows per unit of the call's range: reduceRows with reducing outputs, else 1. */
export function rangeUnitRows(spec: GemmSpec): number {
  if (!spec.outputs.some((o) => o.init === 'zero')) return 1;
  const g = spec.reduceRows ?? 0;
  if (!(g >= 1) || spec.m % g !== 0) throw new Error(`matmul ${spec.name}: reducing outputs need reduceRows dividing m = ${spec.m}`);
  return g;
}

/**
 * With reducing outputs: zeroes the elements of the call's groups [start, end), then turns the
 * range into rows (the GEMM body works in rows). Nothing without them.
 */
export function emitReducingPrologue(cb: ScopeBuilder, spec: GemmSpec, syn: CpuLoopSyntax, dtypeOf: (buf: number) => DType): void {
  const G = rangeUnitRows(spec);
  const outs = spec.outputs.filter((o) => o.init === 'zero');
  if (outs.length === 0) return;
  const D = cb.dialect;
  cb.open();
  cb.line(D.declareIndex('_zr', `_zu * ${G}`));
  cb.line(D.declareIndex(AX.b.name, D.indexDiv('_zr', spec.m)));
  cb.line(D.declareIndex(AX.m.name, `_zr - ${AX.b.name} * ${spec.m}`));
  cb.defineVars(AX.b.name, AX.m.name);
  cb.open(AX.n.name);
  for (const o of outs) {
    if (o.dyn || o.when) throw new Error(`${D.name} codegen: matmul ${spec.name}: a reducing output has no offset or guard`);
    const dt = dtypeOf(o.buf);
    cb.line(D.store(o.buf, cb.index(o.index), D.literal(0, dt), dt, false));
  }
  cb.close(syn.loop(AX.n.name, spec.n));
  cb.close(syn.rangeLoop('_zu'));
  cb.line(`start = start * ${G}; end = end * ${G};`);
}
