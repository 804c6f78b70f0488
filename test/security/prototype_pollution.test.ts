/**
 * Prototype pollution through hostile tensor names (issue 8, item 2). Before the fix,
 * `nn.unflattenParams(Object.entries(io.loadSafetensors(file)))` with a tensor named
 * `__proto__.polluted` set Object.prototype.polluted, `constructor.prototype.isAdmin` set
 * Object.prototype.isAdmin, and a tensor named `__proto__` replaced the loaded record's
 * prototype and vanished from its keys. Every test here checks that Object.prototype (and
 * Function.prototype, reachable through `constructor`) gained nothing.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { CheckpointError, loadCheckpoint } from '../../src/convnextv2/checkpoint.js';
import { OpError } from '../../src/ir/errors.js';
import * as ops from '../../src/ir/ops.js';
import { Tensor } from '../../src/ir/tensor.js';
import { getPath, unflattenParams } from '../../src/nn/init.js';
import { loadSafetensors, SafetensorsError } from '../../src/nn/io.js';
import { serializeSafetensors, type SafeTensor } from '../../src/nn/safetensors.js';

const FORBIDDEN = ['__proto__', 'constructor', 'prototype'];

/** The own property names of the shared prototypes a polluter would reach. */
const snapshot = (): string[] => [
  ...Object.getOwnPropertyNames(Object.prototype).map((k) => `O.${k}`),
  ...Object.getOwnPropertyNames(Function.prototype).map((k) => `F.${k}`),
  ...Object.getOwnPropertyNames(Array.prototype).map((k) => `A.${k}`),
];
const CLEAN = snapshot();

afterEach(() => {
  expect(snapshot()).toEqual(CLEAN);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
});

const f32 = (v: number): SafeTensor => ({ dtype: 'F32', shape: [1], data: new Float32Array([v]) });

/** A safetensors file with these names, written in this order (a Map keeps "__proto__" a key). */
function fileWith(names: readonly string[]): Uint8Array {
  return serializeSafetensors(new Map(names.map((n, i) => [n, f32(i)])));
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('loadSafetensors refuses polluting names', () => {
  it.each([
    ['__proto__.polluted'],
    ['constructor.prototype.isAdmin'],
    ['__proto__'],
    ['a.b.__proto__.polluted'],
    ['prototype'],
    ['x.constructor'],
  ])('%s', (name) => {
    const err = thrown(() => loadSafetensors(fileWith(['ok.weight', name])));
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as Error).message).toContain(JSON.stringify(name));
    expect((err as Error).message).toMatch(/segment.*refuse/);
  });

  it('returns a null-prototype record in which ordinary odd names are plain keys', () => {
    const rec = loadSafetensors(fileWith(['toString', 'hasOwnProperty', 'valueOf.x', '__protox__']));
    expect(Object.getPrototypeOf(rec)).toBe(null);
    expect(Object.keys(rec)).toEqual(['toString', 'hasOwnProperty', 'valueOf.x', '__protox__']);
    expect(rec.toString).toBeInstanceOf(Tensor);
    expect(rec['missing']).toBeUndefined();
  });

  it('loadCheckpoint refuses them too, before matching keys', () => {
    const err = thrown(() => loadCheckpoint(fileWith(['__proto__.polluted']), { w: ops.zeros([1]) }, { strict: false }));
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(/"__proto__\.polluted" has a "__proto__" segment/);
  });
});

describe('unflattenParams', () => {
  const t = ops.scalar(1);

  it.each([['__proto__.polluted'], ['constructor.prototype.isAdmin'], ['__proto__'], ['a.prototype'], ['toString.constructor.prototype.x']])(
    'refuses %s with a named error',
    (name) => {
      const err = thrown(() => unflattenParams([['ok', t], [name, t]]));
      expect(err).toBeInstanceOf(OpError);
      expect((err as Error).message).toMatch(/^unflattenParams: parameter name .* segment, which is refused/);
    },
  );

  it('treats names of inherited members as ordinary keys (toString used to be "given twice")', () => {
    const a = ops.scalar(1);
    const b = ops.scalar(2);
    const c = ops.scalar(3);
    const tree = unflattenParams<any>([['toString', a], ['valueOf.inner', b], ['hasOwnProperty.0', c]]);
    expect(Object.prototype.hasOwnProperty.call(tree, 'toString')).toBe(true);
    expect(tree.toString).toBe(a);
    expect(tree.valueOf.inner).toBe(b);
    expect(tree.hasOwnProperty).toEqual([c]);
    // the shared function Object.prototype.valueOf gained no "inner" property
    expect(Object.prototype.hasOwnProperty.call(Object.prototype.valueOf, 'inner')).toBe(false);
  });

  it('getPath only follows own properties', () => {
    expect(getPath({ a: {} }, 'a.constructor')).toBeUndefined();
    expect(getPath({ a: {} }, '__proto__')).toBeUndefined();
    expect(getPath({ a: { b: t } }, 'a.b')).toBe(t);
  });
});

describe('fuzz: dotted names built from hostile and ordinary segments', () => {
  const segment = fc.oneof(
    { weight: 1, arbitrary: fc.constantFrom(...FORBIDDEN) },
    { weight: 3, arbitrary: fc.constantFrom('toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'length', 'isAdmin', 'polluted') },
    { weight: 3, arbitrary: fc.constantFrom('0', '1', 'weight', 'bias', 'stages') },
    { weight: 1, arbitrary: fc.string({ maxLength: 3 }).filter((s) => !s.includes('.')) },
  );
  // Mostly short names, some deep ones (up to 60 segments).
  const nameArb = fc.oneof(
    { weight: 4, arbitrary: fc.array(segment, { minLength: 1, maxLength: 4 }) },
    { weight: 1, arbitrary: fc.array(segment, { minLength: 20, maxLength: 60 }) },
  ).map((segs) => segs.join('.'));

  it('every name is refused with a named error or lands exactly where its segments say (1,000 files)', () => {
    let refused = 0;
    let loaded = 0;
    fc.assert(
      fc.property(fc.uniqueArray(nameArb, { minLength: 1, maxLength: 4 }), (names) => {
        const bytes = fileWith(names);
        const hostile = names.some((n) => n.split('.').some((s) => FORBIDDEN.includes(s)));
        let rec: Record<string, Tensor>;
        try {
          rec = loadSafetensors(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(SafetensorsError);
          expect(hostile).toBe(true);
          refused++;
          return;
        }
        expect(hostile).toBe(false);
        expect(Object.keys(rec).sort()).toEqual([...names].sort());
        let tree: unknown;
        try {
          tree = unflattenParams(Object.entries(rec));
        } catch (e) {
          // structural conflicts (a prefix that is also a leaf, gaps in indices, empty segments)
          expect(e).toBeInstanceOf(OpError);
          return;
        }
        loaded++;
        for (const n of names) {
          // walk own properties only: each name must lead to its own tensor
          let node: unknown = tree;
          for (const s of n.split('.')) {
            expect(Object.prototype.hasOwnProperty.call(node, s), `${n} at ${s}`).toBe(true);
            node = (node as Record<string, unknown>)[s];
          }
          expect(node).toBe(rec[n]);
        }
      }),
      { numRuns: 1000 },
    );
    expect(refused).toBeGreaterThan(100);
    expect(loaded).toBeGreaterThan(100);
  });
});
