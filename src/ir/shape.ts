/** Shapes: sizes, strides, axis normalisation, broadcasting. */

export type Shape = readonly number[];

/**
 * The most elements one tensor may have (and the largest single dimension): 2^31 - 1, so every
 * flat index fits the int32 arithmetic of generated kernels and every host typed array can be
 * allocated. Larger shapes are refused with an error naming the op and the shape.
 */
export const MAX_ELEMENTS = 2 ** 31 - 1;

/**
 * Why `shape` is not a valid tensor shape (an array of non-negative integers, each and their
 * product at most MAX_ELEMENTS), or undefined when it is.
 */
export function shapeProblem(shape: unknown): string | undefined {
  if (!Array.isArray(shape)) return `expected an array of non-negative integers, got ${shape === null ? 'null' : typeof shape}`;
  let n = 1;
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0) {
      return `entry ${i} is ${typeof d === 'number' ? d : JSON.stringify(d) ?? typeof d}; expected non-negative integers`;
    }
    if (d > MAX_ELEMENTS) return `dimension ${i} is ${d}, more than the ${MAX_ELEMENTS} a dimension may have`;
    n *= d;
  }
  if (n > MAX_ELEMENTS) return `it has ${n} elements, more than the ${MAX_ELEMENTS} a tensor may have`;
  return undefined;
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function shapeEq(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function fmtShape(s: Shape): string {
  return `[${s.join(',')}]`;
}

/** Numpy broadcasting of two shapes, or null when they do not broadcast. */
export function broadcastShapes(a: Shape, b: Shape): number[] | null {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da === db || db === 1) out[i] = da;
    else if (da === 1) out[i] = db;
    else return null;
  }
  return out;
}
