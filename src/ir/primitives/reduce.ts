/** Reductions: sum, max, min over axes; argmax; argsort. */
import { isFloat } from '../dtype.js';
import { OpError } from '../errors.js';
import type { HostArray } from '../host.js';
import * as ops from '../ops.js';
import type { ImplContext, PrimDef, PrimParams } from '../primitive.js';
import type { AbstractValue } from '../program.js';
import { fmtShape, stridesOf } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { bind1 } from '../trace.js';
import { alloc, avalStr, expectArity, expectAxes, finish, forEachStrided } from './util.js';

type AxesParams = PrimParams['reduce_sum'];

function reducedShape(op: string, inputs: AbstractValue[], axes: readonly number[]): AbstractValue {
  expectArity(op, inputs, 1);
  const x = inputs[0]!;
  expectAxes(op, axes, x.shape.length, x.shape);
  return { shape: x.shape.filter((_, i) => !axes.includes(i)), dtype: x.dtype };
}

/** Strides that map an input index to its output offset (0 along reduced axes). */
function outStridesFor(shape: readonly number[], axes: readonly number[]): number[] {
  const outShape = shape.filter((_, i) => !axes.includes(i));
  const os = stridesOf(outShape);
  let k = 0;
  return shape.map((_, i) => (axes.includes(i) ? 0 : os[k++]!));
}

function reduceImpl(x: HostArray, axes: readonly number[], init: number, f: (acc: number, v: number) => number, ctx: ImplContext): HostArray {
  const outShape = x.shape.filter((_, i) => !axes.includes(i));
  const out = alloc(x.dtype, outShape, ctx);
  // accumulate in float64 (or exact integers), then store
  const acc = new Float64Array(out.size).fill(init);
  const xd = x.data;
  forEachStrided(x.shape, outStridesFor(x.shape, axes), 0, (i, off) => {
    acc[off] = f(acc[off]!, xd[i]!);
  });
  const od = out.data;
  const intType = x.dtype === 'i32' ? (v: number) => v | 0 : x.dtype === 'u32' ? (v: number) => v >>> 0 : (v: number) => v;
  for (let i = 0; i < od.length; i++) od[i] = intType(acc[i]!);
  return finish(out);
}

function broadcastInDim(r: Tensor, shape: readonly number[], dims: number[]): Tensor {
  return bind1('broadcast_in_dim', [r], { shape: [...shape], dims });
}

const reduce_sum: PrimDef<AxesParams> = {
  lowering: 'reduce',
  shape: (inputs, { axes }) => {
    const out = reducedShape('reduce_sum', inputs, axes);
    if (out.dtype === 'bool') throw new OpError('reduce_sum', `cannot sum bool ${avalStr(inputs[0]!)}; cast it first`);
    return [out];
  },
  impl: ([x], { axes }, ctx) => [reduceImpl(x!, axes, 0, (a, v) => a + v, ctx)],
  jvp: (_x, [t], { axes }) => [t ? ops.sum(t, axes) : null],
  vjp: ([x], _y, [ct], { axes }) => [ct && isFloat(x!.dtype) ? broadcastInDim(ct, x!.shape, x!.shape.map((_, i) => i).filter((i) => !axes.includes(i))) : null],
};

/** Weights of each input element in a max/min: 1/count at the extremal positions. */
function extremumWeights(x: Tensor, y: Tensor, axes: readonly number[]): Tensor {
  const dims = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  const hit = ops.cast(ops.equal(x, broadcastInDim(y, x.shape, dims)), x.dtype);
  const count = ops.sum(hit, axes);
  return ops.div(hit, broadcastInDim(count, x.shape, dims));
}

function extremumDef(name: 'reduce_max' | 'reduce_min', init: number, f: (a: number, v: number) => number): PrimDef<AxesParams> {
  return {
    lowering: 'reduce',
    shape: (inputs, { axes }) => [reducedShape(name, inputs, axes)],
    impl: ([x], { axes }, ctx) => [reduceImpl(x!, axes, init, f, ctx)],
    jvp: ([x], [t], { axes }, [y]) => [t ? ops.sum(ops.mul(t, extremumWeights(x!, y!, axes)), axes) : null],
    vjp: ([x], [y], [ct], { axes }) => {
      if (!ct || !isFloat(x!.dtype)) return [null];
      const dims = x!.shape.map((_, i) => i).filter((i) => !axes.includes(i));
      return [ops.mul(broadcastInDim(ct, x!.shape, dims), extremumWeights(x!, y!, axes))];
    },
  };
}

const argmax: PrimDef<PrimParams['argmax']> = {
  lowering: 'argmax',
  shape: (inputs, { axis }) => {
    const out = reducedShape('argmax', inputs, [axis]);
    if (inputs[0]!.shape[axis] === 0) throw new OpError('argmax', `axis ${axis} of ${fmtShape(inputs[0]!.shape)} is empty`);
    return [{ shape: out.shape, dtype: 'i32' }];
  },
  impl: ([x], { axis }, ctx) => {
    const shape = x!.shape;
    const outShape = shape.filter((_, i) => i !== axis);
    const out = alloc('i32', outShape, ctx);
    const best = new Float64Array(out.size).fill(-Infinity);
    const seen = new Uint8Array(out.size);
    const n = shape[axis]!;
    const inner = stridesOf(shape)[axis]!;
    const xd = x!.data;
    const od = out.data;
    forEachStrided(shape, outStridesFor(shape, [axis]), 0, (i, off) => {
      const v = xd[i]!;
      const k = Math.floor(i / inner) % n;
      if (!seen[off] || v > best[off]! || (Number.isNaN(v) && !Number.isNaN(best[off]!))) {
        best[off] = v;
        od[off] = k;
        seen[off] = 1;
      }
    });
    return [out];
  },
  jvp: () => [null],
  vjp: () => [null],
};

/**
 * The order argsort sorts by: ascending (or descending) values with NaN last either way (a total
 * order, so every backend's sort, a GPU's bitonic network included, agrees); ties are broken by
 * index. Negative when x sorts first, positive when y does, 0 for a tie.
 */
export function sortOrder(x: number, y: number, descending: boolean): number {
  const xn = x !== x;
  const yn = y !== y;
  if (xn || yn) return xn === yn ? 0 : xn ? 1 : -1;
  if (x < y) return descending ? 1 : -1;
  if (x > y) return descending ? -1 : 1;
  return 0;
}

const argsort: PrimDef<PrimParams['argsort']> = {
  lowering: 'sort',
  shape: (inputs, { axis }) => {
    expectArity('argsort', inputs, 1);
    expectAxes('argsort', [axis], inputs[0]!.shape.length, inputs[0]!.shape);
    return [{ shape: inputs[0]!.shape, dtype: 'i32' }];
  },
  impl: ([x], { axis, descending }, ctx) => {
    const shape = x!.shape;
    const out = alloc('i32', shape, ctx);
    const n = shape[axis]!;
    const stride = stridesOf(shape)[axis]!;
    const xd = x!.data;
    const od = out.data;
    const outer = x!.size / Math.max(n, 1);
    const idx = new Array<number>(n);
    for (let o = 0; o < outer; o++) {
      const base = Math.floor(o / stride) * stride * n + (o % stride);
      for (let k = 0; k < n; k++) idx[k] = k;
      const key = (k: number) => xd[base + k * stride]!;
      idx.sort((a, b) => sortOrder(key(a), key(b), descending) || a - b);
      for (let k = 0; k < n; k++) od[base + k * stride] = idx[k]!;
    }
    return [out];
  },
  jvp: () => [null],
  vjp: () => [null],
};

export const reducePrims = {
  reduce_sum,
  reduce_max: extremumDef('reduce_max', -Infinity, (a, v) => (v > a || Number.isNaN(v) ? v : a)),
  reduce_min: extremumDef('reduce_min', Infinity, (a, v) => (v < a || Number.isNaN(v) ? v : a)),
  argmax,
  argsort,
};

