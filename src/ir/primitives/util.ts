/** Helpers shared by the primitive rule files. */
import type { DType } from '../dtype.js';
import { OpError } from '../errors.js';
import { HostArray, roundInPlace } from '../host.js';
import type { ImplContext } from '../primitive.js';
import type { AbstractValue } from '../program.js';
import { fmtShape, type Shape, shapeEq, stridesOf } from '../shape.js';

export function alloc(dtype: DType, shape: Shape, ctx: ImplContext): HostArray {
  return HostArray.zeros(dtype, [...shape], ctx.wide);
}

/** Rounds f16/bf16 results to their precision (no-op in wide mode and for f32/f64). */
export const finish = roundInPlace;

export function avalStr(a: AbstractValue): string {
  return `${a.dtype}${fmtShape(a.shape)}`;
}

export function expectArity(op: string, inputs: AbstractValue[], n: number): void {
  if (inputs.length !== n) throw new OpError(op, `expected ${n} operands, got ${inputs.length}`);
}

/** Operands must share one shape and one dtype (primitives never broadcast). */
export function expectSame(op: string, inputs: AbstractValue[]): void {
  const a = inputs[0]!;
  for (const b of inputs.slice(1)) {
    if (!shapeEq(a.shape, b.shape) || a.dtype !== b.dtype) {
      throw new OpError(op, `operands must have one shape and dtype, got ${inputs.map(avalStr).join(' and ')}`);
    }
  }
}

export function expectAxes(op: string, axes: readonly number[], rank: number, shape: Shape): void {
  const seen = new Set<number>();
  for (const a of axes) {
    if (!Number.isInteger(a) || a < 0 || a >= rank || seen.has(a)) {
      throw new OpError(op, `axes ${JSON.stringify(axes)} are invalid for shape ${fmtShape(shape)}`);
    }
    seen.add(a);
  }
}

/**
 * Visits every multi-index of `shape` in row-major order, calling fn(flatIndex, offset) where
 * offset = sum(index[d] * strides[d]) for the given (input) strides.
 */
export function forEachStrided(shape: Shape, strides: readonly number[], base: number, fn: (i: number, off: number) => void): void {
  const n = shape.length;
  const total = shape.reduce((a, b) => a * b, 1);
  if (total === 0) return;
  if (n === 0) {
    fn(0, base);
    return;
  }
  const idx = new Array<number>(n).fill(0);
  let off = base;
  const last = n - 1;
  const lastDim = shape[last]!;
  const lastStride = strides[last]!;
  let i = 0;
  for (;;) {
    for (let j = 0; j < lastDim; j++) fn(i++, off + j * lastStride);
    // increment the multi-index (excluding last dim)
    let d = last - 1;
    for (; d >= 0; d--) {
      idx[d]!++;
      off += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      off -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

export { stridesOf };
