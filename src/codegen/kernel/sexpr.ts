/**
 * Scalar expressions: the DAGs a kernel computes per element. Nodes are shared; every pass and
 * emitter walks them through the one child table below (children, rebuild, visit, rewrite).
 */
import type { DType } from '../../ir/dtype.js';
import type { BinaryFn, CmpFn, UnaryFn } from '../../ir/primitives/index.js';
import { type Idx, idxSource } from './index_expr.js';

export type { BinaryFn, CmpFn, UnaryFn };
export type ReduceOp = 'sum' | 'max' | 'min' | 'argmax';

export type SExpr =
  /** buf[index + dyn]: `dyn` is a data-dependent i32 element offset (gather). */
  | { readonly op: 'load'; readonly buf: number; readonly index: Idx; readonly dyn?: SExpr; readonly dtype: DType }
  | { readonly op: 'const'; readonly value: number; readonly dtype: DType }
  /** The value of an index expression (iota; pad/concat bounds tests). */
  | { readonly op: 'index'; readonly index: Idx; readonly dtype: DType }
  | { readonly op: 'unary'; readonly fn: UnaryFn; readonly a: SExpr; readonly dtype: DType }
  | { readonly op: 'binary'; readonly fn: BinaryFn; readonly a: SExpr; readonly b: SExpr; readonly dtype: DType }
  | { readonly op: 'cmp'; readonly fn: CmpFn; readonly a: SExpr; readonly b: SExpr; readonly dtype: 'bool' }
  | { readonly op: 'select'; readonly c: SExpr; readonly a: SExpr; readonly b: SExpr; readonly dtype: DType }
  | { readonly op: 'cast'; readonly a: SExpr; readonly dtype: DType }
  /** Word `word` of threefry2x32 with key (k0, k1) of the counter pair (x0, x1), all u32. */
  | { readonly op: 'threefry'; readonly k0: SExpr; readonly k1: SExpr; readonly x0: SExpr; readonly x1: SExpr; readonly word: 0 | 1; readonly dtype: 'u32' }
  /** A reduction's result in a loop kernel (by id), or the anchor's accumulator (id 0). */
  | { readonly op: 'acc'; readonly id: number; readonly dtype: DType };

export type SExprOp = SExpr['op'];

/** The operand fields of each node kind, in order: the one table every traversal uses. */
const CHILD_KEYS: { readonly [K in SExprOp]: readonly string[] } = {
  load: ['dyn'],
  const: [],
  index: [],
  acc: [],
  unary: ['a'],
  cast: ['a'],
  binary: ['a', 'b'],
  cmp: ['a', 'b'],
  select: ['c', 'a', 'b'],
  threefry: ['k0', 'k1', 'x0', 'x1'],
};

export function childKeys(op: SExprOp): readonly string[] {
  return CHILD_KEYS[op];
}

/** The operands of a node. */
export function sexprChildren(e: SExpr): SExpr[] {
  const out: SExpr[] = [];
  for (const k of CHILD_KEYS[e.op]) {
    const c = (e as unknown as Record<string, SExpr | undefined>)[k];
    if (c) out.push(c);
  }
  return out;
}

/** The node with its operands replaced (in sexprChildren's order); the same node if none changed. */
export function withChildren(e: SExpr, cs: readonly SExpr[]): SExpr {
  let i = 0;
  let changed = false;
  const out: Record<string, unknown> = { ...e };
  for (const k of CHILD_KEYS[e.op]) {
    const old = (e as unknown as Record<string, SExpr | undefined>)[k];
    if (!old) continue;
    const c = cs[i++]!;
    if (c !== old) changed = true;
    out[k] = c;
  }
  return changed ? (out as unknown as SExpr) : e;
}

/** Calls fn once for every node of the DAG under e (`seen` may be shared across roots). */
export function visitSExpr(e: SExpr, fn: (e: SExpr) => void, seen: Set<SExpr> = new Set()): void {
  if (seen.has(e)) return;
  seen.add(e);
  fn(e);
  for (const c of sexprChildren(e)) visitSExpr(c, fn, seen);
}

/**
 * Rewrites a DAG bottom-up: operands first, then `f` on the rebuilt node (return it unchanged
 * to keep it). Memoised over shared nodes; pass one `memo` to rewrite several roots alike.
 */
export function rewriteSExpr(e: SExpr, f: (e: SExpr) => SExpr, memo: Map<SExpr, SExpr> = new Map()): SExpr {
  const hit = memo.get(e);
  if (hit) return hit;
  const cs = sexprChildren(e);
  const rebuilt = cs.length ? withChildren(e, cs.map((c) => rewriteSExpr(c, f, memo))) : e;
  const r = f(rebuilt);
  memo.set(e, r);
  return r;
}

/** Rewrites every index expression (loads and index nodes) of a DAG. */
export function mapIndices(e: SExpr, f: (x: Idx) => Idx, memo: Map<SExpr, SExpr> = new Map()): SExpr {
  return rewriteSExpr(e, (n) => (n.op === 'load' || n.op === 'index' ? { ...n, index: f(n.index) } : n), memo);
}

export function printSExpr(root: SExpr): string {
  const names = new Map<SExpr, string>();
  const lines: string[] = [];
  const leaf = (e: SExpr, go: (e: SExpr) => string): string | undefined => {
    switch (e.op) {
      case 'load':
        return `buf${e.buf}[${idxSource(e.index)}${e.dyn ? ` + ${go(e.dyn)}` : ''}]`;
      case 'const':
        return `${e.value}:${e.dtype}`;
      case 'index':
        return `idx(${idxSource(e.index)})`;
      case 'acc':
        return `acc${e.id}`;
      default:
        return undefined;
    }
  };
  const go = (e: SExpr): string => {
    const have = names.get(e);
    if (have) return have;
    const l = leaf(e, go);
    if (l !== undefined) return l;
    const args = sexprChildren(e).map(go).join(', ');
    const head = e.op === 'unary' || e.op === 'binary' || e.op === 'cmp' ? e.fn : e.op === 'cast' ? e.dtype : e.op === 'threefry' ? `threefry${e.word}` : e.op;
    const n = `t${names.size}`;
    names.set(e, n);
    lines.push(`${n} = ${head}(${args})`);
    return n;
  };
  const r = go(root);
  return [...lines, r].join('; ');
}
