/**
 * Reverse mode over a Program: evaluate forward by binding each equation (eagerly, or into the
 * active trace), then walk the equations backwards applying VJP rules. Regions and checkpoints
 * stay whole in the forward pass; their backward is a region of its own (`<name>.vjp`) that
 * recomputes the body's forward from the region's inputs, so composite ops keep their names
 * for the fusion passes and checkpoints rematerialise.
 */
import { isFloat } from '../ir/dtype.js';
import { NexgradError } from '../ir/errors.js';
import * as ops from '../ir/ops.js';
import type { MaybeTensor } from '../ir/primitive.js';
import { defOf } from '../ir/primitives/index.js';
import { type Eqn, Literal, type Program, type Var } from '../ir/program.js';
import type { Tensor } from '../ir/tensor.js';
import { bind, evalProgram, inScopeOf, programEnv, readAtom, traceFlat } from '../ir/trace.js';

interface Tape {
  readonly eqn: Eqn;
  readonly inputs: Tensor[];
  readonly outputs: Tensor[];
  /** custom_vjp residuals. */
  readonly residuals?: Tensor[];
}

export interface Linearized {
  readonly outputs: Tensor[];
  /** Input cotangents (null = zero) for output cotangents (null = zero). */
  readonly backward: (cts: readonly MaybeTensor[]) => MaybeTensor[];
}

function addCt(a: MaybeTensor, b: MaybeTensor): MaybeTensor {
  if (!a) return b;
  if (!b) return a;
  return ops.add(a, b);
}

export function vjpProgram(p: Program, primals: readonly Tensor[]): Linearized {
  const env = programEnv(p, primals);
  const tape: Tape[] = [];
  for (const e of p.eqns) {
    const inputs = e.inputs.map((a) => readAtom(env, a));
    let outputs: Tensor[];
    let residuals: Tensor[] | undefined;
    if (e.prim === 'custom_vjp') {
      const prm = e.params;
      const all = evalProgram(prm.fwd, inputs);
      outputs = all.slice(0, all.length - prm.numResiduals);
      residuals = all.slice(all.length - prm.numResiduals);
    } else {
      outputs = inScopeOf(e.outputs[0], undefined, () => bind(e.prim, inputs, e.params));
    }
    e.outputs.forEach((v, i) => env.set(v, outputs[i]!));
    tape.push({ eqn: e, inputs, outputs, residuals });
  }
  const outputs = p.outputs.map((a) => readAtom(env, a));

  const backward = (cts: readonly MaybeTensor[]): MaybeTensor[] => {
    if (cts.length !== p.outputs.length) throw new NexgradError(`vjp: expected ${p.outputs.length} cotangents, got ${cts.length}`);
    const ctEnv = new Map<Var, MaybeTensor>();
    const accum = (v: Var, ct: MaybeTensor): void => {
      if (ct) ctEnv.set(v, addCt(ctEnv.get(v) ?? null, ct));
    };
    p.outputs.forEach((a, i) => {
      if (!(a instanceof Literal)) accum(a, cts[i] ?? null);
    });
    for (let k = tape.length - 1; k >= 0; k--) {
      const t = tape[k]!;
      const outCts = t.eqn.outputs.map((v) => ctEnv.get(v) ?? null);
      t.eqn.outputs.forEach((v) => ctEnv.delete(v));
      if (outCts.every((c) => !c)) continue;
      const inCts = inScopeOf(t.eqn.outputs[0], 'bwd', () => eqnVjp(t, outCts));
      t.eqn.inputs.forEach((a, i) => {
        if (!(a instanceof Literal) && isFloat(a.aval.dtype)) accum(a, inCts[i] ?? null);
      });
    }
    return p.inputs.map((v) => ctEnv.get(v) ?? null);
  };
  return { outputs, backward };
}

function eqnVjp(t: Tape, outCts: MaybeTensor[]): MaybeTensor[] {
  const { eqn } = t;
  switch (eqn.prim) {
    case 'region': {
      const prm = eqn.params;
      if (prm.name === 'stop_gradient') return t.inputs.map(() => null);
      return bodyVjpRegion(`${prm.name}.vjp`, prm.attrs, prm.body, t.inputs, outCts);
    }
    case 'checkpoint': {
      const prm = eqn.params;
      return bodyVjpRegion('checkpoint.vjp', {}, prm.body, t.inputs, outCts);
    }
    case 'custom_vjp': {
      const prm = eqn.params;
      const cts = outCts.map((c, i) => c ?? ops.zerosLike(t.outputs[i]!));
      return evalProgram(prm.bwd, [...t.residuals!, ...cts]);
    }
    default: {
      const def = defOf(eqn);
      if (def.vjp === 'structural') throw new NexgradError(`internal: no structural VJP for ${eqn.prim}`);
      return def.vjp(t.inputs, t.outputs, outCts, eqn.params);
    }
  }
}

/**
 * The backward of a sub-program as one region: inputs (primal inputs, non-zero output
 * cotangents), outputs (non-zero input cotangents).
 */
function bodyVjpRegion(name: string, attrs: Readonly<Record<string, unknown>>, body: Program, inputs: Tensor[], outCts: MaybeTensor[]): MaybeTensor[] {
  const ctIdx = outCts.flatMap((c, i) => (c ? [i] : []));
  let nonNull: number[] = [];
  const traced = traceFlat(
    (...args) => {
      const ins = args.slice(0, inputs.length);
      const cts: MaybeTensor[] = body.outputs.map(() => null);
      ctIdx.forEach((i, j) => (cts[i] = args[inputs.length + j]!));
      const lin = vjpProgram(body, ins);
      const inCts = lin.backward(cts);
      nonNull = inCts.flatMap((c, i) => (c && isFloat(ins[i]!.dtype) ? [i] : []));
      return nonNull.map((i) => inCts[i]!);
    },
    [...inputs.map((x) => x.aval), ...ctIdx.map((i) => outCts[i]!.aval)],
  );
  const outs = bind('region', [...inputs, ...ctIdx.map((i) => outCts[i]!), ...traced.captured], {
    name,
    attrs,
    body: traced.program,
  });
  const result: MaybeTensor[] = inputs.map(() => null);
  nonNull.forEach((i, j) => (result[i] = outs[j]!));
  return result;
}
