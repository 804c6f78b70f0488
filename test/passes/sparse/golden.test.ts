/**
 * Golden printed programs of the masked sparse rewrite on one masked ConvNeXt V2 block (before
 * and after), its numerical equivalence, and the cases where it must not fire: a mask passed in
 * by the user (no static visible count) runs dense and still computes the same values.
 * UPDATE_GOLDEN=1 rewrites the golden files.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fcmae } from '../../../src/convnextv2/index.js';
import { block, type BlockParams, blockSpec } from '../../../src/convnextv2/model.js';
import { region, trace } from '../../../src/ir/functional.js';
import { interpret } from '../../../src/ir/interpreter.js';
import * as ops from '../../../src/ir/ops.js';
import { treeLeaves } from '../../../src/ir/pytree.js';
import * as random from '../../../src/ir/random.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { initFromSpec } from '../../../src/nn/init.js';
import { jit } from '../../../src/passes/jit.js';
import { sparsifyMasked } from '../../../src/passes/sparse/index.js';
import { describeEachBackend, tolerance } from '../../helpers/backends.js';
import { expectClose } from './helpers.js';

const DIR = fileURLToPath(new URL('./golden/', import.meta.url));
const N = 1;
const SIDE = 2;
const S = 4; // 4 cells per patch: the cost rule picks the halo route
const C = 4;
const LEN_KEEP = 2;

function golden(name: string, text: string): void {
  const file = `${DIR}${name}`;
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, `${text}\n`);
  expect(text).toBe(readFileSync(file, 'utf8').trimEnd());
}

const params = (): BlockParams => {
  const p = initFromSpec<BlockParams>(random.key(0), blockSpec(C), 'f32');
  // GRN away from the identity
  return { ...p, grn: { gamma: random.normal(random.key(5), [1, 1, 1, 4 * C]), beta: random.normal(random.key(6), [1, 1, 1, 4 * C]) } };
};

/** One masked block as the FCMAE encoder runs it: masked input, masked block, masked output. */
function maskedBlock(p: BlockParams, x: Tensor, mask: Tensor): Tensor {
  const up = fcmae.upsampleMask(mask, S);
  const keep = ops.sub(1, ops.reshape(up, [...up.shape, 1]));
  return ops.mul(block(p, ops.mul(x, keep), { keep }), keep);
}

const withRegionMask = (p: BlockParams, x: Tensor, scores: Tensor) =>
  maskedBlock(p, x, fcmae.patchMask(scores, LEN_KEEP, { imgSize: SIDE * 16, patch: 16 }));

describe('the masked sparse rule on one masked block', () => {
  const p = params();
  const x = random.normal(random.key(1), [N, SIDE * S, SIDE * S, C]);
  const scores = ops.tensor([[0.3, -1, 2, 0.5]]); // keeps patches 1 and 0

  it('golden programs before and after; the rewrite computes the same block', () => {
    const before = trace(withRegionMask, p, x, scores);
    const after = sparsifyMasked(before);
    golden('masked_block.before.txt', before.toString());
    golden('masked_block.after.txt', after.toString());
    const ins = [...treeLeaves(p), x, scores];
    expectClose(interpret(after, ins, { dtype: 'f64' }), interpret(before, ins, { dtype: 'f64' }), 1e-12, 'masked block');
  });

  it('does not fire for a mask the user passes in, nor for a region named otherwise', () => {
    const user = trace(maskedBlock, p, x, ops.tensor([[0, 0, 1, 1]]));
    expect(sparsifyMasked(user)).toBe(user);
    // a patch_mask region whose attrs do not fit its output is not trusted
    const liar = region('fcmae.patch_mask', (s: Tensor) => ops.cast(ops.greater(s, 0), 'f32'), { n: 1, L: 9, lenKeep: LEN_KEEP });
    const wrong = trace((pp: BlockParams, xx: Tensor, s: Tensor) => maskedBlock(pp, xx, liar(s)), p, x, scores);
    expect(sparsifyMasked(wrong)).toBe(wrong);
    // while the real region fires
    const right = trace(withRegionMask, p, x, scores);
    expect(sparsifyMasked(right)).not.toBe(right);
  });
});

describeEachBackend('a user-supplied mask keeps the dense path', (backend) => {
  it('jit of the block with the mask as an argument equals the interpreter', async () => {
    const p = params();
    const x = random.normal(random.key(2), [N, SIDE * S, SIDE * S, C]);
    const mask = ops.tensor([[1, 0, 0, 1]]);
    const f = jit(maskedBlock, { backend: backend as 'cpu' });
    const low = f.lower(p, x, mask);
    expect(low.program.toString()).not.toContain('gather');
    const got = await f(p, x, mask).data();
    const want = interpret(trace(maskedBlock, p, x, mask), [...treeLeaves(p), x, mask], { dtype: 'f64' })[0]!;
    expectClose([ops.fromHost('f32', want.shape, got as Float32Array)], [ops.cast(want, 'f32')], tolerance(backend, 1e-5), 'user mask');
  });
});
