// The data-dependent primitives as kernels (no host callbacks): random_bits (threefry), gather,
// scatter_add, argmax and argsort compiled with jit on every available backend equal the
// reference interpreter bit for bit on random shapes, out-of-range indices, ties, NaN,
// infinities and signed zeros included.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import type { DType } from '../../src/ir/dtype.js';
import * as ng from '../../src/index.js';
import { bind1 } from '../../src/ir/trace.js';
import { describeEachBackend } from '../helpers/backends.js';

const RUNS = Number(process.env.NEXGRAD_FUZZ_RUNS_DATA ?? 60);

const same = (a: number, b: number): boolean => Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));

async function expectBitwise(backend: string, fn: (...xs: ng.Tensor[]) => ng.Tensor, args: ng.Tensor[], what: string): Promise<void> {
  const got = await ng.jit(fn, { backend, cacheDir: false })(...args).data();
  const want = ng.interpret(ng.trace(fn, ...args), args)[0]!.dataSync();
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) if (!same(got[i]!, want[i]!)) throw new Error(`${what}: element ${i} is ${got[i]}, the interpreter's ${want[i]}`);
}

const shapeArb = (maxRank: number) => fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 0, maxLength: maxRank });
const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
/** Values with ties, NaN, infinities and signed zeros. */
const SPECIAL = [0, -0, 1, -1, 2, 2, 0.5, -3, Infinity, -Infinity, NaN, 7];
const specialData = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => SPECIAL[(i * 7 + seed * 13) % SPECIAL.length]!);
const ints = (n: number, lo: number, hi: number, seed: number): number[] => Array.from({ length: n }, (_, i) => lo + ((i * 2654435761 + seed * 40503) >>> 0) % (hi - lo + 1));

describeEachBackend('data-dependent kernels equal the interpreter bit for bit', (backend) => {
  it('random_bits: threefry of any counter shape under any key', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb(3), fc.nat(), fc.nat(), fc.boolean(), async (shape, k0, k1, iotaCounter) => {
        const key = ng.tensor([k0 >>> 0, (k1 * 2654435761) >>> 0], { dtype: 'u32' });
        const n = size(shape);
        const counter = ng.tensor(ints(n, 0, 2 ** 31, k0), { dtype: 'u32', shape });
        const fn = iotaCounter
          ? (k: ng.Tensor) => bind1('random_bits', [k, ng.reshape(ng.arange(0, n, 1, 'u32'), shape)], {})
          : (k: ng.Tensor, c: ng.Tensor) => bind1('random_bits', [k, c], {});
        await expectBitwise(backend, fn as never, iotaCounter ? [key] : [key, counter], `random_bits ${JSON.stringify(shape)}`);
      }),
      { numRuns: RUNS, seed: 7 },
    );
  });

  it('random.uniform and random.bits through jit are the interpreter\'s draws', async () => {
    for (const shape of [[1], [3], [5, 7], [2, 3, 4]]) {
      const key = ng.random.key(shape.length * 11);
      await expectBitwise(backend, (k: ng.Tensor) => ng.random.bits(k, shape), [key], `bits ${shape}`);
      await expectBitwise(backend, (k: ng.Tensor) => ng.random.uniform(k, shape), [key], `uniform ${shape}`);
    }
  });

  it('gather: clamped indices (i32 and u32), any axis and batch dims', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb(3), fc.nat(3), fc.nat(2), fc.integer({ min: 1, max: 5 }), fc.boolean(), fc.nat(100), async (xShape0, axis0, bd0, nIdx, unsigned, seed) => {
        const xShape = [...xShape0, 3];
        const axis = axis0 % xShape.length;
        const batchDims = Math.min(bd0, axis);
        const idxShape = [...xShape.slice(0, batchDims), nIdx];
        const A = xShape[axis]!;
        const x = ng.tensor(specialData(size(xShape), seed), { shape: xShape });
        const dtype: DType = unsigned ? 'u32' : 'i32';
        const idx = ng.tensor(ints(size(idxShape), unsigned ? 0 : -2, A + 2, seed), { dtype, shape: idxShape });
        await expectBitwise(backend, (a: ng.Tensor, i: ng.Tensor) => bind1('gather', [a, i], { axis, batchDims }), [x, idx], `gather x${JSON.stringify(xShape)} axis ${axis} bd ${batchDims}`);
      }),
      { numRuns: RUNS, seed: 8 },
    );
  });

  it('scatter_add: repeated and out-of-range indices (dropped), f32 and i32', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb(2), fc.nat(2), fc.integer({ min: 1, max: 9 }), fc.boolean(), fc.nat(100), async (xShape0, axis0, nIdx, integer, seed) => {
        const xShape = [...xShape0, 4];
        const axis = axis0 % xShape.length;
        const A = xShape[axis]!;
        const dtype: DType = integer ? 'i32' : 'f32';
        const updShape = [...xShape.slice(0, axis), nIdx, ...xShape.slice(axis + 1)];
        // integer-valued data: sums are exact in any order (a GPU adds atomically, unordered)
        const x = ng.tensor(ints(size(xShape), -5, 5, seed), { dtype, shape: xShape });
        const upd = ng.tensor(ints(size(updShape), -9, 9, seed + 1), { dtype, shape: updShape });
        const idx = ng.tensor(ints(nIdx, -2, A + 1, seed + 2), { dtype: 'i32', shape: [nIdx] });
        await expectBitwise(backend, (a: ng.Tensor, i: ng.Tensor, u: ng.Tensor) => bind1('scatter_add', [a, i, u], { axis, batchDims: 0 }), [x, idx, upd], `scatter_add ${JSON.stringify(xShape)} axis ${axis}`);
      }),
      { numRuns: RUNS, seed: 9 },
    );
  });

  it('argmax: the first index of the largest value, a NaN counting as largest', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb(3), fc.nat(3), fc.nat(100), async (shape0, axis0, seed) => {
        const shape = [...shape0, 5];
        const axis = axis0 % shape.length;
        const x = ng.tensor(specialData(size(shape), seed), { shape });
        await expectBitwise(backend, (a: ng.Tensor) => ng.argmax(a, axis), [x], `argmax ${JSON.stringify(shape)} axis ${axis}`);
      }),
      { numRuns: RUNS, seed: 10 },
    );
  });

  it('argsort: stable, ascending and descending, NaN last', async () => {
    await fc.assert(
      fc.asyncProperty(shapeArb(2), fc.nat(2), fc.boolean(), fc.nat(100), async (shape0, axis0, descending, seed) => {
        const shape = [...shape0, 6];
        const axis = axis0 % shape.length;
        const x = ng.tensor(specialData(size(shape), seed), { shape });
        await expectBitwise(backend, (a: ng.Tensor) => ng.argsort(a, axis, descending), [x], `argsort ${JSON.stringify(shape)} axis ${axis}${descending ? ' desc' : ''}`);
      }),
      { numRuns: RUNS, seed: 11 },
    );
  });
});
