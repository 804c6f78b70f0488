/**
 * Infinite inputs to logSumExp and the cross-entropies (issue 8, item 7). Before the fix
 * logSumExp([-inf, -inf]) and logSumExp([inf, 0]) were NaN (-inf - -inf and inf - inf in the
 * shift), where JAX gives -inf and inf; crossEntropy was NaN when any non-target logit was -inf
 * (log p[label] picked as sum(logp * oneHot) gives -inf * 0). Expected values are derived by
 * hand below; each case runs eagerly, jitted on the CPU backend, and in the float64 interpreter.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../../src/autodiff/index.js';
import { trace } from '../../src/ir/functional.js';
import { interpret } from '../../src/ir/interpreter.js';
import * as ops from '../../src/ir/ops.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { crossEntropy, softTargetCrossEntropy } from '../../src/nn/losses.js';
import { jit } from '../../src/passes/jit.js';

const noDisk = { backend: 'cpu', cacheDir: false } as const;
const inf = Infinity;

/** fn evaluated three ways on the same inputs; returns each path's flat values. */
function threeWays(fn: (...xs: Tensor[]) => Tensor, ...xs: Tensor[]): Record<string, number[]> {
  const eager = [...fn(...xs).dataSync()];
  const jitted = [...(jit(fn, noDisk)(...xs) as Tensor).dataSync()];
  const f64 = [...interpret(trace(fn, ...xs), xs, { dtype: 'f64' })[0]!.dataSync()];
  return { eager, jitted, f64 };
}

function expectAll(got: Record<string, number[]>, want: number[], tol = 1e-6): void {
  for (const [path, vals] of Object.entries(got)) {
    expect(vals.length, path).toBe(want.length);
    vals.forEach((v, i) => {
      const w = want[i]!;
      if (Number.isNaN(w) || !Number.isFinite(w)) expect(v, `${path}[${i}]`).toBe(w);
      else expect(Math.abs(v - w), `${path}[${i}] = ${v}, want ${w}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(w)));
    });
  }
}

describe('logSumExp with infinities (JAX values)', () => {
  const lse = (x: Tensor): Tensor => ops.logSumExp(x, -1);

  it.each([
    [[-inf, -inf], -inf],
    [[inf, 0], inf],
    [[inf, inf], inf],
    [[-inf, 0], 0],
    [[-inf, Math.log(2), Math.log(3)], Math.log(5)],
    [[NaN, 0], NaN],
    [[1, 2, 3], Math.log(Math.E + Math.E ** 2 + Math.E ** 3)],
    [[1000, 1000], 1000 + Math.log(2)],
  ])('logSumExp(%j) = %d', (xs, want) => {
    expectAll(threeWays(lse, ops.tensor(xs as number[])), [want]);
  });

  it('row by row over an axis, keepdims', () => {
    const x = ops.tensor([[-inf, -inf], [0, Math.log(3)], [inf, -inf]]);
    const got = threeWays((t) => ops.logSumExp(t, 1, true), x);
    expectAll(got, [-inf, Math.log(4), inf]);
    expect(ops.logSumExp(x, 1, true).shape).toEqual([3, 1]);
  });

  it('its gradient is softmax, 0 at -inf entries', () => {
    const g = grad((x: Tensor) => ops.logSumExp(x))(ops.tensor([-inf, 0, Math.log(3)]));
    expectAll({ eager: [...g.dataSync()] }, [0, 0.25, 0.75]);
  });
});

describe('cross-entropy with -inf logits', () => {
  // logits (-inf, 0, 1): p = (0, 1/(1+e), e/(1+e))
  const logits = ops.tensor([[-inf, 0, 1]]);
  const e = Math.E;

  it('is finite when a non-target logit is -inf', () => {
    const got = threeWays((l, y) => crossEntropy(l, y, { reduction: 'none' }), logits, ops.tensor([2], { dtype: 'i32' }));
    expectAll(got, [Math.log(1 + 1 / e)]);
    const got1 = threeWays((l, y) => crossEntropy(l, y, { reduction: 'none' }), logits, ops.tensor([1], { dtype: 'i32' }));
    expectAll(got1, [Math.log(1 + e)]);
  });

  it('is +inf when the target logit itself is -inf (probability 0), never NaN', () => {
    expectAll(threeWays((l, y) => crossEntropy(l, y), logits, ops.tensor([0], { dtype: 'i32' })), [inf]);
  });

  it('has the finite gradient softmax - onehot', () => {
    const g = grad((l: Tensor) => crossEntropy(l, ops.tensor([2], { dtype: 'i32' })))(logits);
    expectAll({ eager: [...g.dataSync()] }, [0, 1 / (1 + e), e / (1 + e) - 1]);
  });

  it('label smoothing with a -inf logit is +inf, as PyTorch (the mean of log p includes -inf)', () => {
    expectAll(threeWays((l, y) => crossEntropy(l, y, { labelSmoothing: 0.1 }), logits, ops.tensor([2], { dtype: 'i32' })), [inf]);
  });

  it('soft targets are finite where a zero-target logit is -inf', () => {
    const t = ops.tensor([[0, 0.5, 0.5]]);
    // -(0.5 log(1/(1+e)) + 0.5 log(e/(1+e))) = log(1+e) - 0.5
    expectAll(threeWays((l, tt) => softTargetCrossEntropy(l, tt, { reduction: 'none' }), logits, t), [Math.log(1 + e) - 0.5]);
  });
});
