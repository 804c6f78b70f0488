/**
 * ConvNeXt V2 checkpoints: parameter trees <-> flat state dicts with the official dotted keys,
 * the key maps official <-> timm (spec 5.5) and FCMAE sparse -> dense (spec 5.3), and loading
 * and saving safetensors files with strict, explained key checks.
 *
 * Layouts:
 * - 'official': facebookresearch/ConvNeXt-V2 dense keys (spec 5.1); our parameter paths.
 * - 'timm':     timm's convnextv2 keys (spec 5.5).
 * - 'fcmae':    FCMAE pretraining checkpoints (spec 5.2): the sparse training-time keys
 *               (`encoder.` prefix, `.kernel`, `.ln.`, `.linear.`, (1,C) biases and GRN) and
 *               our own dense FCMAE trees (`encoder.*`, proj, mask_token, decoder, pred).
 *
 * PyTorch pickles (.pt/.pth) are never read: the safetensors reader refuses them and prints
 * the command that converts one.
 */
import { type DType, isFloat } from '../ir/dtype.js';
import { NexgradError } from '../ir/errors.js';
import * as ops from '../ir/ops.js';
import { treeFlatten, treeUnflatten } from '../ir/pytree.js';
import { fmtShape, MAX_ELEMENTS, sizeOf } from '../ir/shape.js';
import { Tensor } from '../ir/tensor.js';
import { unflattenParams } from '../nn/init.js';
import { firstOutOfRange, intRange, NEXGRAD_TO_SAFE, SAFE_DTYPE_MAP } from '../nn/io.js';
import {
  isPickleName,
  parseSafetensors,
  readSafetensors,
  type SafeData,
  type SafeDType,
  type SafeTensor,
  writeSafetensors,
} from '../nn/safetensors.js';
import { forbiddenSegment, namedLeaves } from '../nn/tree_paths.js';

export type CheckpointLayout = 'official' | 'timm' | 'fcmae';

/** The part of a ConvNeXt V2 config needed to know the official keys and shapes. */
export interface CheckpointConfig {
  readonly depths: readonly number[];
  readonly dims: readonly number[];
  readonly numClasses: number;
  /** Image channels (default 3). */
  readonly inChans?: number;
  /** Stem kernel size and stride (default 4). */
  readonly stemStride?: number;
  /** dtype of the loaded parameters (default f32). */
  readonly dtype?: DType;
}

// ---------------------------------------------------------------------------------------
// errors

export type CheckpointProblem =
  | { kind: 'missing'; key: string; expected: readonly number[]; candidates: string[] }
  | { kind: 'unexpected'; key: string; found: readonly number[]; from: string; candidates: string[] }
  | { kind: 'shape'; key: string; expected: readonly number[]; found: readonly number[]; from: string; candidates: string[] }
  | { kind: 'dtype'; key: string; expected: DType; found: string; from: string };

/** A checkpoint that does not fit the model: every problem, with the closest key names. */
export class CheckpointError extends NexgradError {
  readonly problems: readonly CheckpointProblem[];
  constructor(message: string, problems: readonly CheckpointProblem[] = []) {
    super(message);
    this.name = 'CheckpointError';
    this.problems = problems;
  }
}

// ---------------------------------------------------------------------------------------
// entries: one tensor of a state dict, with lazily materialised data

interface Entry {
  readonly shape: readonly number[];
  /** 'float', 'int' or 'bool' */
  readonly kind: 'float' | 'int' | 'bool';
  /** The source dtype for messages (safetensors 'F32' or nexgrad 'f32'). */
  readonly dtype: string;
  /** The element values in row-major order. */
  readonly data: () => ArrayLike<number>;
  /** The source tensor, when this entry is one unchanged. */
  readonly tensor?: Tensor;
  /** The key this entry had in the source. */
  readonly from: string;
}

type Entries = Map<string, Entry>;

const SAFE_KIND: Readonly<Record<SafeDType, Entry['kind']>> = {
  F64: 'float', F32: 'float', F16: 'float', BF16: 'float',
  I64: 'int', I32: 'int', I16: 'int', I8: 'int', U64: 'int', U32: 'int', U16: 'int', U8: 'int',
  BOOL: 'bool',
};

function entryOfTensor(name: string, t: Tensor): Entry {
  return {
    shape: t.shape,
    kind: isFloat(t.dtype) ? 'float' : t.dtype === 'bool' ? 'bool' : 'int',
    dtype: t.dtype,
    data: () => t.dataSync(),
    tensor: t,
    from: name,
  };
}

function entryOfSafe(name: string, t: SafeTensor): Entry {
  return { shape: t.shape, kind: SAFE_KIND[t.dtype], dtype: t.dtype, data: () => t.data, from: name };
}

function reshaped(e: Entry, shape: readonly number[]): Entry {
  if (shape.length === e.shape.length && shape.every((d, i) => d === e.shape[i])) return e;
  return { ...e, shape: [...shape], tensor: e.tensor && ops.reshape(e.tensor, shape) };
}

function withData(e: Entry, shape: readonly number[], data: Float64Array): Entry {
  return { shape: [...shape], kind: e.kind, dtype: e.dtype, data: () => data, from: e.from };
}

/**
 * The dtype a tensor made from an entry keeps when no template says otherwise: a tensor's own
 * dtype, or the one mapping of file dtypes (nn/io.ts SAFE_DTYPE_MAP, shared with loadSafetensors).
 */
function naturalDType(e: Entry): DType {
  if (e.tensor) return e.tensor.dtype;
  if (Object.prototype.hasOwnProperty.call(SAFE_DTYPE_MAP, e.dtype)) return SAFE_DTYPE_MAP[e.dtype as SafeDType].dtype;
  return e.dtype as DType; // entries rebuilt from a nexgrad tensor keep its dtype name
}

/**
 * The entry as a tensor of `dtype` and `shape`. Integer targets are range-checked (an I64 or
 * U32 value that i32 cannot hold is an error naming the key, never a wrapped value).
 */
function entryTensor(op: string, key: string, e: Entry, dtype: DType, shape: readonly number[]): Tensor {
  const t = e.tensor;
  if (t && t.dtype === dtype && t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i])) return t;
  const data = e.data();
  const range = intRange(dtype);
  const bad = range && firstOutOfRange(data, range);
  if (bad) {
    throw new CheckpointError(`${op}: ${JSON.stringify(key)}${e.from !== key ? ` (${JSON.stringify(e.from)} in the file)` : ''} element ${bad[0]} is ${bad[1]}, which ${dtype} cannot hold (range [${range![0]}, ${range![1]}]); nothing is wrapped`);
  }
  return ops.tensor(data, { dtype, shape });
}

function toTensorMap(op: string, entries: Entries): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, e] of entries) out.set(k, entryTensor(op, k, e, naturalDType(e), e.shape));
  return out;
}

function fromTensorMap(op: string, map: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>): Entries {
  const list: [string, unknown][] = map instanceof Map ? [...map] : Object.entries(map);
  const out: Entries = new Map();
  for (const [k, t] of list) {
    if (!(t instanceof Tensor)) throw new CheckpointError(`${op}: the value of key ${JSON.stringify(k)} is not a Tensor`);
    out.set(k, entryOfTensor(k, t));
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// params <-> state dicts

/** Flattens a parameter tree into official dotted keys (arrays give numeric segments). */
export function toStateDict(params: unknown, prefix = ''): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const { name, tensor } of namedLeaves(params, 'toStateDict', prefix)) out.set(name, tensor);
  return out;
}

/** The official keys and shapes of a ConvNeXt V2 classifier, in PyTorch state-dict order. */
export function officialShapes(cfg: CheckpointConfig): [string, number[]][] {
  const { depths, dims, numClasses } = cfg;
  const inChans = cfg.inChans ?? 3;
  const s = cfg.stemStride ?? 4;
  const bad = (m: string): never => {
    throw new CheckpointError(`officialShapes: ${m}`);
  };
  if (!Array.isArray(depths) || depths.length === 0 || !depths.every((d) => Number.isInteger(d) && d >= 0)) bad(`depths must be non-negative integers, got ${JSON.stringify(depths)}`);
  if (!Array.isArray(dims) || dims.length !== depths.length || !dims.every((d) => Number.isInteger(d) && d > 0)) bad(`dims must be ${depths.length} positive integers, got ${JSON.stringify(dims)}`);
  if (!(Number.isInteger(numClasses) && numClasses >= 0)) bad(`numClasses must be a non-negative integer, got ${numClasses}`);
  const out: [string, number[]][] = [];
  const c = dims;
  out.push(['downsample_layers.0.0.weight', [c[0]!, inChans, s, s]], ['downsample_layers.0.0.bias', [c[0]!]]);
  out.push(['downsample_layers.0.1.weight', [c[0]!]], ['downsample_layers.0.1.bias', [c[0]!]]);
  for (let i = 1; i < depths.length; i++) {
    const p = `downsample_layers.${i}`;
    out.push([`${p}.0.weight`, [c[i - 1]!]], [`${p}.0.bias`, [c[i - 1]!]]);
    out.push([`${p}.1.weight`, [c[i]!, c[i - 1]!, 2, 2]], [`${p}.1.bias`, [c[i]!]]);
  }
  depths.forEach((d, i) => {
    const C = c[i]!;
    for (let b = 0; b < d; b++) {
      const p = `stages.${i}.${b}`;
      out.push([`${p}.dwconv.weight`, [C, 1, 7, 7]], [`${p}.dwconv.bias`, [C]]);
      out.push([`${p}.norm.weight`, [C]], [`${p}.norm.bias`, [C]]);
      out.push([`${p}.pwconv1.weight`, [4 * C, C]], [`${p}.pwconv1.bias`, [4 * C]]);
      out.push([`${p}.grn.gamma`, [1, 1, 1, 4 * C]], [`${p}.grn.beta`, [1, 1, 1, 4 * C]]);
      out.push([`${p}.pwconv2.weight`, [C, 4 * C]], [`${p}.pwconv2.bias`, [C]]);
    }
  });
  const last = c[c.length - 1]!;
  out.push(['norm.weight', [last]], ['norm.bias', [last]]);
  out.push(['head.weight', [numClasses, last]], ['head.bias', [numClasses]]);
  return out;
}

/** Builds a tree from dotted names (numeric segments become array indices): nn.unflattenParams. */
function treeFromNames(names: readonly string[], values: readonly Tensor[]): unknown {
  return unflattenParams(names.map((n, j) => [n, values[j]!] as const));
}

/** Zero-filled parameters with a config's official structure (LayerNorm weights 1). */
export function templateFromConfig(cfg: CheckpointConfig, dtype: DType = cfg.dtype ?? 'f32'): unknown {
  const shapes = officialShapes(cfg);
  return treeFromNames(shapes.map(([k]) => k), shapes.map(([k, s]) => (isLayerNormWeight(k) ? ops.ones(s, dtype) : ops.zeros(s, dtype))));
}

function isLayerNormWeight(key: string): boolean {
  return /(^|\.)norm\.weight$/.test(key) || /^(encoder\.)?downsample_layers\.0\.1\.weight$/.test(key) || /^(encoder\.)?downsample_layers\.[1-9]\d*\.0\.weight$/.test(key);
}

function isConfig(x: unknown): x is CheckpointConfig {
  return x !== null && typeof x === 'object' && !(x instanceof Tensor) && Array.isArray((x as CheckpointConfig).depths) &&
    (x as CheckpointConfig).depths.every((d) => typeof d === 'number') && Array.isArray((x as CheckpointConfig).dims);
}

interface Target {
  names: string[];
  shapes: (readonly number[])[];
  dtypes: DType[];
  /** The value a missing key keeps when missing keys are allowed. */
  fallback: (i: number) => Tensor;
  build: (values: Tensor[]) => unknown;
  isFcmae: boolean;
}

function targetOf(op: string, template: unknown): Target {
  if (isConfig(template)) {
    const shapes = officialShapes(template);
    const dtype = template.dtype ?? 'f32';
    const names = shapes.map(([k]) => k);
    return {
      names,
      shapes: shapes.map(([, s]) => s),
      dtypes: names.map(() => dtype),
      fallback: (i) => (isLayerNormWeight(names[i]!) ? ops.ones(shapes[i]![1], dtype) : ops.zeros(shapes[i]![1], dtype)),
      build: (values) => treeFromNames(names, values),
      isFcmae: false,
    };
  }
  const leaves = namedLeaves(template, op);
  if (leaves.length === 0) throw new CheckpointError(`${op}: the template has no tensors; pass a parameter tree or a config {depths, dims, numClasses}`);
  const { def } = treeFlatten(template, op, 'template');
  return {
    names: leaves.map((l) => l.name),
    shapes: leaves.map((l) => l.tensor.shape),
    dtypes: leaves.map((l) => l.tensor.dtype),
    fallback: (i) => leaves[i]!.tensor,
    build: (values) => treeUnflatten(def, values),
    isFcmae: leaves.some((l) => l.name.startsWith('encoder.')),
  };
}

// ---------------------------------------------------------------------------------------
// closest names

/** Levenshtein distance (insertions, deletions and substitutions cost 1). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  let cur = new Array<number>(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    const ca = a.charCodeAt(i - 1);
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (ca === b.charCodeAt(j - 1) ? 0 : 1));
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/** Up to `n` names closest to `key` by edit distance (ties in the given order). */
export function closestNames(key: string, names: Iterable<string>, n = 3): string[] {
  const scored: [string, number][] = [];
  for (const c of names) if (c !== key) scored.push([c, editDistance(key, c)]);
  return scored
    .map((s, i) => [s, i] as const)
    .sort((x, y) => x[0][1] - y[0][1] || x[1] - y[1])
    .slice(0, n)
    .map(([s]) => s[0]);
}

// ---------------------------------------------------------------------------------------
// matching a state dict against a template

interface MatchOptions {
  strict: boolean;
  /** Keys allowed to be missing even when strict (they keep the template's values). */
  allowMissing?: (key: string) => boolean;
  /** For messages: where the state dict came from and its layout. */
  source?: string;
  layout?: string;
  hints?: string[];
}

interface MatchResult {
  params: unknown;
  missing: string[];
  unexpected: string[];
}

const GRN_KEY = /(^|\.)grn\.(gamma|beta|weight|bias)$/;

/**
 * Matches converted entries to the target: shapes must agree, except GRN tensors, which are
 * reshaped to their last dimension and then to the target shape (spec 5.4).
 */
function match(op: string, entries: Entries, target: Target, opts: MatchOptions): MatchResult {
  const problems: CheckpointProblem[] = [];
  const used = new Set<string>();
  const values: Tensor[] = [];
  const missing: string[] = [];
  const targetSet = new Set(target.names);
  const unusedNames = () => [...entries.keys()].filter((k) => !targetSet.has(k));
  target.names.forEach((key, i) => {
    const want = target.shapes[i]!;
    const dtype = target.dtypes[i]!;
    const e = entries.get(key);
    if (!e) {
      missing.push(key);
      if (!opts.strict || opts.allowMissing?.(key)) {
        values.push(target.fallback(i));
      } else {
        const pool = unusedNames();
        problems.push({ kind: 'missing', key, expected: want, candidates: closestNames(key, pool.length ? pool : entries.keys()) });
        values.push(target.fallback(i));
      }
      return;
    }
    used.add(key);
    let found = e;
    const same = e.shape.length === want.length && e.shape.every((d, j) => d === want[j]);
    if (!same) {
      const size = sizeOf(want);
      const grnOk = GRN_KEY.test(key) && e.shape.length > 0 && e.shape[e.shape.length - 1] === sizeOf(e.shape) && sizeOf(e.shape) === size && want[want.length - 1] === size;
      if (grnOk) {
        found = reshaped(e, want);
      } else {
        const withShape = [...entries].filter(([k, x]) => k !== key && x.shape.length === want.length && x.shape.every((d, j) => d === want[j])).map(([k]) => k);
        problems.push({ kind: 'shape', key, expected: want, found: e.shape, from: e.from, candidates: closestNames(key, withShape) });
        values.push(target.fallback(i));
        return;
      }
    }
    const targetKind = isFloat(dtype) ? 'float' : dtype === 'bool' ? 'bool' : 'int';
    if (found.kind !== targetKind) {
      problems.push({ kind: 'dtype', key, expected: dtype, found: e.dtype, from: e.from });
      values.push(target.fallback(i));
      return;
    }
    values.push(entryTensor(op, key, found, dtype, want));
  });
  const unexpected = [...entries.keys()].filter((k) => !used.has(k));
  if (opts.strict) {
    const missingSet = new Set(missing);
    for (const k of unexpected) {
      const e = entries.get(k)!;
      const pool = target.names.filter((n) => missingSet.has(n));
      problems.push({ kind: 'unexpected', key: k, found: e.shape, from: e.from, candidates: closestNames(k, pool.length ? pool : target.names) });
    }
  }
  if (problems.length) throw new CheckpointError(formatProblems(op, problems, opts, { file: entries.size, model: target.names.length }), problems);
  return { params: target.build(values), missing, unexpected };
}

const MAX_LISTED = 20;

const KIND_WORDS: Readonly<Record<CheckpointProblem['kind'], string>> = {
  missing: 'missing',
  unexpected: 'unexpected',
  shape: 'shape-mismatched',
  dtype: 'dtype-mismatched',
};

function describeProblem(p: CheckpointProblem): string {
  const q = (s: string): string => JSON.stringify(s);
  const cands = (c: readonly string[]): string => (c.length ? c.map(q).join(', ') : '(none)');
  const origin = (key: string, from: string): string => (from !== key ? ` (${q(from)} in the file)` : '');
  switch (p.kind) {
    case 'missing':
      return `missing key ${q(p.key)}, expected shape ${fmtShape(p.expected)}; closest keys in the checkpoint: ${cands(p.candidates)}`;
    case 'unexpected':
      return `unexpected key ${q(p.key)}${origin(p.key, p.from)} with shape ${fmtShape(p.found)}; closest model keys: ${cands(p.candidates)}`;
    case 'shape':
      return `shape mismatch for ${q(p.key)}${origin(p.key, p.from)}: expected ${fmtShape(p.expected)}, found ${fmtShape(p.found)}; ` +
        (p.candidates.length ? `checkpoint keys with shape ${fmtShape(p.expected)}: ${cands(p.candidates)}` : `no checkpoint key has shape ${fmtShape(p.expected)}`);
    case 'dtype':
      return `dtype mismatch for ${q(p.key)}${origin(p.key, p.from)}: the model needs ${p.expected}, the checkpoint has ${p.found}`;
  }
}

/**
 * The message: one summary line first (how many problems of each kind, and the key counts of
 * file and model, so a wrong layout or model size is obvious at a glance), then up to
 * MAX_LISTED problems with their closest names, then the hints.
 */
function formatProblems(op: string, problems: readonly CheckpointProblem[], opts: MatchOptions, keys: { file: number; model: number }): string {
  const counts = (Object.keys(KIND_WORDS) as CheckpointProblem['kind'][])
    .map((k) => [k, problems.filter((p) => p.kind === k).length] as const)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${KIND_WORDS[k]}`)
    .join(', ');
  const where = [opts.source ? `checkpoint ${opts.source}` : 'state dict', opts.layout ? `(layout '${opts.layout}')` : ''].filter(Boolean).join(' ');
  const n = problems.length;
  const summary = `${op}: ${where} does not fit the model: ${n} problem${n === 1 ? '' : 's'} (${counts} key${n === 1 ? '' : 's'}; the file has ${keys.file} keys, the model ${keys.model})`;
  const lines = problems.slice(0, MAX_LISTED).map(describeProblem);
  if (n > MAX_LISTED) lines.push(`... and ${n - MAX_LISTED} more (every problem is in error.problems)`);
  const hints = opts.hints?.length ? `\n${opts.hints.join('\n')}` : '';
  return `${summary}\n  ${lines.join('\n  ')}${hints}`;
}

export interface FromStateDictOptions {
  /** Missing or unexpected keys are errors (default true); if false, missing keys keep the template's values. */
  strict?: boolean;
}

/**
 * Builds parameters with the template's structure and dtypes from a state dict with the
 * template's dotted keys. `template` is a parameter tree or a config {depths, dims, numClasses}.
 * Values are cast to the template dtype; GRN tensors are reshaped as spec 5.4 says.
 */
export function fromStateDict<P = any>(stateDict: ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>, template: unknown, opts: FromStateDictOptions = {}): P {
  const op = 'fromStateDict';
  const entries = fromTensorMap(op, stateDict);
  return match(op, entries, targetOf(op, template), { strict: opts.strict ?? true }).params as P;
}

// ---------------------------------------------------------------------------------------
// key maps: official <-> timm (spec 5.5)

interface KeyRule {
  readonly official: string;
  readonly timm: string;
  /** 'fc': linear weight (out,in) <-> conv_mlp (out,in,1,1); 'grn': (1,1,1,C) <-> (C). */
  readonly reshape?: 'fc' | 'grn';
}

/**
 * The renaming table, first match wins. {s} stage, {b} block, {k} sub-module index, {p} weight
 * or bias.
 */
export const TIMM_KEY_RULES: readonly KeyRule[] = Object.freeze([
  { official: 'downsample_layers.0.{k}.{p}', timm: 'stem.{k}.{p}' },
  { official: 'downsample_layers.{s}.{k}.{p}', timm: 'stages.{s}.downsample.{k}.{p}' },
  { official: 'stages.{s}.{b}.dwconv.{p}', timm: 'stages.{s}.blocks.{b}.conv_dw.{p}' },
  { official: 'stages.{s}.{b}.norm.{p}', timm: 'stages.{s}.blocks.{b}.norm.{p}' },
  { official: 'stages.{s}.{b}.pwconv1.{p}', timm: 'stages.{s}.blocks.{b}.mlp.fc1.{p}', reshape: 'fc' },
  { official: 'stages.{s}.{b}.pwconv2.{p}', timm: 'stages.{s}.blocks.{b}.mlp.fc2.{p}', reshape: 'fc' },
  { official: 'stages.{s}.{b}.grn.gamma', timm: 'stages.{s}.blocks.{b}.mlp.grn.weight', reshape: 'grn' },
  { official: 'stages.{s}.{b}.grn.beta', timm: 'stages.{s}.blocks.{b}.mlp.grn.bias', reshape: 'grn' },
  { official: 'norm.{p}', timm: 'head.norm.{p}' },
  { official: 'head.{p}', timm: 'head.fc.{p}' },
] as KeyRule[]);

const PLACEHOLDER: Readonly<Record<string, string>> = { s: '(\\d+)', b: '(\\d+)', k: '(\\d+)', p: '(weight|bias)' };

interface CompiledRule {
  re: RegExp;
  vars: string[];
  out: string;
  reshape?: 'fc' | 'grn';
}

function compile(from: string, to: string, reshape?: 'fc' | 'grn'): CompiledRule {
  const vars: string[] = [];
  const src = from
    .split(/(\{[a-z]\})/)
    .map((part) => {
      const m = /^\{([a-z])\}$/.exec(part);
      if (m) {
        vars.push(m[1]!);
        return PLACEHOLDER[m[1]!]!;
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return { re: new RegExp(`^${src}$`), vars, out: to, reshape };
}

const TO_TIMM = TIMM_KEY_RULES.map((r) => compile(r.official, r.timm, r.reshape));
const TO_OFFICIAL = TIMM_KEY_RULES.map((r) => compile(r.timm, r.official, r.reshape));

function rename(rules: readonly CompiledRule[], key: string): { key: string; reshape?: 'fc' | 'grn' } {
  for (const r of rules) {
    const m = r.re.exec(key);
    if (!m) continue;
    let out = r.out;
    r.vars.forEach((v, i) => (out = out.replace(`{${v}}`, m[i + 1]!)));
    return { key: out, reshape: r.reshape };
  }
  return { key };
}

function putUnique(op: string, out: Entries, key: string, e: Entry): void {
  if (out.has(key)) throw new CheckpointError(`${op}: keys ${JSON.stringify(out.get(key)!.from)} and ${JSON.stringify(e.from)} both map to ${JSON.stringify(key)}`);
  out.set(key, e);
}

function officialToTimmEntries(entries: Entries, convMlp: boolean): Entries {
  const out: Entries = new Map();
  for (const [k, e] of entries) {
    const r = rename(TO_TIMM, k);
    let v = e;
    if (r.reshape === 'grn') v = reshaped(e, [sizeOf(e.shape)]);
    else if (r.reshape === 'fc' && convMlp && r.key.endsWith('.weight') && e.shape.length === 2) v = reshaped(e, [...e.shape, 1, 1]);
    putUnique('officialToTimm', out, r.key, v);
  }
  return out;
}

function timmToOfficialEntries(entries: Entries): Entries {
  const out: Entries = new Map();
  for (const [k, e] of entries) {
    const r = rename(TO_OFFICIAL, k);
    let v = e;
    if (r.reshape === 'grn') v = reshaped(e, [1, 1, 1, sizeOf(e.shape)]);
    else if (r.reshape === 'fc' && r.key.endsWith('.weight') && e.shape.length === 4 && e.shape[2] === 1 && e.shape[3] === 1) v = reshaped(e, [e.shape[0]!, e.shape[1]!]);
    putUnique('timmToOfficial', out, r.key, v);
  }
  return out;
}

/** timm builds atto..nano with conv_mlp=True (fc weights (out,in,1,1)); tiny and larger use Linear. */
export const TIMM_CONV_MLP_VARIANTS: readonly string[] = Object.freeze(['atto', 'femto', 'pico', 'nano']);

export interface TimmOptions {
  /** Write fc1/fc2 weights as (out,in,1,1), as timm's conv_mlp models (atto..nano) hold them. */
  convMlp: boolean;
}

/**
 * Official keys -> timm keys (spec 5.5): stem/stages/blocks/mlp/head renames, GRN (1,1,1,C) ->
 * (C), and with convMlp the fc weights (out,in) -> (out,in,1,1). Unknown keys pass unchanged.
 */
export function officialToTimm(stateDict: ReadonlyMap<string, Tensor>, opts: TimmOptions): Map<string, Tensor> {
  if (!opts || typeof opts.convMlp !== 'boolean') throw new CheckpointError('officialToTimm: pass {convMlp: true} for atto..nano (timm conv_mlp models) or {convMlp: false} for tiny and larger');
  return toTensorMap('officialToTimm', officialToTimmEntries(fromTensorMap('officialToTimm', stateDict), opts.convMlp));
}

/** timm keys -> official keys: the inverse renames, GRN (C) -> (1,1,1,C), fc weights (out,in,1,1) -> (out,in). */
export function timmToOfficial(stateDict: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  return toTensorMap('timmToOfficial', timmToOfficialEntries(fromTensorMap('timmToOfficial', stateDict)));
}

// ---------------------------------------------------------------------------------------
// FCMAE sparse -> dense (spec 5.3)

/**
 * A sparse (Minkowski) kernel as a dense conv weight. The shape is validated before any loop
 * (every dimension a positive integer, a square kernel volume, at most MAX_ELEMENTS values, as
 * many values as the shape says), so the work is bounded by the data the file holds: a hostile
 * shape such as [0, 1e15] is an error, not a 1e15-iteration loop.
 */
function kernelToDense(op: string, e: Entry): Entry {
  const shape = e.shape;
  const bad = (why: string): CheckpointError => new CheckpointError(`${op}: sparse kernel ${JSON.stringify(e.from)} has shape ${fmtShape(shape)}; ${why}`);
  if (shape.length !== 2 && shape.length !== 3) throw bad('expected (ks*ks, in, out) or (ks*ks, C)');
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 1)) throw bad('every dimension must be a positive integer');
  const kv = shape[0]!;
  const ks = Math.round(Math.sqrt(kv));
  if (ks * ks !== kv) throw bad(`the kernel volume ${kv} is not a square (ks*ks)`);
  if (e.kind !== 'float') throw new CheckpointError(`${op}: sparse kernel ${JSON.stringify(e.from)} has dtype ${e.dtype}, expected a float type`);
  const total = sizeOf(shape);
  if (!(total <= MAX_ELEMENTS)) throw bad(`more than ${MAX_ELEMENTS} elements`);
  const K = e.data();
  if (K.length !== total) throw bad(`it holds ${K.length} values, not ${total}`);
  if (shape.length === 3) {
    // W[o,i,h,w] = K[h + ks*w, i, o]
    const nin = shape[1]!;
    const nout = shape[2]!;
    const W = new Float64Array(total);
    for (let o = 0; o < nout; o++)
      for (let i = 0; i < nin; i++)
        for (let h = 0; h < ks; h++)
          for (let w = 0; w < ks; w++) W[((o * nin + i) * ks + h) * ks + w] = K[((h + ks * w) * nin + i) * nout + o]!;
    return withData(e, [nout, nin, ks, ks], W);
  }
  // depthwise: W[c,0,h,w] = K[h + ks*w, c]
  const C = shape[1]!;
  const W = new Float64Array(total);
  for (let c = 0; c < C; c++)
    for (let h = 0; h < ks; h++)
      for (let w = 0; w < ks; w++) W[(c * ks + h) * ks + w] = K[(h + ks * w) * C + c]!;
  return withData(e, [C, 1, ks, ks], W);
}

function fcmaeToDenseEntries(entries: Entries, stripEncoder: boolean): Entries {
  const op = 'fcmaeToDense';
  const out: Entries = new Map();
  for (const [k0, e0] of entries) {
    let k = k0;
    let e = e0;
    if (stripEncoder && k.startsWith('encoder.')) k = k.slice('encoder.'.length);
    if (k.endsWith('.kernel')) {
      k = `${k.slice(0, -'.kernel'.length)}.weight`;
      e = kernelToDense(op, e);
    } else {
      k = k.split('.').filter((s) => s !== 'ln' && s !== 'linear').join('.');
    }
    putUnique(op, out, k, e);
  }
  for (const [k, e] of out) {
    if (/(^|\.)bias$/.test(k) && e.shape.length !== 1) out.set(k, reshaped(e, [sizeOf(e.shape)]));
    else if (/(^|\.)grn\./.test(k) && e.shape.length === 2) out.set(k, reshaped(e, [1, 1, ...e.shape]));
  }
  return out;
}

/**
 * The official remap_checkpoint_keys (spec 5.3): strip `encoder.`, turn `X.kernel` into dense
 * `X.weight` (standard (kv,in,out): W[o,i,h,w] = K[h + ks*w, i, o]; depthwise (kv,C):
 * W[c,0,h,w] = K[h + ks*w, c]), drop the `.ln.` and `.linear.` segments, flatten biases that
 * are not 1-D and unsqueeze (1,C) GRN tensors to (1,1,1,C). With keepEncoderPrefix the
 * `encoder.` prefix stays (for loading into an FCMAE tree).
 */
export function fcmaeToDense(stateDict: ReadonlyMap<string, Tensor>, opts: { keepEncoderPrefix?: boolean } = {}): Map<string, Tensor> {
  return toTensorMap('fcmaeToDense', fcmaeToDenseEntries(fromTensorMap('fcmaeToDense', stateDict), !opts.keepEncoderPrefix));
}

/** Keys the official fine-tuning code drops from an FCMAE checkpoint (spec 4.5). */
export function isFcmaeDecoderKey(key: string): boolean {
  return key.includes('decoder') || key.includes('mask_token') || key.includes('proj') || key.includes('pred');
}

// ---------------------------------------------------------------------------------------
// layout detection

/** Guesses a state dict's layout from its key names. */
export function detectLayout(keys: Iterable<string>): CheckpointLayout {
  let timm = false;
  for (const k of keys) {
    if (k.startsWith('encoder.') || k.endsWith('.kernel') || /\.(ln|linear)\./.test(k) || k === 'mask_token') return 'fcmae';
    if (k.startsWith('stem.') || /\.(blocks|downsample)\./.test(k) || k.startsWith('head.fc.') || k.startsWith('head.norm.')) timm = true;
  }
  return timm ? 'timm' : 'official';
}

// ---------------------------------------------------------------------------------------
// loading and saving files

export interface LoadOptions {
  /** Key layout of the file, default 'auto' (detected from the key names). */
  layout?: 'auto' | CheckpointLayout;
  /** Missing and unexpected keys are errors (default true). Mis-shaped keys always are. */
  strict?: boolean;
  /**
   * Fine-tuning from an FCMAE checkpoint (spec 4.5): drop a head whose shape differs, drop
   * every key containing decoder, mask_token, proj or pred, convert, and allow the final
   * `norm.*` and `head.*` to be missing (they keep the template's values; re-initialise the
   * head afterwards). Default false.
   */
  dropDecoder?: boolean;
}

export interface LoadReport<P = any> {
  params: P;
  /** The layout the file was read as. */
  layout: CheckpointLayout;
  /** Model keys absent from the file (they kept the template's values). */
  missing: string[];
  /** File keys (after conversion) the model has no place for (only when strict is false). */
  unexpected: string[];
  /** File keys dropped by dropDecoder (converted names). */
  dropped: string[];
  /** The file's __metadata__. */
  metadata: Record<string, string>;
}

/**
 * Loads a safetensors checkpoint into parameters with the structure and dtypes of `template`
 * (a parameter tree, ConvNeXt V2 or FCMAE, or a config {depths, dims, numClasses, dtype?}).
 * F64/F32/F16/BF16 values are converted to the template dtype.
 */
export function loadCheckpointDetailed<P = any>(pathOrBytes: string | Uint8Array, template: unknown, opts: LoadOptions = {}): LoadReport<P> {
  const op = 'loadCheckpoint';
  const source = typeof pathOrBytes === 'string' ? pathOrBytes : undefined;
  let file;
  if (typeof pathOrBytes === 'string') file = readSafetensors(pathOrBytes);
  else if (pathOrBytes instanceof Uint8Array) file = parseSafetensors(pathOrBytes, '<bytes>');
  else throw new CheckpointError(`${op}: expected a file path or a Uint8Array of safetensors bytes`);
  const requested = opts.layout ?? 'auto';
  if (!['auto', 'official', 'timm', 'fcmae'].includes(requested)) {
    throw new CheckpointError(`${op}: layout must be 'auto', 'official', 'timm' or 'fcmae', got ${JSON.stringify(requested)}`);
  }
  for (const k of file.tensors.keys()) {
    const seg = forbiddenSegment(k);
    if (seg !== undefined) throw new CheckpointError(`${op}: ${source ?? '<bytes>'}: key ${JSON.stringify(k)} has a ${JSON.stringify(seg)} segment, which is refused (prototype pollution)`);
  }
  const target = targetOf(op, template);
  let entries: Entries = new Map();
  for (const [k, t] of file.tensors) entries.set(k, entryOfSafe(k, t));
  const layout: CheckpointLayout = requested === 'auto' ? detectLayout(entries.keys()) : requested;

  if (layout === 'timm') entries = timmToOfficialEntries(entries);
  else if (layout === 'fcmae') entries = fcmaeToDenseEntries(entries, !target.isFcmae);

  const dropped: string[] = [];
  const hints: string[] = [];
  if (opts.dropDecoder) {
    const headIdx = target.names.map((n, i) => [n, i] as const).filter(([n]) => n.startsWith('head.'));
    for (const [n, i] of headIdx) {
      const e = entries.get(n);
      const want = target.shapes[i]!;
      if (e && (e.shape.length !== want.length || e.shape.some((d, j) => d !== want[j]))) {
        entries.delete(n);
        dropped.push(n);
      }
    }
    for (const k of [...entries.keys()]) {
      if (isFcmaeDecoderKey(k)) {
        entries.delete(k);
        dropped.push(k);
      }
    }
  } else if (!target.isFcmae && [...entries.keys()].some(isFcmaeDecoderKey)) {
    hints.push("hint: the file holds FCMAE decoder keys (decoder, mask_token, proj, pred); to fine-tune from it pass {dropDecoder: true} (spec 4.5)");
  }
  if (layout === 'fcmae' && !target.isFcmae && !opts.dropDecoder && ![...entries.keys()].some((k) => /^(norm|head)\./.test(k))) {
    hints.push('hint: FCMAE checkpoints have no final norm or head; pass {dropDecoder: true} to load one for fine-tuning');
  }
  const detected = detectLayout(file.tensors.keys());
  if (requested !== 'auto' && detected !== requested) hints.push(`hint: the layout was given as '${requested}'; the key names look like '${detected}'`);
  const allowMissing = opts.dropDecoder ? (k: string) => /^(norm|head)\./.test(k) : undefined;
  const r = match(op, entries, target, { strict: opts.strict ?? true, allowMissing, source: source ?? '<bytes>', layout, hints });
  return { params: r.params as P, layout, missing: r.missing, unexpected: r.unexpected, dropped, metadata: file.metadata };
}

/** loadCheckpointDetailed(...).params */
export function loadCheckpoint<P = any>(pathOrBytes: string | Uint8Array, template: unknown, opts: LoadOptions = {}): P {
  return loadCheckpointDetailed<P>(pathOrBytes, template, opts).params;
}


function safeTensorOf(name: string, t: Tensor): SafeTensor {
  if (t.isTracer) throw new CheckpointError(`saveCheckpoint: ${JSON.stringify(name)} is being traced and has no value; save concrete parameters outside jit/trace`);
  const dtype = NEXGRAD_TO_SAFE[t.dtype];
  const d = t.dataSync();
  let data: SafeData;
  switch (dtype) {
    case 'F64': data = d instanceof Float64Array ? d : Float64Array.from(d); break;
    case 'F32': case 'F16': case 'BF16': data = d instanceof Float32Array ? d : Float32Array.from(d); break;
    case 'I32': data = d instanceof Int32Array ? d : Int32Array.from(d); break;
    case 'U32': data = d instanceof Uint32Array ? d : Uint32Array.from(d); break;
    default: data = d instanceof Uint8Array ? d : Uint8Array.from(d); break;
  }
  return { dtype, shape: [...t.shape], data };
}

export interface SaveOptions {
  /** Key layout to write: 'official' (default; FCMAE trees keep their `encoder.` names) or 'timm'. */
  layout?: 'official' | 'timm';
  /** With layout 'timm': write fc weights as (out,in,1,1) (atto..nano). */
  convMlp?: boolean;
}

/**
 * Writes parameters as safetensors with the official dotted keys (or timm's), atomically
 * (a temporary file renamed into place). Metadata values must be strings; `format: 'pt'` is
 * added so other safetensors tools treat the file as a PyTorch state dict.
 */
export function saveCheckpoint(path: string, params: unknown, metadata: Record<string, string> = {}, opts: SaveOptions = {}): void {
  const op = 'saveCheckpoint';
  if (typeof path !== 'string' || path === '') throw new CheckpointError(`${op}: expected a file path`);
  if (isPickleName(path)) {
    throw new CheckpointError(`${op}: refusing to write safetensors data to ${JSON.stringify(path)}: .pt/.pth/.bin/.ckpt names mean PyTorch pickles; use a .safetensors name`);
  }
  let sd = toStateDict(params);
  if (opts.layout === 'timm') sd = officialToTimm(sd, { convMlp: opts.convMlp ?? false });
  else if (opts.layout !== undefined && opts.layout !== 'official') throw new CheckpointError(`${op}: layout must be 'official' or 'timm', got ${JSON.stringify(opts.layout)}`);
  const record = new Map<string, SafeTensor>();
  for (const [k, t] of sd) record.set(k, safeTensorOf(k, t));
  writeSafetensors(path, record, { format: 'pt', ...metadata });
}
