/**
 * The CUDA device smoke test's checks (bench/gpu/smoke.ts runs them on a GPU host): device
 * properties, copies, the allocator, NVRTC-compiled kernels against JS references (elementwise,
 * warp-shuffle reduction, mma.sync bf16 tile), graph replay, event timing and the cubin disk
 * cache. runSmoke writes one JSON file with each check's result and measurements.
 */
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cudaAvailability, loadCudaAddon } from '../../src/codegen/cuda/native.js';
import { CudaRuntime } from '../../src/codegen/cuda/runtime.js';
import { AXPY, ELEMENTWISE, MMA_BF16, ROW_SUM } from './kernels.js';

type Measurements = Record<string, number | string | boolean>;
interface Check {
  readonly name: string;
  run(rt: CudaRuntime): Promise<Measurements>;
}
interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly ms: number;
  readonly detail: Measurements | string;
}

/** Deterministic values in [lo, hi). */
function uniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((s >>> 8) / (1 << 24)) * (hi - lo);
  }
  return out;
}

/** Largest |a - b| / (atol + rtol * |b|) over the arrays; <= 1 means within tolerance. */
function worstError(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i]! - expected[i]!) / (atol + rtol * Math.abs(expected[i]!));
    if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : err;
  }
  return worst;
}

function ensure(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}

const MiB = 1 << 20;

const CHECKS: readonly Check[] = [
  {
    name: 'copies and allocator',
    async run(rt) {
      const n = 16 * MiB; // 64 MiB of floats
      const data = uniform(n, 1);
      let buffer = rt.alloc(n * 4);
      const h2d = await rt.time(() => rt.upload(data, buffer));
      const back = new Float32Array(n);
      const start = performance.now();
      await rt.read(buffer, back);
      const readMs = performance.now() - start;
      ensure(back.every((v, i) => v === data[i]), 'device -> host copy differs from what was uploaded');
      const copy = rt.alloc(n * 4);
      const d2d = await rt.time(() => rt.addon.copyDeviceToDevice(copy.ptr, buffer.ptr, n * 4, rt.stream));
      rt.addon.memset32(buffer.ptr, 0x3fc00000, n, rt.stream); // 1.5f
      await rt.read(buffer, back);
      ensure(back.every((v) => v === 1.5), 'memset32 did not fill 1.5f');
      const again = new Float32Array(n);
      await rt.read(copy, again);
      ensure(again.every((v, i) => v === data[i]), 'device -> device copy differs');
      const before = rt.memoryStats();
      rt.free(buffer);
      buffer = rt.alloc(n * 4);
      const after = rt.memoryStats();
      ensure(after.cacheHits === before.cacheHits + 1, 'a freed block of the same size was not reused');
      rt.free(buffer);
      rt.free(copy);
      return {
        hostToDeviceGBps: (n * 4) / (h2d * 1e6),
        deviceToDeviceGBps: (2 * n * 4) / (d2d * 1e6),
        readWallMs: readMs,
        peakBytesInUse: after.peakBytesInUse,
      };
    },
  },
  {
    name: 'elementwise kernel (NVRTC) vs JS',
    async run(rt) {
      const n = 1 << 22;
      const a = uniform(n, 2, -3, 3);
      const b = uniform(n, 3, -3, 3);
      const kernel = await rt.compile(ELEMENTWISE, 'mul_add_gelu');
      const [da, db, dout] = [rt.upload(a), rt.upload(b), rt.alloc(n * 4)];
      const args = [{ ptr: da.ptr }, { ptr: db.ptr }, { f32: 0.25 }, { ptr: dout.ptr }, { i32: n }];
      rt.launch(kernel, [Math.ceil(n / 256)], [256], args); // warm-up
      const ms = await rt.time(() => rt.launch(kernel, [Math.ceil(n / 256)], [256], args));
      const out = await rt.read(dout, new Float32Array(n));
      const expected = Float64Array.from(a, (ai, i) => {
        const x = Math.fround(Math.fround(ai * b[i]!) + 0.25);
        return 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
      });
      const worst = worstError(out, expected, 1e-6, 1e-5);
      ensure(worst <= 1, `mul_add_gelu differs from the float64 reference (worst scaled error ${worst})`);
      for (const d of [da, db, dout]) rt.free(d);
      return { kernelMs: ms, GBps: (3 * n * 4) / (ms * 1e6), worstScaledError: worst, origin: kernel.origin };
    },
  },
  {
    name: 'warp-shuffle row reduction vs float64 sums',
    async run(rt) {
      const rows = 4096;
      const cols = 1000;
      const data = uniform(rows * cols, 4);
      const kernel = await rt.compile(ROW_SUM, 'row_sum');
      const [din, dout] = [rt.upload(data), rt.alloc(rows * 4)];
      const ms = await rt.time(() => rt.launch(kernel, [rows], [256], [{ ptr: din.ptr }, { ptr: dout.ptr }, { i32: cols }]));
      const out = await rt.read(dout, new Float32Array(rows));
      const expected = Array.from({ length: rows }, (_, r) => {
        let s = 0;
        for (let c = 0; c < cols; c++) s += data[r * cols + c]!;
        return s;
      });
      const worst = worstError(out, expected, 1e-4, 1e-5);
      ensure(worst <= 1, `row_sum differs from float64 sums (worst scaled error ${worst})`);
      rt.free(din);
      rt.free(dout);
      return { kernelMs: ms, worstScaledError: worst };
    },
  },
  {
    name: 'mma.sync bf16 16x8x16 tile vs exact JS product',
    async run(rt) {
      // Small integers are exact in bf16 and their products and 16-term sums exact in f32.
      const ints = (n: number, seed: number) => Float32Array.from(uniform(n, seed, -8, 8), Math.trunc);
      const bf16 = (x: Float32Array) => Uint16Array.from(new Uint32Array(x.buffer), (bits) => bits >>> 16);
      const A = ints(16 * 16, 5); // row-major 16x16
      const Bcols = ints(8 * 16, 6); // column-major 16x8: B[k][n] at n*16 + k
      const C = ints(16 * 8, 7);
      const kernel = await rt.compile(MMA_BF16, 'mma_bf16_16x8x16');
      const [da, db, dc, dd] = [rt.upload(bf16(A)), rt.upload(bf16(Bcols)), rt.upload(C), rt.alloc(16 * 8 * 4)];
      rt.launch(kernel, [1], [32], [{ ptr: da.ptr }, { ptr: db.ptr }, { ptr: dc.ptr }, { ptr: dd.ptr }]);
      const D = await rt.read(dd, new Float32Array(16 * 8));
      for (let m = 0; m < 16; m++) {
        for (let n = 0; n < 8; n++) {
          let s = C[m * 8 + n]!;
          for (let k = 0; k < 16; k++) s += A[m * 16 + k]! * Bcols[n * 16 + k]!;
          ensure(D[m * 8 + n] === s, `D[${m}][${n}] = ${D[m * 8 + n]}, expected ${s}`);
        }
      }
      for (const d of [da, db, dc, dd]) rt.free(d);
      return { tile: '16x8x16', exact: true };
    },
  },
  {
    name: 'graph record and replay',
    async run(rt) {
      const n = 1 << 16;
      const launches = 20;
      const x = uniform(n, 8);
      const y = uniform(n, 9);
      const kernel = await rt.compile(AXPY, 'axpy');
      const [dx, dy] = [rt.upload(x), rt.upload(y)];
      const args = [{ ptr: dy.ptr }, { ptr: dx.ptr }, { f32: 0.5 }, { i32: n }];
      const body = () => {
        for (let i = 0; i < launches; i++) rt.launch(kernel, [n / 256], [256], args);
      };
      const graph = rt.record(body);
      ensure(graph.nodes === launches, `the graph has ${graph.nodes} nodes, expected ${launches}`);
      const replays = 3;
      const graphMs = await rt.time(() => {
        for (let r = 0; r < replays; r++) graph.replay();
      });
      const out = await rt.read(dy, new Float32Array(n));
      const expected = Float32Array.from(y);
      for (let t = 0; t < launches * replays; t++) {
        for (let i = 0; i < n; i++) expected[i] = Math.fround(Math.fround(0.5 * x[i]!) + expected[i]!);
      }
      const worst = worstError(out, expected, 1e-6, 1e-6); // FMA contraction may round once instead of twice
      ensure(worst <= 1, `graph replay result differs (worst scaled error ${worst})`);
      const directMs = await rt.time(() => {
        for (let r = 0; r < replays; r++) body();
      });
      graph.dispose();
      rt.free(dx);
      rt.free(dy);
      return { usPerLaunchGraph: (graphMs * 1000) / (launches * replays), usPerLaunchDirect: (directMs * 1000) / (launches * replays) };
    },
  },
  {
    name: 'cubin disk cache',
    async run(rt) {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'nexgrad-cubins-'));
      const first = CudaRuntime.open({ ordinal: rt.device.ordinal, cacheDir: dir });
      const start = performance.now();
      const cold = await first.compile(ROW_SUM, 'row_sum', ['-lineinfo']);
      const coldMs = performance.now() - start;
      const second = CudaRuntime.open({ ordinal: rt.device.ordinal, cacheDir: dir });
      const warmStart = performance.now();
      const warm = await second.compile(ROW_SUM, 'row_sum', ['-lineinfo']);
      const warmMs = performance.now() - warmStart;
      ensure(cold.origin === 'nvrtc' && warm.origin === 'disk', `origins ${cold.origin}, ${warm.origin}; expected nvrtc, disk`);
      await first.dispose();
      await second.dispose();
      return { coldCompileMs: coldMs, diskLoadMs: warmMs };
    },
  },
];

function writeAtomically(file: string, value: unknown): void {
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(temp, file);
}

/**
 * Runs every check and writes the results to `out`. Returns 0 when all pass, 1 when one fails,
 * 2 when CUDA is unavailable (after printing "CUDA unavailable: <why>").
 */
export async function runSmoke(out: string, log: (line: string) => void = console.log): Promise<number> {
  const loaded = loadCudaAddon();
  const report: Record<string, unknown> = {
    when: new Date().toISOString(),
    node: process.version,
    status: 'addon' in loaded ? loaded.addon.status() : { available: false, reason: loaded.reason },
  };
  const availability = cudaAvailability();
  if (!availability.available) {
    log(`CUDA unavailable: ${availability.reason}`);
    writeAtomically(out, { ...report, available: false, reason: availability.reason });
    return 2;
  }
  const rt = CudaRuntime.open({ cacheDir: false });
  report.device = rt.device;
  log(`${rt.device.name} (${rt.arch}, ${rt.device.multiprocessorCount} SMs, NVRTC ${rt.nvrtcVersion})`);
  const results: CheckResult[] = [];
  for (const check of CHECKS) {
    const start = performance.now();
    let result: CheckResult;
    try {
      result = { name: check.name, ok: true, detail: await check.run(rt), ms: 0 };
    } catch (error) {
      result = { name: check.name, ok: false, detail: (error as Error).message, ms: 0 };
    }
    result = { ...result, ms: performance.now() - start };
    results.push(result);
    log(`${result.ok ? 'ok  ' : 'FAIL'} ${check.name} (${result.ms.toFixed(0)} ms) ${JSON.stringify(result.detail)}`);
  }
  report.checks = results;
  report.memory = rt.memoryStats();
  await rt.dispose();
  writeAtomically(out, { ...report, available: true });
  const failed = results.filter((r) => !r.ok).length;
  log(`${results.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}
