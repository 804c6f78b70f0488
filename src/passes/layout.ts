/**
 * layout: convolutions compute on channels-last (NHWC) activations. A conv whose activations
 * are in another layout is rewritten as transpose -> NHWC conv -> transpose; fusion absorbs
 * the transposes into the neighbouring kernels' index expressions, and simplify cancels
 * back-to-back pairs between consecutive convolutions.
 */
import type { Origins } from './inline.js';
import { type Program, Var } from '../ir/program.js';
import { ProgramBuilder } from './rewrite.js';

const isChannelsLast = (d: readonly number[]): boolean => d[0] === 0 && d[1] === d.length - 1 && d.slice(2).every((x, i) => x === i + 1);

export function layoutNHWC(p: Program, origins?: Origins): Program {
  const b = new ProgramBuilder(origins);
  for (const e of p.eqns) {
    if (e.prim !== 'conv_general') {
      b.copy(e);
      continue;
    }
    const pr = e.params;
    const r = pr.dims.lhs.length;
    if (isChannelsLast(pr.dims.lhs) && isChannelsLast(pr.dims.out)) {
      b.copy(e);
      continue;
    }
    // lhs: permute to (batch, spatial..., feature)
    const lhsPerm = [pr.dims.lhs[0]!, ...pr.dims.lhs.slice(2), pr.dims.lhs[1]!];
    const lhs = b.read(e.inputs[0]!);
    const lhsT = new Var({ shape: lhsPerm.map((d) => lhs.aval.shape[d]!), dtype: lhs.aval.dtype });
    b.emit('transpose', { perm: lhsPerm }, [lhs], [lhsT]);
    const nhwc = [0, r - 1, ...Array.from({ length: r - 2 }, (_, i) => i + 1)];
    const outV = e.outputs[0]!;
    const outPerm = [pr.dims.out[0]!, ...pr.dims.out.slice(2), pr.dims.out[1]!];
    const outT = new Var({ shape: outPerm.map((d) => outV.aval.shape[d]!), dtype: outV.aval.dtype });
    b.emit('conv_general', { ...pr, dims: { lhs: nhwc, rhs: pr.dims.rhs, out: nhwc } }, [lhsT, b.read(e.inputs[1]!)], [outT]);
    // back to the original output layout: inverse of outPerm
    const inv = new Array<number>(r);
    outPerm.forEach((d, i) => (inv[d] = i));
    const back = new Var(outV.aval);
    b.emit('transpose', { perm: inv }, [outT], [back]);
    b.alias(outV, back);
    b.inherit([outV, outV, outV], [lhsT, outT, back]);
  }
  return b.finish(p);
}
