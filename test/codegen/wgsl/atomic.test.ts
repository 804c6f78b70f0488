/** f32 atomic add (compare-exchange on atomic<u32>) through scatter_add, against the host's scatter_add. */
import { expect, test } from 'vitest';
import { scatterAddDispatch, scatterAddKernel, type ScatterGeometry } from '../../../src/codegen/wgsl/kernels/atomic.js';
import { HostArray } from '../../../src/ir/host.js';
import { PRIMS } from '../../../src/ir/primitives/index.js';
import { mulberry32 } from '../../helpers/rng.js';
import { describeWgsl, openWgsl, readF32, uploadArray } from './env.js';

const env = await openWgsl();

/** The host's scatter_add on x [B, P, A, Q], idx [B, I], upd [B, P, I, Q] (batchDims 1, axis 2). */
function hostScatter(g: ScatterGeometry, x: Float32Array, idx: Int32Array, upd: Float32Array): Float32Array {
  const out = PRIMS.scatter_add.impl(
    [new HostArray('f32', [g.B, g.P, g.A, g.Q], x), new HostArray('i32', [g.B, g.I], idx), new HostArray('f32', [g.B, g.P, g.I, g.Q], upd)],
    { axis: 2, batchDims: 1 },
    { wide: false },
  );
  return out[0]!.data as Float32Array;
}

describeWgsl('f32 atomic add / scatter_add (WGSL)', env, (rt) => {
  const cases: [string, ScatterGeometry, boolean][] = [
    ['integer updates, heavy collisions: exact', { B: 2, P: 3, I: 4000, A: 5, Q: 2 }, true],
    ['random updates, some indices out of range', { B: 1, P: 2, I: 3000, A: 17, Q: 3 }, false],
    ['one slot takes every update', { B: 1, P: 1, I: 5000, A: 1, Q: 1 }, true],
  ];
  for (const [name, g, integers] of cases) {
    test(name, async () => {
      const p = await rt.pipeline(scatterAddKernel({ workgroupSize: 64 }), 'main', 'scatter_add');
      const rng = mulberry32(g.I + g.A);
      const x = new Float32Array(g.B * g.P * g.A * g.Q).map(() => Math.round(rng() * 10));
      const idx = new Int32Array(g.B * g.I).map(() => Math.floor(rng() * (g.A + 4)) - 2); // some outside [0, A)
      const upd = new Float32Array(g.B * g.P * g.I * g.Q).map(() => (integers ? Math.floor(rng() * 7) - 3 : rng() * 2 - 1));
      const xb = uploadArray(rt, x);
      const ib = uploadArray(rt, idx);
      const ub = uploadArray(rt, upd);
      const ob = rt.alloc(x.byteLength);
      const d = scatterAddDispatch(g, { workgroupSize: 64 });
      rt.beginCall('scatter').copy(xb, ob, x.byteLength).dispatch(p, [ib, ub, ob], d.workgroups, d.uniform).submit();
      const got = await readF32(rt, ob);
      const want = hostScatter(g, x, idx, upd);
      // f32 sums in any order: within n * eps of the sum of magnitudes (exact for small integers)
      const mag = new Float64Array(want.length);
      for (let b = 0; b < g.B; b++)
        for (let pp = 0; pp < g.P; pp++)
          for (let i = 0; i < g.I; i++) {
            const a = idx[b * g.I + i]!;
            if (a < 0 || a >= g.A) continue;
            for (let q = 0; q < g.Q; q++) mag[((b * g.P + pp) * g.A + a) * g.Q + q] += Math.abs(upd[((b * g.P + pp) * g.I + i) * g.Q + q]!);
          }
      for (let k = 0; k < want.length; k++) {
        const tol = integers ? 0 : 2 * g.I * 2 ** -24 * (mag[k]! + Math.abs(x[k]!));
        expect(Math.abs(got[k]! - want[k]!), `element ${k}: ${got[k]} vs ${want[k]}`).toBeLessThanOrEqual(tol);
      }
      for (const b of [xb, ib, ub, ob]) rt.release(b);
    });
  }
});
