// Pattern rules (src/passes/patterns.ts): named captures, regions by name, commutative
// operands, scalar constants, guards, and a rule table that applies the first rule that fires.
import { describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';
import { type Atom, type Eqn, Var } from '../../src/ir/program.js';
import { matchEqn, RuleTable } from '../../src/passes/patterns.js';
import { SIMPLIFY_RULES } from '../../src/passes/simplify.js';

function producers(p: ng.Program): (a: Atom) => Eqn | undefined {
  const m = new Map<Var, Eqn>();
  for (const e of p.eqns) e.outputs.forEach((v) => m.set(v, e));
  return (a) => (a instanceof Var ? m.get(a) : undefined);
}
const last = (p: ng.Program): Eqn => p.eqns[p.eqns.length - 1]!;

describe('pattern rules', () => {
  it('captures, nested equations and regions by name', () => {
    const gelu = ng.region('gelu_tanh', (x: ng.Tensor) => x.mul(x.tanh()));
    const p = ng.trace((a: ng.Tensor, b: ng.Tensor) => gelu(a.matmul(b)).add(1), ng.ones([2, 3]), ng.ones([3, 4]));
    const m = matchEqn({ prim: 'add', inputs: [{ prim: 'region', region: 'gelu_tanh', inputs: [{ prim: 'dot_general', inputs: [{ any: 'a' }, { any: 'b' }], as: 'mm' }] }, { constant: true, as: 'c' }] }, last(p), producers(p));
    expect(m).toBeDefined();
    expect(m!.atoms.get('a')).toBe(p.inputs[0]);
    expect(m!.atoms.get('b')).toBe(p.inputs[1]);
    expect(m!.eqns.get('mm')!.prim).toBe('dot_general');
    expect(m!.constants.get('c')).toBe(1);
    expect(matchEqn({ prim: 'add', inputs: [{ prim: 'region', region: 'gelu', inputs: [{ any: 'x' }] }, { any: 'y' }] }, last(p), producers(p))).toBeUndefined();
  });

  it('commutative operands, repeated captures and constant values', () => {
    const p = ng.trace((a: ng.Tensor) => ng.mul(2, a.add(a)), ng.ones([3]));
    const prod = producers(p);
    const pat = { prim: 'mul', commutative: true, inputs: [{ prim: 'add', inputs: [{ any: 'x' }, { any: 'x' }] }, { constant: true, value: 2 }] } as const;
    expect(matchEqn(pat, last(p), prod)?.atoms.get('x')).toBe(p.inputs[0]);
    expect(matchEqn({ ...pat, commutative: false }, last(p), prod)).toBeUndefined(); // 2 is the first operand
    expect(matchEqn({ ...pat, inputs: [pat.inputs[0], { constant: true, value: 3 }] }, last(p), prod)).toBeUndefined();
  });

  it('a table applies the first rule that fires and respects guards (simplify\'s own table)', () => {
    const table = new RuleTable(SIMPLIFY_RULES);
    const p = ng.trace((a: ng.Tensor) => a.transpose([1, 0]).transpose([1, 0]).mul(1), ng.ones([2, 3]));
    const prod = producers(p);
    expect(table.first(last(p), prod)?.rule).toBe('x * 1');
    const tt = p.eqns[1]!; // transpose of a transpose
    expect(table.first(tt, prod)?.rule).toBe('transpose of a transpose');
    expect(table.first(tt, prod)?.result).toBe(p.inputs[0]);
    const q = ng.trace((a: ng.Tensor) => ng.sub(0, a), ng.ones([2]));
    expect(table.first(last(q), producers(q))).toBeUndefined(); // 0 - x is not x
  });
});
