/** The IR checker run after every pass: SSA, definitions before uses, and every equation's
 * output types equal to what its primitive's shape rule says. */
import { NexgradError } from '../ir/errors.js';
import { defOf, PRIMS } from '../ir/primitives/index.js';
import { Literal, type Program, type Var } from '../ir/program.js';
import { shapeEq } from '../ir/shape.js';

export class IRCheckError extends NexgradError {
  constructor(pass: string, message: string) {
    super(`IR check failed after pass '${pass}': ${message}`);
    this.name = 'IRCheckError';
  }
}

export function checkProgram(p: Program, pass = 'input'): void {
  const defined = new Set<Var>();
  const define = (v: Var, where: string): void => {
    if (defined.has(v)) throw new IRCheckError(pass, `variable ${v.id} defined twice (${where})`);
    defined.add(v);
  };
  p.inputs.forEach((v) => define(v, 'input'));
  p.consts.forEach((c) => define(c.v, 'const'));
  p.eqns.forEach((e, k) => {
    for (const a of e.inputs) {
      if (!(a instanceof Literal) && !defined.has(a)) throw new IRCheckError(pass, `equation ${k} (${e.prim}) uses variable ${a.id} before it is defined`);
    }
    if (!(e.prim in PRIMS)) throw new IRCheckError(pass, `equation ${k}: unknown primitive ${e.prim}`);
    const want = defOf(e).shape(e.inputs.map((a) => a.aval), e.params);
    if (want.length !== e.outputs.length) throw new IRCheckError(pass, `equation ${k} (${e.prim}) has ${e.outputs.length} outputs, its rule gives ${want.length}`);
    e.outputs.forEach((v, i) => {
      const w = want[i]!;
      if (v.aval.dtype !== w.dtype || !shapeEq(v.aval.shape, w.shape)) {
        throw new IRCheckError(pass, `equation ${k} (${e.prim}) output ${i} is ${v.aval.dtype}[${v.aval.shape.join(',')}], its rule gives ${w.dtype}[${w.shape.join(',')}]`);
      }
      define(v, `equation ${k}`);
    });
  });
  p.outputs.forEach((a, i) => {
    if (!(a instanceof Literal) && !defined.has(a)) throw new IRCheckError(pass, `output ${i} is undefined`);
  });
}
