/**
 * Forward mode over a Program: each equation is bound as is and its JVP rule gives the output
 * tangents. Regions and checkpoints become one region `<name>.jvp` computing outputs and
 * tangents together, so composite ops stay whole.
 */
import { isFloat } from '../ir/dtype.js';
import { NexgradError } from '../ir/errors.js';
import type { MaybeTensor } from '../ir/primitive.js';
import { defOf } from '../ir/primitives/index.js';
import { Literal, type Program, type Var } from '../ir/program.js';
import type { Tensor } from '../ir/tensor.js';
import { bind, inScopeOf, programEnv, readAtom, traceFlat } from '../ir/trace.js';

export function jvpProgram(p: Program, primals: readonly Tensor[], tangents: readonly MaybeTensor[]): { outputs: Tensor[]; tangents: MaybeTensor[] } {
  const env = programEnv(p, primals);
  const tenv = new Map<Var, MaybeTensor>();
  p.inputs.forEach((v, i) => tenv.set(v, tangents[i] ?? null));
  for (const e of p.eqns) {
    const ins = e.inputs.map((a) => readAtom(env, a));
    const tins = e.inputs.map((a) => (a instanceof Literal ? null : (tenv.get(a) ?? null)));
    // replayed (and differentiated) in the scope the equation was traced in
    const [outs, touts] = inScopeOf(e.outputs[0], undefined, (): [Tensor[], MaybeTensor[]] => {
      if (tins.every((t) => !t)) {
        const o = bind(e.prim, ins, e.params);
        return [o, o.map(() => null)];
      }
      if (e.prim === 'region' && e.params.name === 'stop_gradient') {
        const o = bind('region', ins, e.params);
        return [o, o.map(() => null)];
      }
      if (e.prim === 'region') return bodyJvpRegion(`${e.params.name}.jvp`, e.params.attrs, e.params.body, ins, tins);
      if (e.prim === 'checkpoint') return bodyJvpRegion('checkpoint.jvp', {}, e.params.body, ins, tins);
      if (e.prim === 'custom_vjp') throw new NexgradError('jvp: forward-mode differentiation of a customVjp function is not supported; use grad/vjp');
      const def = defOf(e);
      if (def.jvp === 'structural') throw new NexgradError(`internal: no structural JVP for ${e.prim}`);
      const o = bind(e.prim, ins, e.params);
      return [o, def.jvp(ins, tins, e.params, o)];
    });
    e.outputs.forEach((v, i) => {
      env.set(v, outs[i]!);
      tenv.set(v, isFloat(v.aval.dtype) ? (touts[i] ?? null) : null);
    });
  }
  return {
    outputs: p.outputs.map((a) => readAtom(env, a)),
    tangents: p.outputs.map((a) => (a instanceof Literal ? null : (tenv.get(a) ?? null))),
  };
}

function bodyJvpRegion(name: string, attrs: Readonly<Record<string, unknown>>, body: Program, ins: Tensor[], tins: MaybeTensor[]): [Tensor[], MaybeTensor[]] {
  const tIdx = tins.flatMap((t, i) => (t ? [i] : []));
  let nonNull: number[] = [];
  const traced = traceFlat(
    (...args) => {
      const primals = args.slice(0, ins.length);
      const tangents: MaybeTensor[] = ins.map(() => null);
      tIdx.forEach((i, j) => (tangents[i] = args[ins.length + j]!));
      const r = jvpProgram(body, primals, tangents);
      nonNull = r.tangents.flatMap((t, i) => (t ? [i] : []));
      return [...r.outputs, ...nonNull.map((i) => r.tangents[i]!)];
    },
    [...ins.map((x) => x.aval), ...tIdx.map((i) => tins[i]!.aval)],
  );
  const outs = bind('region', [...ins, ...tIdx.map((i) => tins[i]!), ...traced.captured], { name, attrs, body: traced.program });
  const n = body.outputs.length;
  const touts: MaybeTensor[] = body.outputs.map(() => null);
  nonNull.forEach((i, j) => (touts[i] = outs[n + j]!));
  return [outs.slice(0, n), touts];
}
