/**
 * Pytrees: nested arrays and plain objects with Tensor leaves. null and undefined are empty
 * nodes. Any other leaf (a number, a string, a class instance) is an error naming its path.
 */
import { OpError } from './errors.js';
import { Tensor } from './tensor.js';

export type TreeDef =
  | { readonly kind: 'leaf' }
  | { readonly kind: 'none'; readonly value: null | undefined }
  | { readonly kind: 'array'; readonly children: readonly TreeDef[] }
  | { readonly kind: 'object'; readonly keys: readonly string[]; readonly children: readonly TreeDef[] };

export type PyTree = Tensor | null | undefined | readonly PyTree[] | { readonly [k: string]: PyTree };

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object') return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function describe(x: unknown): string {
  if (typeof x === 'number') return `the number ${x}`;
  if (typeof x === 'string') return `the string ${JSON.stringify(x)}`;
  if (typeof x === 'boolean') return `the boolean ${x}`;
  if (typeof x === 'function') return 'a function';
  if (ArrayBuffer.isView(x)) return `a ${x.constructor.name} (wrap it with ng.tensor)`;
  if (x && typeof x === 'object') return `an instance of ${x.constructor?.name ?? 'an unknown class'}`;
  return typeof x;
}

/** Flattens a pytree into its Tensor leaves (depth-first, object keys in insertion order). */
export function treeFlatten(tree: unknown, op = 'pytree', root = 'argument'): { leaves: Tensor[]; def: TreeDef } {
  const leaves: Tensor[] = [];
  const walk = (x: unknown, path: string): TreeDef => {
    if (x instanceof Tensor) {
      leaves.push(x);
      return { kind: 'leaf' };
    }
    if (x === null || x === undefined) return { kind: 'none', value: x };
    if (Array.isArray(x)) return { kind: 'array', children: x.map((c, i) => walk(c, `${path}[${i}]`)) };
    if (isPlainObject(x)) {
      const keys = Object.keys(x);
      return { kind: 'object', keys, children: keys.map((k) => walk(x[k], `${path}.${k}`)) };
    }
    throw new OpError(op, `${path} is ${describe(x)}; pytree leaves must be Tensors`);
  };
  const def = walk(tree, root);
  return { leaves, def };
}

export function treeUnflatten<T = PyTree>(def: TreeDef, leaves: readonly unknown[]): T {
  let i = 0;
  const build = (d: TreeDef): unknown => {
    switch (d.kind) {
      case 'leaf':
        return leaves[i++];
      case 'none':
        return d.value;
      case 'array':
        return d.children.map(build);
      case 'object': {
        // defineProperty: a key such as "__proto__" (read from a file) stays an own property
        // and never reaches the object's prototype
        const o: Record<string, unknown> = {};
        d.keys.forEach((k, j) => Object.defineProperty(o, k, { value: build(d.children[j]!), enumerable: true, writable: true, configurable: true }));
        return o;
      }
    }
  };
  const out = build(def);
  if (i !== leaves.length) throw new OpError('pytree', `structure has ${i} leaves but ${leaves.length} values were given`);
  return out as T;
}

export function treeLeafCount(def: TreeDef): number {
  switch (def.kind) {
    case 'leaf':
      return 1;
    case 'none':
      return 0;
    default:
      return def.children.reduce((a, c) => a + treeLeafCount(c), 0);
  }
}

/** "a number", "a Tensor", "an array of 3", "an object with keys a, b", "null" (for structure messages). */
function kindOf(x: unknown): string {
  if (x instanceof Tensor) return 'a Tensor';
  if (x === null || x === undefined) return String(x);
  if (Array.isArray(x)) return `an array of ${x.length}`;
  if (isPlainObject(x)) {
    const keys = Object.keys(x);
    return keys.length ? `an object with keys ${keys.slice(0, 6).join(', ')}${keys.length > 6 ? ', ...' : ''}` : 'an empty object';
  }
  return describe(x);
}

/**
 * The first place where `other` does not have the structure of `tree` (same node kinds, the
 * same array lengths, the same object keys, in any order), as "at <path>: ...", or undefined
 * when they match. Trees are matched by key, never by position, so {b} never stands in for {a}.
 */
export function treeStructureDiff(tree: unknown, other: unknown, names: readonly [string, string] = ['tree 1', 'tree 2'], root = ''): string | undefined {
  const [a, b] = names;
  const at = (p: string) => (p === '' ? 'at the root' : `at ${p}`);
  const walk = (x: unknown, y: unknown, p: string): string | undefined => {
    if (x instanceof Tensor) return y instanceof Tensor ? undefined : `${at(p)}: ${a} has a Tensor, ${b} has ${kindOf(y)}`;
    if (x === null || x === undefined) return y === null || y === undefined ? undefined : `${at(p)}: ${a} has ${kindOf(x)}, ${b} has ${kindOf(y)}`;
    if (Array.isArray(x)) {
      if (!Array.isArray(y)) return `${at(p)}: ${a} has ${kindOf(x)}, ${b} has ${kindOf(y)}`;
      if (x.length !== y.length) return `${at(p)}: ${a} has an array of ${x.length}, ${b} an array of ${y.length}`;
      for (let i = 0; i < x.length; i++) {
        const d = walk(x[i], y[i], `${p}[${i}]`);
        if (d) return d;
      }
      return undefined;
    }
    if (isPlainObject(x)) {
      if (!isPlainObject(y)) return `${at(p)}: ${a} has ${kindOf(x)}, ${b} has ${kindOf(y)}`;
      const own = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
      for (const k of Object.keys(x)) if (!own(y, k)) return `${at(p)}: ${b} has no key ${JSON.stringify(k)} (${a} has keys ${Object.keys(x).join(', ')}; ${b} has ${Object.keys(y).join(', ') || 'none'})`;
      for (const k of Object.keys(y)) if (!own(x, k)) return `${at(p)}: ${b} has a key ${JSON.stringify(k)} that ${a} lacks`;
      for (const k of Object.keys(x)) {
        const d = walk(x[k], y[k], `${p}.${k}`);
        if (d) return d;
      }
      return undefined;
    }
    return `${at(p)}: ${a} has ${describe(x)}; pytree leaves must be Tensors`;
  };
  return walk(tree, other, root);
}

/** Throws an OpError naming the first difference when `other` does not have `tree`'s structure. */
export function assertSameStructure(op: string, tree: unknown, other: unknown, names: readonly [string, string] = ['tree 1', 'tree 2']): void {
  const d = treeStructureDiff(tree, other, names);
  if (d) throw new OpError(op, `the trees do not match ${d}`);
}

/** The leaves of `other` in the order of `tree`'s leaves (matched by key); the structures must agree. */
function leavesAlignedTo(tree: unknown, other: unknown): Tensor[] {
  const out: Tensor[] = [];
  const walk = (x: unknown, y: unknown): void => {
    if (x instanceof Tensor) out.push(y as Tensor);
    else if (Array.isArray(x)) x.forEach((c, i) => walk(c, (y as unknown[])[i]));
    else if (isPlainObject(x)) for (const k of Object.keys(x)) walk(x[k], (y as Record<string, unknown>)[k]);
  };
  walk(tree, other);
  return out;
}

/**
 * Maps f over the Tensor leaves of one or more pytrees. Every further tree must have the first
 * one's structure and keys (object keys are matched by name, not by position); otherwise an
 * OpError names the first difference. The result has the first tree's structure and type.
 */
export function treeMap<T>(f: (...xs: Tensor[]) => Tensor, tree: T, ...rest: unknown[]): T {
  const { leaves, def } = treeFlatten(tree, 'treeMap');
  const others = rest.map((r, j) => {
    const d = treeStructureDiff(tree, r, ['tree 1', `tree ${j + 2}`]);
    if (d) throw new OpError('treeMap', `tree ${j + 2} does not match tree 1 ${d}`);
    return leavesAlignedTo(tree, r);
  });
  return treeUnflatten<T>(def, leaves.map((x, i) => f(x, ...others.map((o) => o[i]!))));
}

/**
 * The leaves of `other` in the order of `tree`'s leaves, matched by key (never by position);
 * an OpError names the first difference when the structures disagree.
 */
export function treeLeavesLike(op: string, tree: unknown, other: unknown, names: readonly [string, string] = ['tree 1', 'tree 2']): Tensor[] {
  assertSameStructure(op, tree, other, names);
  return leavesAlignedTo(tree, other);
}

export function treeLeaves(tree: unknown): Tensor[] {
  return treeFlatten(tree, 'treeLeaves').leaves;
}
