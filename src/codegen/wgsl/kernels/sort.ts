/**
 * argsort of f32 rows by a bitonic sorting network over (key, index) pairs.
 *
 * Order: ascending or descending by key, ties by ascending index (so the result is the stable
 * order), -0 equal to +0, NaN last in both directions. Keys are mapped to u32 whose unsigned
 * order is that order (descending complements the non-NaN keys; NaN maps to 0xffffffff), and the
 * network sorts (mapped key, index) pairs, which are all distinct, so the unstable network
 * still yields the one stable answer. A row of length n is padded to P = 2^ceil(log2 n) with
 * (0xffffffff, 0xffffffff), which sorts after everything.
 *
 * Rows live on the middle axis of [outer, n, inner]. Two schedules (planArgsort picks):
 * - P <= sharedCapacity: `sort_rows` sorts whole rows in workgroup memory, as many rows per
 *   workgroup as fit (one dispatch);
 * - larger rows: `block_sort` sorts blocks of sharedCapacity in workgroup memory (in the
 *   alternating directions of the global network) into scratch; then for each stage k above the
 *   block size, `global_step` runs the compare-exchanges of distance j >= block size in global
 *   memory and `block_merge` finishes distances below it in workgroup memory; the last merge
 *   writes the indices out.
 */
import { NexgradError } from '../../../ir/errors.js';
import { expectPow2, expectU32, GROUP_BUILTINS, LINEAR_GROUP } from './conventions.js';

export interface ArgsortParams {
  readonly descending: boolean;
  /** (key, index) pairs held in workgroup memory (8 bytes each); a power of two. Default 2048 (16 KiB). */
  readonly sharedCapacity?: number;
  readonly workgroupSize?: number;
}

export interface ArgsortShape {
  readonly outer: number;
  readonly n: number;
  readonly inner: number;
}

export type ArgsortEntry = 'sort_rows' | 'block_sort' | 'global_step' | 'block_merge';

export interface ArgsortStep {
  readonly entry: ArgsortEntry;
  /** 1-D workgroup count (folded by the runtime when large). */
  readonly workgroups: number;
  readonly uniform: Uint32Array;
}

export interface ArgsortPlan {
  /** 'shared': buffers [keys, out]; 'global': [keys, out, scratchKeys, scratchIndices]. */
  readonly schedule: 'shared' | 'global';
  readonly source: string;
  readonly steps: readonly ArgsortStep[];
  /** Bytes of each scratch buffer (global schedule; 0 for shared). */
  readonly scratchBytes: number;
}

/** The uniform's fields, in order. */
const FIELDS = ['rows', 'n', 'inner', 'padded', 'k', 'j', 'last', 'groups', 'segs'] as const;
type Uniform = Record<(typeof FIELDS)[number], number>;
const packUniform = (u: Uniform): Uint32Array => Uint32Array.from(FIELDS.map((f) => u[f]));

function resolve(p: ArgsortParams): { shared: number; wg: number } {
  const shared = p.sharedCapacity ?? 2048;
  const wg = p.workgroupSize ?? 256;
  expectPow2('argsort', 'sharedCapacity', shared, 2, 1 << 16);
  expectPow2('argsort', 'workgroupSize', wg, 1, 1024);
  return { shared, wg };
}

/** Declarations and helpers shared by both schedules. */
function common(descending: boolean, shared: number, wg: number): string {
  return /* wgsl */ `
struct SortParams { ${FIELDS.map((f) => `${f}: u32`).join(', ')} }
var<workgroup> sk: array<u32, ${shared}>;
var<workgroup> si: array<u32, ${shared}>;

// f32 -> u32 with the sort order: -0 as +0, NaN as 0xffffffff (last)${descending ? ', non-NaN keys reversed' : ''}.
fn ng_sort_key(x: f32) -> u32 {
  var b = bitcast<u32>(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) { return 0xffffffffu; }
  if (b == 0x80000000u) { b = 0u; }
  let key = select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
  return ${descending ? '~key' : 'key'};
}
fn ng_src(row: u32, p: u32) -> u32 {
  return (row / params.inner) * params.n * params.inner + p * params.inner + row % params.inner;
}
fn ng_load(row: u32, p: u32) -> vec2<u32> {
  if (row < params.rows && p < params.n) { return vec2<u32>(ng_sort_key(keys[ng_src(row, p)]), p); }
  return vec2<u32>(0xffffffffu, 0xffffffffu);
}
fn ng_greater(a: vec2<u32>, b: vec2<u32>) -> bool { return a.x > b.x || (a.x == b.x && a.y > b.y); }

// One compare-exchange stage (k, j) over the count pairs in workgroup memory. segLen is the
// length of the row segments held (positions repeat every segLen); base is the row position
// of element 0 (a block's offset in its row).
fn ng_shared_step(k: u32, j: u32, count: u32, segLen: u32, base: u32, lid: u32) {
  for (var q = lid; q < count / 2u; q = q + ${wg}u) {
    let i = 2u * j * (q / j) + q % j;
    let l = i + j;
    let ascending = ((base + i % segLen) & k) == 0u;
    let a = vec2<u32>(sk[i], si[i]);
    let b = vec2<u32>(sk[l], si[l]);
    if (ng_greater(a, b) == ascending) {
      sk[i] = b.x; si[i] = b.y;
      sk[l] = a.x; si[l] = a.y;
    }
  }
  workgroupBarrier();
}
`;
}

/** Source of the schedule: 'shared' (entry sort_rows) or 'global' (block_sort, global_step, block_merge). */
export function argsortSource(p: ArgsortParams, schedule: 'shared' | 'global'): string {
  const { shared, wg } = resolve(p);
  if (schedule === 'shared') {
    return /* wgsl */ `
@group(0) @binding(0) var<storage, read> keys: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<i32>;
@group(0) @binding(2) var<uniform> params: SortParams;
${common(p.descending, shared, wg)}
@compute @workgroup_size(${wg})
fn sort_rows(${GROUP_BUILTINS}) {
  let g = ${LINEAR_GROUP};
  if (g >= params.groups) { return; }
  let P = params.padded;
  let count = params.segs * P;
  let row0 = g * params.segs;
  for (var t = lid; t < count; t = t + ${wg}u) {
    let e = ng_load(row0 + t / P, t % P);
    sk[t] = e.x; si[t] = e.y;
  }
  workgroupBarrier();
  for (var k = 2u; k <= P; k = k << 1u) {
    for (var j = k >> 1u; j > 0u; j = j >> 1u) { ng_shared_step(k, j, count, P, 0u, lid); }
  }
  for (var t = lid; t < count; t = t + ${wg}u) {
    let row = row0 + t / P;
    let p = t % P;
    if (row < params.rows && p < params.n) { out[ng_src(row, p)] = i32(si[t]); }
  }
}
`;
  }
  return /* wgsl */ `
@group(0) @binding(0) var<storage, read> keys: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<i32>;
@group(0) @binding(2) var<storage, read_write> scratchKeys: array<u32>;
@group(0) @binding(3) var<storage, read_write> scratchIdx: array<u32>;
@group(0) @binding(4) var<uniform> params: SortParams;
${common(p.descending, shared, wg)}
@compute @workgroup_size(${wg})
fn block_sort(${GROUP_BUILTINS}) {
  let g = ${LINEAR_GROUP};
  if (g >= params.groups) { return; }
  let blocks = params.padded / ${shared}u;
  let row = g / blocks;
  let base = (g % blocks) * ${shared}u;
  for (var t = lid; t < ${shared}u; t = t + ${wg}u) {
    let e = ng_load(row, base + t);
    sk[t] = e.x; si[t] = e.y;
  }
  workgroupBarrier();
  for (var k = 2u; k <= ${shared}u; k = k << 1u) {
    for (var j = k >> 1u; j > 0u; j = j >> 1u) { ng_shared_step(k, j, ${shared}u, ${shared}u, base, lid); }
  }
  for (var t = lid; t < ${shared}u; t = t + ${wg}u) {
    scratchKeys[row * params.padded + base + t] = sk[t];
    scratchIdx[row * params.padded + base + t] = si[t];
  }
}

@compute @workgroup_size(${wg})
fn global_step(${GROUP_BUILTINS}) {
  let g = ${LINEAR_GROUP};
  if (g >= params.groups) { return; }
  let tid = g * ${wg}u + lid;
  let half = params.padded / 2u;
  if (tid >= params.rows * half) { return; }
  let row = tid / half;
  let q = tid % half;
  let j = params.j;
  let i = 2u * j * (q / j) + q % j;
  let ia = row * params.padded + i;
  let ib = ia + j;
  let a = vec2<u32>(scratchKeys[ia], scratchIdx[ia]);
  let b = vec2<u32>(scratchKeys[ib], scratchIdx[ib]);
  if (ng_greater(a, b) == ((i & params.k) == 0u)) {
    scratchKeys[ia] = b.x; scratchIdx[ia] = b.y;
    scratchKeys[ib] = a.x; scratchIdx[ib] = a.y;
  }
}

@compute @workgroup_size(${wg})
fn block_merge(${GROUP_BUILTINS}) {
  let g = ${LINEAR_GROUP};
  if (g >= params.groups) { return; }
  let blocks = params.padded / ${shared}u;
  let row = g / blocks;
  let base = (g % blocks) * ${shared}u;
  for (var t = lid; t < ${shared}u; t = t + ${wg}u) {
    sk[t] = scratchKeys[row * params.padded + base + t];
    si[t] = scratchIdx[row * params.padded + base + t];
  }
  workgroupBarrier();
  for (var j = ${shared >> 1}u; j > 0u; j = j >> 1u) { ng_shared_step(params.k, j, ${shared}u, ${shared}u, base, lid); }
  for (var t = lid; t < ${shared}u; t = t + ${wg}u) {
    if (params.last != 0u) {
      let p = base + t;
      if (p < params.n) { out[ng_src(row, p)] = i32(si[t]); }
    } else {
      scratchKeys[row * params.padded + base + t] = sk[t];
      scratchIdx[row * params.padded + base + t] = si[t];
    }
  }
}
`;
}

/** The schedule, its source and every dispatch for argsort over axis 1 of [outer, n, inner]. */
export function planArgsort(shape: ArgsortShape, p: ArgsortParams): ArgsortPlan {
  const { shared, wg } = resolve(p);
  for (const k of ['outer', 'n', 'inner'] as const) expectU32('argsort', k, shape[k]);
  const rows = shape.outer * shape.inner;
  const padded = shape.n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(shape.n));
  if (rows * padded > 2 ** 31) throw new NexgradError(`wgsl argsort: ${rows} rows of ${padded} (padded) pairs exceed 2^31`);
  const base: Uniform = { rows, n: shape.n, inner: Math.max(shape.inner, 1), padded, k: 0, j: 0, last: 0, groups: 0, segs: 1 };
  if (padded <= shared) {
    const segs = Math.min(shared / padded, Math.max(rows, 1));
    const groups = rows === 0 || shape.n === 0 ? 0 : Math.ceil(rows / segs);
    const steps = groups === 0 ? [] : [{ entry: 'sort_rows' as const, workgroups: groups, uniform: packUniform({ ...base, segs, groups }) }];
    return { schedule: 'shared', source: argsortSource(p, 'shared'), steps, scratchBytes: 0 };
  }
  const blockGroups = rows * (padded / shared);
  const pairGroups = Math.ceil((rows * padded) / 2 / wg);
  const steps: ArgsortStep[] = [];
  if (rows > 0) {
    steps.push({ entry: 'block_sort', workgroups: blockGroups, uniform: packUniform({ ...base, groups: blockGroups }) });
    for (let k = 2 * shared; k <= padded; k *= 2) {
      for (let j = k / 2; j >= shared; j /= 2) steps.push({ entry: 'global_step', workgroups: pairGroups, uniform: packUniform({ ...base, k, j, groups: pairGroups }) });
      steps.push({ entry: 'block_merge', workgroups: blockGroups, uniform: packUniform({ ...base, k, last: k === padded ? 1 : 0, groups: blockGroups }) });
    }
  }
  return { schedule: 'global', source: argsortSource(p, 'global'), steps, scratchBytes: 4 * rows * padded };
}
