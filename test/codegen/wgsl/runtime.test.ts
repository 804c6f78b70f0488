/** WgslRuntime: the pool, uploads and reads, calls with several dispatches, limits and device errors. */
import { expect, test } from 'vitest';
import { bucketBytes, WgslRuntime } from '../../../src/codegen/wgsl/runtime.js';
import { foldWorkgroups } from '../../../src/codegen/wgsl/workgroups.js';
import { describeWgsl, openWgsl, readF32, readU32, uploadArray } from './env.js';

const env = await openWgsl();

/** out[i] = in[i] * params.scale + params.shift, for i < params.n. */
const AFFINE = `
struct Params { n: u32, scale: f32, shift: f32 }
@group(0) @binding(0) var<storage, read> inp: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x < params.n) { out[gid.x] = inp[gid.x] * params.scale + params.shift; }
}`;

const affineUniform = (n: number, scale: number, shift: number): Uint32Array => {
  const u = new Uint32Array(3);
  u[0] = n;
  new Float32Array(u.buffer).set([scale, shift], 1);
  return u;
};

/** A kernel with `count` storage bindings (all used). */
function manyBindings(count: number): string {
  const decls = Array.from({ length: count }, (_, i) => `@group(0) @binding(${i}) var<storage, read_write> b${i}: array<u32>;`);
  const body = Array.from({ length: count }, (_, i) => `  b${i}[0] = ${i}u;`);
  return `${decls.join('\n')}\n@compute @workgroup_size(1)\nfn main() {\n${body.join('\n')}\n}`;
}

test('bucket sizes are 16-byte multiples with at most 25% slack', () => {
  for (const bytes of [0, 1, 15, 16, 17, 100, 1000, 4097, 65537, 1e6 + 3, 3e8]) {
    const b = bucketBytes(bytes);
    expect(b % 16).toBe(0);
    expect(b).toBeGreaterThanOrEqual(Math.max(bytes, 16));
    if (bytes > 64) expect(b).toBeLessThanOrEqual(bytes * 1.25 + 16);
  }
});

test('1-D workgroup counts fold into [x, y, z] within the per-dimension limit, with little excess', () => {
  for (const [total, limit] of [[0, 8], [8, 8], [9, 8], [64, 8], [65, 8], [511, 8], [512, 8], [70000, 65535], [2 ** 31, 65535]] as const) {
    const [x, y, z] = foldWorkgroups(total, limit);
    expect(Math.max(x, y, z)).toBeLessThanOrEqual(limit);
    expect(x * y * z).toBeGreaterThanOrEqual(total);
    expect(x * y * z - total).toBeLessThan(Math.max(1, y * z));
  }
  expect(() => foldWorkgroups(513, 8)).toThrow(/513 workgroups exceed 8\^3/);
  expect(() => foldWorkgroups(1.5, 8)).toThrow(/non-negative integer/);
});

describeWgsl('WgslRuntime', env, (rt) => {
  test('a dispatch above the per-dimension limit is folded; each workgroup finds its linear number', async () => {
    const groups = 70000;
    const src = `@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = wid.x + nwg.x * (wid.y + nwg.y * wid.z);
  if (g < ${groups}u) { out[g] = g + 1u; }
}`;
    const p = await rt.pipeline(src, 'main', 'fold');
    const out = rt.alloc(groups * 4);
    rt.beginCall('fold').dispatch(p, [out], groups).submit();
    const got = await readU32(rt, out, groups);
    for (let i = 0; i < groups; i++) if (got[i] !== i + 1) throw new Error(`workgroup ${i} wrote ${got[i]}`);
    rt.release(out);
  });

  test('the pool reuses released buffers and counts live, pooled and peak bytes', () => {
    const s0 = rt.stats();
    const a = rt.alloc(1000);
    const b = rt.alloc(3000);
    expect(a.capacity).toBe(bucketBytes(1000));
    const s1 = rt.stats();
    expect(s1.liveBytes - s0.liveBytes).toBe(a.capacity + b.capacity);
    expect(s1.peakLiveBytes).toBeGreaterThanOrEqual(s1.liveBytes);
    const gpu = a.gpuBuffer;
    rt.release(a);
    expect(rt.stats().pooledBytes - s0.pooledBytes).toBe(a.capacity);
    const c = rt.alloc(990); // same bucket: the released buffer comes back
    expect(c.gpuBuffer).toBe(gpu);
    expect(rt.stats().reused).toBe(s1.reused + 1);
    expect(() => rt.release(a)).toThrow(/released/);
    expect(() => rt.upload(a, new Float32Array(1))).toThrow(/released/);
    rt.release(b);
    rt.release(c);
    expect(() => rt.alloc(-1)).toThrow(/non-negative integer/);
    expect(() => rt.alloc(rt.limits.maxBufferSize + 1)).toThrow(/maxBufferSize/);
  });

  test('pipelineNow: created at once, cached per source and entry; a compile error is thrown by the next read, naming the kernel and line (not the invalid pipeline it causes)', async () => {
    const p = rt.pipelineNow(AFFINE, 'main', 'affine_now');
    expect(rt.pipelineNow(AFFINE, 'main', 'affine_now')).toBe(p);
    const x = uploadArray(rt, Float32Array.of(1, 2, 3));
    const y = rt.alloc(12);
    rt.beginCall('now').dispatch(p, [x, y], 1, affineUniform(3, 2, 1)).submit();
    expect(Array.from(await readF32(rt, y))).toEqual([3, 5, 7]);
    const broken = rt.pipelineNow(AFFINE.replace('inp[gid.x] * params.scale', 'inp[gid.x] * params.nope'), 'main', 'broken_now');
    rt.beginCall('broken call').dispatch(broken, [x, y], 1, affineUniform(3, 2, 1)).submit();
    await expect(rt.read(y)).rejects.toThrow(/wgsl kernel "broken_now": shader compile error:\n  line \d+:\d+: .*nope/);
    await rt.sync(); // the error was thrown once
    rt.release(x);
    rt.release(y);
  });

  test('uploads and reads at offsets, ragged ends', async () => {
    const buf = rt.alloc(22);
    const bytes = Uint8Array.from({ length: 22 }, (_, i) => i * 7 + 1);
    rt.upload(buf, bytes.subarray(0, 8));
    rt.upload(buf, bytes.subarray(8), 8); // 14 bytes, ends the buffer: allowed
    expect(Array.from(new Uint8Array(await rt.read(buf)))).toEqual(Array.from(bytes));
    expect(Array.from(new Uint8Array(await rt.read(buf, 5, 3)))).toEqual(Array.from(bytes.subarray(3, 8)));
    expect(() => rt.upload(buf, new Uint8Array(6), 4)).toThrow(/not a multiple of 4/);
    expect(() => rt.upload(buf, new Uint8Array(4), 2)).toThrow(/offset must be a multiple of 4/);
    await expect(rt.read(buf, 8, 16)).rejects.toThrow(/outside a 22-byte buffer/);
    expect((await rt.read(buf, 0)).byteLength).toBe(0);
    rt.release(buf);
  });

  test('pipelines are cached by source; compile errors name the kernel, line and message', async () => {
    const p1 = await rt.pipeline(AFFINE, 'main', 'affine');
    const p2 = await rt.pipeline(AFFINE, 'main', 'affine again');
    expect(p2).toBe(p1);
    expect(p1.storage.map((b) => [b.name, b.kind])).toEqual([['inp', 'read'], ['out', 'read_write']]);
    expect(p1.uniform?.uniformBytes).toBe(12);
    const bad = 'struct P { n: u32 }\n@group(0) @binding(0) var<uniform> params: P;\n@compute @workgroup_size(1)\nfn main() {\n  let x: u32 = 1.5;\n}';
    await expect(rt.pipeline(bad, 'main', 'broken_kernel')).rejects.toThrow(/wgsl kernel "broken_kernel": shader compile error:\n\s+line 5:\d+: .*\n\s+let x: u32 = 1.5;/);
    await expect(rt.pipeline(AFFINE, 'nope', 'missing_entry')).rejects.toThrow(/kernel "missing_entry": pipeline creation failed for entry point "nope"/);
    await expect(rt.pipeline('@group(1) @binding(0) var<storage, read> x: array<f32>;', 'main', 'g1')).rejects.toThrow(/kernel "g1": binding "x" must be declared @group\(0\)/);
  });

  test('one call: several dispatches with their own uniforms, a copy between, in order', async () => {
    const p = await rt.pipeline(AFFINE, 'main', 'affine');
    const n = 100;
    const x = Float32Array.from({ length: n }, (_, i) => i);
    const xb = uploadArray(rt, x);
    const [y, z, w] = [rt.alloc(4 * n), rt.alloc(4 * n), rt.alloc(4 * n)];
    rt.beginCall('chain')
      .dispatch(p, [xb, y], Math.ceil(n / 64), affineUniform(n, 2, 1)) // y = 2x + 1
      .dispatch(p, [y, z], [Math.ceil(n / 64), 1, 1], affineUniform(n, -1, 0.5)) // z = -y + 0.5
      .copy(z, w, 4 * n)
      .dispatch(p, [w, y], Math.ceil(n / 64), affineUniform(n, 3, 0)) // y = 3w
      .submit();
    const gotY = await readF32(rt, y);
    const gotW = await readF32(rt, w);
    for (let i = 0; i < n; i++) {
      expect(gotW[i]).toBe(-(2 * i + 1) + 0.5);
      expect(gotY[i]).toBe(3 * (-(2 * i + 1) + 0.5));
    }
    const groups = rt.stats().bindGroups;
    rt.beginCall('again').dispatch(p, [xb, y], Math.ceil(n / 64), affineUniform(n, 2, 1)).submit();
    await rt.sync();
    expect(rt.stats().bindGroups).toBe(groups); // the bind group for (affine, xb, y) was cached
    for (const b of [xb, y, z, w]) rt.release(b);
  });

  test('a call with more uniforms than the uniform buffer holds grows it', async () => {
    const p = await rt.pipeline(AFFINE, 'main', 'affine');
    const n = 8;
    const bufs = [uploadArray(rt, new Float32Array(n).fill(1)), rt.alloc(4 * n)];
    const rec = rt.beginCall('many');
    const count = 600; // 600 x 256-byte offsets > 64 KiB
    for (let i = 0; i < count; i++) rec.dispatch(p, [bufs[i % 2]!, bufs[(i + 1) % 2]!], 1, affineUniform(n, 1, 1)); // +1 each time
    rec.submit();
    expect(Array.from(await readF32(rt, bufs[count % 2]!))).toEqual(new Array(n).fill(1 + count));
    for (const b of bufs) rt.release(b);
  });

  test('dispatches that break the contract or the limits are refused, naming the kernel', async () => {
    const p = await rt.pipeline(AFFINE, 'main', 'affine');
    const a = rt.alloc(64);
    const b = rt.alloc(64);
    const rec = rt.beginCall('bad');
    expect(() => rec.dispatch(p, [a], 1, affineUniform(1, 1, 1))).toThrow(/kernel "affine": takes 2 storage buffers \(inp, out\), the dispatch gave 1/);
    expect(() => rec.dispatch(p, [a, b], 1)).toThrow(/kernel "affine": declares uniform "params" but the dispatch passed none/);
    expect(() => rec.dispatch(p, [a, b], 1, new Uint32Array(2))).toThrow(/kernel "affine": uniform "params" \(Params\) needs 12 bytes, the dispatch passed 8/);
    expect(() => rec.dispatch(p, [a, a], 1, affineUniform(1, 1, 1))).toThrow(/kernel "affine": one buffer is bound to "inp" and "out" and written/);
    const limit = rt.limits.maxComputeWorkgroupsPerDimension;
    expect(() => rec.dispatch(p, [a, b], [limit + 1, 1, 1], affineUniform(1, 1, 1))).toThrow(new RegExp(`kernel "affine": ${limit + 1} workgroups in x is above maxComputeWorkgroupsPerDimension`));
    rec.submit();
    expect(() => rec.submit()).toThrow(/already submitted/);
    const early = rt.alloc(64);
    const pending = rt.beginCall('early release').dispatch(p, [early, b], 1, affineUniform(1, 1, 1));
    rt.release(early);
    expect(() => pending.submit()).toThrow(/call "early release": a buffer of kernel "affine" was released before the call was submitted/);

    const tight = new WgslRuntime(rt.device, { limits: { maxStorageBuffersPerShaderStage: 8, maxStorageBufferBindingSize: 1024 } });
    await expect(tight.pipeline(manyBindings(9), 'main', 'nine')).rejects.toThrow(/kernel "nine": 9 storage buffers, above this device's maxStorageBuffersPerShaderStage \(8\)/);
    const eight = await tight.pipeline(manyBindings(8), 'main', 'eight');
    const big = tight.alloc(2048);
    const small = Array.from({ length: 7 }, () => tight.alloc(16));
    expect(() => tight.beginCall('big').dispatch(eight, [big, ...small], 1)).toThrow(/kernel "eight": buffer for binding 0 \("b0"\) is 2048 bytes, above maxStorageBufferBindingSize \(1024\)/);
    const ok = tight.alloc(16);
    tight.beginCall('fine').dispatch(eight, [ok, ...small], 1).submit();
    expect(Array.from(await tight.read(small[6]!).then((r) => new Uint32Array(r)))).toEqual([7, 0, 0, 0]);
    expect(() => new WgslRuntime(rt.device, { limits: { maxStorageBuffersPerShaderStage: 1000 } })).toThrow(/looser than the device's/);
    tight.destroy();
    rt.release(a);
    rt.release(b);
  });

  test('a device validation error surfaces on the next call with the call and kernel names', async () => {
    const p = await rt.pipeline(AFFINE, 'main', 'affine');
    const a = rt.alloc(64);
    const b = rt.alloc(64);
    b.gpuBuffer.destroy(); // behind the runtime's back: only the device can notice
    rt.beginCall('step 7').dispatch(p, [a, b], 1, affineUniform(1, 1, 1)).submit();
    await expect(rt.sync()).rejects.toThrow(/wgsl: validation error in call "step 7" \(kernel "affine"\): .*destroyed/is);
    await rt.sync(); // reported once
    rt.release(a);
  });

  test('device loss is reported, with the last call, on every later call', async () => {
    const other = await WgslRuntime.create();
    const p = await other.pipeline(AFFINE, 'main', 'affine');
    const [a, b] = [other.alloc(64), other.alloc(64)];
    other.beginCall('last one').dispatch(p, [a, b], 1, affineUniform(1, 1, 1)).submit();
    await other.sync();
    other.device.destroy();
    await other.device.lost;
    expect(() => other.alloc(16)).toThrow(/the GPU device was lost \(destroyed\).*last call was "last one" \(kernels affine\)/);
    await expect(other.read(a)).rejects.toThrow(/device was lost/);
  });
});

describeWgsl('WgslRuntime readback', env, (rt) => {
  test('reads see every call submitted before them', async () => {
    const p = await rt.pipeline(AFFINE, 'main', 'affine');
    const x = uploadArray(rt, Uint32Array.of(0, 0, 0, 0));
    const y = rt.alloc(16);
    const reads: Promise<Uint32Array>[] = [];
    for (let i = 1; i <= 5; i++) {
      rt.beginCall(`c${i}`).dispatch(p, [x, y], 1, affineUniform(4, 0, i)).submit(); // y = i
      reads.push(readU32(rt, y).then((u) => new Uint32Array(new Float32Array(u.buffer).map((v) => v))));
    }
    const got = await Promise.all(reads);
    got.forEach((u, i) => expect(Array.from(u)).toEqual([i + 1, i + 1, i + 1, i + 1]));
    rt.release(x);
    rt.release(y);
  });
});
