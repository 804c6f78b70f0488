/**
 * Bitonic argsort in WGSL against the host's argsort (src/ir/primitives/reduce.ts) on NaN-free
 * rows, and against a NaN-last stable reference written here for rows with NaN.
 */
import { expect, test } from 'vitest';
import { planArgsort, type ArgsortParams, type ArgsortShape } from '../../../src/codegen/wgsl/kernels/sort.js';
import type { WgslRuntime } from '../../../src/codegen/wgsl/runtime.js';
import { HostArray } from '../../../src/ir/host.js';
import { PRIMS } from '../../../src/ir/primitives/index.js';
import { mulberry32 } from '../../helpers/rng.js';
import { describeWgsl, openWgsl, readI32, uploadArray } from './env.js';

const env = await openWgsl();

async function gpuArgsort(rt: WgslRuntime, keys: Float32Array, shape: ArgsortShape, params: ArgsortParams): Promise<{ got: Int32Array; schedule: string }> {
  const plan = planArgsort(shape, params);
  const kb = uploadArray(rt, keys.length ? keys : new Float32Array(1));
  const ob = rt.alloc(Math.max(keys.byteLength, 4));
  const bufs = [kb, ob];
  if (plan.schedule === 'global') bufs.push(rt.alloc(plan.scratchBytes), rt.alloc(plan.scratchBytes));
  const rec = rt.beginCall('argsort');
  for (const s of plan.steps) rec.dispatch(await rt.pipeline(plan.source, s.entry, `argsort ${s.entry}`), bufs, s.workgroups, s.uniform);
  rec.submit();
  const got = await readI32(rt, ob, keys.length);
  for (const b of bufs) rt.release(b);
  return { got, schedule: plan.schedule };
}

function hostArgsort(keys: Float32Array, s: ArgsortShape, descending: boolean): Int32Array {
  return PRIMS.argsort.impl([new HostArray('f32', [s.outer, s.n, s.inner], keys)], { axis: 1, descending }, { wide: false })[0]!.data as Int32Array;
}

/** Stable order by key (ascending or descending), NaN last, -0 equal to 0. */
function nanLastArgsort(keys: Float32Array, s: ArgsortShape, descending: boolean): Int32Array {
  const out = new Int32Array(keys.length);
  for (let o = 0; o < s.outer; o++)
    for (let r = 0; r < s.inner; r++) {
      const at = (k: number) => (o * s.n + k) * s.inner + r;
      const idx = Array.from({ length: s.n }, (_, k) => k);
      idx.sort((a, b) => {
        const x = keys[at(a)]!;
        const y = keys[at(b)]!;
        if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) && Number.isNaN(y) ? a - b : Number.isNaN(x) ? 1 : -1;
        if (x !== y) return descending ? y - x : x - y;
        return a - b;
      });
      idx.forEach((v, k) => (out[at(k)] = v));
    }
  return out;
}

describeWgsl('bitonic argsort (WGSL)', env, (rt) => {
  const cases: [string, ArgsortShape, ArgsortParams][] = [
    ['single elements and tiny rows, many rows per workgroup', { outer: 50, n: 1, inner: 1 }, { descending: false }],
    ['n=5 rows, strided (inner 3)', { outer: 7, n: 5, inner: 3 }, { descending: true }],
    ['n=37, 300 rows', { outer: 300, n: 37, inner: 1 }, { descending: false }],
    ['a full workgroup row (n = capacity)', { outer: 2, n: 256, inner: 1 }, { descending: true, sharedCapacity: 256, workgroupSize: 64 }],
    ['global passes: n=300 over 64-pair blocks, strided', { outer: 3, n: 300, inner: 2 }, { descending: false, sharedCapacity: 64, workgroupSize: 32 }],
    ['global passes, descending: n=1000 over 128-pair blocks', { outer: 2, n: 1000, inner: 1 }, { descending: true, sharedCapacity: 128, workgroupSize: 64 }],
    ['global passes at the default block: n=5000', { outer: 1, n: 5000, inner: 1 }, { descending: false }],
  ];
  for (const [name, shape, params] of cases) {
    test(`${name} (${params.descending ? 'descending' : 'ascending'}) matches the host argsort`, async () => {
      const rng = mulberry32(shape.n * 7 + shape.outer);
      const keys = new Float32Array(shape.outer * shape.n * shape.inner).map(() => Math.floor(rng() * shape.n) / 4 - shape.n / 8); // many ties
      const { got, schedule } = await gpuArgsort(rt, keys, shape, params);
      expect(schedule).toBe(shape.n > (params.sharedCapacity ?? 2048) ? 'global' : 'shared');
      expect(Array.from(got)).toEqual(Array.from(hostArgsort(keys, shape, params.descending)));
    });
  }

  test('NaN last in both directions, infinities, -0 equal to +0, subnormals', async () => {
    const special = [NaN, 1, -Infinity, 0, -0, Infinity, NaN, -1e-40, 1e-40, -2, 3, NaN, 0, -0, 2.5, -Infinity];
    const rng = mulberry32(17);
    for (const [n, params] of [
      [special.length, { sharedCapacity: 2048 }],
      [200, { sharedCapacity: 32, workgroupSize: 16 }],
    ] as const) {
      const keys = Float32Array.from({ length: 2 * n }, (_, i) => (i < special.length ? special[i]! : rng() < 0.2 ? NaN : Math.floor(rng() * 20) - 10));
      const shape = { outer: 2, n, inner: 1 };
      for (const descending of [false, true]) {
        const { got } = await gpuArgsort(rt, keys, shape, { ...params, descending });
        expect(Array.from(got), `n=${n} descending=${descending}`).toEqual(Array.from(nanLastArgsort(keys, shape, descending)));
      }
    }
    // the reference, by hand on a short row: ascending [NaN, 1, -inf, 0, -0] -> [2, 3, 4, 1, 0]
    expect(Array.from(nanLastArgsort(Float32Array.of(NaN, 1, -Infinity, 0, -0), { outer: 1, n: 5, inner: 1 }, false))).toEqual([2, 3, 4, 1, 0]);
    expect(Array.from(nanLastArgsort(Float32Array.of(NaN, 1, -Infinity, 0, -0), { outer: 1, n: 5, inner: 1 }, true))).toEqual([1, 3, 4, 2, 0]);
  });

  test('empty rows and no rows dispatch nothing', () => {
    expect(planArgsort({ outer: 4, n: 0, inner: 1 }, { descending: false }).steps).toHaveLength(0);
    expect(planArgsort({ outer: 0, n: 9000, inner: 1 }, { descending: false }).steps).toHaveLength(0);
  });
});
