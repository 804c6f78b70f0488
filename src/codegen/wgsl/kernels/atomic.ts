/**
 * f32 atomic add for WGSL, which has atomics only on i32/u32: the float lives in an
 * atomic<u32> and is updated by a compare-exchange loop (load, add in f32, swap if unchanged).
 * Concurrent adds to one address serialise through the loop; their order, and so the f32
 * rounding of the sum, is whatever order the device runs them in.
 *
 * scatterAddKernel uses it for scatter_add with the host's geometry (src/ir/primitives/shape_ops.ts):
 * x viewed as [B, P, A, Q], indices [B, I], updates [B, P, I, Q]; an update whose index is
 * outside [0, A) is dropped.
 */
import { expectPow2, expectU32, GROUP_BUILTINS, LINEAR_GROUP } from './conventions.js';
import { NexgradError } from '../../../ir/errors.js';

/**
 * WGSL source of `fn <name>(i: u32, v: f32)` adding v to element i of `buffer`, a
 * `var<storage, read_write> buffer: array<atomic<u32>>` holding f32 bits. (WGSL does not let a
 * function take a pointer into a storage buffer without a language extension, hence one function
 * per buffer.)
 */
export function atomicAddF32Wgsl(buffer: string, name = `ng_atomic_add_${buffer}`): string {
  if (!/^[A-Za-z_]\w*$/.test(buffer) || !/^[A-Za-z_]\w*$/.test(name)) {
    throw new NexgradError(`wgsl atomic_add_f32: "${buffer}" / "${name}" are not WGSL identifiers`);
  }
  return /* wgsl */ `
fn ${name}(i: u32, v: f32) {
  var old = atomicLoad(&${buffer}[i]);
  loop {
    let r = atomicCompareExchangeWeak(&${buffer}[i], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}
`;
}

export interface ScatterGeometry {
  /** Batch size, the dims between batch and axis, index count per batch, axis length, trailing size. */
  readonly B: number;
  readonly P: number;
  readonly I: number;
  readonly A: number;
  readonly Q: number;
}

/**
 * Bindings: 0 indices (i32; u32 indices read as i32, so any value >= 2^31 is out of range as it
 * should be), 1 updates (f32), 2 out (f32 bits as atomic<u32>, holding x on entry), 3 uniform.
 */
export function scatterAddKernel(p: { workgroupSize?: number } = {}): string {
  const wg = p.workgroupSize ?? 256;
  expectPow2('scatter_add', 'workgroupSize', wg, 1, 1024);
  return /* wgsl */ `
struct Params { total: u32, Q: u32, I: u32, P: u32, A: u32, groups: u32 }
@group(0) @binding(0) var<storage, read> indices: array<i32>;
@group(0) @binding(1) var<storage, read> updates: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<atomic<u32>>;
@group(0) @binding(3) var<uniform> params: Params;
${atomicAddF32Wgsl('out')}
@compute @workgroup_size(${wg})
fn main(${GROUP_BUILTINS}) {
  let g = ${LINEAR_GROUP};
  if (g >= params.groups) { return; }
  let u = g * ${wg}u + lid;
  if (u >= params.total) { return; }
  let q = u % params.Q;
  let t = u / params.Q;
  let i = t % params.I;
  let bp = t / params.I;
  let b = bp / params.P;
  let a = indices[b * params.I + i];
  if (a < 0 || u32(a) >= params.A) { return; }
  ng_atomic_add_out((bp * params.A + u32(a)) * params.Q + q, updates[u]);
}
`;
}

/** Uniform and workgroup count (1-D) for one scatter_add. */
export function scatterAddDispatch(g: ScatterGeometry, p: { workgroupSize?: number } = {}): { uniform: Uint32Array; workgroups: number } {
  for (const k of ['B', 'P', 'I', 'A', 'Q'] as const) expectU32('scatter_add', k, g[k]);
  const total = g.B * g.P * g.I * g.Q;
  if (total > 0xffffffff || g.B * g.P * g.A * g.Q > 0xffffffff) throw new NexgradError('wgsl scatter_add: sizes exceed u32 indexing');
  const groups = Math.ceil(total / (p.workgroupSize ?? 256));
  return { uniform: Uint32Array.of(total, g.Q, g.I, g.P, g.A, groups), workgroups: groups };
}
