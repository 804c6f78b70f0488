/** Row tree reductions in WGSL against the host's reduce_sum / reduce_max / reduce_min / argmax. */
import { expect, test } from 'vitest';
import { rowReduceDispatch, rowReduceKernel, type RowReduceOp } from '../../../src/codegen/wgsl/kernels/reduce.js';
import { HostArray } from '../../../src/ir/host.js';
import { PRIMS } from '../../../src/ir/primitives/index.js';
import { mulberry32 } from '../../helpers/rng.js';
import { describeWgsl, openWgsl, readF32, readI32, uploadArray } from './env.js';

const env = await openWgsl();

/** The host primitive over axis 1 of [outer, n, inner]. */
function hostReduce(op: RowReduceOp, x: Float32Array, outer: number, n: number, inner: number): Float32Array | Int32Array {
  const xa = new HostArray('f32', [outer, n, inner], x);
  const ctx = { wide: false };
  if (op === 'argmax') return PRIMS.argmax.impl([xa], { axis: 1 }, ctx)[0]!.data as Int32Array;
  const prim = { sum: PRIMS.reduce_sum, max: PRIMS.reduce_max, min: PRIMS.reduce_min }[op];
  return prim.impl([xa], { axes: [1] }, ctx)[0]!.data as Float32Array;
}

/** Equal as numbers: NaN equals NaN, and -0 equals 0 (which zero a max keeps among equal zeros is unspecified). */
function expectSameNumbers(got: ArrayLike<number>, want: ArrayLike<number>, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const ok = Number.isNaN(want[i]!) ? Number.isNaN(got[i]!) : got[i] === want[i];
    if (!ok) expect(got[i], `${what} [${i}]`).toBe(want[i]);
  }
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [3, 7, 1],
  [2, 300, 5],
  [1, 1000, 1],
  [4, 0, 3],
];

describeWgsl('row tree reductions (WGSL)', env, (rt) => {
  for (const op of ['sum', 'max', 'min', 'argmax'] as const) {
    test(`${op} over [outer, n, inner] matches the host`, async () => {
      const p = await rt.pipeline(rowReduceKernel({ op, workgroupSize: 64 }), 'main', `reduce_${op}`);
      const rng = mulberry32(op.length * 31);
      for (const [outer, n, inner] of SHAPES) {
        if (op === 'argmax' && n === 0) {
          expect(() => rowReduceDispatch(op, outer, n, inner)).toThrow(/reduced axis is empty/);
          continue;
        }
        const x = new Float32Array(outer * n * inner).map(() => Math.round((rng() - 0.5) * 64) / 8); // ties are common
        const xb = uploadArray(rt, x.length ? x : new Float32Array(1));
        const ob = rt.alloc(4 * Math.max(outer * inner, 1));
        const d = rowReduceDispatch(op, outer, n, inner);
        rt.beginCall(op).dispatch(p, [xb, ob], d.workgroups, d.uniform).submit();
        const want = hostReduce(op, x, outer, n, inner);
        const got = op === 'argmax' ? await readI32(rt, ob, want.length) : await readF32(rt, ob, want.length);
        if (op === 'sum') {
          for (let r = 0; r < want.length; r++) expect(Math.abs(got[r]! - want[r]!), `[${outer},${n},${inner}] row ${r}`).toBeLessThanOrEqual(1e-5 * n);
        } else {
          expectSameNumbers(got, want, `[${outer},${n},${inner}]`);
        }
        rt.release(xb);
        rt.release(ob);
      }
    });
  }

  test('70000 rows: the 1-D dispatch is folded into y (above 65535 workgroups per dimension)', async () => {
    const p = await rt.pipeline(rowReduceKernel({ op: 'argmax', workgroupSize: 1 }), 'main', 'reduce_argmax_wg1');
    const rows = 70000;
    const n = 3;
    const rng = mulberry32(5);
    const x = new Float32Array(rows * n).map(() => Math.floor(rng() * 4));
    const xb = uploadArray(rt, x);
    const ob = rt.alloc(4 * rows);
    const d = rowReduceDispatch('argmax', rows, n, 1);
    expect(d.workgroups).toBeGreaterThan(rt.limits.maxComputeWorkgroupsPerDimension);
    rt.beginCall('fold').dispatch(p, [xb, ob], d.workgroups, d.uniform).submit();
    expectSameNumbers(await readI32(rt, ob), hostReduce('argmax', x, rows, n, 1), 'argmax');
    rt.release(xb);
    rt.release(ob);
  });

  test('NaN propagates through max and min, argmax takes the first NaN, ties the first index', async () => {
    const nan = NaN;
    const inf = Infinity;
    const rows = [
      [1, nan, 3, 2],
      [nan, 5, nan, 7],
      [2, 9, 9, 1],
      [-inf, -inf, -inf, -inf],
      [inf, 1, inf, nan],
      [0, 0, 0, 0],
    ];
    const n = 4;
    const x = Float32Array.from(rows.flat());
    for (const op of ['max', 'min', 'argmax'] as const) {
      const p = await rt.pipeline(rowReduceKernel({ op, workgroupSize: 2 }), 'main', `reduce_${op}_nan`);
      const xb = uploadArray(rt, x);
      const ob = rt.alloc(4 * rows.length);
      const d = rowReduceDispatch(op, rows.length, n, 1);
      rt.beginCall(op).dispatch(p, [xb, ob], d.workgroups, d.uniform).submit();
      const want = hostReduce(op, x, rows.length, n, 1);
      const got = op === 'argmax' ? await readI32(rt, ob) : await readF32(rt, ob);
      expectSameNumbers(got, want, op);
      rt.release(xb);
      rt.release(ob);
    }
    // the cases above, derived by hand: argmax [1, 0, 1, 0, 3, 0]
    expect(Array.from(hostReduce('argmax', x, rows.length, n, 1))).toEqual([1, 0, 1, 0, 3, 0]);
  });
});
