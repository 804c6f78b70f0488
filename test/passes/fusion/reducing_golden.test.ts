/**
 * Golden printed kernel graphs of one small ConvNeXt V2 block forward (dim 4, 3x3, batch 2)
 * before and after each rule: capabilities off (6 kernels), prologue statistics only (5: the
 * LayerNorm statistics kernel folded into pwconv1's prologue), reducing epilogues only (5: GRN's
 * sum of squares accumulated by pwconv1, GRN's norm recomputed from it where read), both (4).
 * A fusion change shows up here as a diff of these listings, updated on purpose.
 */
import { expect, it } from 'vitest';
import { CPU_CAPS, type DeviceCaps, UNLIMITED_CAPS } from '../../../src/codegen/kernel/device.js';
import { printKernelGraph } from '../../../src/codegen/kernel/kernel_graph.js';
import { block, type BlockParams, blockSpec } from '../../../src/convnextv2/model.js';
import { traceTree } from '../../../src/ir/functional.js';
import * as random from '../../../src/ir/random.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { initFromSpec } from '../../../src/nn/init.js';
import { lower } from '../../../src/passes/pipeline.js';

const p = initFromSpec<BlockParams>(random.key(0), blockSpec(4), 'f32');
const x = random.normal(random.key(1), [2, 3, 3, 4]);
const { program } = traceTree('block', (pp: BlockParams, xx: Tensor) => block(pp, xx), [p, x]);
const listing = (caps: DeviceCaps): string[] => printKernelGraph(lower(program, undefined, caps).graph).split('\n');

const GOLDEN: Record<string, string[]> = {
  off: [
      'buffers: buf0:f32[196] input, buf1:f32[4] input, buf2:f32[4] input, buf3:f32[4] input, buf4:f32[64] input, buf5:f32[16] input, buf6:f32[16] input, buf7:f32[16] input, buf8:f32[64] input, buf9:f32[4] input, buf10:f32[72] input, buf11:f32[72] temp, buf12:f32[18] temp, buf13:f32[18] temp, buf14:f32[288] temp, buf15:f32[32] temp, buf16:f32[2] temp, buf17:f32[72] output',
      'conv k0_conv lhs=buf10[2,3,3,4] rhs=buf0[4,1,7,7] out=[2,3,3,4] strides=1,1 groups=4/1',
      '  buf11[o3 + 4 * o2 + 12 * o1 + 36 * o0] = acc0',
      'loop k2_layer_norm+k1_layer_norm outer=[2,3,3] row=[4]',
      '  acc0 = sum over row: t0 = add(buf11[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t0',
      '  acc1 = sum over row: t0 = add(buf11[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t1 = div(acc0, 4:f32); t2 = sub(t0, t1); t3 = mul(t2, t2); t3',
      '  buf12[o2 + 3 * o1 + 9 * o0] = acc0',
      '  buf13[o2 + 3 * o1 + 9 * o0] = acc1',
      'matmul k3_gelu b=1 m=18 n=16 k=4 A=(t0 = add(buf11[k + 4 * m], buf1[k]); t1 = div(buf12[m], 4:f32); t2 = sub(t0, t1); t3 = div(buf13[m], 4:f32); t4 = add(t3, 9.999999974752427e-7:f32); t5 = rsqrt(t4); t6 = mul(t2, t5); t7 = mul(t6, buf2[k]); t8 = add(t7, buf3[k]); t8) B=buf4+0[0,1,4]',
      '  buf14[n + 16 * m] = t0 = add(acc0, buf5[n]); t1 = mul(t0, 0.5:f32); t2 = mul(t0, 0.7071067690849304:f32); t3 = erf(t2); t4 = add(t3, 1:f32); t5 = mul(t1, t4); t5',
      'loop k4_grn outer=[2,16] row=[3,3]',
      '  acc0 = sum over row: t0 = mul(buf14[o1 + 16 * r1 + 48 * r0 + 144 * o0], buf14[o1 + 16 * r1 + 48 * r0 + 144 * o0]); t0',
      '  buf15[o1 + 16 * o0] = t0 = gt(acc0, 0:f32); t1 = select(t0, acc0, 1:f32); t2 = sqrt(t1); t3 = select(t0, t2, 0:f32); t3',
      'loop k5_grn outer=[2,1,1] row=[16]',
      '  acc0 = sum over row: buf15[r0 + 16 * o2 + 16 * o1 + 16 * o0]',
      '  buf16[o2 + o1 + o0] = acc0',
      'matmul k6_matmul b=1 m=18 n=4 k=16 A=(t0 = div(buf16[((((m) / 3)) / 3)], 16:f32); t1 = add(t0, 9.999999974752427e-7:f32); t2 = div(buf15[k + 16 * ((((m) / 3)) / 3)], t1); t3 = mul(buf14[k + 16 * m], t2); t4 = mul(buf6[k], t3); t5 = add(t4, buf7[k]); t6 = add(t5, buf14[k + 16 * m]); t6) B=buf8+0[0,1,16]',
      '  buf17[n + 4 * m] = t0 = add(acc0, buf9[n]); t1 = add(buf10[n + 4 * m], t0); t1',
  ],
  stats: [
      'buffers: buf0:f32[196] input, buf1:f32[4] input, buf2:f32[4] input, buf3:f32[4] input, buf4:f32[64] input, buf5:f32[16] input, buf6:f32[16] input, buf7:f32[16] input, buf8:f32[64] input, buf9:f32[4] input, buf10:f32[72] input, buf11:f32[72] temp, buf12:f32[288] temp, buf13:f32[32] temp, buf14:f32[2] temp, buf15:f32[72] output',
      'conv k0_conv lhs=buf10[2,3,3,4] rhs=buf0[4,1,7,7] out=[2,3,3,4] strides=1,1 groups=4/1',
      '  buf11[o3 + 4 * o2 + 12 * o1 + 36 * o0] = acc0',
      'matmul k1_gelu b=1 m=18 n=16 k=4 A=(t0 = add(buf11[k + 4 * m], buf1[k]); t1 = div(acc0, 4:f32); t2 = sub(t0, t1); t3 = div(acc1, 4:f32); t4 = add(t3, 9.999999974752427e-7:f32); t5 = rsqrt(t4); t6 = mul(t2, t5); t7 = mul(t6, buf2[k]); t8 = add(t7, buf3[k]); t8) B=buf4+0[0,1,4]',
      '  A row stat acc0 = sum over row [4]: t0 = add(buf11[r0 + 4 * m], buf1[r0]); t0',
      '  A row stat acc1 = sum over row [4]: t0 = add(buf11[r0 + 4 * m], buf1[r0]); t1 = div(acc0, 4:f32); t2 = sub(t0, t1); t3 = mul(t2, t2); t3',
      '  buf12[n + 16 * m] = t0 = add(acc0, buf5[n]); t1 = mul(t0, 0.5:f32); t2 = mul(t0, 0.7071067690849304:f32); t3 = erf(t2); t4 = add(t3, 1:f32); t5 = mul(t1, t4); t5',
      'loop k2_grn outer=[2,16] row=[3,3]',
      '  acc0 = sum over row: t0 = mul(buf12[o1 + 16 * r1 + 48 * r0 + 144 * o0], buf12[o1 + 16 * r1 + 48 * r0 + 144 * o0]); t0',
      '  buf13[o1 + 16 * o0] = t0 = gt(acc0, 0:f32); t1 = select(t0, acc0, 1:f32); t2 = sqrt(t1); t3 = select(t0, t2, 0:f32); t3',
      'loop k3_grn outer=[2,1,1] row=[16]',
      '  acc0 = sum over row: buf13[r0 + 16 * o2 + 16 * o1 + 16 * o0]',
      '  buf14[o2 + o1 + o0] = acc0',
      'matmul k4_matmul b=1 m=18 n=4 k=16 A=(t0 = div(buf14[((((m) / 3)) / 3)], 16:f32); t1 = add(t0, 9.999999974752427e-7:f32); t2 = div(buf13[k + 16 * ((((m) / 3)) / 3)], t1); t3 = mul(buf12[k + 16 * m], t2); t4 = mul(buf6[k], t3); t5 = add(t4, buf7[k]); t6 = add(t5, buf12[k + 16 * m]); t6) B=buf8+0[0,1,16]',
      '  buf15[n + 4 * m] = t0 = add(acc0, buf9[n]); t1 = add(buf10[n + 4 * m], t0); t1',
  ],
  reducing: [
      'buffers: buf0:f32[196] input, buf1:f32[4] input, buf2:f32[4] input, buf3:f32[4] input, buf4:f32[64] input, buf5:f32[16] input, buf6:f32[16] input, buf7:f32[16] input, buf8:f32[64] input, buf9:f32[4] input, buf10:f32[72] input, buf11:f32[72] temp, buf12:f32[18] temp, buf13:f32[18] temp, buf14:f32[288] temp, buf15:f32[32] temp, buf16:f32[2] temp, buf17:f32[72] output',
      'conv k0_conv lhs=buf10[2,3,3,4] rhs=buf0[4,1,7,7] out=[2,3,3,4] strides=1,1 groups=4/1',
      '  buf11[o3 + 4 * o2 + 12 * o1 + 36 * o0] = acc0',
      'loop k2_layer_norm+k1_layer_norm outer=[2,3,3] row=[4]',
      '  acc0 = sum over row: t0 = add(buf11[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t0',
      '  acc1 = sum over row: t0 = add(buf11[r0 + 4 * o2 + 12 * o1 + 36 * o0], buf1[r0]); t1 = div(acc0, 4:f32); t2 = sub(t0, t1); t3 = mul(t2, t2); t3',
      '  buf12[o2 + 3 * o1 + 9 * o0] = acc0',
      '  buf13[o2 + 3 * o1 + 9 * o0] = acc1',
      'matmul k3_gelu b=1 m=18 n=16 k=4 rows/group=9 A=(t0 = add(buf11[k + 4 * m], buf1[k]); t1 = div(buf12[m], 4:f32); t2 = sub(t0, t1); t3 = div(buf13[m], 4:f32); t4 = add(t3, 9.999999974752427e-7:f32); t5 = rsqrt(t4); t6 = mul(t2, t5); t7 = mul(t6, buf2[k]); t8 = add(t7, buf3[k]); t8) B=buf4+0[0,1,4]',
      '  buf14[n + 16 * m] = t0 = add(acc0, buf5[n]); t1 = mul(t0, 0.5:f32); t2 = mul(t0, 0.7071067690849304:f32); t3 = erf(t2); t4 = add(t3, 1:f32); t5 = mul(t1, t4); t5',
      '  buf15[n + 16 * ((((m) / 3)) / 3)] += (from 0) t0 = add(acc0, buf5[n]); t1 = mul(t0, 0.5:f32); t2 = mul(t0, 0.7071067690849304:f32); t3 = erf(t2); t4 = add(t3, 1:f32); t5 = mul(t1, t4); t6 = mul(t5, t5); t6',
      'loop k4_grn outer=[2,1,1] row=[16]',
      '  acc0 = sum over row: t0 = gt(buf15[r0 + 16 * o2 + 16 * o1 + 16 * o0], 0:f32); t1 = select(t0, buf15[r0 + 16 * o2 + 16 * o1 + 16 * o0], 1:f32); t2 = sqrt(t1); t3 = select(t0, t2, 0:f32); t3',
      '  buf16[o2 + o1 + o0] = acc0',
      'matmul k5_matmul b=1 m=18 n=4 k=16 A=(t0 = gt(buf15[k + 16 * ((((m) / 3)) / 3)], 0:f32); t1 = select(t0, buf15[k + 16 * ((((m) / 3)) / 3)], 1:f32); t2 = sqrt(t1); t3 = select(t0, t2, 0:f32); t4 = div(buf16[((((m) / 3)) / 3)], 16:f32); t5 = add(t4, 9.999999974752427e-7:f32); t6 = div(t3, t5); t7 = mul(buf14[k + 16 * m], t6); t8 = mul(buf6[k], t7); t9 = add(t8, buf7[k]); t10 = add(t9, buf14[k + 16 * m]); t10) B=buf8+0[0,1,16]',
      '  buf17[n + 4 * m] = t0 = add(acc0, buf9[n]); t1 = add(buf10[n + 4 * m], t0); t1',
  ],
  both: [
      'buffers: buf0:f32[196] input, buf1:f32[4] input, buf2:f32[4] input, buf3:f32[4] input, buf4:f32[64] input, buf5:f32[16] input, buf6:f32[16] input, buf7:f32[16] input, buf8:f32[64] input, buf9:f32[4] input, buf10:f32[72] input, buf11:f32[72] temp, buf12:f32[288] temp, buf13:f32[32] temp, buf14:f32[2] temp, buf15:f32[72] output',
      'conv k0_conv lhs=buf10[2,3,3,4] rhs=buf0[4,1,7,7] out=[2,3,3,4] strides=1,1 groups=4/1',
      '  buf11[o3 + 4 * o2 + 12 * o1 + 36 * o0] = acc0',
      'matmul k1_gelu b=1 m=18 n=16 k=4 rows/group=9 A=(t0 = add(buf11[k + 4 * m], buf1[k]); t1 = div(acc0, 4:f32); t2 = sub(t0, t1); t3 = div(acc1, 4:f32); t4 = add(t3, 9.999999974752427e-7:f32); t5 = rsqrt(t4); t6 = mul(t2, t5); t7 = mul(t6, buf2[k]); t8 = add(t7, buf3[k]); t8) B=buf4+0[0,1,4]',
      '  A row stat acc0 = sum over row [4]: t0 = add(buf11[r0 + 4 * m], buf1[r0]); t0',
      '  A row stat acc1 = sum over row [4]: t0 = add(buf11[r0 + 4 * m], buf1[r0]); t1 = div(acc0, 4:f32); t2 = sub(t0, t1); t3 = mul(t2, t2); t3',
      '  buf12[n + 16 * m] = t0 = add(acc0, buf5[n]); t1 = mul(t0, 0.5:f32); t2 = mul(t0, 0.7071067690849304:f32); t3 = erf(t2); t4 = add(t3, 1:f32); t5 = mul(t1, t4); t5',
      '  buf13[n + 16 * ((((m) / 3)) / 3)] += (from 0) t0 = add(acc0, buf5[n]); t1 = mul(t0, 0.5:f32); t2 = mul(t0, 0.7071067690849304:f32); t3 = erf(t2); t4 = add(t3, 1:f32); t5 = mul(t1, t4); t6 = mul(t5, t5); t6',
      'loop k2_grn outer=[2,1,1] row=[16]',
      '  acc0 = sum over row: t0 = gt(buf13[r0 + 16 * o2 + 16 * o1 + 16 * o0], 0:f32); t1 = select(t0, buf13[r0 + 16 * o2 + 16 * o1 + 16 * o0], 1:f32); t2 = sqrt(t1); t3 = select(t0, t2, 0:f32); t3',
      '  buf14[o2 + o1 + o0] = acc0',
      'matmul k3_matmul b=1 m=18 n=4 k=16 A=(t0 = gt(buf13[k + 16 * ((((m) / 3)) / 3)], 0:f32); t1 = select(t0, buf13[k + 16 * ((((m) / 3)) / 3)], 1:f32); t2 = sqrt(t1); t3 = select(t0, t2, 0:f32); t4 = div(buf14[((((m) / 3)) / 3)], 16:f32); t5 = add(t4, 9.999999974752427e-7:f32); t6 = div(t3, t5); t7 = mul(buf12[k + 16 * m], t6); t8 = mul(buf6[k], t7); t9 = add(t8, buf7[k]); t10 = add(t9, buf12[k + 16 * m]); t10) B=buf8+0[0,1,16]',
      '  buf15[n + 4 * m] = t0 = add(acc0, buf9[n]); t1 = add(buf10[n + 4 * m], t0); t1',
  ],
};

const CAPS: Record<string, DeviceCaps> = {
  off: UNLIMITED_CAPS,
  stats: { ...UNLIMITED_CAPS, prologueStats: true },
  reducing: { ...UNLIMITED_CAPS, reducingEpilogues: true },
  both: CPU_CAPS,
};

for (const name of Object.keys(GOLDEN)) {
  it(`block forward, ${name}`, () => {
    expect(listing(CAPS[name]!)).toEqual(GOLDEN[name]);
  });
}
