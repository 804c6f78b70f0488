/**
 * The CPU backend's code builder: nested loop scopes with hoisting. Every SExpr node is emitted
 * once per scope as `const tN = ...` in the outermost open scope where all its loop variables
 * (and accumulators) are defined; index expressions are split by loop depth into cached
 * partial sums, so loads that are affine in the innermost variable compute their base offset
 * outside the innermost loop.
 */
import { castScalar, type DType } from '../../ir/dtype.js';
import type { Idx, IdxAtom } from '../kernel/index_expr.js';
import { idxKey } from '../kernel/index_expr.js';
import type { SExpr } from '../kernel/kernel_graph.js';

/** Buffer argument name for a buffer id. */
export const bufName = (id: number): string => `b${id}`;

/** A JS literal for a number (keeps -0, NaN and infinities). */
export function numLit(v: number): string {
  if (Object.is(v, -0)) return '(-0)';
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '(-Infinity)';
  return v < 0 ? `(${String(v)})` : String(v);
}

/** How a value of `dtype` becomes the dtype's value set (integers wrap as 32-bit). */
export function wrapInt(src: string, dtype: DType): string {
  switch (dtype) {
    case 'i32':
      return `((${src}) | 0)`;
    case 'u32':
      return `((${src}) >>> 0)`;
    case 'bool':
      // the host stores into a Uint8Array (NaN and infinities become 0), then casts to bool
      return `(((${src}) & 255) !== 0 ? 1 : 0)`;
    default:
      return src;
  }
}

/** The expression stored into a buffer of `dtype` (f16/bf16 round; typed arrays do the rest). */
export function storeValue(src: string, dtype: DType): string {
  if (dtype === 'f16') return `roundF16(${src})`;
  if (dtype === 'bf16') return `roundBf16(${src})`;
  return src;
}

const isIntDtype = (d: DType): boolean => d === 'i32' || d === 'u32';
const isFloatDtype = (d: DType): boolean => d === 'f32' || d === 'f64' || d === 'f16' || d === 'bf16';

/** Source of an unary op on operand `a` (already a name or literal). */
function unarySrc(fn: string, a: string, dtype: DType): string {
  if (fn === 'not') {
    if (dtype === 'bool') return `(${a} ? 0 : 1)`;
    return dtype === 'u32' ? `(~${a} >>> 0)` : `(~${a})`;
  }
  let s: string;
  switch (fn) {
    case 'neg':
      s = `(-${a})`;
      break;
    case 'exp':
      s = `Math.exp(${a})`;
      break;
    case 'log':
      s = `Math.log(${a})`;
      break;
    case 'log1p':
      s = `Math.log1p(${a})`;
      break;
    case 'expm1':
      s = `Math.expm1(${a})`;
      break;
    case 'sin':
      s = `Math.sin(${a})`;
      break;
    case 'cos':
      s = `Math.cos(${a})`;
      break;
    case 'tanh':
      s = `Math.tanh(${a})`;
      break;
    case 'logistic':
      s = `(1 / (1 + Math.exp(-${a})))`;
      break;
    case 'sqrt':
      s = `Math.sqrt(${a})`;
      break;
    case 'rsqrt':
      s = `(1 / Math.sqrt(${a}))`;
      break;
    case 'erf':
      s = dtype === 'f64' ? `erf(${a})` : `erf32(${a})`;
      break;
    case 'abs':
      s = `Math.abs(${a})`;
      break;
    case 'sign':
      s = `(${a} > 0 ? 1 : ${a} < 0 ? -1 : ${a})`;
      break;
    case 'floor':
      s = `Math.floor(${a})`;
      break;
    case 'ceil':
      s = `Math.ceil(${a})`;
      break;
    case 'round':
      s = `roundEven(${a})`;
      break;
    default:
      throw new Error(`cpu codegen: unknown unary op ${fn}`);
  }
  return isFloatDtype(dtype) ? s : wrapInt(s, dtype);
}

function binarySrc(fn: string, a: string, b: string, dtype: DType): string {
  // bool ops follow the host: the float formula, then cast to bool (and/or/xor stay 0/1)
  if (dtype === 'bool' && fn !== 'and' && fn !== 'or' && fn !== 'xor') return wrapInt(binarySrc(fn, a, b, 'f64'), 'bool');
  const int = isIntDtype(dtype);
  switch (fn) {
    case 'add':
      return int ? wrapInt(`${a} + ${b}`, dtype) : `(${a} + ${b})`;
    case 'sub':
      return int ? wrapInt(`${a} - ${b}`, dtype) : `(${a} - ${b})`;
    case 'mul':
      if (dtype === 'i32') return `Math.imul(${a}, ${b})`;
      if (dtype === 'u32') return `(Math.imul(${a}, ${b}) >>> 0)`;
      return `(${a} * ${b})`;
    case 'div':
      if (dtype === 'i32') return `(${b} === 0 ? 0 : (${a} / ${b}) | 0)`;
      if (dtype === 'u32') return `(${b} === 0 ? 0 : (${a} / ${b}) >>> 0)`;
      return `(${a} / ${b})`;
    case 'max':
      return int ? `(${a} > ${b} ? ${a} : ${b})` : `(${a} > ${b} || ${a} !== ${a} ? ${a} : ${b})`;
    case 'min':
      return int ? `(${a} < ${b} ? ${a} : ${b})` : `(${a} < ${b} || ${a} !== ${a} ? ${a} : ${b})`;
    case 'pow':
      return int ? wrapInt(`Math.pow(${a}, ${b})`, dtype) : `Math.pow(${a}, ${b})`;
    case 'rem':
      return int ? wrapInt(`${b} === 0 ? 0 : ${a} % ${b}`, dtype) : `(${a} % ${b})`;
    case 'and':
      return dtype === 'u32' ? `((${a} & ${b}) >>> 0)` : `(${a} & ${b})`;
    case 'or':
      return dtype === 'u32' ? `((${a} | ${b}) >>> 0)` : `(${a} | ${b})`;
    case 'xor':
      return dtype === 'u32' ? `((${a} ^ ${b}) >>> 0)` : `(${a} ^ ${b})`;
    case 'shift_left':
      return `(${b} >= 32 ? 0 : ${wrapInt(`${a} << ${b}`, dtype)})`;
    case 'shift_right_logical':
      return `(${b} >= 32 ? 0 : ${wrapInt(`${a} >>> ${b}`, dtype)})`;
    default:
      throw new Error(`cpu codegen: unknown binary op ${fn}`);
  }
}

const CMP: Readonly<Record<string, string>> = { eq: '===', ne: '!==', lt: '<', le: '<=', gt: '>', ge: '>=' };

function castSrc(a: string, from: DType, to: DType): string {
  if (from === to) return a;
  switch (to) {
    case 'f64':
      return a;
    case 'f32':
      return from === 'f16' || from === 'bf16' || from === 'bool' ? a : `Math.fround(${a})`;
    case 'f16':
      return from === 'bool' ? a : `roundF16(${a})`;
    case 'bf16':
      return from === 'bool' ? a : `roundBf16(${a})`;
    case 'i32':
      return from === 'bool' ? a : `(${a} | 0)`;
    case 'u32':
      return from === 'bool' ? a : `(${a} >>> 0)`;
    case 'bool':
      return `(${a} !== 0 ? 1 : 0)`;
  }
}

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

/** Custom JS names for index variables (default: the variable's own name). */
export type VarNames = ReadonlyMap<string, string>;

export class CodeBuilder {
  private readonly scopes: Scope[] = [{ lines: [], depth: 0 }];
  private readonly varDepth = new Map<string, number>();
  private readonly nodeCache = new Map<SExpr, Cached>();
  private readonly idxCache = new Map<string, Cached>();
  private counter = 0;
  accResolver: AccResolver = (id) => {
    throw new Error(`cpu codegen: acc ${id} is not available here`);
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
    if (!s || this.scopes.length === 0) throw new Error('cpu codegen: scope underflow');
    const d = s.depth;
    for (const [k, v] of this.nodeCache) if (v.depth >= d) this.nodeCache.delete(k);
    for (const [k, v] of this.idxCache) if (v.depth >= d) this.idxCache.delete(k);
    for (const [k, v] of this.varDepth) if (v >= d) this.varDepth.delete(k);
    const parent = this.scopes[this.scopes.length - 1]!.lines;
    parent.push(`${head} {`);
    for (const l of s.lines) parent.push(`  ${l}`);
    parent.push(`}${tail}`);
  }

  /** The finished source of the outermost scope. */
  finish(): string {
    if (this.scopes.length !== 1) throw new Error('cpu codegen: unclosed scopes');
    return this.scopes[0]!.lines.join('\n');
  }

  depthOfVar(name: string): number {
    const d = this.varDepth.get(name);
    if (d === undefined) throw new Error(`cpu codegen: index variable ${name} is not defined here`);
    return d;
  }

  private jsVar(name: string): string {
    return this.varNames.get(name) ?? name;
  }

  private atomDepth(a: IdxAtom): number {
    if (a.k === 'var') return this.depthOfVar(a.name);
    return this.idxDepth(a.a);
  }

  idxDepth(x: Idx): number {
    let d = 0;
    for (const t of x.terms) d = Math.max(d, this.atomDepth(t.atom));
    return d;
  }

  /** Source of an index atom (division of non-negative ints via `| 0`). */
  private atomSrc(a: IdxAtom): string {
    switch (a.k) {
      case 'var':
        return this.jsVar(a.name);
      case 'div':
        return `((${this.index(a.a)}) / ${a.d} | 0)`;
      case 'mod':
        return `((${this.index(a.a)}) % ${a.d})`;
    }
  }

  private termSrc(coef: number, a: IdxAtom): string {
    const s = this.atomSrc(a);
    if (coef === 1) return s;
    if (coef === -1) return `-${s}`;
    return `${coef} * ${s}`;
  }

  /**
   * A JS expression for an index: a literal, a variable, or a name bound to a cached partial sum
   * (terms grouped by loop depth, each group added in its own scope).
   */
  index(x: Idx): string {
    if (x.terms.length === 0) return numLit(x.c);
    if (x.terms.length === 1 && x.c === 0 && x.terms[0]!.coef === 1 && x.terms[0]!.atom.k === 'var') {
      return this.jsVar(x.terms[0]!.atom.name);
    }
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
      this.line(`const ${name} = ${src};`, d);
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
    switch (e.op) {
      case 'const':
        d = 0;
        break;
      case 'load':
      case 'index':
        d = this.idxDepth(e.index);
        break;
      case 'acc':
        d = this.accResolver(e.id).depth;
        break;
      case 'unary':
      case 'cast':
        d = this.nodeDepth(e.a, memo);
        break;
      case 'binary':
      case 'cmp':
        d = Math.max(this.nodeDepth(e.a, memo), this.nodeDepth(e.b, memo));
        break;
      case 'select':
        d = Math.max(this.nodeDepth(e.c, memo), this.nodeDepth(e.a, memo), this.nodeDepth(e.b, memo));
        break;
    }
    memo.set(e, d);
    return d;
  }

  /** A JS expression (a name or a literal) for the value of `e` in the current scope. */
  value(e: SExpr): string {
    return this.valueAt(e, new Map());
  }

  private valueAt(e: SExpr, memo: Map<SExpr, number>): string {
    if (e.op === 'const') return numLit(castScalar(e.value, e.dtype));
    const hit = this.nodeCache.get(e);
    if (hit) return hit.name;
    let src: string;
    switch (e.op) {
      case 'load':
        src = `${bufName(e.buf)}[${this.index(e.index)}]`;
        break;
      case 'index': {
        const s = this.index(e.index);
        if (e.dtype !== 'bool') return s;
        src = `(${s} !== 0 ? 1 : 0)`;
        break;
      }
      case 'acc':
        src = this.accResolver(e.id).src;
        if (/^[A-Za-z_$][\w$]*$/.test(src)) return src;
        break;
      case 'unary':
        src = unarySrc(e.fn, this.valueAt(e.a, memo), e.dtype);
        break;
      case 'cast':
        src = castSrc(this.valueAt(e.a, memo), e.a.dtype, e.dtype);
        break;
      case 'binary':
        src = binarySrc(e.fn, this.valueAt(e.a, memo), this.valueAt(e.b, memo), e.dtype);
        break;
      case 'cmp':
        src = `(${this.valueAt(e.a, memo)} ${CMP[e.fn]} ${this.valueAt(e.b, memo)} ? 1 : 0)`;
        break;
      case 'select':
        src = `(${this.valueAt(e.c, memo)} ? ${this.valueAt(e.a, memo)} : ${this.valueAt(e.b, memo)})`;
        break;
    }
    const d = this.nodeDepth(e, memo);
    const name = this.fresh();
    this.line(`const ${name} = ${src};`, d);
    this.nodeCache.set(e, { name, depth: d });
    return name;
  }

  /** Emits `buf[index] = value` (rounded for f16/bf16) in the current scope. */
  store(buf: number, dtype: DType, index: Idx, e: SExpr): void {
    const v = this.value(e);
    const i = this.index(index);
    this.line(`${bufName(buf)}[${i}] = ${storeValue(v, dtype)};`);
  }
}
