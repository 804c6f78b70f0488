/**
 * Convolutions on a GPU, by the path src/codegen/lower/conv_geometry.ts chooses:
 *   - gemm / gemm_transposed: the tiled GEMM (./matmul.ts) over the im2col / unpatchify index maps;
 *   - depthwise (2-D, no lhs dilation): ./depthwise.ts, the input tile and its halo staged in
 *     shared memory;
 *   - depthwise weight gradient with long sums: one workgroup per output element, a tree sum
 *     over (input feature, kernel position);
 *   - everything else: the direct convolution, one thread per output element looping over its
 *     window with the full XLA semantics (groups, batch groups, padding, both dilations).
 * Every path ends with the epilogue outputs over the output variables, `acc 0` the conv value.
 */
import type { ConvKernel } from '../../kernel/kernel_graph.js';
import { type ConvGeom, convGeometry, convPath, gemmSpecOf, gemmSpecOfTransposed } from '../conv_geometry.js';
import { GpuCode, product } from './code.js';
import { emitDepthwiseTiled, tiledDepthwiseFits } from './depthwise.js';
import type { EmitContext } from './emit_context.js';
import type { GpuKernelCode } from './kernel_code.js';
import { emitGemm } from './matmul.js';
import { type AccType, accType, combine, finish, toAcc } from './reduce_ops.js';

const DIRECT_WG = 256;
const TREE_WG = 256;
/** Sums at least this long (per output element) get a workgroup each on the weight-gradient path. */
const TREE_MIN_SUM = 1024;

/** The output variables as named in the epilogue, declared from a flat output index. */
function splitOutput(cb: GpuCode, k: ConvKernel, flat: string): void {
  cb.split(flat, k.outShape, k.outShape.map((_, i) => `o${i}`));
}

/**
 * Emits `acc += X[..] * W[..]` for input feature `c` (within the group) and kernel position
 * variables `kv` (declared by the caller), skipping taps outside the input (padding, lhs
 * dilation holes). The output position variables are the epilogue's (g.vSp), batch and
 * feature `nIn` and `o` the caller's.
 */
function tap(cb: GpuCode, k: ConvKernel, g: ConvGeom, ctx: EmitContext, acc: string, t: AccType, names: { nIn: string; fg: string; o: string; c: string; kv: readonly string[] }): void {
  const D = cb.gpu;
  const p = k.params;
  const conds: string[] = [];
  let xs = `${names.nIn} * ${cb.int(g.lsN)} + (${names.fg} * ${cb.int(g.I)} + ${names.c}) * ${cb.int(g.lsC)}`;
  let ws = `${names.o} * ${cb.int(g.rsO)} + ${names.c} * ${cb.int(g.rsI)}`;
  for (let d = 0; d < g.nsp; d++) {
    const pos = `ng_q${d}`;
    const ld = p.lhsDilation[d]!;
    cb.line(D.declareIndex(pos, `${g.vSp[d]} * ${cb.int(p.windowStrides[d]!)} + ${names.kv[d]} * ${cb.int(p.rhsDilation[d]!)} - ${cb.int(p.padding[d]![0])}`));
    if (ld === 1) conds.push(`${pos} >= ${cb.int(0)} && ${pos} < ${cb.int(g.inSp[d]!)}`);
    else {
      cb.line(D.declareIndex(`ng_i${d}`, `${pos} / ${cb.int(ld)}`));
      conds.push(`${pos} >= ${cb.int(0)} && ${pos} == ng_i${d} * ${cb.int(ld)} && ng_i${d} < ${cb.int(g.inSp[d]!)}`);
    }
    xs += ` + ${ld === 1 ? pos : `ng_i${d}`} * ${cb.int(g.lsSp[d]!)}`;
    ws += ` + ${names.kv[d]} * ${cb.int(g.rsSp[d]!)}`;
  }
  const [lt, rt] = [ctx.dtypeOf(k.lhs.buf), ctx.dtypeOf(k.rhs.buf)];
  const x = toAcc(D, D.load(k.lhs.buf, xs, lt), lt);
  const w = toAcc(D, D.load(k.rhs.buf, ws, rt), rt);
  const stmt = D.assign(acc, D.mulAdd(x, w, acc, t));
  cb.line(conds.length ? `if (${conds.map((c) => `(${c})`).join(' && ')}) { ${stmt} }` : stmt);
}

/** Group, batch-group and input-batch indices of output feature vC and batch vN. */
function groupIndices(cb: GpuCode, g: ConvGeom): void {
  const D = cb.gpu;
  const Og = g.O / g.G;
  const Ob = g.O / g.BG;
  const Nb = g.N / g.BG;
  cb.line(D.declareIndex('ng_fg', D.indexDiv(g.vC, Og)));
  cb.line(D.declareIndex('ng_nin', `${D.indexDiv(g.vC, Ob)} * ${cb.int(Nb)} + ${g.vN}`));
}

function storeEpilogue(cb: GpuCode, k: ConvKernel, ctx: EmitContext, acc: string, t: AccType): void {
  const depth = cb.depth;
  cb.accResolver = () => ({ src: finish(cb.gpu, 'sum', acc, t, k.dtype), depth });
  cb.storeAll(k.outputs, ctx.dtypeOf);
}

/** Nested loops over the kernel positions (variables ng_k0..), `body` innermost. */
function kernelLoops(cb: GpuCode, g: ConvGeom, body: (kv: string[]) => void): void {
  const kv = g.kSp.map((_, d) => `ng_k${d}`);
  const rec = (d: number): void => {
    if (d === g.nsp) return body(kv);
    cb.loop(kv[d]!, cb.int(0), g.kSp[d]!, 1, () => rec(d + 1));
  };
  rec(0);
}

function emitDirect(k: ConvKernel, g: ConvGeom, ctx: EmitContext): GpuKernelCode {
  const D = ctx.dialect;
  const cb = new GpuCode(D);
  const total = product(k.outShape);
  const t = accType(k.dtype);
  if (total > 0) {
    cb.line(D.declareIndex('ng_gid', `${D.groupIndex} * ${cb.int(DIRECT_WG)} + ${D.localIndex}`));
    cb.line(`if (ng_gid >= ${cb.int(total)}) { ${D.exit} }`);
    splitOutput(cb, k, 'ng_gid');
    groupIndices(cb, g);
    cb.line(D.declareMutable('ng_acc', t, D.literal(0, t)));
    cb.loop('ng_c', cb.int(0), g.I, 1, () => kernelLoops(cb, g, (kv) => tap(cb, k, g, ctx, 'ng_acc', t, { nIn: 'ng_nin', fg: 'ng_fg', o: g.vC, c: 'ng_c', kv })));
    storeEpilogue(cb, k, ctx, 'ng_acc', t);
  }
  return ctx.finish(cb, { workgroupSize: DIRECT_WG, groups: Math.ceil(total / DIRECT_WG) });
}

/** One workgroup per output element: threads split the (input feature, kernel position) sum. */
function emitTreeSum(k: ConvKernel, g: ConvGeom, ctx: EmitContext): GpuKernelCode {
  const D = ctx.dialect;
  const cb = new GpuCode(D);
  const total = product(k.outShape);
  const t = accType(k.dtype);
  const Pk = product(g.kSp);
  if (total > 0) {
    cb.line(D.declareIndex('ng_o', D.groupIndex));
    cb.line(`if (ng_o >= ${cb.int(total)}) { ${D.exit} }`);
    splitOutput(cb, k, 'ng_o');
    groupIndices(cb, g);
    cb.line(D.declareMutable('ng_acc', t, D.literal(0, t)));
    cb.loop('ng_f', D.localIndex, g.I * Pk, TREE_WG, () => {
      cb.line(D.declareIndex('ng_c', D.indexDiv('ng_f', Pk)));
      cb.split(D.indexMod('ng_f', Pk), g.kSp, g.kSp.map((_, d) => `ng_k${d}`));
      tap(cb, k, g, ctx, 'ng_acc', t, { nIn: 'ng_nin', fg: 'ng_fg', o: g.vC, c: 'ng_c', kv: g.kSp.map((_, d) => `ng_k${d}`) });
    });
    cb.line(`ng_red[${D.localIndex}] = ng_acc;`);
    cb.line(D.barrier());
    for (let s = TREE_WG / 2; s >= 1; s /= 2) {
      cb.when(`${D.localIndex} < ${cb.int(s)}`, () => cb.line(combine(D, 'sum', 'ng_red', '', D.localIndex, `${D.localIndex} + ${cb.int(s)}`, t)));
      cb.line(D.barrier());
    }
    cb.when(`${D.localIndex} == ${cb.int(0)}`, () => storeEpilogue(cb, k, ctx, 'ng_red[0]', t));
  }
  return ctx.finish(cb, { workgroupSize: TREE_WG, shared: [{ name: 'ng_red', dtype: t, size: TREE_WG }], groups: total });
}

export function emitConvKernel(k: ConvKernel, ctx: EmitContext): GpuKernelCode {
  const g = convGeometry(k);
  switch (convPath(k)) {
    case 'gemm':
      return { ...emitGemm(gemmSpecOf(k, g), ctx), name: k.name };
    case 'gemm_transposed':
      return { ...emitGemm(gemmSpecOfTransposed(k, g), ctx), name: k.name };
    case 'depthwise':
      return tiledDepthwiseFits(k, g, ctx) ? emitDepthwiseTiled(k, g, ctx) : emitDirect(k, g, ctx);
    case 'depthwise_wgrad':
      return g.I * product(g.kSp) >= TREE_MIN_SUM ? emitTreeSum(k, g, ctx) : emitDirect(k, g, ctx);
    case 'generic':
      return emitDirect(k, g, ctx);
  }
}
