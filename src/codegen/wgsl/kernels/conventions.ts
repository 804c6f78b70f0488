/**
 * What every hand-written WGSL building block agrees on with the runtime:
 *
 * - Bindings live in @group(0). Storage buffers are passed to a dispatch in ascending binding
 *   order; at most one `var<uniform>` binding carries the dispatch's parameters (the runtime
 *   binds it with a dynamic offset into one uniform buffer per call).
 * - A kernel dispatched over a 1-D count of workgroups reads its workgroup number as
 *   LINEAR_GROUP: when the count is above maxComputeWorkgroupsPerDimension the runtime folds it
 *   into y and z (foldWorkgroups), which launches up to a few extra groups, so the kernel returns
 *   early when the number is past the count it was given in its uniform. That comparison is on
 *   workgroup-uniform values, so barriers after it stay in uniform control flow.
 */
import { NexgradError } from '../../../ir/errors.js';

/** The entry-point parameters that LINEAR_GROUP and the local index read. */
export const GROUP_BUILTINS =
  '@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32';

/** The workgroup's number in a (possibly folded) 1-D dispatch. */
export const LINEAR_GROUP = '(wid.x + nwg.x * (wid.y + nwg.y * wid.z))';

/**
 * Splits a 1-D workgroup count into [x, y, z] with each at most `limit` and x*y*z >= total,
 * keeping the excess (groups that return at once) below y*z.
 */
export function foldWorkgroups(total: number, limit: number): [number, number, number] {
  if (!Number.isInteger(total) || total < 0) throw new NexgradError(`wgsl: workgroup count must be a non-negative integer, got ${total}`);
  if (total <= limit) return [total, 1, 1];
  if (total <= limit * limit) {
    const y = Math.ceil(total / limit);
    return [Math.ceil(total / y), y, 1];
  }
  if (total > limit * limit * limit) {
    throw new NexgradError(`wgsl: ${total} workgroups exceed ${limit}^3, the most a dispatch can launch`);
  }
  const z = Math.ceil(total / (limit * limit));
  const perZ = Math.ceil(total / z);
  const y = Math.ceil(perZ / limit);
  return [Math.ceil(perZ / y), y, z];
}

/**
 * Float helpers written on bits, because WGSL lets a compiler assume floats are finite: a
 * comparison like `x != x` may be folded away, a bit test may not. Infinities come from
 * ng_f32_bits(NG_F32_INF): a constant expression may not produce one.
 */
export const FLOAT_BITS_WGSL = /* wgsl */ `
fn ng_is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn ng_f32_bits(b: u32) -> f32 { return bitcast<f32>(b); }
const NG_F32_INF: u32 = 0x7f800000u;
const NG_F32_NEG_INF: u32 = 0xff800000u;
`;

/** Checks that a block size is a power of two in [lo, hi]; names the kernel and parameter. */
export function expectPow2(kernel: string, param: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi || (v & (v - 1)) !== 0) {
    throw new NexgradError(`wgsl ${kernel}: ${param} must be a power of two in [${lo}, ${hi}], got ${v}`);
  }
}

/** Checks a non-negative integer that fits a u32 uniform. */
export function expectU32(kernel: string, param: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new NexgradError(`wgsl ${kernel}: ${param} must be an integer in [0, 2^32), got ${v}`);
  }
}
