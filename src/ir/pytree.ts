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
        const o: Record<string, unknown> = {};
        d.keys.forEach((k, j) => (o[k] = build(d.children[j]!)));
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

/** Maps f over the Tensor leaves of one or more pytrees of the same structure. */
export function treeMap<T = PyTree>(f: (...xs: Tensor[]) => Tensor, tree: unknown, ...rest: unknown[]): T {
  const { leaves, def } = treeFlatten(tree, 'treeMap');
  const others = rest.map((r, j) => {
    const fl = treeFlatten(r, 'treeMap', `tree ${j + 2}`);
    if (fl.leaves.length !== leaves.length) throw new OpError('treeMap', `tree ${j + 2} has ${fl.leaves.length} leaves, expected ${leaves.length}`);
    return fl.leaves;
  });
  return treeUnflatten<T>(def, leaves.map((x, i) => f(x, ...others.map((o) => o[i]!))));
}

export function treeLeaves(tree: unknown): Tensor[] {
  return treeFlatten(tree, 'treeLeaves').leaves;
}
