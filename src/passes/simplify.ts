/**
 * simplify: identity and algebraic folding, reshape/transpose/broadcast composition, constant
 * folding of scalar literals, CSE and DCE. Rules are a table keyed by primitive.
 */
import { HostArray } from '../ir/host.js';
import type { PrimName } from '../ir/primitive.js';
import { PRIMS } from '../ir/primitives/index.js';
import { type Atom, type Eqn, Literal, Program, Var } from '../ir/program.js';
import { shapeEq } from '../ir/shape.js';
import { HIGHER_ORDER } from './prim_kinds.js';
import { ELEMENTWISE } from './prim_kinds.js';
import { ProgramBuilder } from './rewrite.js';

type Params = Readonly<Record<string, unknown>>;


/** What a rule may return: an existing atom to use instead, a replacement equation, or nothing. */
type RuleResult = Atom | { prim: string; params: Params; inputs: Atom[] } | undefined;
type Rule = (ins: Atom[], params: Params, out: Var, producer: (a: Atom) => Eqn | undefined) => RuleResult;

/** The scalar constant an atom holds (a literal, or a broadcast of one), if any. */
function constantOf(a: Atom, producer: (a: Atom) => Eqn | undefined): number | undefined {
  if (a instanceof Literal) return a.value;
  const e = producer(a);
  if (e && e.prim === 'broadcast_in_dim' && e.inputs[0] instanceof Literal) return e.inputs[0].value;
  return undefined;
}

const sameAval = (a: Atom, out: Var): boolean => a.aval.dtype === out.aval.dtype && shapeEq(a.aval.shape, out.aval.shape);

const RULES: Partial<Record<string, Rule>> = {
  reshape: (ins, p, out, producer) => {
    if (sameAval(ins[0]!, out)) return ins[0];
    const e = producer(ins[0]!);
    if (e?.prim === 'reshape') return { prim: 'reshape', params: p, inputs: [e.inputs[0]!] };
    return undefined;
  },
  transpose: (ins, p, _out, producer) => {
    const perm = p.perm as number[];
    if (perm.every((v, i) => v === i)) return ins[0];
    const e = producer(ins[0]!);
    if (e?.prim === 'transpose') {
      const inner = e.params.perm as number[];
      const composed = perm.map((q) => inner[q]!);
      if (composed.every((v, i) => v === i)) return e.inputs[0];
      return { prim: 'transpose', params: { perm: composed }, inputs: [e.inputs[0]!] };
    }
    return undefined;
  },
  broadcast_in_dim: (ins, p, out, producer) => {
    const dims = p.dims as number[];
    if (sameAval(ins[0]!, out) && dims.every((d, i) => d === i)) return ins[0];
    const e = producer(ins[0]!);
    if (e?.prim === 'broadcast_in_dim') {
      const inner = e.params.dims as number[];
      return { prim: 'broadcast_in_dim', params: { shape: p.shape, dims: inner.map((d) => dims[d]!) }, inputs: [e.inputs[0]!] };
    }
    return undefined;
  },
  cast: (ins, _p, out) => (sameAval(ins[0]!, out) ? ins[0] : undefined),
  reduce_sum: (ins, p) => ((p.axes as number[]).length === 0 ? ins[0] : undefined),
  neg: (ins, _p, _o, producer) => {
    const e = producer(ins[0]!);
    return e?.prim === 'neg' ? e.inputs[0] : undefined;
  },
  add: (ins, _p, out, producer) => {
    if (constantOf(ins[1]!, producer) === 0 && sameAval(ins[0]!, out)) return ins[0];
    if (constantOf(ins[0]!, producer) === 0 && sameAval(ins[1]!, out)) return ins[1];
    return undefined;
  },
  sub: (ins, _p, out, producer) => (constantOf(ins[1]!, producer) === 0 && sameAval(ins[0]!, out) ? ins[0] : undefined),
  mul: (ins, _p, out, producer) => {
    if (constantOf(ins[1]!, producer) === 1 && sameAval(ins[0]!, out)) return ins[0];
    if (constantOf(ins[0]!, producer) === 1 && sameAval(ins[1]!, out)) return ins[1];
    return undefined;
  },
  div: (ins, _p, out, producer) => (constantOf(ins[1]!, producer) === 1 && sameAval(ins[0]!, out) ? ins[0] : undefined),
};

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

function literalKey(a: Atom): string {
  return a instanceof Literal ? `L${a.value}:${a.dtype}` : `v${a.id}`;
}

function onePass(p: Program, origins?: Map<Var, string>): { program: Program; changed: boolean } {
  const b = new ProgramBuilder(origins);
  const producers = new Map<Var, Eqn>();
  const cse = new Map<string, Var[]>();
  let changed = false;
  const producer = (a: Atom): Eqn | undefined => (a instanceof Var ? producers.get(a) : undefined);
  const useCount = new Map<Var, number>();
  for (const e of p.eqns) for (const a of e.inputs) if (a instanceof Var) useCount.set(a, (useCount.get(a) ?? 0) + 1);
  for (const a of p.outputs) if (a instanceof Var) useCount.set(a, (useCount.get(a) ?? 0) + 1);
  for (const e of p.eqns) {
    let prim = e.prim;
    let params = e.params;
    let ins = e.inputs.map((a) => b.read(a));
    // apply rules until none fires
    if (e.outputs.length === 1) {
      for (let guard = 0; guard < 8; guard++) {
        const rule = RULES[prim];
        const r = rule?.(ins, params, e.outputs[0]!, producer);
        if (r === undefined) break;
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
      const key = `${prim}|${JSON.stringify(params)}|${ins.map(literalKey).join(',')}`;
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
export function simplify(p: Program, origins?: Map<Var, string>): Program {
  let cur = p;
  for (let round = 0; round < 4; round++) {
    const r = onePass(cur, origins);
    cur = r.program;
    if (!r.changed) break;
  }
  return cur;
}
