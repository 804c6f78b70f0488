/**
 * Pattern rules over programs, in the spirit of tinygrad's PatternMatcher: a rule is a pattern
 * (primitives or named regions, with named captures, commutative matching of two-operand
 * primitives, and scalar constants), a guard, and a rewrite. A pass is a table of rules plus
 * its driver; rules are data, indexed by the root primitive.
 */
import { type Atom, type Eqn, Literal, paramsOf, type Var } from '../ir/program.js';

export type Pattern =
  /** Any atom, captured under `any`. */
  | { readonly any: string }
  /** A scalar constant: a literal or a broadcast of one (`value` to require one, `as` to capture it). */
  | { readonly constant: true; readonly value?: number; readonly as?: string }
  /** An equation: its primitive(s) (a region by its name), its operands, captured under `as`. */
  | EqnPattern;

export interface EqnPattern {
  readonly prim: string | readonly string[];
  /** For `region` equations: the region's name. */
  readonly region?: string;
  readonly inputs?: readonly Pattern[];
  /** Try the two operands in both orders. */
  readonly commutative?: boolean;
  readonly as?: string;
}

export interface Match {
  /** Captured atoms (`any` patterns, `constant` patterns' atoms). */
  readonly atoms: ReadonlyMap<string, Atom>;
  /** Captured equations (`as` on equation patterns) and their constants. */
  readonly eqns: ReadonlyMap<string, Eqn>;
  readonly constants: ReadonlyMap<string, number>;
  /** The equation the rule matched at. */
  readonly root: Eqn;
}

export interface PatternRule<R> {
  readonly name: string;
  readonly pattern: EqnPattern;
  readonly guard?: (m: Match) => boolean;
  /** The replacement, or undefined to decline. */
  readonly rewrite: (m: Match) => R | undefined;
}

type Producer = (a: Atom) => Eqn | undefined;

interface Binding {
  atoms: Map<string, Atom>;
  eqns: Map<string, Eqn>;
  constants: Map<string, number>;
}

const copy = (b: Binding): Binding => ({ atoms: new Map(b.atoms), eqns: new Map(b.eqns), constants: new Map(b.constants) });

/** The scalar constant an atom holds (a literal, or a broadcast of one), if any. */
export function constantOf(a: Atom, producer: Producer): number | undefined {
  if (a instanceof Literal) return a.value;
  const e = producer(a);
  if (e && e.prim === 'broadcast_in_dim' && e.inputs[0] instanceof Literal) return e.inputs[0].value;
  return undefined;
}

/** Binds `name` to `a`, or checks it is the same atom it was bound to. */
function bind<T>(m: Map<string, T>, name: string, v: T): boolean {
  const have = m.get(name);
  if (have !== undefined) return have === v;
  m.set(name, v);
  return true;
}

function matchAtom(p: Pattern, a: Atom, producer: Producer, b: Binding): Binding | undefined {
  if ('any' in p) return bind(b.atoms, p.any, a) ? b : undefined;
  if ('constant' in p) {
    const c = constantOf(a, producer);
    if (c === undefined || (p.value !== undefined && !Object.is(c, p.value))) return undefined;
    if (p.as && !(bind(b.atoms, p.as, a) && bind(b.constants, p.as, c))) return undefined;
    return b;
  }
  const e = producer(a);
  return e ? matchEqnInto(p, e, producer, b) : undefined;
}

function matchEqnInto(p: EqnPattern, e: Eqn, producer: Producer, b0: Binding): Binding | undefined {
  const prims = typeof p.prim === 'string' ? [p.prim] : p.prim;
  if (!prims.includes(e.prim)) return undefined;
  if (p.region !== undefined && (e.prim !== 'region' || e.params.name !== p.region)) return undefined;
  const tryOrder = (inputs: readonly Atom[]): Binding | undefined => {
    let b: Binding | undefined = copy(b0);
    if (p.as && !bind(b.eqns, p.as, e)) return undefined;
    if (p.inputs) {
      if (p.inputs.length !== inputs.length) return undefined;
      for (let i = 0; i < inputs.length && b; i++) b = matchAtom(p.inputs[i]!, inputs[i]!, producer, b);
    }
    return b;
  };
  const first = tryOrder(e.inputs);
  if (first || !p.commutative || e.inputs.length !== 2) return first;
  return tryOrder([e.inputs[1]!, e.inputs[0]!]);
}

/** The match of `pattern` rooted at equation `e` (operands' producers found through `producer`). */
export function matchEqn(pattern: EqnPattern, e: Eqn, producer: Producer): Match | undefined {
  const b = matchEqnInto(pattern, e, producer, { atoms: new Map(), eqns: new Map(), constants: new Map() });
  return b ? { ...b, root: e } : undefined;
}

/** A table of rules indexed by root primitive; `first` applies the first rule that fires. */
export class RuleTable<R> {
  private readonly byPrim = new Map<string, PatternRule<R>[]>();

  constructor(readonly rules: readonly PatternRule<R>[]) {
    for (const r of rules) {
      for (const prim of typeof r.pattern.prim === 'string' ? [r.pattern.prim] : r.pattern.prim) {
        const list = this.byPrim.get(prim) ?? [];
        list.push(r);
        this.byPrim.set(prim, list);
      }
    }
  }

  first(e: Eqn, producer: Producer): { rule: string; result: R } | undefined {
    for (const r of this.byPrim.get(e.prim) ?? []) {
      const m = matchEqn(r.pattern, e, producer);
      if (!m || (r.guard && !r.guard(m))) continue;
      const result = r.rewrite(m);
      if (result !== undefined) return { rule: r.name, result };
    }
    return undefined;
  }
}

/** The single output of the matched root equation. */
export const rootOut = (m: Match): Var => m.root.outputs[0]!;
export { paramsOf };
