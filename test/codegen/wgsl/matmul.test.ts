/** The tiled WGSL matmul against a float64 triple loop, edge tiles, strided views and hooks. */
import { expect, test } from 'vitest';
import { contiguousViews, matmulDispatch, matmulKernel, type MatmulDims, type MatmulParams, type OperandView } from '../../../src/codegen/wgsl/kernels/matmul.js';
import { mulberry32 } from '../../helpers/rng.js';
import { describeWgsl, openWgsl, readF32, uploadArray } from './env.js';

const env = await openWgsl();

const at = (v: OperandView, b: number, i: number, j: number): number => v.offset + b * v.strides[0] + i * v.strides[1] + j * v.strides[2];

/** C = A B in float64 and the bound sum_k |A||B| per element (for an f32 error budget). */
function reference(d: MatmulDims, a: Float32Array, b: Float32Array, va: OperandView, vb: OperandView): { c: Float64Array; mag: Float64Array } {
  const c = new Float64Array(d.batch * d.M * d.N);
  const mag = new Float64Array(c.length);
  for (let bb = 0; bb < d.batch; bb++)
    for (let m = 0; m < d.M; m++)
      for (let n = 0; n < d.N; n++) {
        let s = 0;
        let g = 0;
        for (let k = 0; k < d.K; k++) {
          const p = a[at(va, bb, m, k)]! * b[at(vb, bb, k, n)]!;
          s += p;
          g += Math.abs(p);
        }
        c[(bb * d.M + m) * d.N + n] = s;
        mag[(bb * d.M + m) * d.N + n] = g;
      }
  return { c, mag };
}

function expectClose(got: Float32Array, want: Float64Array, mag: Float64Array, K: number, what: string): void {
  for (let i = 0; i < want.length; i++) {
    const tol = (K + 2) * 2 ** -23 * mag[i]! + 1e-30;
    if (!(Math.abs(got[i]! - want[i]!) <= tol)) expect(got[i], `${what} [${i}] (tol ${tol})`).toBe(want[i]);
  }
}

describeWgsl('tiled matmul (WGSL)', env, (rt) => {
  const configs: [string, MatmulParams][] = [
    ['64x64 tiles, 4x4 per thread', {}],
    ['64x64 tiles, 8x4 per thread, k step 8', { threadM: 8, threadN: 4, tileK: 8 }],
    ['16x32 tiles, 2x4 per thread', { tileM: 16, tileN: 32, tileK: 4, threadM: 2, threadN: 4 }],
  ];
  for (const [name, params] of configs) {
    test(`${name}: edge tiles and batches match float64`, async () => {
      const p = await rt.pipeline(matmulKernel(params), 'main', `matmul ${name}`);
      const rng = mulberry32(name.length);
      for (const d of [
        { batch: 1, M: 1, N: 1, K: 1 },
        { batch: 1, M: 65, N: 63, K: 17 },
        { batch: 3, M: 70, N: 129, K: 40 },
        { batch: 1, M: 5, N: 7, K: 0 },
      ]) {
        const a = new Float32Array(d.batch * d.M * d.K).map(() => rng() * 2 - 1);
        const b = new Float32Array(d.batch * d.K * d.N).map(() => rng() * 2 - 1);
        const v = contiguousViews(d);
        const ab = uploadArray(rt, a.length ? a : new Float32Array(1));
        const bb = uploadArray(rt, b.length ? b : new Float32Array(1));
        const cb = rt.alloc(4 * d.batch * d.M * d.N);
        rt.upload(cb, new Float32Array(d.batch * d.M * d.N).fill(NaN)); // every element must be written
        const disp = matmulDispatch(d, v, params);
        rt.beginCall('matmul').dispatch(p, [ab, bb, cb], disp.workgroups, disp.uniform).submit();
        const ref = reference(d, a, b, v.a, v.b);
        expectClose(await readF32(rt, cb), ref.c, ref.mag, d.K, `${JSON.stringify(d)}`);
        for (const x of [ab, bb, cb]) rt.release(x);
      }
    });
  }

  test('strided views: A transposed, B a slice at an offset, C written into a larger array', async () => {
    const p = await rt.pipeline(matmulKernel(), 'main', 'matmul');
    const rng = mulberry32(99);
    const d = { batch: 2, M: 37, N: 45, K: 70 };
    // A stored as [batch, K, M] (transposed view); B as rows of a [batch, K, 50] array from column 3;
    // C into a [batch, M, 48] array from column 2, after a 5-element header.
    const va: OperandView = { offset: 0, strides: [d.K * d.M, 1, d.M] };
    const vb: OperandView = { offset: 3, strides: [d.K * 50, 50, 1] };
    const vc: OperandView = { offset: 5 + 2, strides: [d.M * 48, 48, 1] };
    const a = new Float32Array(d.batch * d.K * d.M).map(() => rng() * 2 - 1);
    const b = new Float32Array(d.batch * d.K * 50).map(() => rng() * 2 - 1);
    const cInit = new Float32Array(5 + d.batch * d.M * 48).map(() => rng());
    const ab = uploadArray(rt, a);
    const bb = uploadArray(rt, b);
    const cb = uploadArray(rt, cInit);
    const disp = matmulDispatch(d, { a: va, b: vb, c: vc });
    rt.beginCall('matmul strided').dispatch(p, [ab, bb, cb], disp.workgroups, disp.uniform).submit();
    const got = await readF32(rt, cb);
    const ref = reference(d, a, b, va, vb);
    const written = new Set<number>();
    const gotC = new Float32Array(ref.c.length);
    for (let x = 0; x < d.batch; x++)
      for (let m = 0; m < d.M; m++)
        for (let n = 0; n < d.N; n++) {
          written.add(at(vc, x, m, n));
          gotC[(x * d.M + m) * d.N + n] = got[at(vc, x, m, n)]!;
        }
    expectClose(gotC, ref.c, ref.mag, d.K, 'strided');
    for (let i = 0; i < cInit.length; i++) if (!written.has(i)) expect(got[i], `untouched element ${i}`).toBe(cInit[i]);
    for (const x of [ab, bb, cb]) rt.release(x);
  });

  test('hooks: a ReLU prologue on A and a bias epilogue from an extra binding', async () => {
    const params: MatmulParams = {
      loadA: (b, m, k) => `max(a[u.aOff + ${b} * u.aB + ${m} * u.aM + ${k} * u.aK], 0.0)`,
      store: (b, m, n, acc) => `c[u.cOff + ${b} * u.cB + ${m} * u.cM + ${n} * u.cN] = ${acc} + bias[${n}];`,
      declarations: '@group(0) @binding(4) var<storage, read> bias: array<f32>;',
    };
    const p = await rt.pipeline(matmulKernel(params), 'main', 'matmul relu bias');
    const rng = mulberry32(3);
    const d = { batch: 1, M: 50, N: 33, K: 21 };
    const a = new Float32Array(d.M * d.K).map(() => rng() * 2 - 1);
    const b = new Float32Array(d.K * d.N).map(() => rng() * 2 - 1);
    const bias = new Float32Array(d.N).map(() => rng() * 10);
    const bufs = [uploadArray(rt, a), uploadArray(rt, b), rt.alloc(4 * d.M * d.N), uploadArray(rt, bias)];
    const disp = matmulDispatch(d);
    rt.beginCall('matmul hooks').dispatch(p, bufs, disp.workgroups, disp.uniform).submit();
    const v = contiguousViews(d);
    const ref = reference(d, a.map((x) => Math.max(x, 0)), b, v.a, v.b);
    for (let i = 0; i < ref.c.length; i++) {
      ref.c[i] += bias[i % d.N]!;
      ref.mag[i] += Math.abs(bias[i % d.N]!);
    }
    expectClose(await readF32(rt, bufs[2]!), ref.c, ref.mag, d.K, 'hooks');
    for (const x of bufs) rt.release(x);
  });
});
