/** Higher-order primitives holding sub-programs: region, checkpoint, custom_vjp. Their
 * derivatives are structural: the autodiff drivers (src/autodiff) go through the bodies. */
import { OpError } from '../errors.js';
import { interpretHost } from '../interpreter.js';
import type { PrimDef, PrimParams } from '../primitive.js';
import type { AbstractValue, Program } from '../program.js';
import { shapeEq } from '../shape.js';
import { avalStr } from './util.js';

function bodyShape(op: string, inputs: AbstractValue[], body: Program): AbstractValue[] {
  const ok =
    inputs.length === body.inputs.length &&
    inputs.every((a, i) => a.dtype === body.inputs[i]!.aval.dtype && shapeEq(a.shape, body.inputs[i]!.aval.shape));
  if (!ok) {
    throw new OpError(op, `operands ${inputs.map(avalStr).join(', ')} do not match the body's inputs ${body.inputs.map((v) => avalStr(v.aval)).join(', ')}`);
  }
  return body.outputs.map((a) => a.aval);
}

const region: PrimDef<PrimParams['region']> = {
  lowering: 'body',
  shape: (inputs, { name, body }) => bodyShape(`region ${name}`, inputs, body),
  impl: (inputs, { body }, ctx) => interpretHost(body, inputs, ctx),
  jvp: 'structural',
  vjp: 'structural',
};

const checkpoint: PrimDef<PrimParams['checkpoint']> = {
  lowering: 'body',
  shape: (inputs, { body }) => bodyShape('checkpoint', inputs, body),
  impl: (inputs, { body }, ctx) => interpretHost(body, inputs, ctx),
  jvp: 'structural',
  vjp: 'structural',
};

const custom_vjp: PrimDef<PrimParams['custom_vjp']> = {
  lowering: 'body',
  shape: (inputs, { body }) => bodyShape('custom_vjp', inputs, body),
  impl: (inputs, { body }, ctx) => interpretHost(body, inputs, ctx),
  jvp: 'structural',
  vjp: 'structural',
};

export const higherOrderPrims = { region, checkpoint, custom_vjp };
