/**
 * The scoped statement builder every dialect's emitters use: nested loop scopes with hoisting.
 * Every scalar-expression node is declared once per scope, in the outermost open scope where
 * all its loop variables (and accumulators) are defined; index expressions are split by loop
 * depth into cached partial sums, so a load affine in the innermost loop variable computes its
 * base offset outside that loop. The dialect decides how each declaration, operation, load and
 * store is spelled; this class decides where it goes (placement, index caching, CSE by node).
 */
import { castScalar, type DType } from '../../ir/dtype.js';
import type { Idx, IdxAtom } from '../kernel/index_expr.js';
import { idxKey } from '../kernel/index_expr.js';
import { type KernelOutput, type SExpr, sexprChildren } from '../kernel/kernel_graph.js';
import type { Dialect } from './dialect.js';

interface Scope {
  readonly lines: string[];
  readonly depth: number;
}

interface Cached {
  readonly name: string;
  readonly depth: number;
}

/** What an `acc` node reads: a JS expression and the scope depth where it is available. */
export type AccResolver = (id: number) => { readonly src: string; readonly depth: number };

/** Custom names for index variables in the printed code (default: the axis name). */
export type VarNames = ReadonlyMap<string, string>;

export class ScopeBuilder {
  constructor(readonly dialect: Dialect) {}

  private readonly scopes: Scope[] = [{ lines: [], depth: 0 }];
  private readonly varDepth = new Map<string, number>();
  private readonly nodeCache = new Map<SExpr, Cached>();
  /** Loads by buffer and index: equal loads from different DAGs (merged kernels) are read once. */
  private readonly loadCache = new Map<string, Cached>();
  private readonly idxCache = new Map<string, Cached>();
  private counter = 0;
  accResolver: AccResolver = (id) => {
    throw new Error(`${this.dialect.name} codegen: acc ${id} is not available here`);
  };
  varNames: VarNames = new Map();

  /** The current (innermost) scope depth. */
  get depth(): number {
    return this.scopes.length - 1;
  }

  /** A fresh local name. */
  fresh(prefix = 't'): string {
    return `${prefix}${this.counter++}`;
  }

  /** Appends a statement to the innermost scope (or to the scope at `depth`). */
  line(s: string, depth = this.depth): void {
    this.scopes[depth]!.lines.push(s);
  }

  /** Declares index variables as defined at the current depth. */
  defineVars(...names: string[]): void {
    for (const n of names) this.varDepth.set(n, this.depth);
  }

  /** Opens a nested scope; `vars` are the index variables it defines. */
  open(...vars: string[]): void {
    this.scopes.push({ lines: [], depth: this.scopes.length });
    this.defineVars(...vars);
  }

  /** Closes the innermost scope: its lines, wrapped as `head { ... } tail`, go to the parent. */
  close(head: string, tail = ''): void {
    const s = this.scopes.pop();
    if (!s || this.scopes.length === 0) throw new Error(`${this.dialect.name} codegen: scope underflow`);
    const d = s.depth;
    for (const [k, v] of this.nodeCache) if (v.depth >= d) this.nodeCache.delete(k);
    for (const [k, v] of this.loadCache) if (v.depth >= d) this.loadCache.delete(k);
    for (const [k, v] of this.idxCache) if (v.depth >= d) this.idxCache.delete(k);
    for (const [k, v] of this.varDepth) if (v >= d) this.varDepth.delete(k);
    const parent = this.scopes[this.scopes.length - 1]!.lines;
    parent.push(`${head} {`);
    for (const l of s.lines) parent.push(`  ${l}`);
    parent.push(`}${tail}`);
  }

  /** The finished source of the outermost scope. */
  finish(): string {
    if (this.scopes.length !== 1) throw new Error(`${this.dialect.name} codegen: unclosed scopes`);
    return this.scopes[0]!.lines.join('\n');
  }

  depthOfVar(name: string): number {
    const d = this.varDepth.get(name);
    if (d === undefined) throw new Error(`${this.dialect.name} codegen: index variable ${name} is not defined here`);
    return d;
  }

  private varName(name: string): string {
    return this.varNames.get(name) ?? name;
  }

  private atomDepth(a: IdxAtom): number {
    if (a.k === 'var') return this.depthOfVar(a.axis.name);
    return this.idxDepth(a.a);
  }

  idxDepth(x: Idx): number {
    let d = 0;
    for (const t of x.terms) d = Math.max(d, this.atomDepth(t.atom));
    return d;
  }

  /** Source of an index atom (division and remainder of non-negative integers). */
  private atomSrc(a: IdxAtom): string {
    switch (a.k) {
      case 'var':
        return this.varName(a.axis.name);
      case 'div':
        return this.dialect.indexDiv(this.index(a.a), a.d);
      case 'mod':
        return this.dialect.indexMod(this.index(a.a), a.d);
    }
  }

  private termSrc(coef: number, a: IdxAtom): string {
    const s = this.atomSrc(a);
    if (coef === 1) return s;
    if (coef === -1) return `-${s}`;
    return `${coef} * ${s}`;
  }

  /**
   * An expression for an index: a literal, a variable, or a name bound to a cached partial sum
   * (terms grouped by loop depth, each group added in its own scope).
   */
  index(x: Idx): string {
    if (x.terms.length === 0) return this.dialect.literal(x.c, 'i32');
    const only = x.terms[0]!.atom;
    if (x.terms.length === 1 && x.c === 0 && x.terms[0]!.coef === 1 && only.k === 'var') return this.varName(only.axis.name);
    const key = idxKey(x);
    const hit = this.idxCache.get(key);
    if (hit) return hit.name;
    // group terms by depth
    const byDepth = new Map<number, { coef: number; atom: IdxAtom }[]>();
    for (const t of x.terms) {
      const d = this.atomDepth(t.atom);
      const g = byDepth.get(d);
      if (g) g.push(t);
      else byDepth.set(d, [t]);
    }
    const depths = [...byDepth.keys()].sort((a, b) => a - b);
    let prev: string | null = null;
    let acc: Idx = { c: x.c, terms: [] };
    for (const d of depths) {
      const terms = byDepth.get(d)!;
      acc = { c: acc.c, terms: [...acc.terms, ...terms] };
      const k = idxKey(acc);
      const have = this.idxCache.get(k);
      if (have) {
        prev = have.name;
        continue;
      }
      const parts = terms.map((t) => this.termSrc(t.coef, t.atom));
      let src = parts.join(' + ');
      if (prev !== null) src = `${prev} + ${src}`;
      else if (x.c !== 0) src = `${src} + ${x.c}`;
      src = src.replace(/\+ -/g, '- ');
      const name = this.fresh('i');
      this.line(this.dialect.declareIndex(name, src), d);
      this.idxCache.set(k, { name, depth: d });
      prev = name;
    }
    return prev!;
  }

  /** Depth of an expression node (the deepest scope among what it reads). */
  private nodeDepth(e: SExpr, memo: Map<SExpr, number>): number {
    const m = memo.get(e);
    if (m !== undefined) return m;
    let d = 0;
    if (e.op === 'load' || e.op === 'index') d = this.idxDepth(e.index);
    else if (e.op === 'acc') d = this.accResolver(e.id).depth;
    for (const c of sexprChildren(e)) d = Math.max(d, this.nodeDepth(c, memo));
    memo.set(e, d);
    return d;
  }

  /** An expression (a name or a literal) for the value of `e` in the current scope. */
  value(e: SExpr): string {
    return this.valueAt(e, new Map());
  }

  private valueAt(e: SExpr, memo: Map<SExpr, number>): string {
    const D = this.dialect;
    if (e.op === 'const') return D.literal(castScalar(e.value, e.dtype), e.dtype);
    const hit = this.nodeCache.get(e);
    if (hit) return hit.name;
    const loadKey = e.op === 'load' && !e.dyn ? `${e.buf}:${idxKey(e.index)}` : undefined;
    const same = loadKey === undefined ? undefined : this.loadCache.get(loadKey);
    if (same) return same.name;
    let src: string;
    switch (e.op) {
      case 'load':
        src = D.load(e.buf, this.loadIndex(e.index, e.dyn, memo), e.dtype);
        break;
      case 'index': {
        src = D.indexValue(this.index(e.index), e.dtype);
        if (/^[A-Za-z_$][\w$]*$|^\(?-?\d+\)?$/.test(src)) return src;
        break;
      }
      case 'acc': {
        const raw = this.accResolver(e.id).src;
        src = D.accValue ? D.accValue(raw, e.dtype) : raw;
        if (/^[A-Za-z_$][\w$]*$/.test(src)) return src;
        break;
      }
      case 'unary':
        src = D.unary(e.fn, this.valueAt(e.a, memo), e.dtype);
        break;
      case 'cast':
        src = D.cast(this.valueAt(e.a, memo), e.a.dtype, e.dtype);
        break;
      case 'binary':
        src = D.binary(e.fn, this.valueAt(e.a, memo), this.valueAt(e.b, memo), e.dtype);
        break;
      case 'cmp':
        src = D.compare(e.fn, this.valueAt(e.a, memo), this.valueAt(e.b, memo), e.a.dtype);
        break;
      case 'select':
        src = D.select(this.valueAt(e.c, memo), this.valueAt(e.a, memo), this.valueAt(e.b, memo), e.dtype);
        break;
      case 'threefry':
        throw new Error(`${D.name} codegen: threefry must be expanded by the lowering (expr_rules) before emission`);
    }
    const d = this.nodeDepth(e, memo);
    const name = this.fresh();
    this.line(D.declare(name, e.dtype, src), d);
    this.nodeCache.set(e, { name, depth: d });
    if (loadKey !== undefined) this.loadCache.set(loadKey, { name, depth: d });
    return name;
  }

  /**
   * Emits an output's store in the current scope: `buf[index (+ dyn)] = value` (rounded for
   * f16/bf16), `+=` for an accumulating store, guarded by `when`.
   */
  store(o: KernelOutput, dtype: DType): void {
    this.storeAll([o], () => dtype);
  }

  /**
   * Emits several outputs' stores: every value (and offset and guard) is computed before the
   * first store, so a store into a buffer that aliases an input (a donated input updated in
   * place) never changes what another output of the same element reads.
   */
  storeAll(outputs: readonly KernelOutput[], dtypeOf: (buf: number) => DType): void {
    const parts = outputs.map((o) => ({ o, value: this.value(o.expr), at: this.loadIndex(o.index, o.dyn, new Map()), when: o.when ? this.value(o.when) : undefined }));
    for (const { o, value, at, when } of parts) {
      const stmt = this.dialect.store(o.buf, at, value, dtypeOf(o.buf), o.accumulate ?? false);
      this.line(when === undefined ? stmt : this.dialect.guard(when, stmt));
    }
  }

  /** The element index of a load or store: its index expression plus a data-dependent offset. */
  private loadIndex(index: Idx, dyn: SExpr | undefined, memo: Map<SExpr, number>): string {
    const i = this.index(index);
    return dyn ? `${i} + ${this.valueAt(dyn, memo)}` : i;
  }
}

/**
 * Nested full loops over `dims` (vars at successive depths; an empty list is one block), each
 * variable declared with `decl` (`let` in JavaScript, `int64_t` in C).
 */
export function nestedLoops(cb: ScopeBuilder, dims: readonly number[], vars: readonly string[], decl: string, body: () => void): void {
  if (dims.length === 0) {
    cb.open();
    body();
    cb.close('');
    return;
  }
  const rec = (d: number): void => {
    cb.open(vars[d]!);
    if (d === dims.length - 1) body();
    else rec(d + 1);
    cb.close(`for (${decl} ${vars[d]} = 0; ${vars[d]} < ${dims[d]}; ${vars[d]}++)`);
  };
  rec(0);
}
