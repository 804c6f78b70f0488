/** threefry2x32 in WGSL against src/ir/threefry.ts, bit for bit. */
import { expect, test } from 'vitest';
import { randomBitsDispatch, randomBitsKernel, threefry2x32Wgsl } from '../../../src/codegen/wgsl/kernels/threefry.js';
import { threefry2x32Block, threefryHash } from '../../../src/ir/threefry.js';
import { mulberry32 } from '../../helpers/rng.js';
import { describeWgsl, openWgsl, readU32, uploadArray } from './env.js';

const env = await openWgsl();

const word = (rng: () => number): number => Math.floor(rng() * 2 ** 32) >>> 0;

describeWgsl('threefry2x32 (WGSL)', env, (rt) => {
  test('the block function matches the host on random keys and counters', async () => {
    const rng = mulberry32(7);
    const n = 1000;
    const input = new Uint32Array(4 * n).map(() => word(rng));
    // edge words: zero, all ones, the parity constant
    input.set([0, 0, 0, 0, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x1bd11bda, 0, 0, 0x1bd11bda]);
    const src = `
@group(0) @binding(0) var<storage, read> inp: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec2<u32>>;
${threefry2x32Wgsl()}
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x >= arrayLength(&inp)) { return; }
  let v = inp[gid.x];
  out[gid.x] = ng_threefry2x32(v.xy, v.zw);
}`;
    const p = await rt.pipeline(src, 'main', 'threefry_block');
    const a = uploadArray(rt, input);
    const out = rt.alloc(8 * n);
    rt.beginCall('threefry').dispatch(p, [a, out], [Math.ceil(n / 64), 1, 1]).submit();
    const got = await readU32(rt, out);
    const want = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) want.set(threefry2x32Block(input[4 * i]!, input[4 * i + 1]!, input[4 * i + 2]!, input[4 * i + 3]!), 2 * i);
    expect(Array.from(got)).toEqual(Array.from(want));
    rt.release(a);
    rt.release(out);
  });

  test('random_bits matches threefryHash for even, odd and tiny lengths', async () => {
    const p = await rt.pipeline(randomBitsKernel({ workgroupSize: 64 }), 'main', 'random_bits');
    const rng = mulberry32(11);
    for (const n of [1, 2, 3, 129, 1000, 4097]) {
      const key = Uint32Array.of(word(rng), word(rng));
      const counter = new Uint32Array(n).map(() => word(rng));
      const kb = uploadArray(rt, key);
      const cb = uploadArray(rt, counter);
      const ob = rt.alloc(4 * n);
      const d = randomBitsDispatch(n, { workgroupSize: 64 });
      rt.beginCall('random_bits').dispatch(p, [kb, cb, ob], d.workgroups, d.uniform).submit();
      const got = await readU32(rt, ob, n);
      expect(Array.from(got), `n=${n}`).toEqual(Array.from(threefryHash(key[0]!, key[1]!, counter)));
      for (const b of [kb, cb, ob]) rt.release(b);
    }
  });
});
