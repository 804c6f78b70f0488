/**
 * jit's arguments: option checks, the cache signature of a call (pytree structure, shapes,
 * dtypes, exact static values), the function's declared arity, and putting the argument arrays
 * on the jit's device with private storage for donated ones.
 */
import type { Device } from '../codegen/kernel/device.js';
import type { DeviceArray } from '../ir/device_array.js';
import { NexgradError } from '../ir/errors.js';
import { exactKey } from '../ir/exact_key.js';
import { HostArray } from '../ir/host.js';
import { treeFlatten, type TreeDef } from '../ir/pytree.js';
import type { Tensor } from '../ir/tensor.js';
import { type Precision, PRECISIONS } from './mixed_precision.js';

export interface JitOptions {
  backend?: string;
  /** Argument positions whose buffers the compiled function may overwrite (params, optimizer state). */
  donate?: number | readonly number[];
  /** Argument positions passed as compile-time constants (plain data: numbers, strings, arrays, objects). */
  staticArgnums?: number | readonly number[];
  /** Disk cache directory, or false to disable it. Default: $NEXGRAD_CACHE_DIR or ~/.cache/nexgrad. */
  cacheDir?: string | false;
  /**
   * 'bf16': matmuls and convolutions on bf16 operands, activations stored in bf16, everything
   * else (master weights, optimizer state, reductions, normalisation statistics) in f32; see
   * src/passes/mixed_precision.ts. Default 'f32' (the program as traced).
   */
  precision?: Precision;
}

const OPTION_NAMES: readonly string[] = ['backend', 'donate', 'staticArgnums', 'cacheDir', 'precision'];

function positions(name: string, x: unknown): number[] {
  if (x === undefined) return [];
  const list = typeof x === 'number' ? [x] : Array.isArray(x) ? x : null;
  if (!list || !list.every((i) => Number.isInteger(i) && i >= 0)) {
    throw new NexgradError(`jit: option ${name} must be an argument position or a list of them (non-negative integers), got ${JSON.stringify(x)}`);
  }
  return [...list] as number[];
}

export interface CheckedOptions {
  readonly backend: string;
  readonly donate: readonly number[];
  readonly statics: readonly number[];
  readonly cacheDir: string | false | undefined;
  readonly precision: Precision;
}

export function checkOptions(opts: unknown): CheckedOptions {
  if (opts === null || typeof opts !== 'object') throw new NexgradError(`jit: options must be an object, got ${opts === null ? 'null' : typeof opts}`);
  for (const k of Object.keys(opts)) {
    if (!OPTION_NAMES.includes(k)) throw new NexgradError(`jit: unknown option ${JSON.stringify(k)}; the options are ${OPTION_NAMES.join(', ')}`);
  }
  const o = opts as JitOptions;
  if (o.backend !== undefined && typeof o.backend !== 'string') throw new NexgradError(`jit: option backend must be a backend name, got ${JSON.stringify(o.backend)}`);
  if (o.cacheDir !== undefined && o.cacheDir !== false && typeof o.cacheDir !== 'string') throw new NexgradError('jit: option cacheDir must be a directory path or false');
  if (o.precision !== undefined && !PRECISIONS.includes(o.precision)) {
    throw new NexgradError(`jit: option precision must be one of ${PRECISIONS.map((x) => `'${x}'`).join(', ')}, got ${JSON.stringify(o.precision)}`);
  }
  const donate = positions('donate', o.donate);
  const statics = positions('staticArgnums', o.staticArgnums);
  const both = donate.find((i) => statics.includes(i));
  if (both !== undefined) throw new NexgradError(`jit: argument ${both} is both donated and static`);
  return { backend: o.backend ?? 'cpu', donate, statics, cacheDir: o.cacheDir, precision: o.precision ?? 'f32' };
}

/**
 * The arity the function's parameter list declares: the least (fn.length, before the first
 * default) and the most (Infinity with a rest parameter or when the list cannot be read).
 */
export function declaredArity(fn: (...args: never[]) => unknown): { min: number; max: number } {
  const src = Function.prototype.toString.call(fn);
  const m = /^(?:async\s*)?(?:function\b[^(]*)?\(([^]*?)\)\s*(?:=>|\{)/.exec(src) ?? /^(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(src);
  if (!m) return { min: fn.length, max: Infinity };
  const list = m[1]!;
  if (list.includes('...') || /[({[]/.test(list)) return { min: fn.length, max: Infinity }; // rest or destructuring: don't guess
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  return { min: fn.length, max: names.length };
}

/**
 * Extra arguments (beyond the declared parameters, without a rest parameter) are refused: they
 * would be ignored. Fewer arguments are allowed (TypeScript's optional parameters); a trace that
 * then fails is reported by `traceError`.
 */
export function checkArity(args: readonly unknown[], arity: { min: number; max: number }, checked: CheckedOptions): void {
  if (args.length > arity.max) throw new NexgradError(`jit: the function takes at most ${arity.max} arguments, got ${args.length} (extra arguments would be ignored)`);
  for (const i of [...checked.donate, ...checked.statics]) {
    if (i >= args.length) throw new NexgradError(`jit: ${checked.donate.includes(i) ? 'donate' : 'staticArgnums'} names argument ${i}, but the call has ${args.length} arguments`);
  }
}

export interface ArgSig {
  readonly kind: 'static' | 'traced';
  readonly text: string;
  /** path -> "dtype[shape]" for traced args. */
  readonly leaves: readonly [string, string][];
}

export function leafPaths(def: TreeDef, root: string): string[] {
  const out: string[] = [];
  const walk = (d: TreeDef, p: string): void => {
    switch (d.kind) {
      case 'leaf':
        out.push(p);
        break;
      case 'none':
        break;
      case 'array':
        d.children.forEach((c, i) => walk(c, `${p}[${i}]`));
        break;
      case 'object':
        d.children.forEach((c, i) => walk(c, `${p}.${d.keys[i]}`));
        break;
    }
  };
  walk(def, root);
  return out;
}

/** The signature of a call: exact keys of static arguments, structure and types of the rest. */
export function signature(args: readonly unknown[], statics: readonly number[]): ArgSig[] {
  return args.map((a, i) => {
    if (statics.includes(i)) return { kind: 'static', text: exactKey(a, `jit: static argument ${i}`), leaves: [] };
    const { leaves, def } = treeFlatten(a, 'jit', `argument ${i}`);
    const paths = leafPaths(def, `argument ${i}`);
    const lv = leaves.map((t, j) => [paths[j]!, `${t.dtype}[${t.shape.join(',')}]`] as [string, string]);
    return { kind: 'traced', text: exactKey({ def, lv: lv.map((x) => x[1]) }, 'jit'), leaves: lv };
  });
}

export const sigKey = (sig: readonly ArgSig[]): string => sig.map((s) => `${s.kind}:${s.text}`).join('\n');

/** The flat leaves of the traced arguments and, per leaf, whether its argument is donated. */
export function flatArgs(args: readonly unknown[], checked: CheckedOptions): { leaves: Tensor[]; donated: boolean[] } {
  const leaves: Tensor[] = [];
  const donated: boolean[] = [];
  args.forEach((a, i) => {
    if (checked.statics.includes(i)) return;
    const l = treeFlatten(a, 'jit', `argument ${i}`).leaves;
    leaves.push(...l);
    l.forEach(() => donated.push(checked.donate.includes(i)));
  });
  return { leaves, donated };
}

/** Two host arrays whose memory overlaps. */
function overlaps(a: HostArray, b: HostArray): boolean {
  const x = a.data;
  const y = b.data;
  return x.buffer === y.buffer && y.byteOffset < x.byteOffset + x.byteLength && x.byteOffset < y.byteOffset + y.byteLength;
}

/**
 * The argument arrays on `device` (arrays on the host are uploaded; `transfers` counts them).
 * Donated inputs are overwritten in place, so a donated array must not share storage with any
 * other input position (the same tensor passed twice, optimizer moments initialised with one
 * shared zero tensor): such a one gets a private copy for this call.
 */
export function argumentArrays(leaves: readonly Tensor[], donated: readonly boolean[], device: Device, onTransfer: () => void): DeviceArray[] {
  const arrays = leaves.map((t, i) => {
    const a = t._array;
    if (!a) throw new NexgradError(`jit: input ${i} is a tracer from another trace; pass concrete tensors`);
    if (a.device.name === device.name) return a;
    if (!a.device.syncRead) {
      throw new NexgradError(`jit: input ${i} lives on the '${a.device.name}' device and this function runs on '${device.name}'; move it first with \`await ng.devicePutAsync(x, '${device.name}')\``);
    }
    onTransfer();
    return device.upload(a.readSync());
  });
  return arrays.map((a, i) => {
    if (!donated[i]) return a;
    const shared = arrays.some((b, j) => j !== i && (b === a || (a instanceof HostArray && b instanceof HostArray && overlaps(a, b))));
    return shared ? device.copy(a) : a;
  });
}

/**
 * A failure while tracing the user's function that is not already a NexgradError (a TypeError
 * from reading a missing or null argument, say), reported with what the call passed.
 */
export function traceError(e: unknown, args: readonly unknown[], arity: { min: number; max: number }): unknown {
  if (!(e instanceof Error)) return e;
  const notes: string[] = [];
  if (args.length < arity.min) notes.push(`the call passed ${args.length} arguments and the function declares ${arity.min}`);
  args.forEach((a, i) => {
    if (a === null || a === undefined) notes.push(`argument ${i} is ${a}`);
  });
  if (e instanceof NexgradError && notes.length === 0) return e;
  const err = new NexgradError(`jit: tracing the function failed: ${e.message}${notes.length ? ` (${notes.join('; ')})` : ''}`);
  (err as Error & { cause?: unknown }).cause = e;
  return err;
}
