/**
 * The mask's index tables and the dense <-> compact moves, against values computed here element
 * by element from the mask (random masks with exactly lenKeep visible patches, several grids,
 * scales and paddings, lenKeep 0 and L included).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as ops from '../../../src/ir/ops.js';
import { MaskTables } from '../../../src/passes/sparse/index_tables.js';
import { gatherTiles } from '../../../src/passes/sparse/index_tables.js';
import type { MaskGeometry } from '../../../src/passes/sparse/geometry.js';
import { mulberry32 } from '../../helpers/rng.js';

/** A random mask (n, side^2) with exactly lenKeep zeros per row. */
function randomMask(n: number, side: number, lenKeep: number, seed: number): number[][] {
  const rnd = mulberry32(seed);
  const L = side * side;
  return Array.from({ length: n }, () => {
    const order = Array.from({ length: L }, (_, l) => l).sort(() => rnd() - 0.5);
    const row = new Array<number>(L).fill(1);
    order.slice(0, lenKeep).forEach((l) => (row[l] = 0));
    return row;
  });
}

const caseArb = fc.record({
  n: fc.integer({ min: 1, max: 3 }),
  side: fc.integer({ min: 1, max: 4 }),
  s: fc.integer({ min: 1, max: 4 }),
  c: fc.integer({ min: 1, max: 3 }),
  keepFrac: fc.double({ min: 0, max: 1, noNaN: true }),
  lo: fc.integer({ min: 0, max: 4 }),
  hi: fc.integer({ min: 0, max: 4 }),
  seed: fc.integer({ min: 0, max: 1e6 }),
});

describe('masked sparse index tables', () => {
  it('toCompact, toDense and the halo tiles equal an element-by-element computation', () => {
    fc.assert(
      fc.property(caseArb, ({ n, side, s, c, keepFrac, lo, hi, seed }) => {
        const L = side * side;
        const K = Math.floor(keepFrac * L);
        const g: MaskGeometry = { n, L, side, lenKeep: K };
        const m = randomMask(n, side, K, seed);
        const tables = new MaskTables(g, ops.tensor(m));
        const H = side * s;
        const rnd = mulberry32(seed + 1);
        const dense = Array.from({ length: n * H * H * c }, () => rnd() * 2 - 1);
        const x = ops.fromHost('f32', [n, H, H, c], Float32Array.from(dense));
        const at = (b: number, y: number, z: number, ch: number) => Math.fround(dense[((b * H + y) * H + z) * c + ch]!);
        const kept = m.map((row) => row.flatMap((v, l) => (v === 0 ? [l] : [])));
        // compact: row b*K + j is sample b's j-th kept patch, in increasing patch order
        const compact = tables.toCompact(x, s);
        expect(compact.shape).toEqual([n * K, s, s, c]);
        const cv = compact.dataSync();
        kept.forEach((ids, b) =>
          ids.forEach((l, j) => {
            for (let y = 0; y < s; y++) for (let z = 0; z < s; z++) for (let ch = 0; ch < c; ch++) {
              const got = cv[(((b * K + j) * s + y) * s + z) * c + ch];
              expect(got).toBe(at(b, Math.floor(l / side) * s + y, (l % side) * s + z, ch));
            }
          }),
        );
        // back to the grid: the input at visible patches, zero at masked ones
        const back = tables.toDense(compact, s).dataSync();
        for (let b = 0; b < n; b++) for (let y = 0; y < H; y++) for (let z = 0; z < H; z++) for (let ch = 0; ch < c; ch++) {
          const visible = m[b]![Math.floor(y / s) * side + Math.floor(z / s)] === 0;
          expect(back[((b * H + y) * H + z) * c + ch]).toBe(visible ? at(b, y, z, ch) : 0);
        }
        // halo tiles: each kept patch's (s+lo+hi)^2 window, zero outside the image or in masked patches
        const pads = [
          [lo, hi],
          [hi, lo],
        ] as const;
        const tiles = gatherTiles(compact, tables.halo(s, pads));
        const th = s + lo + hi;
        expect(tiles.shape).toEqual([n * K, th, th, c]);
        const tv = tiles.dataSync();
        kept.forEach((ids, b) =>
          ids.forEach((l, j) => {
            for (let a = 0; a < th; a++) for (let d = 0; d < th; d++) for (let ch = 0; ch < c; ch++) {
              const y = Math.floor(l / side) * s + a - lo;
              const z = (l % side) * s + d - hi;
              const inside = y >= 0 && y < H && z >= 0 && z < H;
              const want = inside && m[b]![Math.floor(y / s) * side + Math.floor(z / s)] === 0 ? at(b, y, z, ch) : 0;
              expect(tv[(((b * K + j) * th + a) * th + d) * c + ch]).toBe(want);
            }
          }),
        );
      }),
      { numRuns: 60, seed: 12 },
    );
  });
});
