/**
 * Inlines the bodies of region, checkpoint and custom_vjp equations into the enclosing program
 * (after autodiff they are ordinary code). Region names are kept on a side table so kernels
 * can be named after the composite op they came from.
 */
import { type Atom, paramsOf, type Program, Var } from '../ir/program.js';
import { scopeOf } from '../ir/trace.js';
import { ProgramBuilder } from './rewrite.js';

import { HIGHER_ORDER } from './prim_kinds.js';

export { HIGHER_ORDER };

/** Where a value came from: the innermost region that produced it and the named scope it was traced in. */
export interface Origin {
  readonly region?: string;
  readonly scope?: string;
}

/** var -> its origin (kernels are named after it). */
export type Origins = Map<Var, Origin>;

export function inlineRegions(p: Program, origins: Origins = new Map()): Program {
  const b = new ProgramBuilder();
  const consts = [...p.consts];
  const inlineInto = (body: Program, args: readonly Atom[], name: string | undefined, scope: string | undefined): Atom[] => {
    const local = new Map<Var, Atom>();
    body.inputs.forEach((v, i) => local.set(v, args[i]!));
    for (const c of body.consts) {
      consts.push(c);
      local.set(c.v, c.v);
    }
    const read = (a: Atom): Atom => (a instanceof Var ? (local.get(a) ?? a) : a);
    for (const e of body.eqns) {
      const ins = e.inputs.map(read);
      const outs = emitEqn(e.prim, paramsOf(e), ins, e.outputs, name, scope);
      e.outputs.forEach((v, i) => local.set(v, outs[i]!));
    }
    return body.outputs.map(read);
  };
  const emitEqn = (prim: string, params: Readonly<Record<string, unknown>>, ins: Atom[], outputs: readonly Var[], name: string | undefined, outerScope: string | undefined): Atom[] => {
    const scope = (outputs[0] && scopeOf(outputs[0])) ?? outerScope;
    if (HIGHER_ORDER.has(prim)) {
      const body = params.body as Program;
      const regionName = prim === 'region' ? (params.name as string) : prim;
      return inlineInto(body, ins, regionName, scope);
    }
    const outs = outputs.map((v) => new Var(v.aval));
    b.emit(prim, params, ins, outs);
    if (name !== undefined || scope !== undefined) outs.forEach((v) => origins.set(v, { region: name, scope }));
    return outs;
  };
  for (const e of p.eqns) {
    const outs = emitEqn(e.prim, paramsOf(e), e.inputs.map((a) => b.read(a)), e.outputs, undefined, undefined);
    e.outputs.forEach((v, i) => b.alias(v, outs[i]!));
  }
  return b.finish(p, consts);
}
