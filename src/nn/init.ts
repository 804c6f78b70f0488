/**
 * Parameter initialisers and parameter-tree helpers.
 *
 * Initialisers are pure functions of a PRNG key (src/ir/random.ts): the same key gives the same
 * parameters on every backend. Parameter trees are plain nested objects and arrays of Tensors
 * whose paths mirror PyTorch state-dict names, numeric segments being array indices
 * (`stages.2.5.pwconv1.weight` is `params.stages[2][5].pwconv1.weight`).
 */
import { type DType } from '../ir/dtype.js';
import { OpError } from '../ir/errors.js';
import * as ops from '../ir/ops.js';
import { treeMap } from '../ir/pytree.js';
import * as random from '../ir/random.js';
import { fmtShape, sizeOf } from '../ir/shape.js';
import { Tensor } from '../ir/tensor.js';
import { forbiddenSegment, namedLeaves, ownValue } from './tree_paths.js';

export type FloatDType = random.FloatDType;

// ---------------------------------------------------------------------------------------
// keys

/** `n` independent keys from one key (random.split), as separate u32[2] tensors. */
export function splitKeys(key: Tensor, n: number): Tensor[] {
  if (n === 0) return [];
  const ks = random.split(key, n);
  const out: Tensor[] = [];
  for (let i = 0; i < n; i++) out.push(ops.reshape(ops.slice(ks, [i, 0], [i + 1, 2]), [2]));
  return out;
}

// ---------------------------------------------------------------------------------------
// initialisers

export interface TruncNormalOptions {
  /** Standard deviation (default 0.02, as ConvNeXt V2's `_init_weights`). */
  std?: number;
  /** Mean (default 0). */
  mean?: number;
  /**
   * Truncation bounds in ABSOLUTE units, i.e. on the value itself, not in standard deviations
   * (default -2 and 2). This follows timm/PyTorch `trunc_normal_(w, std=.02)`, whose a=-2, b=2
   * are absolute: with std 0.02 they sit at +-100 sigma and have no practical effect.
   */
  lower?: number;
  upper?: number;
  dtype?: FloatDType;
}

/**
 * Truncated-normal samples: mean + std * z with z ~ N(0,1) truncated so that the value lies in
 * (lower, upper) (absolute bounds, see TruncNormalOptions). Uses random.truncatedNormal with
 * the bounds converted to standard units, (lower - mean)/std and (upper - mean)/std.
 */
export function truncNormal(key: Tensor, shape: readonly number[], opts: TruncNormalOptions = {}): Tensor {
  const std = opts.std ?? 0.02;
  const mean = opts.mean ?? 0;
  const lower = opts.lower ?? -2;
  const upper = opts.upper ?? 2;
  const dtype = opts.dtype ?? 'f32';
  if (!(std > 0)) throw new OpError('truncNormal', `std must be positive, got ${std}`);
  if (!(lower < upper)) throw new OpError('truncNormal', `lower (${lower}) must be less than upper (${upper})`);
  let z = random.truncatedNormal(key, (lower - mean) / std, (upper - mean) / std, shape, { dtype });
  z = ops.mul(z, std);
  return mean === 0 ? z : ops.add(z, mean);
}

/** Normal samples mean + std * N(0,1) (used for FCMAE's mask token, std 0.02). */
export function normalInit(key: Tensor, shape: readonly number[], opts: { std?: number; mean?: number; dtype?: FloatDType } = {}): Tensor {
  return random.normal(key, shape, { dtype: opts.dtype ?? 'f32', std: opts.std ?? 0.02, mean: opts.mean ?? 0 });
}

export function zeros(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return ops.zeros(shape, dtype);
}

export function ones(shape: readonly number[], dtype: DType = 'f32'): Tensor {
  return ops.ones(shape, dtype);
}

/**
 * Multiplies every leaf of a parameter tree by `scale`: the "head init scale" of ConvNeXt V2
 * (main_finetune passes 0.001; the class default is 1, when this is the identity).
 */
export function scaleInit<T>(tree: T, scale: number): T {
  if (scale === 1) return tree;
  return treeMap<T>((t) => ops.mul(t, scale), tree);
}

// ---------------------------------------------------------------------------------------
// parameter trees <-> flat state dicts

/** Flattens a parameter tree into dotted names (arrays give numeric segments), in tree order. */
export function flattenParams(tree: unknown, prefix = ''): Map<string, Tensor> {
  return new Map(namedLeaves(tree, 'flattenParams', prefix).map((l) => [l.name, l.tensor] as const));
}

/** A node of the tree unflattenParams builds: a Map, so no name can reach a prototype. */
type NameNode = Map<string, NameNode | Tensor>;

/**
 * Builds a parameter tree from dotted names: numeric segments become array indices, other
 * segments object keys (`stages.0.1.grn.gamma` -> tree.stages[0][1].grn.gamma). Arrays must be
 * dense (indices 0..n-1); a gap or a name used both as a leaf and as a prefix is an error, and
 * so is a `__proto__`, `constructor` or `prototype` segment (names from files are untrusted:
 * such segments exist to pollute Object.prototype).
 */
export function unflattenParams<T = any>(entries: Iterable<readonly [string, Tensor]>): T {
  const op = 'unflattenParams';
  const root: NameNode = new Map();
  for (const [name, t] of entries) {
    if (typeof name !== 'string') throw new OpError(op, `parameter names must be strings, got ${typeof name}`);
    if (!(t instanceof Tensor)) throw new OpError(op, `the value of ${JSON.stringify(name)} is not a Tensor`);
    const bad = forbiddenSegment(name);
    if (bad !== undefined) throw new OpError(op, `parameter name ${JSON.stringify(name)} has a ${JSON.stringify(bad)} segment, which is refused (prototype pollution)`);
    const segs = name.split('.');
    let node = root;
    for (let i = 0; i < segs.length; i++) {
      const s = segs[i]!;
      if (s === '') throw new OpError(op, `empty segment in parameter name ${JSON.stringify(name)}`);
      const next = node.get(s);
      if (i === segs.length - 1) {
        if (next !== undefined) throw new OpError(op, `parameter ${JSON.stringify(name)} is given twice or is also a prefix of another name`);
        node.set(s, t);
      } else {
        if (next instanceof Tensor) throw new OpError(op, `${JSON.stringify(segs.slice(0, i + 1).join('.'))} is a tensor and also a prefix of ${JSON.stringify(name)}`);
        if (next === undefined) {
          const child: NameNode = new Map();
          node.set(s, child);
          node = child;
        } else {
          node = next;
        }
      }
    }
  }
  const fix = (x: NameNode | Tensor, path: string): unknown => {
    if (x instanceof Tensor) return x;
    const keys = [...x.keys()];
    const sub = (k: string): string => (path ? `${path}.${k}` : k);
    if (keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) {
      const arr: unknown[] = [];
      for (let i = 0; i < keys.length; i++) {
        const c = x.get(String(i));
        if (c === undefined) {
          throw new OpError(op, `${sub(String(i))} is missing: the indices under ${JSON.stringify(path || '(root)')} are ${keys.sort((a, b) => +a - +b).join(', ')}`);
        }
        arr.push(fix(c, sub(String(i))));
      }
      return arr;
    }
    // Keys are checked above, so plain assignment cannot reach a prototype.
    const r: Record<string, unknown> = {};
    for (const k of keys) r[k] = fix(x.get(k)!, sub(k));
    return r;
  };
  return fix(root, '') as T;
}

/** The total number of elements of all tensors in a tree. */
export function paramCount(tree: unknown): number {
  let n = 0;
  for (const t of flattenParams(tree).values()) n += t.size;
  return n;
}

// ---------------------------------------------------------------------------------------
// shape trees: the expected structure of a parameter tree, used for init and for checking

/** How a parameter is initialised. */
export type InitKind = 'trunc_normal' | 'normal' | 'zeros' | 'ones';

/** A leaf of a parameter spec tree. */
export class ParamSpec {
  constructor(
    readonly shape: readonly number[],
    readonly init: InitKind,
    /** std for trunc_normal / normal. */
    readonly std = 0.02,
    /** multiplied into the initial value (head init scale). */
    readonly scale = 1,
  ) {}
}

export type SpecTree = ParamSpec | readonly SpecTree[] | { readonly [k: string]: SpecTree };

function specLeaves(spec: SpecTree, path: string, out: [string, ParamSpec][]): void {
  if (spec instanceof ParamSpec) {
    out.push([path, spec]);
    return;
  }
  if (Array.isArray(spec)) {
    spec.forEach((c, i) => specLeaves(c, path ? `${path}.${i}` : String(i), out));
    return;
  }
  for (const [k, v] of Object.entries(spec)) specLeaves(v as SpecTree, path ? `${path}.${k}` : k, out);
}

/** (path, spec) for every leaf of a spec tree, in tree order. */
export function specEntries(spec: SpecTree): [string, ParamSpec][] {
  const out: [string, ParamSpec][] = [];
  specLeaves(spec, '', out);
  return out;
}

/** The number of parameters a spec tree describes (no tensors are made). */
export function specParamCount(spec: SpecTree): number {
  return specEntries(spec).reduce((a, [, s]) => a + sizeOf(s.shape), 0);
}

/**
 * Initialises a spec tree: one key per random leaf (split from `key` in tree order), trunc
 * normal / normal with the leaf's std, zeros, ones; then times the leaf's scale.
 */
export function initFromSpec<T = any>(key: Tensor, spec: SpecTree, dtype: FloatDType = 'f32'): T {
  const entries = specEntries(spec);
  const randomCount = entries.filter(([, s]) => s.init === 'trunc_normal' || s.init === 'normal').length;
  const keys = splitKeys(key, randomCount);
  let k = 0;
  const made = entries.map(([path, s]): [string, Tensor] => {
    let t: Tensor;
    switch (s.init) {
      case 'trunc_normal':
        t = truncNormal(keys[k++]!, s.shape, { std: s.std, dtype });
        break;
      case 'normal':
        t = normalInit(keys[k++]!, s.shape, { std: s.std, dtype });
        break;
      case 'zeros':
        t = zeros(s.shape, dtype);
        break;
      case 'ones':
        t = ones(s.shape, dtype);
        break;
    }
    if (s.scale !== 1) t = ops.mul(t, s.scale);
    return [path, t];
  });
  return unflattenParams<T>(made);
}

/** Follows a dotted path through a parameter tree (own properties only); undefined if absent. */
export function getPath(tree: unknown, path: string): unknown {
  let node: unknown = tree;
  for (const s of path.split('.')) {
    if (node === null || node === undefined || typeof node !== 'object' || node instanceof Tensor) return undefined;
    node = ownValue(node, s);
  }
  return node;
}

/**
 * Checks that `params` has a tensor of the right shape at every leaf of `spec` (extra entries
 * are allowed). Errors name the operation, the path (`stages.2.1.pwconv1.weight`), and the
 * expected and found shapes.
 */
export function checkParams(op: string, params: unknown, spec: SpecTree, prefix = ''): void {
  if (params === null || typeof params !== 'object') {
    throw new OpError(op, `params must be a tree of Tensors (plain objects and arrays), got ${params === null ? 'null' : typeof params}`);
  }
  let dtype: DType | undefined;
  let dtypePath = '';
  for (const [path, s] of specEntries(spec)) {
    const full = prefix ? `${prefix}.${path}` : path;
    const t = getPath(params, path);
    if (t === undefined || t === null) {
      throw new OpError(op, `params are missing "${full}" (expected a tensor of shape ${fmtShape(s.shape)})`);
    }
    if (!(t instanceof Tensor)) throw new OpError(op, `params "${full}" is not a Tensor (expected shape ${fmtShape(s.shape)})`);
    if (t.shape.length !== s.shape.length || t.shape.some((d, i) => d !== s.shape[i])) {
      throw new OpError(op, `params "${full}" has shape ${fmtShape(t.shape)}, expected ${fmtShape(s.shape)}`);
    }
    if (dtype === undefined) {
      dtype = t.dtype;
      dtypePath = full;
    } else if (t.dtype !== dtype) {
      throw new OpError(op, `params "${full}" is ${t.dtype} but "${dtypePath}" is ${dtype}; cast all parameters to one dtype`);
    }
  }
}
