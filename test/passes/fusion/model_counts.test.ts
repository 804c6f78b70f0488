/**
 * Whole-model kernel counts and bytes moved with prologue statistics and reducing epilogues
 * (the CPU's caps) against the same programs with the capabilities off: ConvNeXt V2 atto
 * inference at 224x224 (the `nexgrad ir --model atto` program) and the atto fine-tuning step.
 * The numbers are exact: a fusion change that adds or removes kernels shows up here.
 */
import { describe, expect, it } from 'vitest';
import { CPU_CAPS, type DeviceCaps, UNLIMITED_CAPS } from '../../../src/codegen/kernel/device.js';
import { graphCost } from '../../../src/codegen/kernel/cost.js';
import { workload } from '../../../src/convnextv2/cli/workloads.js';
import { config } from '../../../src/convnextv2/config.js';
import { trace } from '../../../src/ir/functional.js';
import { lower } from '../../../src/passes/pipeline.js';

function measure(mode: 'inference' | 'finetune', imageSize: number, caps: DeviceCaps, batchSize = 1) {
  const w = workload(config('atto'), { mode, imageSize, batchSize, channels: 3, classes: 1000 });
  const g = lower(trace(w.fn, ...w.args()), undefined, caps).graph;
  const c = graphCost(g);
  return { kernels: g.kernels.length, bytes: c.bytesRead + c.bytesWritten };
}

describe('ConvNeXt V2 atto', () => {
  it('inference 224x224: 83 kernels unfused, 59 fused (2 fewer per block, 12 blocks); 63.3 MB -> 51.2 MB moved', () => {
    const off = measure('inference', 224, UNLIMITED_CAPS);
    const on = measure('inference', 224, CPU_CAPS);
    expect(off).toEqual({ kernels: 83, bytes: 63295176 });
    expect(on).toEqual({ kernels: 59, bytes: 51225184 });
  });

  // batch 1: one image is one reduction group, and the backward's reducing epilogue (which
  // reads another buffer) needs two, so only pwconv1's extra outputs apply (the GELU kernel goes:
  // one kernel fewer in each of the 12 blocks); the dead-store pass drops, either way, a
  // LayerNorm-backward intermediate the merged kernel recomputes
  it('the fine-tuning step (64x64, batch 1): 390 kernels unfused, 378 fused', () => {
    const off = measure('finetune', 64, UNLIMITED_CAPS);
    const on = measure('finetune', 64, CPU_CAPS);
    expect(off).toEqual({ kernels: 390, bytes: 221302872 });
    expect(on).toEqual({ kernels: 378, bytes: 220524632 });
  }, 120000);

  // batch 2: per block, pwconv1 stores the GELU output and its erf term itself (the GELU kernel
  // goes) and the GEMM dY = dOut W2^T accumulates GRN backward's per-image sum (its kernel
  // goes): 2 kernels fewer in each of the 12 blocks
  it('the fine-tuning step (64x64, batch 2): 390 kernels unfused, 365 fused', () => {
    const off = measure('finetune', 64, UNLIMITED_CAPS, 2);
    const on = measure('finetune', 64, CPU_CAPS, 2);
    expect(off).toEqual({ kernels: 390, bytes: 246905032 });
    expect(on).toEqual({ kernels: 365, bytes: 243827936 });
  }, 120000);
});
