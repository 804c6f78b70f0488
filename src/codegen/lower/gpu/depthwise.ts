/**
 * The 2-D depthwise convolution (featureGroupCount == input features == output features, no lhs
 * dilation) with its input tile in shared memory: a workgroup computes TY x TX output positions
 * of CB channels of one image; it first stages the input rows and columns those positions read
 * (the tile plus its halo, zero outside the image) and the CB channels' kernels, then each
 * thread sums its window from shared memory and runs the epilogue for its output element.
 * Channels are the fastest-varying thread index (contiguous in NHWC).
 */
import type { ConvKernel } from '../../kernel/kernel_graph.js';
import type { ConvGeom } from '../conv_geometry.js';
import { GpuCode, nextPow2 } from './code.js';
import type { EmitContext } from './emit_context.js';
import type { GpuKernelCode } from './kernel_code.js';
import { accType, finish, toAcc } from './reduce_ops.js';

const THREADS = 256;
const MAX_CB = 32;

interface DwPlan {
  readonly CB: number;
  readonly TY: number;
  readonly TX: number;
  readonly HY: number;
  readonly HX: number;
}

function plan(k: ConvKernel, g: ConvGeom, threads: number, sharedFloats: number): DwPlan | null {
  const p = k.params;
  const [KH, KW] = g.kSp as [number, number];
  const [sy, sx] = p.windowStrides as [number, number];
  const [dy, dx] = p.rhsDilation as [number, number];
  for (let CB = Math.min(MAX_CB, nextPow2(g.C), threads); CB >= 1; CB /= 2) {
    const TP = threads / CB;
    const TX = Math.min(TP, nextPow2(g.outSp[1]!));
    const TY = TP / TX;
    const HY = (TY - 1) * sy + (KH - 1) * dy + 1;
    const HX = (TX - 1) * sx + (KW - 1) * dx + 1;
    if (HY * HX * CB + KH * KW * CB <= sharedFloats) return { CB, TY, TX, HY, HX };
  }
  return null;
}

/** Whether the tiled kernel applies (2-D, no lhs dilation, a float dtype, and its tiles fit shared memory). */
export function tiledDepthwiseFits(k: ConvKernel, g: ConvGeom, ctx: EmitContext): boolean {
  const floatType = k.dtype === 'f32' || k.dtype === 'f16' || k.dtype === 'bf16';
  const threads = Math.min(THREADS, ctx.target.maxWorkgroupSize);
  return g.nsp === 2 && floatType && k.params.lhsDilation.every((d) => d === 1) && plan(k, g, threads, ctx.target.maxSharedBytes / 4) !== null;
}

export function emitDepthwiseTiled(k: ConvKernel, g: ConvGeom, ctx: EmitContext): GpuKernelCode {
  const D = ctx.dialect;
  const cb = new GpuCode(D);
  const threads = Math.min(THREADS, ctx.target.maxWorkgroupSize);
  const P = plan(k, g, threads, ctx.target.maxSharedBytes / 4)!;
  const p = k.params;
  const [H, W] = g.inSp as [number, number];
  const [KH, KW] = g.kSp as [number, number];
  const [OH, OW] = g.outSp as [number, number];
  const [sy, sx] = p.windowStrides as [number, number];
  const [dy, dx] = p.rhsDilation as [number, number];
  const nCB = Math.ceil(g.C / P.CB);
  const nTX = Math.ceil(OW / P.TX);
  const nTY = Math.ceil(OH / P.TY);
  const total = g.N * nTY * nTX * nCB;
  const i = (v: number): string => cb.int(v);
  const [xt, wt] = [ctx.dtypeOf(k.lhs.buf), ctx.dtypeOf(k.rhs.buf)];
  if (total > 0) {
    cb.line(D.declareIndex('ng_t', D.groupIndex));
    cb.line(`if (ng_t >= ${i(total)}) { ${D.exit} }`);
    cb.split('ng_t', [g.N, nTY, nTX, nCB], ['ng_n', 'ng_ty', 'ng_tx', 'ng_cb']);
    cb.line(D.declareIndex('ng_c0', `ng_cb * ${i(P.CB)}`));
    cb.line(D.declareIndex('ng_iy0', `ng_ty * ${i(P.TY * sy)} - ${i(p.padding[0]![0])}`));
    cb.line(D.declareIndex('ng_ix0', `ng_tx * ${i(P.TX * sx)} - ${i(p.padding[1]![0])}`));
    cb.loop('ng_e', D.localIndex, P.HY * P.HX * P.CB, threads, () => {
      cb.split('ng_e', [P.HY, P.HX, P.CB], ['ng_hy', 'ng_hx', 'ng_hc']);
      cb.line(D.declareIndex('ng_iy', 'ng_iy0 + ng_hy'));
      cb.line(D.declareIndex('ng_ix', 'ng_ix0 + ng_hx'));
      cb.line(D.declareIndex('ng_c', 'ng_c0 + ng_hc'));
      cb.line(D.declareMutable('ng_v', 'f32', D.literal(0, 'f32')));
      const inside = `ng_iy >= ${i(0)} && ng_iy < ${i(H)} && ng_ix >= ${i(0)} && ng_ix < ${i(W)} && ng_c < ${i(g.C)}`;
      const at = `ng_n * ${i(g.lsN)} + ng_c * ${i(g.lsC)} + ng_iy * ${i(g.lsSp[0]!)} + ng_ix * ${i(g.lsSp[1]!)}`;
      cb.line(`if (${inside}) { ${D.assign('ng_v', toAcc(D, D.load(k.lhs.buf, at, xt), xt))} }`);
      cb.line(`ng_halo[ng_e] = ng_v;`);
    });
    cb.loop('ng_e', D.localIndex, KH * KW * P.CB, threads, () => {
      cb.split('ng_e', [KH, KW, P.CB], ['ng_ky', 'ng_kx', 'ng_hc']);
      cb.line(D.declareIndex('ng_c', 'ng_c0 + ng_hc'));
      cb.line(D.declareMutable('ng_v', 'f32', D.literal(0, 'f32')));
      const at = `ng_c * ${i(g.rsO)} + ng_ky * ${i(g.rsSp[0]!)} + ng_kx * ${i(g.rsSp[1]!)}`;
      cb.line(`if (ng_c < ${i(g.C)}) { ${D.assign('ng_v', toAcc(D, D.load(k.rhs.buf, at, wt), wt))} }`);
      cb.line(`ng_wt[ng_e] = ng_v;`);
    });
    cb.line(D.barrier());
    cb.split(D.localIndex, [P.TY, P.TX, P.CB], ['ng_py', 'ng_px', 'ng_cc']);
    cb.line(D.declareIndex('ng_oy', `ng_ty * ${i(P.TY)} + ng_py`));
    cb.line(D.declareIndex('ng_ox', `ng_tx * ${i(P.TX)} + ng_px`));
    cb.line(D.declareIndex('ng_oc', 'ng_c0 + ng_cc'));
    cb.when(`ng_oy < ${i(OH)} && ng_ox < ${i(OW)} && ng_oc < ${i(g.C)}`, () => {
      cb.line(D.declareMutable('ng_acc', 'f32', D.literal(0, 'f32')));
      cb.loop('ng_ky', i(0), KH, 1, () => {
        cb.loop('ng_kx', i(0), KW, 1, () => {
          const h = `ng_halo[((ng_py * ${i(sy)} + ng_ky * ${i(dy)}) * ${i(P.HX)} + ng_px * ${i(sx)} + ng_kx * ${i(dx)}) * ${i(P.CB)} + ng_cc]`;
          const w = `ng_wt[(ng_ky * ${i(KW)} + ng_kx) * ${i(P.CB)} + ng_cc]`;
          cb.line(D.assign('ng_acc', D.mulAdd(h, w, 'ng_acc', 'f32')));
        });
      });
      for (const [v, src] of [[g.vN, 'ng_n'], [g.vC, 'ng_oc'], [g.vSp[0]!, 'ng_oy'], [g.vSp[1]!, 'ng_ox']] as const) {
        cb.line(D.declareIndex(v, src));
        cb.defineVars(v);
      }
      const depth = cb.depth;
      cb.accResolver = () => ({ src: finish(D, 'sum', 'ng_acc', accType(k.dtype), k.dtype), depth });
      cb.storeAll(k.outputs, ctx.dtypeOf);
    });
  }
  const shared = [
    { name: 'ng_halo', dtype: 'f32' as const, size: P.HY * P.HX * P.CB },
    { name: 'ng_wt', dtype: 'f32' as const, size: KH * KW * P.CB },
  ];
  return ctx.finish(cb, { workgroupSize: threads, shared, groups: total });
}
