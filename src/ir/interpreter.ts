/**
 * The reference interpreter: evaluates any Program on the host over typed arrays, in float64
 * on request. It is the oracle for every compiled backend and for gradient checks.
 */
import { isFloat } from './dtype.js';
import { NexgradError } from './errors.js';
import { HostArray } from './host.js';
import type { ImplContext } from './primitive.js';
import { defOf } from './primitives/index.js';
import { type Atom, Literal, Program, type Var } from './program.js';
import { shapeEq } from './shape.js';
import { Tensor } from './tensor.js';

function widen(a: HostArray): HostArray {
  if (!isFloat(a.dtype) || a.data instanceof Float64Array) return a;
  return new HostArray(a.dtype, a.shape, Float64Array.from(a.data));
}

export function interpretHost(p: Program, inputs: readonly HostArray[], ctx: ImplContext): HostArray[] {
  const env = new Map<Var, HostArray>();
  p.inputs.forEach((v, i) => env.set(v, inputs[i]!));
  for (const c of p.consts) env.set(c.v, ctx.wide ? widen(c.value) : c.value);
  const read = (a: Atom): HostArray => {
    if (a instanceof Literal) return HostArray.scalar(a.value, a.dtype);
    const h = env.get(a);
    if (!h) throw new NexgradError('interpret: variable used before definition');
    return h;
  };
  for (const e of p.eqns) {
    const outs = defOf(e).impl(e.inputs.map(read), e.params, ctx);
    e.outputs.forEach((v, i) => env.set(v, outs[i]!));
  }
  return p.outputs.map(read);
}

export interface InterpretOptions {
  /** 'f64' evaluates every float in float64 and returns float outputs as f64 tensors. */
  dtype?: 'f64' | 'native';
}

/** Evaluates `program` on concrete inputs. */
export function interpret(program: Program, inputs: readonly (Tensor | HostArray)[], opts: InterpretOptions = {}): Tensor[] {
  if (!(program instanceof Program)) throw new NexgradError('interpret: the first argument must be a Program (from ng.trace)');
  if (inputs.length !== program.inputs.length) {
    throw new NexgradError(`interpret: the program takes ${program.inputs.length} inputs, got ${inputs.length}`);
  }
  const wide = opts.dtype === 'f64';
  const hosts = inputs.map((x, i) => {
    if (x instanceof Tensor && x.isTracer) throw new NexgradError(`interpret: input ${i} is a tracer; interpret takes concrete tensors`);
    const h = x instanceof Tensor ? x._hostSync('interpret') : x;
    const want = program.inputs[i]!.aval;
    if (h.dtype !== want.dtype || !shapeEq(h.shape, want.shape)) {
      throw new NexgradError(`interpret: input ${i} is ${h.dtype}[${h.shape.join(',')}], the program expects ${want.dtype}[${want.shape.join(',')}]`);
    }
    return wide ? widen(h) : h;
  });
  const outs = interpretHost(program, hosts, { wide });
  return outs.map((h) => Tensor._concrete(wide && h.data instanceof Float64Array ? new HostArray('f64', h.shape, h.data) : h));
}
