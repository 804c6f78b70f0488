/**
 * argsort on a GPU: a bitonic sorting network over (key, index) pairs.
 *
 * Order (the host's sortOrder, src/ir/primitives/reduce.ts): ascending or descending by value,
 * ties by ascending index, -0 equal to +0, NaN last in both directions. Values map to u32 keys
 * whose unsigned order is that order (descending complements the non-NaN keys; NaN maps to
 * 0xffffffff), and the network sorts (key, index) pairs, which are all distinct, so the
 * unstable network yields the one stable answer. A row of n is padded to P = 2^ceil(log2 n)
 * with (0xffffffff, 0xffffffff) pairs, which sort after everything.
 *
 * Rows run along `axis` of [outer, n, inner]. Two schedules:
 *   - P <= the shared capacity: `ng_sort_rows` sorts whole rows in shared memory, as many rows
 *     per workgroup as fit (one dispatch);
 *   - longer rows: `ng_block_sort` sorts blocks of the capacity in shared memory (in the
 *     alternating directions of the whole network) into scratch; then for each stage k above
 *     the block size, `ng_global_step` does the compare-exchanges of distance j >= the block
 *     size in global memory (parameters k, j) and `ng_block_merge` finishes the distances below
 *     it in shared memory (parameter k; the last merge writes the indices out).
 */
import type { DType } from '../../../ir/dtype.js';
import type { SortKernel } from '../../kernel/kernel_graph.js';
import { GpuCode, nextPow2, product } from './code.js';
import type { GpuBinding, GpuDialect } from './dialect.js';
import type { GpuDispatch, GpuKernelCode, GpuTarget } from './kernel_code.js';

const WG = 256;
/**
 * Pairs one workgroup sorts in shared memory (8 KiB, half WebGPU's default limit): larger
 * blocks mean fewer global passes, but where the runtime zero-initialises workgroup memory
 * (browsers), large arrays cost seconds of SwiftShader compile time.
 */
const MAX_CAPACITY = 1024;
/** Pairs one sort_rows workgroup takes when rows are short (several rows per workgroup). */
const ROWS_PAIRS = 512;

interface SortGeometry {
  readonly rows: number;
  readonly n: number;
  readonly inner: number;
  readonly P: number;
  /** Pairs held in shared memory (a power of two). */
  readonly cap: number;
  readonly wg: number;
}

function geometry(k: SortKernel, target: GpuTarget): SortGeometry {
  const n = k.shape[k.axis]!;
  const inner = product(k.shape.slice(k.axis + 1));
  const rows = product(k.shape.slice(0, k.axis)) * inner;
  let cap = MAX_CAPACITY;
  while (cap > 2 && cap * 8 > target.maxSharedBytes) cap /= 2;
  return { rows, n, inner, P: n <= 1 ? 1 : nextPow2(n), cap, wg: Math.min(WG, target.maxWorkgroupSize) };
}

/** Statements setting u32 `key` from register value `x` of `dtype` (NaN last; descending complements). */
function sortKey(D: GpuDialect, x: string, dtype: DType, descending: boolean): string[] {
  const u = (v: number): string => D.literal(v, 'u32');
  const flip = descending ? [D.assign('ng_key', '(~ng_key)')] : [];
  if (dtype === 'i32') return [D.assign('ng_key', `(${D.bitcast(x, 'i32', 'u32')} ^ ${u(0x80000000)})`), ...flip];
  if (dtype === 'u32') return [D.assign('ng_key', x), ...flip];
  if (dtype === 'bool') return [D.assign('ng_key', D.cast(x, 'bool', 'u32')), ...flip];
  return [
    `if (${D.isNan(x)}) { ${D.assign('ng_key', u(0xffffffff))} } else {`,
    `  ${D.declareMutable('ng_bits', 'u32', D.bitcast(x, 'f32', 'u32'))}`,
    `  if (ng_bits == ${u(0x80000000)}) { ${D.assign('ng_bits', u(0))} }`,
    `  ${D.assign('ng_key', D.select(`(ng_bits & ${u(0x80000000)}) != ${u(0)}`, '(~ng_bits)', `(ng_bits | ${u(0x80000000)})`, 'u32'))}`,
    ...flip.map((l) => `  ${l}`),
    '}',
  ];
}

class SortEmitter {
  readonly i: (v: number) => string;
  readonly u: (v: number) => string;
  constructor(
    readonly k: SortKernel,
    readonly D: GpuDialect,
    readonly g: SortGeometry,
  ) {
    this.i = (v) => D.literal(v, 'i32');
    this.u = (v) => D.literal(v, 'u32');
  }

  /** Element index of position p of a row. */
  src(row: string, p: string): string {
    const { n, inner } = this.g;
    const D = this.D;
    return `${D.indexDiv(row, inner)} * ${this.i(n * inner)} + ${p} * ${this.i(inner)} + ${D.indexMod(row, inner)}`;
  }

  /** Statements loading pair (row, p) into the shared arrays at position `at` (padding outside the row). */
  loadPair(cb: GpuCode, row: string, p: string, at: string): void {
    const D = this.D;
    cb.open();
    cb.line(D.declareMutable('ng_key', 'u32', this.u(0xffffffff)));
    cb.line(D.declareMutable('ng_idx', 'u32', this.u(0xffffffff)));
    cb.when(`${row} < ${this.i(this.g.rows)} && ${p} < ${this.i(this.g.n)}`, () => {
      cb.line(D.declare('ng_x', this.k.dtype, D.load(this.k.input, this.src(row, p), this.k.dtype)));
      for (const l of sortKey(D, 'ng_x', this.k.dtype, this.k.descending)) cb.line(l);
      cb.line(D.assign('ng_idx', D.cast(p, 'i32', 'u32')));
    });
    cb.line(`ng_sk[${at}] = ng_key;`);
    cb.line(`ng_si[${at}] = ng_idx;`);
    cb.close('');
  }

  /** Whether pair a (key ka, index ia) sorts after pair b. */
  greater(ka: string, ia: string, kb: string, ib: string): string {
    return `(${ka} > ${kb} || (${ka} == ${kb} && ${ia} > ${ib}))`;
  }

  /**
   * One compare-exchange stage (k, j) over `count` pairs in shared memory; positions repeat every
   * segLen (rows packed in one workgroup); `base` is the row position of element 0; k may be a
   * runtime expression.
   */
  sharedStep(cb: GpuCode, k: string, j: number, count: number, segLen: number, base: string): void {
    const D = this.D;
    const i = this.i;
    cb.loop('ng_q', D.localIndex, count / 2, this.g.wg, () => {
      cb.line(D.declareIndex('ng_a', `${i(2 * j)} * ${D.indexDiv('ng_q', j)} + ${D.indexMod('ng_q', j)}`));
      cb.line(D.declareIndex('ng_b', `ng_a + ${i(j)}`));
      cb.line(`${D.declare('ng_up', 'bool', `((${base} + ${D.indexMod('ng_a', segLen)}) & ${k}) == ${i(0)}`)}`);
      this.exchange(cb, 'ng_sk', 'ng_si', 'ng_a', 'ng_b', 'ng_up');
    });
    cb.line(D.barrier());
  }

  /** Swaps positions a and b of (keys, idx) when they are out of the direction `up`. */
  exchange(cb: GpuCode, keys: string, idx: string, a: string, b: string, up: string): void {
    const D = this.D;
    cb.line(D.declare('ng_ka', 'u32', `${keys}[${a}]`));
    cb.line(D.declare('ng_ia', 'u32', `${idx}[${a}]`));
    cb.line(D.declare('ng_kb', 'u32', `${keys}[${b}]`));
    cb.line(D.declare('ng_ib', 'u32', `${idx}[${b}]`));
    cb.line(`if (${this.greater('ng_ka', 'ng_ia', 'ng_kb', 'ng_ib')} == ${up}) { ${keys}[${a}] = ng_kb; ${idx}[${a}] = ng_ib; ${keys}[${b}] = ng_ka; ${idx}[${b}] = ng_ia; }`);
  }

  /** The output index of pair `t` (its index u32) at row position p of `row`, when inside the row. */
  writeOut(cb: GpuCode, row: string, p: string, value: string): void {
    const D = this.D;
    cb.line(`if (${row} < ${this.i(this.g.rows)} && ${p} < ${this.i(this.g.n)}) { ${D.store(this.k.output, this.src(row, p), D.bitcast(value, 'u32', 'i32'), 'i32', false)} }`);
  }

  /** Exit for workgroups past `groups` (a folded dispatch launches a few extra). */
  guard(cb: GpuCode, groups: string): void {
    cb.line(`if (${this.D.groupIndex} >= ${groups}) { ${this.D.exit} }`);
  }

  sortRows(segs: number, groups: number): string {
    const { D, i } = this;
    const { P, wg } = this.g;
    const cb = new GpuCode(D);
    const count = segs * P;
    this.guard(cb, i(groups));
    cb.line(D.declareIndex('ng_row0', `${D.groupIndex} * ${i(segs)}`));
    cb.loop('ng_e', D.localIndex, count, wg, () => this.loadPair(cb, `ng_row0 + ${D.indexDiv('ng_e', P)}`, D.indexMod('ng_e', P), 'ng_e'));
    cb.line(D.barrier());
    for (let k = 2; k <= P; k *= 2) for (let j = k / 2; j >= 1; j /= 2) this.sharedStep(cb, i(k), j, count, P, i(0));
    cb.loop('ng_e', D.localIndex, count, wg, () => this.writeOut(cb, `ng_row0 + ${D.indexDiv('ng_e', P)}`, D.indexMod('ng_e', P), 'ng_si[ng_e]'));
    return cb.finish();
  }

  blockSort(groups: number): string {
    const { D, i } = this;
    const { P, cap, wg } = this.g;
    const cb = new GpuCode(D);
    this.guard(cb, i(groups));
    cb.line(D.declareIndex('ng_row', D.indexDiv(D.groupIndex, P / cap)));
    cb.line(D.declareIndex('ng_base', `${D.indexMod(D.groupIndex, P / cap)} * ${i(cap)}`));
    cb.loop('ng_e', D.localIndex, cap, wg, () => this.loadPair(cb, 'ng_row', 'ng_base + ng_e', 'ng_e'));
    cb.line(D.barrier());
    for (let k = 2; k <= cap; k *= 2) for (let j = k / 2; j >= 1; j /= 2) this.sharedStep(cb, i(k), j, cap, cap, 'ng_base');
    this.copyOut(cb);
    return cb.finish();
  }

  /** Shared pairs back to the scratch buffers at the block's place. */
  copyOut(cb: GpuCode): void {
    const { D, i } = this;
    const s0 = D.scratchName(0);
    const s1 = D.scratchName(1);
    cb.loop('ng_e', D.localIndex, this.g.cap, this.g.wg, () => {
      cb.line(`${s0}[ng_row * ${i(this.g.P)} + ng_base + ng_e] = ng_sk[ng_e];`);
      cb.line(`${s1}[ng_row * ${i(this.g.P)} + ng_base + ng_e] = ng_si[ng_e];`);
    });
  }

  globalStep(groups: number): string {
    const { D, i } = this;
    const { P, rows, wg } = this.g;
    const cb = new GpuCode(D);
    this.guard(cb, i(groups));
    cb.line(D.declareIndex('ng_tid', `${D.groupIndex} * ${i(wg)} + ${D.localIndex}`));
    cb.line(`if (ng_tid >= ${i((rows * P) / 2)}) { ${D.exit} }`);
    cb.line(D.declareIndex('ng_kp', D.param(0)));
    cb.line(D.declareIndex('ng_jp', D.param(1)));
    cb.line(D.declareIndex('ng_row', D.indexDiv('ng_tid', P / 2)));
    cb.line(D.declareIndex('ng_q', D.indexMod('ng_tid', P / 2)));
    // j is a power of two: q / j and q % j as shifts would need its log; divide at run time
    cb.line(D.declareIndex('ng_pos', `${i(2)} * ng_jp * (ng_q / ng_jp) + ng_q % ng_jp`));
    cb.line(D.declareIndex('ng_a', `ng_row * ${i(P)} + ng_pos`));
    cb.line(D.declareIndex('ng_b', 'ng_a + ng_jp'));
    cb.line(D.declare('ng_up', 'bool', `(ng_pos & ng_kp) == ${i(0)}`));
    this.exchange(cb, D.scratchName(0), D.scratchName(1), 'ng_a', 'ng_b', 'ng_up');
    return cb.finish();
  }

  blockMerge(groups: number): string {
    const { D, i } = this;
    const { P, cap, wg } = this.g;
    const cb = new GpuCode(D);
    this.guard(cb, i(groups));
    cb.line(D.declareIndex('ng_row', D.indexDiv(D.groupIndex, P / cap)));
    cb.line(D.declareIndex('ng_base', `${D.indexMod(D.groupIndex, P / cap)} * ${i(cap)}`));
    cb.line(D.declareIndex('ng_kp', D.param(0)));
    const [s0, s1] = [D.scratchName(0), D.scratchName(1)];
    cb.loop('ng_e', D.localIndex, cap, wg, () => {
      cb.line(`ng_sk[ng_e] = ${s0}[ng_row * ${i(P)} + ng_base + ng_e];`);
      cb.line(`ng_si[ng_e] = ${s1}[ng_row * ${i(P)} + ng_base + ng_e];`);
    });
    cb.line(D.barrier());
    for (let j = cap / 2; j >= 1; j /= 2) this.sharedStep(cb, 'ng_kp', j, cap, cap, 'ng_base');
    cb.open();
    cb.line(`if (${D.param(2)} != ${i(0)}) {`);
    cb.loop('ng_e', D.localIndex, cap, wg, () => this.writeOut(cb, 'ng_row', 'ng_base + ng_e', 'ng_si[ng_e]'));
    cb.line('} else {');
    this.copyOut(cb);
    cb.line('}');
    cb.close('');
    return cb.finish();
  }
}

export function emitSortKernel(k: SortKernel, target: GpuTarget, buffers: readonly GpuBinding[]): GpuKernelCode {
  const g = geometry(k, target);
  const pairs = (g.rows * g.P) / 2;
  if (g.rows * g.P > 2 ** 31) throw new Error(`gpu codegen: argsort ${k.name}: ${g.rows} rows of ${g.P} (padded) elements exceed 2^31`);
  const global = g.P > g.cap;
  const bindings: GpuBinding[] = global ? [...buffers, { kind: 'scratch', index: 0, bytes: 4 * g.rows * g.P }, { kind: 'scratch', index: 1, bytes: 4 * g.rows * g.P }] : [...buffers];
  const D = target.dialect.forKernel(bindings);
  const e = new SortEmitter(k, D, g);
  const empty = g.rows === 0 || g.n === 0;
  const entries: { name: string; body: string }[] = [];
  const dispatches: GpuDispatch[] = [];
  let sharedSize = g.cap;
  if (!global) {
    // rows packed per workgroup up to ROWS_PAIRS pairs: shared arrays sized to what is used
    // (large workgroup arrays cost compile time, and zero-initialisation at every launch)
    const segs = Math.max(1, Math.min(Math.max(1, ROWS_PAIRS / g.P), g.rows));
    sharedSize = segs * g.P;
    const groups = Math.ceil(g.rows / segs);
    entries.push({ name: 'ng_sort_rows', body: empty ? '' : e.sortRows(segs, groups) });
    if (!empty) dispatches.push({ entry: 'ng_sort_rows', groups, params: [] });
  } else {
    const blockGroups = g.rows * (g.P / g.cap);
    const pairGroups = Math.ceil(pairs / g.wg);
    entries.push({ name: 'ng_block_sort', body: e.blockSort(blockGroups) }, { name: 'ng_global_step', body: e.globalStep(pairGroups) }, { name: 'ng_block_merge', body: e.blockMerge(blockGroups) });
    if (!empty) {
      dispatches.push({ entry: 'ng_block_sort', groups: blockGroups, params: [0, 0, 0] });
      for (let kk = 2 * g.cap; kk <= g.P; kk *= 2) {
        for (let j = kk / 2; j >= g.cap; j /= 2) dispatches.push({ entry: 'ng_global_step', groups: pairGroups, params: [kk, j, 0] });
        dispatches.push({ entry: 'ng_block_merge', groups: blockGroups, params: [kk, 0, kk === g.P ? 1 : 0] });
      }
    }
  }
  const paramCount = global ? 3 : 0;
  const shared = [
    { name: 'ng_sk', dtype: 'u32' as const, size: sharedSize },
    { name: 'ng_si', dtype: 'u32' as const, size: sharedSize },
  ];
  const source = D.module({ name: k.name, workgroupSize: g.wg, bindings, shared, paramCount, entries });
  return { name: k.name, source, workgroupSize: g.wg, bindings, paramCount, dispatches };
}
