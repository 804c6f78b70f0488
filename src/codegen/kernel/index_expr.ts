/**
 * Integer index expressions in a canonical linear form: const + sum(coef * atom), where an atom
 * is a loop variable or a floor-division / modulo of another expression. Division and modulo
 * simplify using the variables' ranges, so reshapes of contiguous dimensions fold away and
 * most indices stay affine (a stride per loop variable).
 */

import type { Axis } from './axis.js';

export type IdxAtom =
  | { readonly k: 'var'; readonly axis: Axis }
  | { readonly k: 'div'; readonly a: Idx; readonly d: number }
  | { readonly k: 'mod'; readonly a: Idx; readonly d: number };

export interface IdxTerm {
  readonly coef: number;
  readonly atom: IdxAtom;
}

export interface Idx {
  readonly c: number;
  readonly terms: readonly IdxTerm[];
}

/** Loop axis extents: axis -> size (the variable ranges over [0, size)). */
export type Ranges = ReadonlyMap<Axis, number>;

export function atomKey(a: IdxAtom): string {
  switch (a.k) {
    case 'var':
      return a.axis.name;
    case 'div':
      return `(${idxKey(a.a)})/${a.d}`;
    case 'mod':
      return `(${idxKey(a.a)})%${a.d}`;
  }
}

export function idxKey(x: Idx): string {
  return [...x.terms.map((t) => `${t.coef}*${atomKey(t.atom)}`), String(x.c)].join('+');
}

export const idx = {
  const(c: number): Idx {
    return { c, terms: [] };
  },
  var(axis: Axis): Idx {
    return { c: 0, terms: [{ coef: 1, atom: { k: 'var', axis } }] };
  },
  add(...xs: Idx[]): Idx {
    const m = new Map<string, { coef: number; atom: IdxAtom }>();
    let c = 0;
    for (const x of xs) {
      c += x.c;
      for (const t of x.terms) {
        const k = atomKey(t.atom);
        const prev = m.get(k);
        m.set(k, { coef: (prev?.coef ?? 0) + t.coef, atom: t.atom });
      }
    }
    let terms = [...m.values()].filter((t) => t.coef !== 0);
    // fold  k*d*floor(a/d) + k*(a mod d)  ->  k*a  (repeatedly: delinearize-then-linearize)
    for (let changed = true; changed; ) {
      changed = false;
      for (const t of terms) {
        const at = t.atom;
        if (at.k !== 'mod') continue;
        const key = atomKey({ k: 'div', a: at.a, d: at.d });
        const partner = terms.find((u) => u.atom.k === 'div' && atomKey(u.atom) === key && u.coef === t.coef * at.d);
        if (!partner) continue;
        const inner = idx.scale(at.a, t.coef);
        const rest = terms.filter((u) => u !== t && u !== partner);
        const merged = idx.add({ c: 0, terms: rest }, inner);
        c += merged.c;
        terms = [...merged.terms];
        changed = true;
        break;
      }
    }
    return { c, terms };
  },
  scale(x: Idx, k: number): Idx {
    if (k === 0) return { c: 0, terms: [] };
    return { c: x.c * k, terms: x.terms.map((t) => ({ coef: t.coef * k, atom: t.atom })) };
  },
  /** floor(x / d). */
  div(x: Idx, d: number, ranges: Ranges): Idx {
    if (d === 1) return x;
    const [q, r, k, fits] = splitBy(x, d, ranges);
    const head = idx.add(q, idx.const(-k));
    if (fits) return head;
    return idx.add(head, { c: 0, terms: [{ coef: 1, atom: { k: 'div', a: r, d } }] });
  },
  /** x mod d (non-negative, as floor division defines it). */
  mod(x: Idx, d: number, ranges: Ranges): Idx {
    if (d === 1) return idx.const(0);
    const [, r, , fits] = splitBy(x, d, ranges);
    if (fits) return r;
    return { c: 0, terms: [{ coef: 1, atom: { k: 'mod', a: r, d } }] };
  },
};

/**
 * Writes x = d*(q - k) + r with r >= 0 over the ranges (k shifts a possibly negative remainder
 * up by k*d), so emitted divisions and modulos only ever see non-negative operands. `fits`
 * says r < d everywhere (then floor(r/d) = 0 and r mod d = r).
 */
function splitBy(x: Idx, d: number, ranges: Ranges): [Idx, Idx, number, boolean] {
  const rc = ((x.c % d) + d) % d;
  const q: Idx = { c: (x.c - rc) / d, terms: x.terms.filter((t) => t.coef % d === 0).map((t) => ({ coef: t.coef / d, atom: t.atom })) };
  let r: Idx = { c: rc, terms: x.terms.filter((t) => t.coef % d !== 0) };
  const [lo, hi] = idxRange(r, ranges);
  const k = lo < 0 ? Math.ceil(-lo / d) : 0;
  if (k) r = idx.add(r, idx.const(k * d));
  return [q, r, k, hi + k * d < d];
}

function atomRange(a: IdxAtom, ranges: Ranges): [number, number] {
  switch (a.k) {
    case 'var': {
      const n = ranges.get(a.axis);
      if (n === undefined) throw new Error(`index expression: unknown loop axis ${a.axis.name}`);
      return [0, Math.max(n - 1, 0)];
    }
    case 'div': {
      const [lo, hi] = idxRange(a.a, ranges);
      return [Math.floor(lo / a.d), Math.floor(hi / a.d)];
    }
    case 'mod': {
      const [lo, hi] = idxRange(a.a, ranges);
      if (lo >= 0 && hi < a.d) return [lo, hi];
      return [0, a.d - 1];
    }
  }
}

/** Inclusive [min, max] of an index expression over the variables' ranges. */
export function idxRange(x: Idx, ranges: Ranges): [number, number] {
  let lo = x.c;
  let hi = x.c;
  for (const t of x.terms) {
    const [a, b] = atomRange(t.atom, ranges);
    if (t.coef >= 0) {
      lo += t.coef * a;
      hi += t.coef * b;
    } else {
      lo += t.coef * b;
      hi += t.coef * a;
    }
  }
  return [lo, hi];
}

/** Stride of each axis if x is affine in plain loop axes; null otherwise. */
export function affineStrides(x: Idx): { offset: number; strides: Map<Axis, number> } | null {
  const strides = new Map<Axis, number>();
  for (const t of x.terms) {
    if (t.atom.k !== 'var') return null;
    strides.set(t.atom.axis, (strides.get(t.atom.axis) ?? 0) + t.coef);
  }
  return { offset: x.c, strides };
}

/** The axes an expression uses. */
export function idxVars(x: Idx, out = new Set<Axis>()): Set<Axis> {
  for (const t of x.terms) {
    if (t.atom.k === 'var') out.add(t.atom.axis);
    else idxVars(t.atom.a, out);
  }
  return out;
}

/** Replaces axes by expressions (then re-simplifies div/mod with the new ranges). */
export function idxSubst(x: Idx, sub: ReadonlyMap<Axis, Idx>, ranges: Ranges): Idx {
  const parts: Idx[] = [idx.const(x.c)];
  for (const t of x.terms) {
    let a: Idx;
    switch (t.atom.k) {
      case 'var':
        a = sub.get(t.atom.axis) ?? idx.var(t.atom.axis);
        break;
      case 'div':
        a = idx.div(idxSubst(t.atom.a, sub, ranges), t.atom.d, ranges);
        break;
      case 'mod':
        a = idx.mod(idxSubst(t.atom.a, sub, ranges), t.atom.d, ranges);
        break;
    }
    parts.push(idx.scale(a, t.coef));
  }
  return idx.add(...parts);
}

/** Row-major linear offset of a multi-index in a shape. */
export function linearize(index: readonly Idx[], shape: readonly number[]): Idx {
  let stride = 1;
  const parts: Idx[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    parts.push(idx.scale(index[d]!, stride));
    stride *= shape[d]!;
  }
  return idx.add(...parts);
}

/** Splits a linear offset into a multi-index of `shape` (by successive division, so that
 * linearize(delinearize(x)) folds back to x). */
export function delinearize(flat: Idx, shape: readonly number[], ranges: Ranges): Idx[] {
  const out = new Array<Idx>(shape.length);
  let q = flat;
  for (let d = shape.length - 1; d >= 1; d--) {
    out[d] = idx.mod(q, shape[d]!, ranges);
    q = idx.div(q, shape[d]!, ranges);
  }
  if (shape.length > 0) out[0] = q;
  return out;
}

/** Prints an index expression as C-like source (works for JavaScript, WGSL and CUDA ints). */
export function idxSource(x: Idx, varSrc: (axis: Axis) => string = (a) => a.name): string {
  const atom = (a: IdxAtom): string => {
    switch (a.k) {
      case 'var':
        return varSrc(a.axis);
      case 'div':
        return `((${idxSource(a.a, varSrc)}) / ${a.d})`;
      case 'mod':
        return `((${idxSource(a.a, varSrc)}) % ${a.d})`;
    }
  };
  const parts = x.terms.map((t) => (t.coef === 1 ? atom(t.atom) : `${t.coef} * ${atom(t.atom)}`));
  if (x.c !== 0 || parts.length === 0) parts.push(String(x.c));
  return parts.join(' + ').replace(/\+ -/g, '- ');
}
