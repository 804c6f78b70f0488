/**
 * Golden printed kernel graphs of one small ConvNeXt V2 block's forward + backward (dim 4, 3x3,
 * batch 2; gradients of <block(p, x), ct> for every parameter and the input), before (caps off,
 * 24 kernels) and after (the CPU's caps, 22 kernels) the backward rules:
 *   - extra epilogue outputs: pwconv1 (k5) stores its bare product, the GELU output and its erf
 *     term (the GELU kernel is gone);
 *   - reducing epilogue reading an earlier buffer: dY = dOut W2^T (k10) accumulates GRN
 *     backward's per-image sum of dY * gamma * x (x = the stored GELU output; its kernel is gone,
 *     and the GELU backward reads the sum instead of recomputing it);
 *   - dead stores: the merged LayerNorm-backward kernel recomputes an intermediate gradient its
 *     consumer read, and its store into buf38 goes.
 * A fusion change shows up here as a diff of these listings, updated on purpose.
 */
import { expect, it } from 'vitest';
import { CPU_CAPS, UNLIMITED_CAPS } from '../../../src/codegen/kernel/device.js';
import { printKernel, printKernelGraph } from '../../../src/codegen/kernel/kernel_graph.js';
import { fuse } from '../../../src/passes/fusion/index.js';
import { mergeLoopKernels } from '../../../src/passes/merge_phases.js';
import { dropDeadStores } from '../../../src/passes/dead_stores.js';
import { lower, runPasses } from '../../../src/passes/pipeline.js';
import { blockGradCase } from './block_grad_case.js';

const { program } = blockGradCase(4, 3, 2, 0);

const GOLDEN: Record<'off' | 'on', string[]> = {
  off: [
    "buffers: buf0:f32[196] input, buf1:f32[4] input, buf2:f32[4] input, buf3:f32[4] input, buf4:f32[64] input, buf5:f32[16] input, buf6:f32[16] input, buf7:f32[16] input, buf8:f32[64] input, buf9:f32[4] input, buf10:f32[72] input, buf11:f32[72] input, buf12:f32[72] temp, buf13:f32[18] temp, buf14:f32[18] temp, buf15:f32[72] temp, buf16:f32[72] temp, buf17:f32[288] temp, buf18:f32[288] temp, buf19:f32[288] temp, buf20:f32[32] temp, buf21:f32[32] temp, buf22:f32[2] temp, buf23:f32[32] temp, buf24:f32[288] temp, buf25:f32[4] output, buf26:f32[288] temp, buf27:f32[64] output, buf28:f32[16] output, buf29:f32[16] output, buf30:f32[32] temp, buf31:f32[2] temp, buf32:f32[288] temp, buf33:f32[16] output, buf34:f32[72] temp, buf35:f32[64] output, buf36:f32[4] output, buf37:f32[4] output, buf38:f32[72] temp, buf39:f32[72] temp, buf40:f32[4] output, buf41:f32[196] temp, buf42:f32[72] temp, buf43:f32[196] output, buf44:f32[72] output",
    "conv k0_conv lhs=buf10[2,3,3,4] rhs=buf0[4,1,7,7] out=[2,3,3,4] strides=1,1 groups=4/1",
    "  buf12[o3 + 4 * o2 + 12 * o1 + 36 * o0] = acc0",
    "loop k2_layer_norm+k1_layer_norm outer=[2,3,3] row=[4]",
    "  acc0 = sum over row: t0 = add(buf12[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t0",
    "  acc1 = sum over row: t0 = add(buf12[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t1 = div(acc0, 4:f32); t2 = sub(t0, t1); t3 = mul(t2, t2); t3",
    "  buf13[o2 + 3 * o1 + 9 * o0] = acc0",
    "  buf14[o2 + 3 * o1 + 9 * o0] = acc1",
    "loop k4_layer_norm+k3_layer_norm outer=[2,3,3,4]",
    "  buf15[o3 + 4 * o2 + 12 * o1 + 36 * o0] = t0 = add(buf12[o3 + 4 * o2 + 12 * o1 + 36 * o0], buf1[o3]); t1 = div(buf13[o2 + 3 * o1 + 9 * o0], 4:f32); t2 = sub(t0, t1); t3 = div(buf14[o2 + 3 * o1 + 9 * o0], 4:f32); t4 = add(t3, 9.999999974752427e-7:f32); t5 = rsqrt(t4); t6 = mul(t2, t5); t6",
    "  buf16[o3 + 4 * o2 + 12 * o1 + 36 * o0] = t0 = add(buf12[o3 + 4 * o2 + 12 * o1 + 36 * o0], buf1[o3]); t1 = div(buf13[o2 + 3 * o1 + 9 * o0], 4:f32); t2 = sub(t0, t1); t3 = div(buf14[o2 + 3 * o1 + 9 * o0], 4:f32); t4 = add(t3, 9.999999974752427e-7:f32); t5 = rsqrt(t4); t6 = mul(t2, t5); t7 = mul(t6, buf2[o3]); t8 = add(t7, buf3[o3]); t8",
    "matmul k5_matmul b=1 m=18 n=16 k=4 A=buf16+0[0,4,1] B=buf4+0[0,1,4]",
    "  buf17[n + 16 * m] = acc0",
    "loop k7_gelu+k6_gelu outer=[2,3,3,16]",
    "  buf18[o3 + 16 * o2 + 48 * o1 + 144 * o0] = t0 = add(buf17[o3 + 16 * o2 + 48 * o1 + 144 * o0], buf5[o3]); t1 = mul(t0, 0.7071067690849304:f32); t2 = erf(t1); t3 = add(t2, 1:f32); t3",
    "  buf19[o3 + 16 * o2 + 48 * o1 + 144 * o0] = t0 = add(buf17[o3 + 16 * o2 + 48 * o1 + 144 * o0], buf5[o3]); t1 = mul(t0, 0.5:f32); t2 = add(buf17[o3 + 16 * o2 + 48 * o1 + 144 * o0], buf5[o3]); t3 = mul(t2, 0.7071067690849304:f32); t4 = erf(t3); t5 = add(t4, 1:f32); t6 = mul(t1, t5); t6",
    "loop k8_grn outer=[2,16] row=[3,3]",
    "  acc0 = sum over row: t0 = mul(buf19[o1 + 16 * r1 + 48 * r0 + 144 * o0], buf19[o1 + 16 * r1 + 48 * r0 + 144 * o0]); t0",
    "  buf20[o1 + 16 * o0] = acc0",
    "loop k9_grn outer=[2,1,1,16]",
    "  buf21[o3 + 16 * o2 + 16 * o1 + 16 * o0] = t0 = gt(buf20[o3 + 16 * o2 + 16 * o1 + 16 * o0], 0:f32); t1 = select(t0, buf20[o3 + 16 * o2 + 16 * o1 + 16 * o0], 1:f32); t2 = sqrt(t1); t3 = select(t0, t2, 0:f32); t3",
    "loop k10_grn outer=[2,1,1] row=[16]",
    "  acc0 = sum over row: buf21[r0 + 16 * o2 + 16 * o1 + 16 * o0]",
    "  buf22[o2 + o1 + o0] = acc0",
    "loop k11_grn outer=[2,1,1,16]",
    "  buf23[o3 + 16 * o2 + 16 * o1 + 16 * o0] = t0 = div(buf22[o0], 16:f32); t1 = add(t0, 9.999999974752427e-7:f32); t2 = div(buf21[o3 + 16 * o2 + 16 * o1 + 16 * o0], t1); t2",
    "loop k12_grn outer=[2,3,3,16]",
    "  buf24[o3 + 16 * o2 + 48 * o1 + 144 * o0] = t0 = mul(buf19[o3 + 16 * o2 + 48 * o1 + 144 * o0], buf23[o3 + 16 * o0]); t0",
    "matmul k14_matmul b=1 m=18 n=16 k=4 A=buf11+0[0,4,1] B=buf8+0[0,16,1]",
    "  buf26[n + 16 * m] = acc0",
    "matmul k15_matmul b=1 m=4 n=16 k=18 A=buf11+0[0,1,4] B=(t0 = mul(buf6[n], buf24[n + 16 * k]); t1 = add(t0, buf7[n]); t2 = add(t1, buf19[n + 16 * k]); t2)",
    "  buf27[n + 16 * m] = acc0",
    "loop k18_grn_vjp outer=[2,16] row=[3,3]",
    "  acc0 = sum over row: t0 = mul(buf26[o1 + 16 * r1 + 48 * r0 + 144 * o0], buf6[o1]); t1 = mul(t0, buf19[o1 + 16 * r1 + 48 * r0 + 144 * o0]); t1",
    "  buf30[o1 + 16 * o0] = acc0",
    "loop k19_grn_vjp outer=[2,1,1] row=[16]",
    "  acc0 = sum over row: t0 = div(buf22[o0], 16:f32); t1 = add(t0, 9.999999974752427e-7:f32); t2 = div(buf23[r0 + 16 * o2 + 16 * o1 + 16 * o0], t1); t3 = neg(t2); t4 = mul(buf30[r0 + 16 * o2 + 16 * o1 + 16 * o0], t3); t4",
    "  buf31[o2 + o1 + o0] = acc0",
    "loop k20_gelu_vjp outer=[2,16] row=[3,3]",
    "  acc0 = sum over row: t0 = mul(buf26[o1 + 16 * r1 + 48 * r0 + 144 * o0], buf6[o1]); t1 = mul(t0, buf19[o1 + 16 * r1 + 48 * r0 + 144 * o0]); t1",
    "  row: buf32[o1 + 16 * r1 + 48 * r0 + 144 * o0] = t0 = mul(buf26[o1 + 16 * r1 + 48 * r0 + 144 * o0], buf6[o1]); t1 = mul(t0, buf23[o1 + 16 * o0]); t2 = add(buf26[o1 + 16 * r1 + 48 * r0 + 144 * o0], t1); t3 = gt(buf20[o1 + 16 * o0], 0:f32); t4 = div(buf22[o0], 16:f32); t5 = add(t4, 9.999999974752427e-7:f32); t6 = div(1:f32, t5); t7 = mul(acc0, t6); t8 = mul(buf31[o0], 0.0625:f32); t9 = add(t7, t8); t10 = select(t3, t9, 0:f32); t11 = select(t3, buf20[o1 + 16 * o0], 1:f32); t12 = sqrt(t11); t13 = div(0.5:f32, t12); t14 = mul(t10, t13); t15 = select(t3, t14, 0:f32); t16 = mul(t15, buf19[o1 + 16 * r1 + 48 * r0 + 144 * o0]); t17 = add(t2, t16); t18 = add(t17, t16); t19 = add(buf17[o1 + 16 * r1 + 48 * r0 + 144 * o0], buf5[o1]); t20 = mul(t19, 0.5:f32); t21 = mul(t18, t20); t22 = mul(t19, 0.7071067690849304:f32); t23 = mul(t22, t22); t24 = neg(t23); t25 = exp(t24); t26 = mul(t25, 1.128379225730896:f32); t27 = mul(t21, t26); t28 = mul(t27, 0.7071067690849304:f32); t29 = mul(t18, buf18[o1 + 16 * r1 + 48 * r0 + 144 * o0]); t30 = mul(t29, 0.5:f32); t31 = add(t28, t30); t31",
    "loop k21_reduce_sum+k17_reshape+k16_reshape outer=[16] row=[2,3,3]",
    "  acc0 = sum over row: buf26[o0 + 16 * r2 + 48 * r1 + 144 * r0]",
    "  acc1 = sum over row: t0 = mul(buf26[o0 + 16 * r2 + 48 * r1 + 144 * r0], buf24[o0 + 16 * r2 + 48 * r1 + 144 * r0]); t0",
    "  acc2 = sum over row: buf32[o0 + 16 * r2 + 48 * r1 + 144 * r0]",
    "  buf28[o0] = acc0",
    "  buf29[o0] = acc1",
    "  buf33[o0] = acc2",
    "matmul k22_matmul b=1 m=18 n=4 k=16 A=buf32+0[0,16,1] B=buf4+0[0,4,1]",
    "  buf34[n + 4 * m] = acc0",
    "matmul k23_matmul b=1 m=16 n=4 k=18 A=buf32+0[0,1,16] B=buf16+0[0,4,1]",
    "  buf35[n + 4 * m] = acc0",
    "loop k27_layer_norm_vjp+k26_layer_norm_vjp outer=[2,3,3] row=[4]",
    "  acc0 = sum over row: t0 = mul(buf34[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf2[r0]); t1 = add(buf12[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t2 = div(buf13[o2 + 3 * o1 + 9 * o0], 4:f32); t3 = sub(t1, t2); t4 = mul(t0, t3); t4",
    "  acc1 = sum over row: t0 = mul(buf34[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf2[r0]); t1 = div(buf14[o2 + 3 * o1 + 9 * o0], 4:f32); t2 = add(t1, 9.999999974752427e-7:f32); t3 = rsqrt(t2); t4 = mul(t0, t3); t5 = div(t3, t2); t6 = mul(t5, -0.5:f32); t7 = mul(acc0, t6); t8 = mul(t7, 0.25:f32); t9 = add(buf12[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t10 = div(buf13[o2 + 3 * o1 + 9 * o0], 4:f32); t11 = sub(t9, t10); t12 = mul(t8, t11); t13 = add(t4, t12); t14 = add(t13, t12); t15 = mul(t14, -1:f32); t15",
    "  row: buf39[r0 + 4 * o2 + 12 * o1 + 36 * o0] = t0 = mul(buf34[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf2[r0]); t1 = div(buf14[o2 + 3 * o1 + 9 * o0], 4:f32); t2 = add(t1, 9.999999974752427e-7:f32); t3 = rsqrt(t2); t4 = mul(t0, t3); t5 = div(t3, t2); t6 = mul(t5, -0.5:f32); t7 = mul(acc0, t6); t8 = mul(t7, 0.25:f32); t9 = add(buf12[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t10 = div(buf13[o2 + 3 * o1 + 9 * o0], 4:f32); t11 = sub(t9, t10); t12 = mul(t8, t11); t13 = add(t4, t12); t14 = add(t13, t12); t15 = mul(acc1, 0.25:f32); t16 = add(t14, t15); t16",
    "loop k28_reduce_sum+k25_layer_norm_vjp+k24_layer_norm_vjp+k13_reduce_sum outer=[4] row=[2,3,3]",
    "  acc0 = sum over row: buf11[o0 + 4 * r2 + 12 * r1 + 36 * r0]",
    "  acc1 = sum over row: buf34[o0 + 4 * r2 + 12 * r1 + 36 * r0]",
    "  acc2 = sum over row: t0 = mul(buf34[o0 + 4 * r2 + 12 * r1 + 36 * r0], buf15[o0 + 4 * r2 + 12 * r1 + 36 * r0]); t0",
    "  acc3 = sum over row: buf39[o0 + 4 * r2 + 12 * r1 + 36 * r0]",
    "  buf25[o0] = acc0",
    "  buf36[o0] = acc1",
    "  buf37[o0] = acc2",
    "  buf40[o0] = acc3",
    "loop k29_reshape outer=[4,1,7,7]",
    "  buf41[o3 + 7 * o2 + 49 * o1 + 49 * o0] = buf0[-1 * o3 - 7 * o2 + 49 * o1 + 49 * o0 + 48]",
    "loop k30_transpose outer=[4,3,3,2]",
    "  buf42[o3 + 2 * o2 + 6 * o1 + 18 * o0] = buf10[o0 + 4 * o2 + 12 * o1 + 36 * o3]",
    "conv k31_conv lhs=buf42[4,3,3,2] rhs=buf39[2,3,3,4] out=[1,7,7,4] strides=1,1 groups=1/4",
    "  buf43[o2 + 7 * o1 + 49 * o0 + 49 * o3] = acc0",
    "conv k32_conv lhs=buf39[2,3,3,4] rhs=buf41[4,1,7,7] out=[2,3,3,4] strides=1,1 groups=4/1",
    "  buf44[o3 + 4 * o2 + 12 * o1 + 36 * o0] = t0 = add(buf11[o3 + 4 * o2 + 12 * o1 + 36 * o0], acc0); t0",
  ],
  on: [
    "buffers: buf0:f32[196] input, buf1:f32[4] input, buf2:f32[4] input, buf3:f32[4] input, buf4:f32[64] input, buf5:f32[16] input, buf6:f32[16] input, buf7:f32[16] input, buf8:f32[64] input, buf9:f32[4] input, buf10:f32[72] input, buf11:f32[72] input, buf12:f32[72] temp, buf13:f32[18] temp, buf14:f32[18] temp, buf15:f32[72] temp, buf16:f32[72] temp, buf17:f32[288] temp, buf18:f32[288] temp, buf19:f32[288] temp, buf20:f32[32] temp, buf21:f32[32] temp, buf22:f32[2] temp, buf23:f32[32] temp, buf24:f32[288] temp, buf25:f32[4] output, buf26:f32[288] temp, buf27:f32[32] temp, buf28:f32[64] output, buf29:f32[16] output, buf30:f32[16] output, buf31:f32[2] temp, buf32:f32[288] temp, buf33:f32[16] output, buf34:f32[72] temp, buf35:f32[64] output, buf36:f32[4] output, buf37:f32[4] output, buf38:f32[72] temp, buf39:f32[72] temp, buf40:f32[4] output, buf41:f32[196] temp, buf42:f32[72] temp, buf43:f32[196] output, buf44:f32[72] output",
    "conv k0_conv lhs=buf10[2,3,3,4] rhs=buf0[4,1,7,7] out=[2,3,3,4] strides=1,1 groups=4/1",
    "  buf12[o3 + 4 * o2 + 12 * o1 + 36 * o0] = acc0",
    "loop k2_layer_norm+k1_layer_norm outer=[2,3,3] row=[4]",
    "  acc0 = sum over row: t0 = add(buf12[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t0",
    "  acc1 = sum over row: t0 = add(buf12[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t1 = div(acc0, 4:f32); t2 = sub(t0, t1); t3 = mul(t2, t2); t3",
    "  buf13[o2 + 3 * o1 + 9 * o0] = acc0",
    "  buf14[o2 + 3 * o1 + 9 * o0] = acc1",
    "loop k4_layer_norm+k3_layer_norm outer=[2,3,3,4]",
    "  buf15[o3 + 4 * o2 + 12 * o1 + 36 * o0] = t0 = add(buf12[o3 + 4 * o2 + 12 * o1 + 36 * o0], buf1[o3]); t1 = div(buf13[o2 + 3 * o1 + 9 * o0], 4:f32); t2 = sub(t0, t1); t3 = div(buf14[o2 + 3 * o1 + 9 * o0], 4:f32); t4 = add(t3, 9.999999974752427e-7:f32); t5 = rsqrt(t4); t6 = mul(t2, t5); t6",
    "  buf16[o3 + 4 * o2 + 12 * o1 + 36 * o0] = t0 = add(buf12[o3 + 4 * o2 + 12 * o1 + 36 * o0], buf1[o3]); t1 = div(buf13[o2 + 3 * o1 + 9 * o0], 4:f32); t2 = sub(t0, t1); t3 = div(buf14[o2 + 3 * o1 + 9 * o0], 4:f32); t4 = add(t3, 9.999999974752427e-7:f32); t5 = rsqrt(t4); t6 = mul(t2, t5); t7 = mul(t6, buf2[o3]); t8 = add(t7, buf3[o3]); t8",
    "matmul k5_matmul b=1 m=18 n=16 k=4 A=buf16+0[0,4,1] B=buf4+0[0,1,4]",
    "  buf17[n + 16 * m] = acc0",
    "  buf18[n + 16 * m] = t0 = add(acc0, buf5[n]); t1 = mul(t0, 0.7071067690849304:f32); t2 = erf(t1); t3 = add(t2, 1:f32); t3",
    "  buf19[n + 16 * m] = t0 = add(acc0, buf5[n]); t1 = mul(t0, 0.5:f32); t2 = mul(t0, 0.7071067690849304:f32); t3 = erf(t2); t4 = add(t3, 1:f32); t5 = mul(t1, t4); t5",
    "loop k6_grn outer=[2,16] row=[3,3]",
    "  acc0 = sum over row: t0 = mul(buf19[o1 + 16 * r1 + 48 * r0 + 144 * o0], buf19[o1 + 16 * r1 + 48 * r0 + 144 * o0]); t0",
    "  buf20[o1 + 16 * o0] = acc0",
    "loop k7_grn outer=[2,1,1,16]",
    "  buf21[o3 + 16 * o2 + 16 * o1 + 16 * o0] = t0 = gt(buf20[o3 + 16 * o2 + 16 * o1 + 16 * o0], 0:f32); t1 = select(t0, buf20[o3 + 16 * o2 + 16 * o1 + 16 * o0], 1:f32); t2 = sqrt(t1); t3 = select(t0, t2, 0:f32); t3",
    "loop k8_grn outer=[2,1,1] row=[16]",
    "  acc0 = sum over row: buf21[r0 + 16 * o2 + 16 * o1 + 16 * o0]",
    "  buf22[o2 + o1 + o0] = acc0",
    "loop k9_grn outer=[2,1,1,16]",
    "  buf23[o3 + 16 * o2 + 16 * o1 + 16 * o0] = t0 = div(buf22[o0], 16:f32); t1 = add(t0, 9.999999974752427e-7:f32); t2 = div(buf21[o3 + 16 * o2 + 16 * o1 + 16 * o0], t1); t2",
    "loop k10_grn outer=[2,3,3,16]",
    "  buf24[o3 + 16 * o2 + 48 * o1 + 144 * o0] = t0 = mul(buf19[o3 + 16 * o2 + 48 * o1 + 144 * o0], buf23[o3 + 16 * o0]); t0",
    "matmul k12_matmul b=1 m=18 n=16 k=4 rows/group=9 A=buf11+0[0,4,1] B=buf8+0[0,16,1]",
    "  buf26[n + 16 * m] = acc0",
    "  buf27[n + 16 * ((((m) / 3)) / 3)] += (from 0) t0 = mul(acc0, buf6[n]); t1 = mul(t0, buf19[n + 16 * m]); t1",
    "matmul k13_matmul b=1 m=4 n=16 k=18 A=buf11+0[0,1,4] B=(t0 = mul(buf6[n], buf24[n + 16 * k]); t1 = add(t0, buf7[n]); t2 = add(t1, buf19[n + 16 * k]); t2)",
    "  buf28[n + 16 * m] = acc0",
    "loop k16_grn_vjp outer=[2,1,1] row=[16]",
    "  acc0 = sum over row: t0 = div(buf22[o0], 16:f32); t1 = add(t0, 9.999999974752427e-7:f32); t2 = div(buf23[r0 + 16 * o2 + 16 * o1 + 16 * o0], t1); t3 = neg(t2); t4 = mul(buf27[r0 + 16 * o2 + 16 * o1 + 16 * o0], t3); t4",
    "  buf31[o2 + o1 + o0] = acc0",
    "loop k17_gelu_vjp outer=[2,3,3,16]",
    "  buf32[o3 + 16 * o2 + 48 * o1 + 144 * o0] = t0 = mul(buf26[o3 + 16 * o2 + 48 * o1 + 144 * o0], buf6[o3]); t1 = mul(t0, buf23[o3 + 16 * o0]); t2 = add(buf26[o3 + 16 * o2 + 48 * o1 + 144 * o0], t1); t3 = gt(buf20[o3 + 16 * o0], 0:f32); t4 = div(buf22[o0], 16:f32); t5 = add(t4, 9.999999974752427e-7:f32); t6 = div(1:f32, t5); t7 = mul(buf27[o3 + 16 * o0], t6); t8 = mul(buf31[o0], 0.0625:f32); t9 = add(t7, t8); t10 = select(t3, t9, 0:f32); t11 = select(t3, buf20[o3 + 16 * o0], 1:f32); t12 = sqrt(t11); t13 = div(0.5:f32, t12); t14 = mul(t10, t13); t15 = select(t3, t14, 0:f32); t16 = mul(t15, buf19[o3 + 16 * o2 + 48 * o1 + 144 * o0]); t17 = add(t2, t16); t18 = add(t17, t16); t19 = add(buf17[o3 + 16 * o2 + 48 * o1 + 144 * o0], buf5[o3]); t20 = mul(t19, 0.5:f32); t21 = mul(t18, t20); t22 = mul(t19, 0.7071067690849304:f32); t23 = mul(t22, t22); t24 = neg(t23); t25 = exp(t24); t26 = mul(t25, 1.128379225730896:f32); t27 = mul(t21, t26); t28 = mul(t27, 0.7071067690849304:f32); t29 = mul(t18, buf18[o3 + 16 * o2 + 48 * o1 + 144 * o0]); t30 = mul(t29, 0.5:f32); t31 = add(t28, t30); t31",
    "loop k18_reduce_sum+k15_reshape+k14_reshape outer=[16] row=[2,3,3]",
    "  acc0 = sum over row: buf26[o0 + 16 * r2 + 48 * r1 + 144 * r0]",
    "  acc1 = sum over row: t0 = mul(buf26[o0 + 16 * r2 + 48 * r1 + 144 * r0], buf24[o0 + 16 * r2 + 48 * r1 + 144 * r0]); t0",
    "  acc2 = sum over row: buf32[o0 + 16 * r2 + 48 * r1 + 144 * r0]",
    "  buf29[o0] = acc0",
    "  buf30[o0] = acc1",
    "  buf33[o0] = acc2",
    "matmul k19_matmul b=1 m=18 n=4 k=16 A=buf32+0[0,16,1] B=buf4+0[0,4,1]",
    "  buf34[n + 4 * m] = acc0",
    "matmul k20_matmul b=1 m=16 n=4 k=18 A=buf32+0[0,1,16] B=buf16+0[0,4,1]",
    "  buf35[n + 4 * m] = acc0",
    "loop k24_layer_norm_vjp+k23_layer_norm_vjp outer=[2,3,3] row=[4]",
    "  acc0 = sum over row: t0 = mul(buf34[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf2[r0]); t1 = add(buf12[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t2 = div(buf13[o2 + 3 * o1 + 9 * o0], 4:f32); t3 = sub(t1, t2); t4 = mul(t0, t3); t4",
    "  acc1 = sum over row: t0 = mul(buf34[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf2[r0]); t1 = div(buf14[o2 + 3 * o1 + 9 * o0], 4:f32); t2 = add(t1, 9.999999974752427e-7:f32); t3 = rsqrt(t2); t4 = mul(t0, t3); t5 = div(t3, t2); t6 = mul(t5, -0.5:f32); t7 = mul(acc0, t6); t8 = mul(t7, 0.25:f32); t9 = add(buf12[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t10 = div(buf13[o2 + 3 * o1 + 9 * o0], 4:f32); t11 = sub(t9, t10); t12 = mul(t8, t11); t13 = add(t4, t12); t14 = add(t13, t12); t15 = mul(t14, -1:f32); t15",
    "  row: buf39[r0 + 4 * o2 + 12 * o1 + 36 * o0] = t0 = mul(buf34[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf2[r0]); t1 = div(buf14[o2 + 3 * o1 + 9 * o0], 4:f32); t2 = add(t1, 9.999999974752427e-7:f32); t3 = rsqrt(t2); t4 = mul(t0, t3); t5 = div(t3, t2); t6 = mul(t5, -0.5:f32); t7 = mul(acc0, t6); t8 = mul(t7, 0.25:f32); t9 = add(buf12[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t10 = div(buf13[o2 + 3 * o1 + 9 * o0], 4:f32); t11 = sub(t9, t10); t12 = mul(t8, t11); t13 = add(t4, t12); t14 = add(t13, t12); t15 = mul(acc1, 0.25:f32); t16 = add(t14, t15); t16",
    "loop k25_reduce_sum+k22_layer_norm_vjp+k21_layer_norm_vjp+k11_reduce_sum outer=[4] row=[2,3,3]",
    "  acc0 = sum over row: buf11[o0 + 4 * r2 + 12 * r1 + 36 * r0]",
    "  acc1 = sum over row: buf34[o0 + 4 * r2 + 12 * r1 + 36 * r0]",
    "  acc2 = sum over row: t0 = mul(buf34[o0 + 4 * r2 + 12 * r1 + 36 * r0], buf15[o0 + 4 * r2 + 12 * r1 + 36 * r0]); t0",
    "  acc3 = sum over row: buf39[o0 + 4 * r2 + 12 * r1 + 36 * r0]",
    "  buf25[o0] = acc0",
    "  buf36[o0] = acc1",
    "  buf37[o0] = acc2",
    "  buf40[o0] = acc3",
    "loop k26_reshape outer=[4,1,7,7]",
    "  buf41[o3 + 7 * o2 + 49 * o1 + 49 * o0] = buf0[-1 * o3 - 7 * o2 + 49 * o1 + 49 * o0 + 48]",
    "loop k27_transpose outer=[4,3,3,2]",
    "  buf42[o3 + 2 * o2 + 6 * o1 + 18 * o0] = buf10[o0 + 4 * o2 + 12 * o1 + 36 * o3]",
    "conv k28_conv lhs=buf42[4,3,3,2] rhs=buf39[2,3,3,4] out=[1,7,7,4] strides=1,1 groups=1/4",
    "  buf43[o2 + 7 * o1 + 49 * o0 + 49 * o3] = acc0",
    "conv k29_conv lhs=buf39[2,3,3,4] rhs=buf41[4,1,7,7] out=[2,3,3,4] strides=1,1 groups=4/1",
    "  buf44[o3 + 4 * o2 + 12 * o1 + 36 * o0] = t0 = add(buf11[o3 + 4 * o2 + 12 * o1 + 36 * o0], acc0); t0",
  ],
};

it('caps off: 24 kernels, as printed', () => {
  const g = lower(program, undefined, UNLIMITED_CAPS).graph;
  expect(g.kernels.length).toBe(24);
  expect(printKernelGraph(g).split('\n')).toEqual(GOLDEN.off);
});

it('the CPU caps: 22 kernels, as printed', () => {
  const g = lower(program, undefined, CPU_CAPS).graph;
  expect(g.kernels.length).toBe(22);
  expect(printKernelGraph(g).split('\n')).toEqual(GOLDEN.on);
});

it('the dead-store pass drops exactly the store nothing reads', () => {
  const origins = new Map();
  const merged = mergeLoopKernels(fuse(runPasses(program, origins), origins, CPU_CAPS), CPU_CAPS);
  const before = merged.kernels.map(printKernel).join('\n').split('\n');
  const after = dropDeadStores(merged).kernels.map(printKernel).join('\n').split('\n');
  expect(before.filter((l) => !after.includes(l))).toEqual(["  row: buf38[r0 + 4 * o2 + 12 * o1 + 36 * o0] = t0 = mul(buf34[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf2[r0]); t1 = div(buf14[o2 + 3 * o1 + 9 * o0], 4:f32); t2 = add(t1, 9.999999974752427e-7:f32); t3 = rsqrt(t2); t4 = mul(t0, t3); t5 = div(t3, t2); t6 = mul(t5, -0.5:f32); t7 = mul(acc0, t6); t8 = mul(t7, 0.25:f32); t9 = add(buf12[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t10 = div(buf13[o2 + 3 * o1 + 9 * o0], 4:f32); t11 = sub(t9, t10); t12 = mul(t8, t11); t13 = add(t4, t12); t14 = add(t13, t12); t14"]);
  expect(after.filter((l) => !before.includes(l))).toEqual([]);
});
