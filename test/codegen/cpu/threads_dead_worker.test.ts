/**
 * Issue 8 item 12: a dead pool worker must not hang jitted calls. The main thread blocks in
 * Atomics.wait and cannot see a worker's 'error' or 'exit' event, so before the fix a call
 * after the worker died waited forever. Now the unclaimed job is taken over after the pickup
 * timeout: the call finishes with the right values, one warning is printed, and later calls
 * run on one thread. (Its own file: the broken pool is process-wide.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCpuDevice, type CpuExecutable } from '../../../src/codegen/cpu/device.js';
import { workerPool } from '../../../src/codegen/cpu/threads.js';
import type { KernelGraph, LoopKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { bin, buf, cst, ld, mulberry32, randArray, simplePlan, v } from './util.js';

const n = 20000;

function axpyGraph(): KernelGraph {
  const k: LoopKernel = { kind: 'loop', name: 'axpy', outer: [n], row: [], reductions: [], outerOutputs: [{ buf: 2, index: v('o0'), expr: bin('add', bin('mul', ld(0, v('o0')), cst(3)), ld(1, v('o0'))) }], rowOutputs: [] };
  // the second kernel reads the first one's output: a part computed twice or not at all shows
  const k2: LoopKernel = { kind: 'loop', name: 'twice', outer: [n], row: [], reductions: [], outerOutputs: [{ buf: 3, index: v('o0'), expr: bin('mul', ld(2, v('o0')), cst(2)) }], rowOutputs: [] };
  return { buffers: [buf(0, 'f32', n, 'input'), buf(1, 'f32', n, 'input'), buf(2, 'f32', n, 'temp'), buf(3, 'f32', n, 'output')], kernels: [k, k2], inputs: [0, 1], outputs: [{ kind: 'buffer', buf: 3, shape: [n], dtype: 'f32' }], consts: [] };
}

afterEach(() => vi.restoreAllMocks());

describe('a dead worker thread', () => {
  it('is taken over by the main thread: correct results, one warning, then one thread', async () => {
    const g = axpyGraph();
    const ex = createCpuDevice({ threads: 2, splitMinWork: 0 }).compile(g, simplePlan(g)) as CpuExecutable;
    expect(ex.threads).toBe(2);
    const rng = mulberry32(5);
    const x = randArray('f32', [n], rng);
    const y = randArray('f32', [n], rng);
    const want = Float32Array.from(x.data, (t, i) => Math.fround(t * 3 + y.data[i]!) * 2);
    // a healthy run first: both kernels split across the worker
    expect(Array.from(ex.run([x, y])[0]!.data)).toEqual(Array.from(want));
    expect(ex.splitKernels).toEqual([0, 1]);
    // kill the worker the way a crash would: its event loop stops, nobody tells the main thread
    const pool = workerPool(1);
    pool.pickupTimeoutMs = 300;
    await pool.threads[0]!.terminate();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const t0 = performance.now();
    const out = ex.run([x, y])[0]!;
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(Array.from(out.data)).toEqual(Array.from(want));
    expect(pool.broken).toBe(true);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(/CPU worker thread stopped responding.*one thread/);
    // later calls (and new executables) run on the main thread alone, without waiting again
    const t1 = performance.now();
    expect(Array.from(ex.run([x, y])[0]!.data)).toEqual(Array.from(want));
    const ex2 = createCpuDevice({ threads: 2, splitMinWork: 0 }).compile(g, simplePlan(g));
    expect(Array.from(ex2.run([x, y])[0]!.data)).toEqual(Array.from(want));
    expect(performance.now() - t1).toBeLessThan(250);
    expect(warn).toHaveBeenCalledTimes(1);
  });
});
