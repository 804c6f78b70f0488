/**
 * The native C dialect against the JavaScript/WebAssembly CPU path and hand-derived values: a
 * graph with every kernel kind (GEMM with a GELU epilogue and a prologue, row and column
 * reductions, argmax, depthwise conv and its weight gradient, the generic conv, a patchify conv,
 * a sort, integer wrap-around and float -> int casts), on one and two threads; the object cache
 * (a second compile is a cache hit; a tampered object is discarded and recompiled); and the
 * fallback to WebAssembly with a notice when no compiler exists. Where no C compiler or addon
 * is available the suite says why and checks the fallback only (NEXGRAD_REQUIRE=cpu-native
 * makes that a failure).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { cpuDeviceFor, createCpuDevice } from '../../../src/codegen/cpu/device.js';
import { nativeSupport } from '../../../src/codegen/cpu/native/device.js';
import { emitKernelC } from '../../../src/codegen/cpu/native/emit_c.js';
import { emitGraphC } from '../../../src/codegen/cpu/native/graph_c.js';
import { bufferDtypes } from '../../../src/codegen/cpu/emit.js';
import { lower } from '../../../src/passes/pipeline.js';
import * as ng from '../../../src/index.js';
import type { NativeExecutable } from '../../../src/codegen/cpu/native/executable.js';
import { resetToolchain } from '../../../src/codegen/cpu/native/toolchain.js';
import type { ConvKernel, KernelGraph, LoopKernel, MatmulKernel, SortKernel } from '../../../src/codegen/kernel/kernel_graph.js';
import { HostArray } from '../../../src/ir/host.js';
import type { ConvParams } from '../../../src/ir/primitive.js';
import { acc, bin, buf, cast, cst, expectClose, ld, lin, mulberry32, randArray, simplePlan, un, v } from './util.js';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ng-native-test-'));
process.env.NEXGRAD_CACHE_DIR = cacheDir;
afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

const support = nativeSupport();
const required = (process.env.NEXGRAD_REQUIRE ?? '').split(',').includes('cpu-native');
if (typeof support === 'string' && required) throw new Error(`NEXGRAD_REQUIRE=cpu-native: ${support}`);

function everyKind(): { g: KernelGraph; inputs: HostArray[] } {
  const [M, K, N] = [150, 40, 72];
  const [H, W, C] = [9, 10, 12];
  const gelu = (x: ReturnType<typeof acc>) => bin('mul', bin('mul', x, cst(0.5)), bin('add', un('erf', bin('mul', x, cst(Math.SQRT1_2))), cst(1)));
  // GEMM: A computed by a prologue (x * 2 - 1), GELU(acc + bias) epilogue
  const mm: MatmulKernel = {
    kind: 'matmul',
    name: 'mm',
    batch: 1,
    m: M,
    n: N,
    k: K,
    dtype: 'f32',
    a: { kind: 'expr', expr: bin('sub', bin('mul', ld(0, lin(['m', 'k'], [M, K])), cst(2)), cst(1)) },
    b: { kind: 'strided', buf: 1, offset: 0, strides: [0, N, 1] },
    outputs: [{ buf: 10, index: lin(['m', 'n'], [M, N]), expr: gelu(bin('add', acc(0), ld(5, v('n')))) }],
  };
  const cols: LoopKernel = { kind: 'loop', name: 'colsum', outer: [N], row: [M], reductions: [{ id: 0, op: 'sum', expr: ld(10, lin(['r0', 'o0'], [M, N])), dtype: 'f32' }], outerOutputs: [{ buf: 11, index: v('o0'), expr: acc(0) }], rowOutputs: [] };
  // softmax-like row kernel: max, then sum of exp, then normalised rows; plus argmax
  const rows: LoopKernel = {
    kind: 'loop',
    name: 'rows',
    outer: [M],
    row: [N],
    reductions: [
      { id: 0, op: 'max', expr: ld(10, lin(['o0', 'r0'], [M, N])), dtype: 'f32' },
      { id: 1, op: 'sum', expr: un('exp', bin('sub', ld(10, lin(['o0', 'r0'], [M, N])), acc(0))), dtype: 'f32' },
      { id: 2, op: 'argmax', expr: ld(10, lin(['o0', 'r0'], [M, N])), dtype: 'i32' },
    ],
    outerOutputs: [{ buf: 17, index: v('o0'), expr: acc(2, 'i32') }],
    rowOutputs: [{ buf: 12, index: lin(['o0', 'r0'], [M, N]), expr: bin('div', un('exp', bin('sub', ld(10, lin(['o0', 'r0'], [M, N])), acc(0))), acc(1)) }],
  };
  const NHWC = { lhs: [0, 3, 1, 2], rhs: [3, 2, 0, 1], out: [0, 3, 1, 2] };
  const dwp: ConvParams = { windowStrides: [1, 1], padding: [[3, 3], [3, 3]], lhsDilation: [1, 1], rhsDilation: [1, 1], featureGroupCount: C, batchGroupCount: 1, dims: NHWC };
  const out4 = (s: number[]) => lin(s.map((_, i) => `o${i}`), s);
  const dw: ConvKernel = { kind: 'conv', name: 'dw', params: dwp, dtype: 'f32', lhs: { buf: 2, shape: [2, H, W, C] }, rhs: { buf: 3, shape: [7, 7, 1, C] }, outShape: [2, H, W, C], outputs: [{ buf: 13, index: out4([2, H, W, C]), expr: bin('add', acc(0), cst(1)) }] };
  const wgp: ConvParams = { windowStrides: [1, 1], padding: [[3, 3], [3, 3]], lhsDilation: [1, 1], rhsDilation: [1, 1], featureGroupCount: 1, batchGroupCount: C, dims: { lhs: [3, 0, 1, 2], rhs: [3, 0, 1, 2], out: [2, 3, 0, 1] } };
  const wg: ConvKernel = { kind: 'conv', name: 'wg', params: wgp, dtype: 'f32', lhs: { buf: 2, shape: [2, H, W, C] }, rhs: { buf: 13, shape: [2, H, W, C] }, outShape: [7, 7, 1, C], outputs: [{ buf: 14, index: out4([7, 7, 1, C]), expr: acc(0) }] };
  const gp: ConvParams = { windowStrides: [1, 1], padding: [[1, 1], [1, 1]], lhsDilation: [1, 1], rhsDilation: [1, 1], featureGroupCount: 2, batchGroupCount: 1, dims: NHWC };
  const gen: ConvKernel = { kind: 'conv', name: 'generic', params: gp, dtype: 'f32', lhs: { buf: 2, shape: [2, H, W, C] }, rhs: { buf: 4, shape: [3, 3, 6, 6] }, outShape: [2, H, W, 6], outputs: [{ buf: 15, index: out4([2, H, W, 6]), expr: acc(0) }] };
  // a patchify conv 2x2 / 2 (im2col GEMM path)
  const pp: ConvParams = { windowStrides: [2, 2], padding: [[0, 0], [0, 0]], lhsDilation: [1, 1], rhsDilation: [1, 1], featureGroupCount: 1, batchGroupCount: 1, dims: NHWC };
  const patch: ConvKernel = { kind: 'conv', name: 'patch', params: pp, dtype: 'f32', lhs: { buf: 2, shape: [2, H, W, C] }, rhs: { buf: 6, shape: [2, 2, C, 8] }, outShape: [2, 4, 5, 8], outputs: [{ buf: 16, index: out4([2, 4, 5, 8]), expr: acc(0) }] };
  const sort: SortKernel = { kind: 'sort', name: 'sort', input: 11, dtype: 'f32', shape: [N], axis: 0, descending: true, output: 18 };
  // integers: wrap-around multiply and a float -> i32 cast of large values (ToInt32 semantics)
  const ints: LoopKernel = {
    kind: 'loop',
    name: 'ints',
    outer: [N],
    row: [],
    reductions: [],
    outerOutputs: [
      { buf: 19, index: v('o0'), expr: bin('mul', cast(bin('mul', ld(11, v('o0')), cst(1e9)), 'i32'), { op: 'const', value: 123457, dtype: 'i32' }) },
    ],
    rowOutputs: [],
  };
  const g: KernelGraph = {
    buffers: [
      buf(0, 'f32', M * K, 'input'),
      buf(1, 'f32', K * N, 'input'),
      buf(2, 'f32', 2 * H * W * C, 'input'),
      buf(3, 'f32', 49 * C, 'input'),
      buf(4, 'f32', 9 * 6 * 6, 'input'),
      buf(5, 'f32', N, 'input'),
      buf(6, 'f32', 4 * C * 8, 'input'),
      buf(10, 'f32', M * N, 'temp'),
      buf(11, 'f32', N, 'output'),
      buf(12, 'f32', M * N, 'output'),
      buf(13, 'f32', 2 * H * W * C, 'temp'),
      buf(14, 'f32', 49 * C, 'output'),
      buf(15, 'f32', 2 * H * W * 6, 'output'),
      buf(16, 'f32', 2 * 4 * 5 * 8, 'output'),
      buf(17, 'i32', M, 'output'),
      buf(18, 'i32', N, 'output'),
      buf(19, 'i32', N, 'output'),
    ],
    kernels: [mm, cols, rows, dw, wg, gen, patch, sort, ints],
    inputs: [0, 1, 2, 3, 4, 5, 6],
    outputs: [11, 12, 14, 15, 16, 17, 18, 19].map((b) => {
      const d = g0.get(b)!;
      return { kind: 'buffer' as const, buf: b, shape: [d.size], dtype: d.dtype };
    }),
    consts: [],
  };
  const rng = mulberry32(23);
  const inputs = [randArray('f32', [M, K], rng), randArray('f32', [K, N], rng), randArray('f32', [2, H, W, C], rng), randArray('f32', [7, 7, 1, C], rng), randArray('f32', [3, 3, 6, 6], rng), randArray('f32', [N], rng), randArray('f32', [2, 2, C, 8], rng)];
  return { g, inputs };
}
const g0 = new Map<number, { size: number; dtype: 'f32' | 'i32' }>([
  [11, { size: 72, dtype: 'f32' }],
  [12, { size: 150 * 72, dtype: 'f32' }],
  [14, { size: 49 * 12, dtype: 'f32' }],
  [15, { size: 2 * 9 * 10 * 6, dtype: 'f32' }],
  [16, { size: 2 * 4 * 5 * 8, dtype: 'f32' }],
  [17, { size: 150, dtype: 'i32' }],
  [18, { size: 72, dtype: 'i32' }],
  [19, { size: 72, dtype: 'i32' }],
]);

describe.runIf(typeof support !== 'string')('native CPU dialect', () => {
  it('computes what the WebAssembly path computes, on one and two threads', () => {
    const { g, inputs } = everyKind();
    const want = createCpuDevice({ threads: 1 }).compile(g, simplePlan(g)).run(inputs);
    for (const threads of [1, 2]) {
      const ex = cpuDeviceFor(threads, 'native').compile(g, simplePlan(g)) as NativeExecutable;
      expect(ex.cSource).toContain('ng_gemm_f32(');
      const got = ex.run(inputs);
      // the integer outputs of the last kernel depend on the last bits of the column sums: below
      got.slice(0, 7).forEach((o, i) => {
        if (o.dtype === 'i32') expect(Array.from(o.data), `output ${i}`).toEqual(Array.from(want[i]!.data));
        else expectClose(o.data, want[i]!.data, 2e-5, 2e-6, `output ${i} (${threads} threads)`);
      });
      // hand-derived: ToInt32 of x * 1e9 wraps modulo 2^32, then the product wraps at 32 bits
      const col = got[0]!.data;
      const ints = got[7]!.data;
      for (let j = 0; j < 72; j++) {
        const t = Math.trunc(col[j]! * 1e9);
        expect(ints[j]).toBe(Math.imul(Number(BigInt.asIntN(32, BigInt(t))), 123457));
      }
    }
  });

  it('a merged column-mode kernel with many reductions (more than the scratch slots)', () => {
    const [M, N] = [37, 50];
    const reds = Array.from({ length: 12 }, (_, i) => ({ id: i, op: 'sum' as const, expr: bin('mul', ld(0, lin(['r0', 'o0'], [M, N])), cst(i + 1)), dtype: 'f32' as const }));
    const total = reds.slice(1).reduce((e, r) => bin('add', e, acc(r.id)), acc(0));
    const k: LoopKernel = { kind: 'loop', name: 'colsums', outer: [N], row: [M], reductions: reds, outerOutputs: [{ buf: 1, index: v('o0'), expr: total }], rowOutputs: [] };
    const g: KernelGraph = { buffers: [buf(0, 'f32', M * N, 'input'), buf(1, 'f32', N, 'output')], kernels: [k], inputs: [0], outputs: [{ kind: 'buffer', buf: 1, shape: [N], dtype: 'f32' }], consts: [] };
    const x = randArray('f32', [M, N], mulberry32(4));
    const got = cpuDeviceFor(1, 'native').compile(g, simplePlan(g)).run([x])[0]!.data;
    // hand-derived: sum_i (i + 1) * colsum = 78 * colsum (each partial rounded to f32 when read)
    for (let j = 0; j < N; j++) {
      let c = 0;
      for (let r = 0; r < M; r++) c += x.data[r * N + j]!;
      expect(got[j]).toBeCloseTo(78 * c, 4);
    }
  });

  it('a padded operand read in a select is clamped into its buffer (C evaluates the hoisted load unconditionally)', () => {
    // regression: the load of the discarded branch read b0[-6..] outside the allocation
    const padded = (a: ng.Tensor) => ng.pad(a.reshape([2, 2]), [[1, 1], [2, 2]]).mul(2).sum(1);
    const x = ng.tensor([1, 2, 3, 4]);
    const { graph, plan } = lower(ng.trace(padded, x));
    const raw = emitKernelC(graph.kernels[0]!, 0, bufferDtypes(graph)).source;
    const src = emitGraphC(graph).kernels[0]!.source;
    expect(raw).toMatch(/= b0\[i\d+\];/); // unclamped: the index runs from -4 to 5 over a 4-element buffer
    expect(src).not.toMatch(/= b0\[i\d+\];/);
    expect(src).toMatch(/= b0\[\(\(int32_t\)0\) \+ t\d+\];/);
    const got = cpuDeviceFor(1, 'native').compile(graph, plan).run([new HostArray('f32', [4], new Float32Array([1, 2, 3, 4]))])[0]!;
    expect(Array.from(got.data)).toEqual([0, 6, 14, 0]); // 2 * (1 + 2), 2 * (3 + 4)
  });

  it('caches compiled objects by source and discards a tampered one', () => {
    const { g, inputs } = everyKind();
    const dev = cpuDeviceFor(1, 'native');
    const first = dev.compile(g, simplePlan(g)) as NativeExecutable;
    const again = dev.compile(g, simplePlan(g)) as NativeExecutable;
    expect(again.fromCache).toBe(true);
    const dir = path.join(cacheDir, 'cpu-native');
    // flip a byte of every cached kernel object: the record's digest no longer matches
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.so'))) {
      const p = path.join(dir, f);
      const b = fs.readFileSync(p);
      b[b.length - 1] = b[b.length - 1]! ^ 0xff;
      fs.writeFileSync(p, b);
    }
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const third = dev.compile(g, simplePlan(g)) as NativeExecutable;
    expect(third.fromCache).toBe(false);
    expect(warn.mock.calls.some((c) => /do not match their digest/.test(String(c[0])))).toBe(true);
    warn.mockRestore();
    const a = first.run(inputs);
    const b = third.run(inputs);
    a.forEach((o, i) => expect(Array.from(b[i]!.data)).toEqual(Array.from(o.data)));
  });
});

describe('native CPU dialect availability', () => {
  it('falls back to WebAssembly with one notice when there is no compiler', () => {
    const saved = process.env.NEXGRAD_CC;
    process.env.NEXGRAD_CC = '/nonexistent/cc-for-test';
    resetToolchain();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const dev = cpuDeviceFor(1, 'native');
      expect(dev.id).toMatch(/^cpu:js/);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0]![0])).toMatch(/native CPU backend is not available \(no C compiler found.*using WebAssembly/);
    } finally {
      warn.mockRestore();
      if (saved === undefined) delete process.env.NEXGRAD_CC;
      else process.env.NEXGRAD_CC = saved;
      resetToolchain();
    }
  });

  it('reports why it is unavailable, when it is', () => {
    if (typeof support === 'string') console.log(`native CPU dialect not available here: ${support}`);
    expect(typeof support === 'string' ? support.length > 0 : support.tc.cflags.includes('-O3')).toBe(true);
  });
});
