// Eager operations run compiled on the CPU backend on every entry point that can compile, not
// only through src/index.ts: the CLI and the nexgrad/train entry import deep modules, and used to
// run every eager operation (parameter init included) on the reference interpreter -- 4 s of a
// 4.7 s `nexgrad ir --mode finetune`, and with the interpreter's per-op rounding instead of the
// fused numerics jit uses. This file imports no src/index.ts.
import { describe, expect, it } from 'vitest';
import { jitFinetuneStep } from '../../src/convnextv2/train/index.js';
import { jit } from '../../src/passes/jit.js';
import * as ops from '../../src/ir/ops.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { interpret } from '../../src/ir/interpreter.js';
import { region, trace } from '../../src/ir/functional.js';

describe('the compiled eager executor is installed by the jit module', () => {
  it('an eager region runs fused (equal to jit), not op by op on the interpreter', () => {
    expect(typeof jitFinetuneStep).toBe('function');
    // (a * a) - c with a = 1 + 2^-12: the product needs 2^-24, below f32's precision at 1; fused
    // it survives the subtraction, rounded after each op it is lost
    const a = ops.tensor([1 + 2 ** -12, 3]);
    const c = ops.tensor([1 + 2 ** -11, 9]);
    const f = region('fma_like', (x: Tensor, y: Tensor) => ops.sub(ops.mul(x, x), y));
    const eager = Array.from(f(a, c).dataSync());
    const jitted = Array.from(jit(f, { cacheDir: false })(a, c).dataSync());
    const interpreted = Array.from(interpret(trace(f, a, c), [a, c])[0]!.dataSync());
    expect(jitted).toEqual([2 ** -24, 0]);
    expect(eager).toEqual(jitted);
    // the interpreter rounds every intermediate: a different answer, so the check above can fail
    expect(interpreted).toEqual([0, 0]);
  });
});
