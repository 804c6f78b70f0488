/** treeMap matches trees by structure and key (never by position) and names the first difference. */
import { describe, expect, it } from 'vitest';
import * as ops from '../../src/ir/ops.js';
import { assertSameStructure, treeMap, treeStructureDiff, treeUnflatten, treeFlatten } from '../../src/ir/pytree.js';
import type { Tensor } from '../../src/ir/tensor.js';

const t = (x: number) => ops.tensor([x]);

describe('treeMap by key', () => {
  it('pairs leaves by key even when the key order differs', () => {
    const r = treeMap((x: Tensor, y: Tensor) => ops.sub(x, y), { a: t(10), b: t(20) }, { b: t(2), a: t(1) });
    expect(r.a.tolist()).toEqual([9]);
    expect(r.b.tolist()).toEqual([18]);
    expect(Object.keys(r)).toEqual(['a', 'b']);
  });

  it('refuses {b} for {a} (the adamw grads case), naming the key', () => {
    expect(() => treeMap((x: Tensor, y: Tensor) => ops.add(x, y), { w: { a: t(1) } }, { w: { b: t(1) } })).toThrow(
      /treeMap: tree 2 does not match tree 1 at \.w: tree 2 has no key "a" \(tree 1 has keys a; tree 2 has b\)/,
    );
  });

  it('names extra keys, array lengths and leaf/node mismatches with their path', () => {
    expect(treeStructureDiff({ a: t(1) }, { a: t(1), c: t(2) })).toBe('at the root: tree 2 has a key "c" that tree 1 lacks');
    expect(treeStructureDiff({ l: [t(1), t(2)] }, { l: [t(1)] })).toBe('at .l: tree 1 has an array of 2, tree 2 an array of 1');
    expect(treeStructureDiff({ l: [t(1), { x: t(2) }] }, { l: [t(1), t(2)] })).toBe('at .l[1]: tree 1 has an object with keys x, tree 2 has a Tensor');
    expect(treeStructureDiff({ a: null }, { a: undefined })).toBeUndefined();
    expect(() => assertSameStructure('adamw', { p: t(1) }, { q: t(1) }, ['params', 'grads'])).toThrow(/adamw: the trees do not match at the root: grads has no key "p"/);
  });

  it('infers the result type from the first tree (no explicit generics)', () => {
    const params = { w: t(1), layers: [t(2)] };
    const doubled = treeMap((x) => ops.mul(x, 2), params);
    // typed as typeof params: these compile without casts
    expect(doubled.layers[0]!.tolist()).toEqual([4]);
    expect(doubled.w.tolist()).toEqual([2]);
  });

  it('keys such as __proto__ from a file stay own properties', () => {
    const { def } = treeFlatten(JSON.parse('{"__proto__": null, "a": null}') as object);
    expect(def).toEqual({ kind: 'object', keys: ['__proto__', 'a'], children: [{ kind: 'none', value: null }, { kind: 'none', value: null }] });
    const leafDef = { kind: 'object', keys: ['__proto__'], children: [{ kind: 'leaf' }] } as const;
    const o = treeUnflatten<Record<string, unknown>>(leafDef, [t(5)]);
    expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
    expect(Object.prototype.hasOwnProperty.call(o, '__proto__')).toBe(true);
  });
});
