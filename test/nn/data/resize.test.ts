import { describe, expect, it } from 'vitest';
import { OpError } from '../../../src/ir/errors.js';
import * as ops from '../../../src/ir/ops.js';
import { resize } from '../../../src/nn/data/resize.js';
import { availableBackends } from '../../../src/passes/backends.js';
import { jit } from '../../../src/passes/jit.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { checkGrad, f64, Rng, values } from '../../helpers/gradcheck.js';

type Method = 'bilinear' | 'nearest';

/**
 * The reference, written the way PyTorch's kernels are (upsample_bilinear2d with
 * align_corners=False, its antialiased variant, and nearest-exact), in float64, one output
 * pixel at a time: 1-D weights per axis, from a formulation independent of the library's taps.
 */
function weights1d(inSize: number, outSize: number, o: number, method: Method, antialias: boolean): Map<number, number> {
  const scale = inSize / outSize;
  const w = new Map<number, number>();
  if (method === 'nearest') {
    w.set(Math.min(Math.floor((o + 0.5) * scale), inSize - 1), 1);
  } else if (antialias && scale > 1) {
    const centre = scale * (o + 0.5);
    const lo = Math.max(Math.trunc(centre - scale + 0.5), 0);
    const hi = Math.min(Math.trunc(centre + scale + 0.5), inSize);
    let total = 0;
    for (let j = lo; j < hi; j++) {
      const v = Math.max(0, 1 - Math.abs((j - centre + 0.5) / scale));
      w.set(j, v);
      total += v;
    }
    for (const [j, v] of w) w.set(j, v / total);
  } else {
    const x = Math.max(0, (o + 0.5) * scale - 0.5);
    const i0 = Math.min(Math.floor(x), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l = x - i0;
    w.set(i0, 1 - l);
    w.set(i1, (w.get(i1) ?? 0) + l);
  }
  return w;
}

function reference(x: Float64Array, shape: number[], outH: number, outW: number, method: Method, antialias: boolean): Float64Array {
  const [inH, inW] = shape.slice(-2) as [number, number];
  const planes = x.length / (inH * inW);
  const out = new Float64Array(planes * outH * outW);
  for (let p = 0; p < planes; p++) {
    for (let oy = 0; oy < outH; oy++) {
      const wy = weights1d(inH, outH, oy, method, antialias);
      for (let ox = 0; ox < outW; ox++) {
        const wx = weights1d(inW, outW, ox, method, antialias);
        let acc = 0;
        for (const [i, a] of wy) for (const [j, b] of wx) acc += a * b * x[p * inH * inW + i * inW + j]!;
        out[p * outH * outW + oy * outW + ox] = acc;
      }
    }
  }
  return out;
}

const CASES: { shape: number[]; size: [number, number]; method: Method; antialias: boolean }[] = [
  { shape: [2, 3, 7, 5], size: [14, 9], method: 'bilinear', antialias: true },
  { shape: [2, 3, 16, 12], size: [5, 4], method: 'bilinear', antialias: true },
  { shape: [2, 3, 16, 12], size: [5, 4], method: 'bilinear', antialias: false },
  { shape: [1, 9, 10], size: [4, 23], method: 'bilinear', antialias: true },
  { shape: [3, 6, 8], size: [4, 8], method: 'bilinear', antialias: true },
  { shape: [3, 6, 8], size: [6, 3], method: 'bilinear', antialias: false },
  { shape: [2, 11, 6], size: [4, 13], method: 'nearest', antialias: true },
  { shape: [28, 28], size: [32, 32], method: 'bilinear', antialias: true },
];

describe('resize against a direct float64 implementation', () => {
  it('hand-derived values: antialiased 2x down, plain 2x down, 2x up, nearest 6 -> 4', () => {
    const r = (data: number[], n: number, opts: { method?: Method; antialias?: boolean }): number[] =>
      values(resize(f64(data, [1, data.length]), [1, n], opts));
    const close = (got: number[], want: number[]): void => got.forEach((g, i) => expect(g).toBeCloseTo(want[i]!, 12));
    close(r([0, 1, 2, 3], 2, {}), [5 / 7, 16 / 7]); // triangle of radius 2 at 0.5 and 2.5, renormalised at the edges
    close(r([0, 1, 2, 3], 2, { antialias: false }), [0.5, 2.5]);
    close(r([0, 1], 4, {}), [0, 0.25, 0.75, 1]);
    close(r([0, 1, 2, 3, 4, 5], 4, { method: 'nearest' }), [0, 2, 3, 5]);
  });
  for (const c of CASES) {
    it(`${c.method}${c.antialias ? '' : ' (no antialias)'} [${c.shape}] -> [${c.size}], eager f64`, () => {
      const rng = new Rng(c.shape.length * 31 + c.size[0]);
      const data = Float64Array.from({ length: c.shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
      const got = resize(f64(data, c.shape), c.size, { method: c.method, antialias: c.antialias });
      expect(got.shape).toEqual([...c.shape.slice(0, -2), ...c.size]);
      const want = reference(data, c.shape, c.size[0], c.size[1], c.method, c.antialias);
      values(got).forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-12));
    });
  }
  it('same size is the identity', () => {
    const x = f64([1, 2, 3, 4, 5, 6], [2, 3]);
    expect(resize(x, [2, 3])).toBe(x);
  });
  for (const backend of availableBackends()) {
    it(`under jit on ${backend}: f32 results match the float64 reference`, () => {
      const rng = new Rng(5);
      for (const c of CASES.slice(0, 4)) {
        const data = Float64Array.from({ length: c.shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
        const f = jit((x: Tensor) => resize(x, c.size, { method: c.method, antialias: c.antialias }), { backend, cacheDir: false });
        const got = values(f(ops.tensor(Float32Array.from(data), { shape: c.shape })));
        const want = reference(data, c.shape, c.size[0], c.size[1], c.method, c.antialias);
        got.forEach((v, i) => expect(Math.abs(v - want[i]!)).toBeLessThan(1e-5));
      }
    });
  }
  it('gradients: JVP against finite differences and the VJP identity, up and down, bilinear and nearest', () => {
    const rng = new Rng(9);
    for (const c of [CASES[0]!, CASES[1]!, CASES[5]!, CASES[6]!]) {
      const x = f64(Array.from({ length: c.shape.reduce((a, b) => a * b, 1) }, () => rng.normal()), c.shape);
      const report = checkGrad((t) => resize(t, c.size, { method: c.method, antialias: c.antialias }), [x], { rng });
      expect(report.jtNorm).toBeGreaterThan(0);
    }
  });
  it('rejects bad sizes, ranks, dtypes and methods with the op name', () => {
    const x = f64([1, 2, 3, 4], [2, 2]);
    expect(() => resize(x, [0, 2])).toThrow(OpError);
    expect(() => resize(x, [2, 2.5] as [number, number])).toThrow(/resize: size must be \[height, width\]/);
    expect(() => resize(f64([1, 2], [2]), [2, 2])).toThrow(/at least 2 axes/);
    expect(() => resize(ops.tensor([[1, 2]], { dtype: 'i32' }), [2, 2])).toThrow(/float tensor, got i32/);
    expect(() => resize(x, [3, 3], { method: 'cubic' as Method })).toThrow(/method must be 'bilinear' or 'nearest'/);
  });
});
