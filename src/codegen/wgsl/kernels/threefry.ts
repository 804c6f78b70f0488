/**
 * Threefry-2x32 (20 rounds) in WGSL, the same function as src/ir/threefry.ts bit for bit (u32
 * adds wrap in WGSL as they do in the host's `| 0` arithmetic), and the random_bits kernel
 * that applies it in JAX's layout: the flat counter split into halves x0 | x1 (x1 padded with a
 * zero word for an odd length), hashed pairwise, written back as out0 | out1.
 */
import { expectPow2, GROUP_BUILTINS, LINEAR_GROUP } from './conventions.js';

/** The rotation constants of the eight rounds that repeat (Salmon et al., Threefry-2x32). */
const ROTATIONS = [
  [13, 15, 26, 6],
  [17, 29, 16, 24],
] as const;

/**
 * WGSL source of `fn <name>(key: vec2<u32>, ctr: vec2<u32>) -> vec2<u32>`: the key (k0, k1)
 * applied to the counter pair.
 */
export function threefry2x32Wgsl(name = 'ng_threefry2x32'): string {
  const lines: string[] = [];
  // Key injection after every four rounds: (ks[(s+1)%3], ks[(s+2)%3] + s + 1) for s = 0..4.
  for (let s = 0; s < 5; s++) {
    for (const r of ROTATIONS[s % 2]!) lines.push(`  x0 = x0 + x1; x1 = (x1 << ${r}u) | (x1 >> ${32 - r}u); x1 = x1 ^ x0;`);
    lines.push(`  x0 = x0 + ks[${(s + 1) % 3}]; x1 = x1 + ks[${(s + 2) % 3}] + ${s + 1}u;`);
  }
  return /* wgsl */ `
fn ${name}(key: vec2<u32>, ctr: vec2<u32>) -> vec2<u32> {
  let ks = array<u32, 3>(key.x, key.y, key.x ^ key.y ^ 0x1bd11bdau);
  var x0 = ctr.x + ks[0];
  var x1 = ctr.y + ks[1];
${lines.join('\n')}
  return vec2<u32>(x0, x1);
}
`;
}

export interface RandomBitsParams {
  readonly workgroupSize?: number;
}

/**
 * random_bits(key u32[2], counter u32[n]) -> u32[n]. Bindings: 0 key, 1 counter, 2 out,
 * 3 uniform {n, half, groups}. Dispatch randomBitsDispatch(n) workgroups (1-D).
 */
export function randomBitsKernel(p: RandomBitsParams = {}): string {
  const wg = p.workgroupSize ?? 256;
  expectPow2('random_bits', 'workgroupSize', wg, 1, 1024);
  return /* wgsl */ `
struct Params { n: u32, half: u32, groups: u32 }
@group(0) @binding(0) var<storage, read> key: array<u32>;
@group(0) @binding(1) var<storage, read> counter: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;
${threefry2x32Wgsl()}
@compute @workgroup_size(${wg})
fn main(${GROUP_BUILTINS}) {
  let g = ${LINEAR_GROUP};
  if (g >= params.groups) { return; }
  let i = g * ${wg}u + lid;
  if (i >= params.half) { return; }
  let j = params.half + i;
  var hi = 0u;
  if (j < params.n) { hi = counter[j]; }
  let r = ng_threefry2x32(vec2<u32>(key[0], key[1]), vec2<u32>(counter[i], hi));
  out[i] = r.x;
  if (j < params.n) { out[j] = r.y; }
}
`;
}

/** The uniform and workgroup count for random_bits over n words. */
export function randomBitsDispatch(n: number, p: RandomBitsParams = {}): { uniform: Uint32Array; workgroups: number } {
  const wg = p.workgroupSize ?? 256;
  const half = Math.ceil(n / 2);
  const groups = Math.ceil(half / wg);
  return { uniform: Uint32Array.of(n, half, groups), workgroups: groups };
}
