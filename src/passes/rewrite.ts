/** A small builder for passes that rewrite a Program equation by equation. */
import type { Origins } from './inline.js';
import { type AnyParams, type Atom, type Eqn, Literal, makeEqn, paramsOf, Program, type ProgramConst, Var } from '../ir/program.js';

export class ProgramBuilder {
  readonly eqns: Eqn[] = [];
  private readonly map = new Map<Var, Atom>();

  /** `origins` (var -> region and scope, see inline.ts) is carried over to the vars that replace old ones. */
  constructor(private readonly origins?: Origins) {}

  /** Maps an atom of the source program to the atom that now stands for it. */
  read(a: Atom): Atom {
    if (a instanceof Literal) return a;
    return this.map.get(a) ?? a;
  }
  alias(from: Var, to: Atom): void {
    this.map.set(from, to);
  }
  emit(prim: string, params: AnyParams, inputs: readonly Atom[], outputs: readonly Var[]): void {
    this.eqns.push(makeEqn(prim, params, inputs, outputs));
  }
  /** Emits a copy of an equation with remapped inputs and fresh outputs (aliased to the old). */
  copy(e: Eqn): Var[] {
    const outs = e.outputs.map((v) => new Var(v.aval));
    this.emit(e.prim, paramsOf(e), e.inputs.map((a) => this.read(a)), outs);
    e.outputs.forEach((v, i) => this.alias(v, outs[i]!));
    this.inherit(e.outputs, outs);
    return outs;
  }
  /** Gives each new var the region name (origin) of the old var it stands for. */
  inherit(from: readonly Var[], to: readonly Var[]): void {
    if (!this.origins) return;
    from.forEach((v, i) => {
      const name = this.origins!.get(v);
      if (name !== undefined && to[i]) this.origins!.set(to[i]!, name);
    });
  }
  finish(p: Program, consts: readonly ProgramConst[] = p.consts): Program {
    return new Program(p.inputs, this.eqns, p.outputs.map((a) => this.read(a)), consts);
  }
}
