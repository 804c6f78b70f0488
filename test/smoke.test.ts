import { it, expect } from 'vitest';
import * as ops from '../src/ir/ops.js';
import { traceFlat } from '../src/ir/trace.js';
it('smoke', () => {
  const x = ops.tensor([[1, 2, 3], [4, 5, 6]]);
  const y = x.mul(2).add(ops.tensor([1, 1, 1])).sum(1);
  expect(y.tolist()).toEqual([15, 33]);
  const t = traceFlat((a) => [a.exp().sum(0, true).transpose().slice([0,0],[2,1]).pad([[1,0],[0,2]])], [{ shape: [2, 3], dtype: 'f32' }]);
  console.log(t.program.toString());
  console.log(x.max(0).tolist(), x.argmax(1).tolist(), x.flip(1).tolist(), x.takeAlongAxis(ops.tensor([[2,0],[1,1]],{dtype:'i32'}),1).tolist());
});
