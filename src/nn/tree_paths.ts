/**
 * Dotted names for the leaves of a parameter pytree: object keys and array indices joined by
 * '.', exactly as PyTorch state-dict names (`params.stages[2][5].pwconv1.weight` is
 * `stages.2.5.pwconv1.weight`). The order is treeFlatten's (depth first, object keys in
 * insertion order), so the i-th named leaf is the i-th leaf of treeFlatten.
 */
import { OpError } from '../ir/errors.js';
import { Tensor } from '../ir/tensor.js';

/**
 * Segments refused in dotted names everywhere a name is walked into an object: assigning through
 * them reaches Object.prototype (`__proto__.polluted`, `constructor.prototype.isAdmin`) or
 * replaces a record's prototype. No real checkpoint uses them.
 */
export const FORBIDDEN_SEGMENTS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** The first forbidden segment of a dotted name, or undefined. */
export function forbiddenSegment(name: string): string | undefined {
  for (const seg of name.split('.')) if (FORBIDDEN_SEGMENTS.has(seg)) return seg;
  return undefined;
}

/** Own-property lookup: never finds anything inherited from a prototype. */
export function ownValue(o: object, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, key) ? (o as Record<string, unknown>)[key] : undefined;
}

export interface NamedLeaf {
  readonly name: string;
  readonly tensor: Tensor;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object') return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

const join = (prefix: string, seg: string | number): string => (prefix === '' ? String(seg) : `${prefix}.${seg}`);

/** The Tensor leaves of `tree` with their dotted names (null/undefined nodes are skipped). */
export function namedLeaves(tree: unknown, op = 'namedLeaves', prefix = ''): NamedLeaf[] {
  const out: NamedLeaf[] = [];
  const walk = (x: unknown, path: string): void => {
    if (x instanceof Tensor) {
      out.push({ name: path, tensor: x });
      return;
    }
    if (x === null || x === undefined) return;
    if (Array.isArray(x)) {
      x.forEach((c, i) => walk(c, join(path, i)));
      return;
    }
    if (isPlainObject(x)) {
      for (const k of Object.keys(x)) walk(x[k], join(path, k));
      return;
    }
    throw new OpError(op, `${path || '(root)'} is ${typeof x === 'object' ? 'a class instance' : `a ${typeof x}`}; parameter leaves must be Tensors`);
  };
  walk(tree, prefix);
  return out;
}

/**
 * Walks `meta`, a tree with the same structure as `tree` whose nodes at tree's Tensor leaves
 * are plain metadata objects (recognised by `isMetaLeaf`), and returns one metadata value per
 * Tensor leaf of `tree`, in treeFlatten order. A structural mismatch names the path.
 */
export function alignedMeta<M>(tree: unknown, meta: unknown, isMetaLeaf: (x: unknown) => x is M, op: string): M[] {
  const out: M[] = [];
  const walk = (x: unknown, m: unknown, path: string): void => {
    if (x instanceof Tensor) {
      if (!isMetaLeaf(m)) {
        throw new OpError(op, `the group tree has no entry for parameter ${JSON.stringify(path)} (found ${m === undefined ? 'nothing' : JSON.stringify(m)})`);
      }
      out.push(m);
      return;
    }
    if (x === null || x === undefined) return;
    if (Array.isArray(x)) {
      if (!Array.isArray(m) || m.length !== x.length) {
        throw new OpError(op, `the group tree at ${JSON.stringify(path || '(root)')} is not an array of length ${x.length} like the parameters`);
      }
      x.forEach((c, i) => walk(c, m[i], join(path, i)));
      return;
    }
    if (isPlainObject(x)) {
      if (!isPlainObject(m)) throw new OpError(op, `the group tree at ${JSON.stringify(path || '(root)')} is not an object like the parameters`);
      for (const k of Object.keys(x)) walk(x[k], ownValue(m, k), join(path, k));
      return;
    }
    throw new OpError(op, `${path || '(root)'} is not a Tensor, array or plain object`);
  };
  walk(tree, meta, '');
  return out;
}
