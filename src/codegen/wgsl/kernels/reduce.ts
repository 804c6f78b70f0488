/**
 * Row reductions as workgroup tree reductions: sum, max, min and argmax of f32 over the middle
 * axis of an [outer, n, inner] array, one workgroup per (outer, inner) row. Each thread folds a
 * strided slice of the row, then the workgroup combines the partials pairwise in shared memory.
 *
 * The semantics are the host's (src/ir/primitives/reduce.ts): max/min propagate NaN; argmax
 * returns the first index of the maximum, and the first NaN beats every number. The partials
 * carry their index, so combining them in tree order still picks the first index.
 */
import { NexgradError } from '../../../ir/errors.js';
import { expectPow2, expectU32, FLOAT_BITS_WGSL, GROUP_BUILTINS, LINEAR_GROUP } from './conventions.js';

export type RowReduceOp = 'sum' | 'max' | 'min' | 'argmax';

export interface RowReduceParams {
  readonly op: RowReduceOp;
  readonly workgroupSize?: number;
}

interface OpRule {
  /** Identity of the fold (f32 bits), as WGSL. */
  readonly identity: string;
  /** WGSL body of `fn better(a, ai, b, bi) -> bool`: whether partial b replaces partial a. */
  readonly replace: string;
  readonly outType: 'f32' | 'i32';
}

/** One rule per op: the fold is "replace the partial (a, ai) by (b, bi) when `replace` holds". */
const OP_RULES: Readonly<Record<Exclude<RowReduceOp, 'sum'>, OpRule>> = Object.freeze({
  max: {
    identity: 'ng_f32_bits(NG_F32_NEG_INF)',
    replace: 'return !ng_is_nan(a) && (ng_is_nan(b) || b > a);',
    outType: 'f32',
  },
  min: {
    identity: 'ng_f32_bits(NG_F32_INF)',
    replace: 'return !ng_is_nan(a) && (ng_is_nan(b) || b < a);',
    outType: 'f32',
  },
  argmax: {
    identity: 'ng_f32_bits(NG_F32_NEG_INF)',
    replace: `if (ng_is_nan(a)) { return ng_is_nan(b) && bi < ai; }
  if (ng_is_nan(b)) { return true; }
  return b > a || (b == a && bi < ai);`,
    outType: 'i32',
  },
});

/**
 * Bindings: 0 x (f32), 1 out (f32, or i32 for argmax), 2 uniform {rows, n, inner}. Dispatch
 * rowReduceDispatch(...) workgroups (1-D, one per row).
 */
export function rowReduceKernel(p: RowReduceParams): string {
  const wg = p.workgroupSize ?? 256;
  expectPow2(`row_reduce_${p.op}`, 'workgroupSize', wg, 1, 1024);
  if (!['sum', 'max', 'min', 'argmax'].includes(p.op)) throw new NexgradError(`wgsl row_reduce: unknown op "${p.op}"`);
  const sum = p.op === 'sum';
  const rule = sum ? null : OP_RULES[p.op as Exclude<RowReduceOp, 'sum'>];
  const fold = sum
    ? (a: string, _ai: string, b: string, _bi: string) => `${a} = ${a} + ${b};`
    : (a: string, ai: string, b: string, bi: string) => `if (ng_replace(${a}, ${ai}, ${b}, ${bi})) { ${a} = ${b}; ${ai} = ${bi}; }`;
  const result = p.op === 'argmax' ? 'i32(si[0])' : 'sv[0]';
  return /* wgsl */ `
struct Params { rows: u32, n: u32, inner: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<${rule?.outType ?? 'f32'}>;
@group(0) @binding(2) var<uniform> params: Params;
var<workgroup> sv: array<f32, ${wg}>;
var<workgroup> si: array<u32, ${wg}>;
${FLOAT_BITS_WGSL}
fn ng_replace(a: f32, ai: u32, b: f32, bi: u32) -> bool {
  ${rule?.replace ?? 'return false;'}
}
@compute @workgroup_size(${wg})
fn main(${GROUP_BUILTINS}) {
  let row = ${LINEAR_GROUP};
  if (row >= params.rows) { return; }
  let base = (row / params.inner) * params.n * params.inner + row % params.inner;
  var acc: f32 = ${rule?.identity ?? '0.0'};
  var accI: u32 = 0xffffffffu;
  for (var k = lid; k < params.n; k = k + ${wg}u) {
    let v = x[base + k * params.inner];
    ${fold('acc', 'accI', 'v', 'k')}
  }
  sv[lid] = acc;
  si[lid] = accI;
  workgroupBarrier();
  for (var s = ${wg >> 1}u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      var a = sv[lid];
      var ai = si[lid];
      ${fold('a', 'ai', 'sv[lid + s]', 'si[lid + s]')}
      sv[lid] = a;
      si[lid] = ai;
    }
    workgroupBarrier();
  }
  if (lid == 0u) { out[row] = ${result}; }
}
`;
}

/** Uniform and workgroup count for `rows` = outer * inner rows of length n. */
export function rowReduceDispatch(op: RowReduceOp, outer: number, n: number, inner: number): { uniform: Uint32Array; workgroups: number } {
  for (const [k, v] of [['outer', outer], ['n', n], ['inner', inner]] as const) expectU32(`row_reduce_${op}`, k, v);
  if (op === 'argmax' && n === 0) throw new NexgradError('wgsl row_reduce_argmax: the reduced axis is empty');
  if (inner === 0) return { uniform: Uint32Array.of(0, n, 1, 0), workgroups: 0 };
  const rows = outer * inner;
  if (rows * Math.max(n, 1) > 0xffffffff) throw new NexgradError(`wgsl row_reduce_${op}: ${rows}x${n} elements exceed u32 indexing`);
  return { uniform: Uint32Array.of(rows, n, inner, 0), workgroups: rows };
}
