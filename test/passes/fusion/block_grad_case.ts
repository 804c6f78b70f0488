/** A ConvNeXt V2 block's forward + backward as a test case (backward_fusion and backward_golden tests). */
import { grad } from '../../../src/autodiff/index.js';
import { block, type BlockParams, blockSpec } from '../../../src/convnextv2/model.js';
import { traceTree } from '../../../src/ir/functional.js';
import * as ops from '../../../src/ir/ops.js';
import type { Program } from '../../../src/ir/program.js';
import { treeFlatten } from '../../../src/ir/pytree.js';
import * as random from '../../../src/ir/random.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { initFromSpec } from '../../../src/nn/init.js';

/** A block's forward + backward program and its inputs (params away from 1/0: every path live). */
export function blockGradCase(dim: number, hw: number, batch: number, seed: number): { program: Program; leaves: Tensor[] } {
  const p = initFromSpec<BlockParams>(random.key(seed), blockSpec(dim), 'f32');
  const params: BlockParams = {
    ...p,
    norm: { weight: random.normal(random.key(seed + 5), [dim], { mean: 1, std: 0.2 }), bias: random.normal(random.key(seed + 6), [dim], { std: 0.2 }) },
    grn: { gamma: random.normal(random.key(seed + 7), [1, 1, 1, 4 * dim], { std: 0.3 }), beta: random.normal(random.key(seed + 8), [1, 1, 1, 4 * dim], { std: 0.2 }) },
  };
  const x = random.normal(random.key(seed + 1), [batch, hw, hw, dim]);
  const ct = random.normal(random.key(seed + 2), [batch, hw, hw, dim]);
  const g = grad((pp: BlockParams, xx: Tensor, c: Tensor) => ops.sum(ops.mul(block(pp, xx), c)), { argnums: [0, 1] });
  const { program } = traceTree('block_grad', g, [params, x, ct]);
  return { program, leaves: treeFlatten([params, x, ct]).leaves as Tensor[] };
}

