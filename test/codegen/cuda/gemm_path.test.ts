/**
 * The per-kernel GEMM choice on CUDA (kernels.ts gemmPath): a matmul with bf16/f16 operands (or
 * f32 with tf32) takes the tensor-core GEMM, unless it computes prologue statistics or reducing
 * epilogues, which only the shared SIMT GEMM implements; then it falls back to that one. With
 * it the CUDA device declares prologueStats. Checked on the printed CUDA of a ConvNeXt V2 block
 * in bf16 mixed precision and in tf32 (the nvcc corpus compiles the same programs with nvcc).
 */
import { describe, expect, it } from 'vitest';
import { SM90_PROPERTIES, cudaCaps, cudaTarget } from '../../../src/codegen/cuda/device.js';
import { emitGraphKernels } from '../../../src/codegen/cuda/executable.js';
import { gemmPath } from '../../../src/codegen/cuda/kernels.js';
import { isExprOperand, type MatmulKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { matmulSpec } from '../../../src/codegen/lower/gemm_spec.js';
import { block, type BlockParams, blockSpec } from '../../../src/convnextv2/model.js';
import { traceTree } from '../../../src/ir/functional.js';
import * as random from '../../../src/ir/random.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { initFromSpec } from '../../../src/nn/init.js';
import { mixedPrecision } from '../../../src/passes/mixed_precision.js';
import { lower } from '../../../src/passes/pipeline.js';

const caps = cudaCaps(SM90_PROPERTIES);

function blockProgram() {
  const p = initFromSpec<BlockParams>(random.key(3), blockSpec(16), 'f32');
  const x = random.normal(random.key(4), [2, 6, 6, 16]);
  return traceTree('block', (pp: BlockParams, xx: Tensor) => block(pp, xx), [p, x]).program;
}

describe('CUDA GEMM path per kernel', () => {
  it('the CUDA device declares prologue statistics (and not reducing epilogues)', () => {
    expect([caps.prologueStats, caps.reducingEpilogues ?? false]).toEqual([true, false]);
  });

  for (const mode of ['bf16', 'tf32'] as const) {
    it(`${mode}: the matmul with LayerNorm statistics runs on the SIMT GEMM, the other on tensor cores`, () => {
      const program = mode === 'bf16' ? mixedPrecision(blockProgram(), 'bf16') : blockProgram();
      const target = cudaTarget(caps, mode === 'tf32');
      const low = lower(program, undefined, caps);
      const matmuls = low.graph.kernels.filter((k): k is MatmulKernel => k.kind === 'matmul');
      const withStats = matmuls.filter((k) => isExprOperand(k.a) && k.a.stats);
      const plain = matmuls.filter((k) => !(isExprOperand(k.a) && k.a.stats));
      expect(withStats.length).toBe(1); // pwconv1, LayerNorm's mean and variance in its prologue
      expect(plain.length).toBe(1); // pwconv2
      expect(gemmPath(matmulSpec(withStats[0]!), target)).toBe('simt');
      expect(gemmPath(matmulSpec(plain[0]!), target)).toBe('mma');
      const code = emitGraphKernels(low.graph, low.plan, target);
      const src = (k: MatmulKernel): string => code[low.graph.kernels.indexOf(k)]!.source;
      // before the fallback the tensor-core emitter refused this kernel with a named error
      expect(src(withStats[0]!)).not.toContain('ng_mma_');
      expect(src(withStats[0]!)).toMatch(/__shared__ float ng_St1\[/);
      expect(src(plain[0]!)).toContain(mode === 'bf16' ? 'ng_mma_bf16(' : 'ng_mma_tf32(');
    });
  }

  it('an f32 matmul without tf32 always takes the SIMT GEMM', () => {
    const low = lower(blockProgram(), undefined, caps);
    for (const k of low.graph.kernels) if (k.kind === 'matmul') expect(gemmPath(matmulSpec(k), cudaTarget(caps, false))).toBe('simt');
  });
});
