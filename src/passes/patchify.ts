/**
 * patchify: a convolution whose window tiles its input exactly (kernel == stride, no padding,
 * no dilation, one group: ConvNeXt's 4x4/4 stem and 2x2/2 downsamplers, and every 1x1 conv) is
 * a matmul over non-overlapping patches. Rewritten as views + dot_general, it takes the
 * matmul's prologues (the LayerNorm before a downsampler is applied while the GEMM packs its
 * patches) and epilogues on every backend, and the views fuse into the operand reads.
 */
import type { Origins } from './inline.js';
import type { ConvParams } from '../ir/primitive.js';
import { type Atom, type Program, Var } from '../ir/program.js';
import { ProgramBuilder } from './rewrite.js';

const isIdentity = (p: readonly number[]): boolean => p.every((v, i) => v === i);

/** True for a 2-D conv that is a matmul over patches. */
export function isPatchifyConv(p: ConvParams, rhsShape: readonly number[]): boolean {
  const sp = p.windowStrides.length;
  if (sp !== 2 || p.featureGroupCount !== 1 || p.batchGroupCount !== 1) return false;
  const k = p.dims.rhs.slice(2).map((d) => rhsShape[d]!);
  return (
    p.lhsDilation.every((v) => v === 1) &&
    p.rhsDilation.every((v) => v === 1) &&
    p.padding.every(([lo, hi]) => lo === 0 && hi === 0) &&
    p.windowStrides.every((s, i) => s === k[i])
  );
}

export function patchifyConvs(p: Program, origins?: Origins): Program {
  const b = new ProgramBuilder(origins);
  for (const e of p.eqns) {
    const rhs0 = e.inputs[1];
    if (e.prim !== 'conv_general' || !rhs0 || !isPatchifyConv(e.params, rhs0.aval.shape)) {
      b.copy(e);
      continue;
    }
    const pr = e.params;
    const lhs = b.read(e.inputs[0]!);
    const rhs = b.read(rhs0);
    const out = e.outputs[0]!;
    const dtype = out.aval.dtype;
    const made: Var[] = [];
    const emit = (prim: string, params: Record<string, unknown>, input: Atom, shape: readonly number[]): Var => {
      const v = new Var({ shape: [...shape], dtype });
      b.emit(prim, params, [input], [v]);
      made.push(v);
      return v;
    };
    const transpose = (x: Atom, perm: number[]): Atom => (isIdentity(perm) ? x : emit('transpose', { perm }, x, perm.map((d) => x.aval.shape[d]!)));
    const reshape = (x: Atom, shape: number[]): Atom => (x.aval.shape.join() === shape.join() ? x : emit('reshape', { shape }, x, shape));
    const [nb, nf, s0, s1] = pr.dims.lhs as [number, number, number, number];
    const [ro, ri, k0, k1] = pr.dims.rhs as [number, number, number, number];
    const N = lhs.aval.shape[nb]!;
    const C = lhs.aval.shape[nf]!;
    const [H, W] = [lhs.aval.shape[s0]!, lhs.aval.shape[s1]!];
    const [kh, kw] = [rhs.aval.shape[k0]!, rhs.aval.shape[k1]!];
    const O = rhs.aval.shape[ro]!;
    const [OH, OW] = [Math.floor(H / kh), Math.floor(W / kw)];
    // patches: [N, H, W, C] -> (crop) -> [N, OH, kh, OW, kw, C] -> [N, OH, OW, kh, kw, C] -> [N*OH*OW, kh*kw*C]
    let x = transpose(lhs, [nb, s0, s1, nf]);
    if (OH * kh !== H || OW * kw !== W) {
      const v = new Var({ shape: [N, OH * kh, OW * kw, C], dtype });
      b.emit('slice', { start: [0, 0, 0, 0], limit: [N, OH * kh, OW * kw, C], strides: [1, 1, 1, 1] }, [x], [v]);
      made.push(v);
      x = v;
    }
    x = reshape(x, [N, OH, kh, OW, kw, C]);
    x = transpose(x, [0, 1, 3, 2, 4, 5]);
    x = reshape(x, [N * OH * OW, kh * kw * C]);
    // weights: [kh, kw, C, O] -> [kh*kw*C, O]
    const w = reshape(transpose(rhs, [k0, k1, ri, ro]), [kh * kw * C, O]);
    const y = new Var({ shape: [N * OH * OW, O], dtype });
    b.emit('dot_general', { contracting: [[1], [0]], batch: [[], []] }, [x, w], [y]);
    made.push(y);
    // [N, OH, OW, O] in the conv's output layout
    const y4 = reshape(y, [N, OH, OW, O]);
    const role = [0, 3, 1, 2]; // y4 axis of batch, feature, spatial 0, spatial 1
    const perm = new Array<number>(4);
    (pr.dims.out as number[]).forEach((pos, j) => (perm[pos] = role[j]!));
    const res = transpose(y4, perm);
    b.alias(out, res);
    b.inherit(made.map(() => out), made);
  }
  return b.finish(p);
}
