/**
 * simplify: identity and algebraic folding, reshape/transpose/broadcast composition, constant
 * folding of scalar literals, CSE and DCE. The folding rules are a pattern table (SIMPLIFY_RULES).
 */
import type { Origins } from './inline.js';
import { HostArray } from '../ir/host.js';
import type { PrimName } from '../ir/primitive.js';
import { PRIMS } from '../ir/primitives/index.js';
import { type Atom, type Eqn, Literal, makeEqn, paramsOf, Program, Var } from '../ir/program.js';
import { constantOf, type Match, type PatternRule, rootOut, RuleTable } from './patterns.js';
import { exactKey } from '../ir/exact_key.js';
import { shapeEq } from '../ir/shape.js';
import { HIGHER_ORDER } from './prim_kinds.js';
import { ELEMENTWISE } from './prim_kinds.js';
import { ProgramBuilder } from './rewrite.js';

type Params = Readonly<Record<string, unknown>>;

/** What a rule may return: an existing atom to use instead, a replacement equation, or nothing. */
type RuleResult = Atom | { prim: string; params: Params; inputs: Atom[] };

const sameAval = (a: Atom, out: Var): boolean => a.aval.dtype === out.aval.dtype && shapeEq(a.aval.shape, out.aval.shape);
const x = (m: Match): Atom => m.atoms.get('x')!;
const inner = (m: Match): Eqn => m.eqns.get('inner')!;
/** The rule's replacement is x itself, when x already has the result's type and shape. */
const isX = (m: Match): Atom | undefined => (sameAval(x(m), rootOut(m)) ? x(m) : undefined);
const X = { any: 'x' } as const;

/** The algebraic identities and compositions simplify applies (rules as data; patterns.ts). */
export const SIMPLIFY_RULES: readonly PatternRule<RuleResult>[] = [
  { name: 'reshape to its own shape', pattern: { prim: 'reshape', inputs: [X] }, rewrite: isX },
  {
    name: 'reshape of a reshape',
    pattern: { prim: 'reshape', inputs: [{ prim: 'reshape', inputs: [X] }] },
    rewrite: (m) => ({ prim: 'reshape', params: paramsOf(m.root), inputs: [x(m)] }),
  },
  { name: 'identity transpose', pattern: { prim: 'transpose', inputs: [X] }, guard: (m) => (paramsOf(m.root).perm as number[]).every((v, i) => v === i), rewrite: x },
  {
    name: 'transpose of a transpose',
    pattern: { prim: 'transpose', inputs: [{ prim: 'transpose', inputs: [X], as: 'inner' }] },
    rewrite: (m) => {
      const perm = (paramsOf(m.root).perm as number[]).map((q) => (paramsOf(inner(m)).perm as number[])[q]!);
      return perm.every((v, i) => v === i) ? x(m) : { prim: 'transpose', params: { perm }, inputs: [x(m)] };
    },
  },
  { name: 'identity broadcast', pattern: { prim: 'broadcast_in_dim', inputs: [X] }, guard: (m) => (paramsOf(m.root).dims as number[]).every((d, i) => d === i), rewrite: isX },
  {
    name: 'broadcast of a broadcast',
    pattern: { prim: 'broadcast_in_dim', inputs: [{ prim: 'broadcast_in_dim', inputs: [X], as: 'inner' }] },
    rewrite: (m) => {
      const dims = paramsOf(m.root).dims as number[];
      return { prim: 'broadcast_in_dim', params: { shape: paramsOf(m.root).shape, dims: (paramsOf(inner(m)).dims as number[]).map((d) => dims[d]!) }, inputs: [x(m)] };
    },
  },
  { name: 'cast to its own type', pattern: { prim: 'cast', inputs: [X] }, rewrite: isX },
  { name: 'sum over no axes', pattern: { prim: 'reduce_sum', inputs: [X] }, guard: (m) => (paramsOf(m.root).axes as number[]).length === 0, rewrite: x },
  { name: '-(-x)', pattern: { prim: 'neg', inputs: [{ prim: 'neg', inputs: [X] }] }, rewrite: x },
  { name: 'x + 0', pattern: { prim: 'add', commutative: true, inputs: [X, { constant: true, value: 0 }] }, rewrite: isX },
  { name: 'x - 0', pattern: { prim: 'sub', inputs: [X, { constant: true, value: 0 }] }, rewrite: isX },
  { name: 'x * 1', pattern: { prim: 'mul', commutative: true, inputs: [X, { constant: true, value: 1 }] }, rewrite: isX },
  { name: 'x / 1', pattern: { prim: 'div', inputs: [X, { constant: true, value: 1 }] }, rewrite: isX },
];

const RULES = new RuleTable(SIMPLIFY_RULES);

/** dot_general(b, a) when `perm` reorders dot_general(a, b)'s output (batch, a free, b free) to (batch, b free, a free). */
function swapDot(d: Eqn, perm: readonly number[]): { params: Params; inputs: Atom[] } | undefined {
  const [lhs, rhs] = d.inputs as [Atom, Atom];
  const { contracting, batch } = d.params as { contracting: [number[], number[]]; batch: [number[], number[]] };
  const nb = batch[0].length;
  const nl = lhs.aval.shape.length - nb - contracting[0].length;
  const nr = rhs.aval.shape.length - nb - contracting[1].length;
  const want = [...Array.from({ length: nb }, (_, i) => i), ...Array.from({ length: nr }, (_, i) => nb + nl + i), ...Array.from({ length: nl }, (_, i) => nb + i)];
  if (nl === 0 || nr === 0 || perm.length !== want.length || perm.some((v, i) => v !== want[i])) return undefined;
  return { params: { contracting: [contracting[1], contracting[0]], batch: [batch[1], batch[0]] }, inputs: [rhs, lhs] };
}

/** An atom's CSE key: literals by their exact value (-0 is not 0; NaN is NaN), variables by id. */
function literalKey(a: Atom): string {
  return a instanceof Literal ? `L${Object.is(a.value, -0) ? '-0' : String(a.value)}:${a.dtype}` : `v${a.id}`;
}

function onePass(p: Program, origins?: Origins): { program: Program; changed: boolean } {
  const b = new ProgramBuilder(origins);
  const producers = new Map<Var, Eqn>();
  const cse = new Map<string, Var[]>();
  let changed = false;
  const producer = (a: Atom): Eqn | undefined => (a instanceof Var ? producers.get(a) : undefined);
  const useCount = new Map<Var, number>();
  for (const e of p.eqns) for (const a of e.inputs) if (a instanceof Var) useCount.set(a, (useCount.get(a) ?? 0) + 1);
  for (const a of p.outputs) if (a instanceof Var) useCount.set(a, (useCount.get(a) ?? 0) + 1);
  for (const e of p.eqns) {
    let prim: string = e.prim;
    let params = paramsOf(e);
    let ins = e.inputs.map((a) => b.read(a));
    // apply rules until none fires
    if (e.outputs.length === 1) {
      for (let guard = 0; guard < 8; guard++) {
        const fired = RULES.first(makeEqn(prim, params, ins, e.outputs), producer);
        if (fired === undefined) break;
        const r = fired.result;
        changed = true;
        if (r instanceof Var || r instanceof Literal) {
          b.alias(e.outputs[0]!, r);
          prim = '';
          break;
        }
        prim = r.prim;
        params = r.params;
        ins = r.inputs;
      }
      if (prim === '') continue;
    }
    // transpose(dot_general(a, b)) that swaps the free blocks is dot_general(b, a)
    if (prim === 'transpose' && e.inputs[0] instanceof Var && (useCount.get(e.inputs[0]) ?? 0) === 1) {
      const d = producer(ins[0]!);
      if (d?.prim === 'dot_general') {
        const swapped = swapDot(d, params.perm as number[]);
        if (swapped) {
          prim = 'dot_general';
          params = swapped.params;
          ins = swapped.inputs;
          changed = true;
        }
      }
    }
    // constant folding: an elementwise op over broadcast constants is a broadcast constant
    if (ELEMENTWISE.has(prim) && e.outputs.length === 1 && e.outputs[0]!.aval.shape.length > 0) {
      const cs = ins.map((a) => constantOf(a, producer));
      if (cs.every((c) => c !== undefined)) {
        const vals = ins.map((a, i) => HostArray.scalar(cs[i]!, a.aval.dtype));
        const [r] = PRIMS[prim as PrimName].impl(vals, params as never, { wide: false });
        const out = e.outputs[0]!;
        prim = 'broadcast_in_dim';
        params = { shape: [...out.aval.shape], dims: [] };
        ins = [new Literal(r!.data[0]!, r!.dtype)];
        changed = true;
      }
    }
    // constant folding: scalar outputs of literal-only inputs
    if (!HIGHER_ORDER.has(prim) && e.outputs.length === 1 && ins.length > 0 && ins.every((a) => a instanceof Literal) && e.outputs[0]!.aval.shape.length === 0) {
      const vals = ins.map((a) => HostArray.scalar((a as Literal).value, a.aval.dtype));
      const [r] = PRIMS[prim as PrimName].impl(vals, params as never, { wide: false });
      b.alias(e.outputs[0]!, new Literal(r!.data[0]!, r!.dtype));
      changed = true;
      continue;
    }
    if (!HIGHER_ORDER.has(prim)) {
      const key = `${prim}|${exactKey(params, prim)}|${ins.map(literalKey).join(',')}`;
      const prev = cse.get(key);
      if (prev) {
        e.outputs.forEach((v, i) => b.alias(v, prev[i]!));
        changed = true;
        continue;
      }
      const outs = e.outputs.map((v) => new Var(v.aval));
      b.emit(prim, params, ins, outs);
      e.outputs.forEach((v, i) => b.alias(v, outs[i]!));
      b.inherit(e.outputs, outs);
      outs.forEach((v) => producers.set(v, b.eqns[b.eqns.length - 1]!));
      cse.set(key, outs);
    } else {
      const outs = e.outputs.map((v) => new Var(v.aval));
      b.emit(prim, params, ins, outs);
      e.outputs.forEach((v, i) => b.alias(v, outs[i]!));
      b.inherit(e.outputs, outs);
    }
  }
  const q = b.finish(p);
  const d = dce(q);
  return { program: d, changed: changed || d.eqns.length !== q.eqns.length };
}

/** Dead-code elimination (no primitive has side effects). */
export function dce(p: Program): Program {
  const live = new Set<Var>();
  p.outputs.forEach((a) => a instanceof Var && live.add(a));
  const keep: boolean[] = new Array(p.eqns.length).fill(false);
  for (let k = p.eqns.length - 1; k >= 0; k--) {
    const e = p.eqns[k]!;
    if (!e.outputs.some((v) => live.has(v))) continue;
    keep[k] = true;
    e.inputs.forEach((a) => a instanceof Var && live.add(a));
  }
  const consts = p.consts.filter((c) => live.has(c.v));
  return new Program(p.inputs, p.eqns.filter((_, k) => keep[k]), p.outputs, consts);
}

/** `origins` (optional) carries region names over to the rewritten program's vars. */
export function simplify(p: Program, origins?: Origins): Program {
  let cur = p;
  for (let round = 0; round < 4; round++) {
    const r = onePass(cur, origins);
    cur = r.program;
    if (!r.changed) break;
  }
  return cur;
}
