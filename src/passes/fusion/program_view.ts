/** The program as fusion sees it: producers, uses, outputs, and each value's lowering class. */
import type { Lowering } from '../../ir/primitive.js';
import { PRIMS } from '../../ir/primitives/index.js';
import type { PrimName } from '../../ir/primitive.js';
import { type Eqn, paramsOf, type Program, Var } from '../../ir/program.js';

/** Lowerings that become scalar expressions inside the kernel that consumes them. */
const INLINABLE: ReadonlySet<Lowering> = new Set(['unary', 'binary', 'compare', 'select', 'cast', 'view', 'gather', 'random']);
const ELEMENTWISE: ReadonlySet<Lowering> = new Set(['unary', 'binary', 'compare', 'select', 'cast']);
/** Lowerings that run as reduction phases of a loop kernel. */
const REDUCING: ReadonlySet<Lowering> = new Set(['reduce', 'argmax']);

export const loweringOf = (prim: string): Lowering => PRIMS[prim as PrimName].lowering;
export const isInlinable = (prim: string): boolean => INLINABLE.has(loweringOf(prim));
export const isElementwise = (prim: string): boolean => ELEMENTWISE.has(loweringOf(prim));
export const isView = (prim: string): boolean => loweringOf(prim) === 'view';
export const isReducing = (prim: string): boolean => REDUCING.has(loweringOf(prim));
export const isAnchor = (prim: string): boolean => loweringOf(prim) === 'contraction';

/** The axes a reducing equation reduces. */
export const reducedAxes = (e: Eqn): number[] => (e.prim === 'argmax' ? [e.params.axis] : [...(paramsOf(e).axes as number[])]);

export class ProgramView {
  readonly producer = new Map<Var, Eqn>();
  readonly uses = new Map<Var, Eqn[]>();
  readonly outputVars: ReadonlySet<Var>;

  constructor(readonly program: Program) {
    for (const e of program.eqns) {
      e.outputs.forEach((v) => this.producer.set(v, e));
      for (const a of e.inputs) if (a instanceof Var) this.uses.set(a, [...(this.uses.get(a) ?? []), e]);
    }
    this.outputVars = new Set(program.outputs.filter((a): a is Var => a instanceof Var));
  }

  /** A program input or constant (no producing equation). */
  isSource(v: Var): boolean {
    return !this.producer.has(v);
  }

  prim(v: Var): string {
    return this.producer.get(v)?.prim ?? 'input';
  }

  usesOf(v: Var): readonly Eqn[] {
    return this.uses.get(v) ?? [];
  }
}
