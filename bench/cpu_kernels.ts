/**
 * CPU backend kernel benchmarks: GFLOP/s of the GEMM anchor (512^3; ConvNeXt atto pwconv1 at
 * 56x56: (3136 x 40) @ (40 x 160), plain and with bias + GELU), the conv paths (depthwise 7x7,
 * patchify stem, depthwise weight gradient) and a LayerNorm loop kernel. Median of repeats.
 *
 *   npm run build && node dist/bench/cpu_kernels.js
 *   (or: npx tsc -p tsconfig.json --outDir /tmp/nexgrad-build && node /tmp/nexgrad-build/bench/cpu_kernels.js)
 *
 * Options: --native (the native C dialect), --js (JavaScript micro-kernel instead of WebAssembly SIMD), --threads N (worker
 * threads, main included), --compare-threads (interleave 1 and N threads), --reps N, --only NAME,
 * --cpu (process CPU time instead of wall time).
 */
import { createCpuDevice } from '../src/codegen/cpu/device.js';
import { createNativeCpuDevice, nativeSupport } from '../src/codegen/cpu/native/device.js';
import type { Device } from '../src/codegen/kernel/device.js';
import type { MemoryPlan } from '../src/codegen/kernel/device.js';
import { idx, type Idx, linearize } from '../src/codegen/kernel/index_expr.js';
import { axisNamed } from '../src/codegen/kernel/axis.js';
import type { ConvKernel, Kernel, KernelGraph, KernelOutput, SExpr } from '../src/codegen/kernel/kernel_graph.js';
import type { DType } from '../src/ir/dtype.js';
import { HostArray } from '../src/ir/host.js';
import type { ConvParams } from '../src/ir/primitive.js';

const args = process.argv.slice(2);
const useJs = args.includes('--js');
const reps = Number(args[args.indexOf('--reps') + 1] ?? 0) || 7;
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const threads = args.includes('--threads') ? Number(args[args.indexOf('--threads') + 1]) : 1;
/** Interleaves runs with 1 thread and with `threads` threads (same inputs) and reports both. */
const compare = args.includes('--compare-threads');
/** --cpu: process CPU time instead of wall time (robust on a shared machine; meaningful with one thread). */
const clock = args.includes('--cpu')
  ? (): number => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    }
  : (): number => performance.now();

/** --native: the native C dialect (src/codegen/cpu/native) instead of JavaScript/WebAssembly. */
const useNative = args.includes('--native');
function device(t: number): Device {
  if (!useNative) return createCpuDevice({ wasm: !useJs, threads: t });
  const s = nativeSupport();
  if (typeof s === 'string') throw new Error(`--native: ${s}`);
  return createNativeCpuDevice(s, { threads: t });
}
const dev = device(threads);
const dev1 = device(1);

const v = (n: string): Idx => idx.var(axisNamed(n));
const lin = (vars: string[], shape: number[]): Idx => linearize(vars.map(v), shape);
const ld = (buf: number, index: Idx, dtype: DType = 'f32'): SExpr => ({ op: 'load', buf, index, dtype });
const cst = (value: number): SExpr => ({ op: 'const', value, dtype: 'f32' });
const acc0: SExpr = { op: 'acc', id: 0, dtype: 'f32' };
const bin = (fn: 'add' | 'mul' | 'sub' | 'div', a: SExpr, b: SExpr): SExpr => ({ op: 'binary', fn, a, b, dtype: 'f32' });
const erfE = (a: SExpr): SExpr => ({ op: 'unary', fn: 'erf', a, dtype: 'f32' });
const gelu = (x: SExpr): SExpr => bin('mul', bin('mul', x, cst(0.5)), bin('add', cst(1), erfE(bin('mul', x, cst(Math.SQRT1_2)))));

function rand(shape: number[]): HostArray {
  const n = shape.reduce((a, b) => a * b, 1);
  // shared storage, as the outputs of a threaded executable are (no staging copies)
  const d = threads > 1 ? new Float32Array(new SharedArrayBuffer(n * 4)) : new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    d[i] = (s / 4294967296) * 2 - 1;
  }
  return new HostArray('f32', shape, d);
}

function plan(): MemoryPlan {
  return { storageOf: [], storageBytes: [], outputAliases: new Map(), peakBytes: 0 };
}

function graph(kernel: Kernel, ins: { shape: readonly number[] }[], out: { buf: number; shape: number[] }): KernelGraph {
  const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
  return {
    buffers: [...ins.map((a, i) => ({ id: i, dtype: 'f32' as const, size: size(a.shape), kind: 'input' as const })), { id: out.buf, dtype: 'f32', size: size(out.shape), kind: 'output' }],
    kernels: [kernel],
    inputs: ins.map((_, i) => i),
    outputs: [{ kind: 'buffer', buf: out.buf, shape: out.shape, dtype: 'f32' }],
    consts: [],
  };
}

function time(name: string, flops: number, g: KernelGraph, inputs: HostArray[]): void {
  if (only && !name.includes(only)) return;
  const exs = compare ? [dev1.compile(g, plan()), dev.compile(g, plan())] : [dev.compile(g, plan())];
  for (const ex of exs) {
    ex.run(inputs);
    ex.run(inputs);
  }
  const ts: number[][] = exs.map(() => []);
  for (let r = 0; r < reps; r++) {
    exs.forEach((ex, i) => {
      const t0 = clock();
      ex.run(inputs);
      ts[i]!.push(clock() - t0);
    });
  }
  const meds = ts.map((t) => [...t].sort((a, b) => a - b)[Math.floor(t.length / 2)]!);
  const fmt = (med: number): string => `${med.toFixed(3).padStart(9)} ms ${(flops / med / 1e6).toFixed(2).padStart(7)} GFLOP/s`;
  if (compare) console.log(`${name.padEnd(48)} 1 thread ${fmt(meds[0]!)} | ${threads} threads ${fmt(meds[1]!)}  x${(meds[0]! / meds[1]!).toFixed(2)}`);
  else console.log(`${name.padEnd(52)} ${fmt(meds[0]!)}`);
}

/** aT: A stored transposed (K x M), as the weight gradient of a pointwise conv reads its activations. */
function matmul(name: string, M: number, K: number, N: number, epi: 'plain' | 'bias_gelu', aT = false): void {
  const outIdx = lin(['m', 'n'], [M, N]);
  const expr = epi === 'plain' ? acc0 : gelu(bin('add', acc0, ld(2, v('n'))));
  const outputs: KernelOutput[] = [{ buf: 3, index: outIdx, expr }];
  const k: Kernel = { kind: 'matmul', name, batch: 1, m: M, n: N, k: K, dtype: 'f32', a: { kind: 'strided', buf: 0, offset: 0, strides: aT ? [0, 1, M] : [0, K, 1] }, b: { kind: 'strided', buf: 1, offset: 0, strides: [0, N, 1] }, outputs };
  const ins = [rand(aT ? [K, M] : [M, K]), rand([K, N]), rand([N])];
  time(`matmul ${M}x${K}${aT ? ' (A^T)' : ''} @ ${K}x${N} ${epi}`, 2 * M * N * K, graph(k, ins, { buf: 3, shape: [M, N] }), ins);
}

function conv(name: string, lhs: number[], rhs: number[], out: number[], params: ConvParams, flops: number): void {
  const vars = out.map((_, i) => `o${i}`);
  const k: ConvKernel = { kind: 'conv', name, params, dtype: 'f32', lhs: { buf: 0, shape: lhs }, rhs: { buf: 1, shape: rhs }, outShape: out, outputs: [{ buf: 2, index: lin(vars, out), expr: acc0 }] };
  const ins = [rand(lhs), rand(rhs)];
  time(name, flops, graph(k, ins, { buf: 2, shape: out }), ins);
}

const NHWC = { lhs: [0, 3, 1, 2], rhs: [3, 2, 0, 1], out: [0, 3, 1, 2] };
const sq = <T>(x: T): T[] => [x, x];

console.log(`nexgrad cpu kernels (${useNative ? 'native C' : useJs ? 'JavaScript' : 'WebAssembly SIMD'} micro-kernels, ${threads} thread${threads > 1 ? 's' : ''}), median of ${reps}`);
matmul('mm512', 512, 512, 512, 'plain');
matmul('pwconv1', 3136, 40, 160, 'plain');
matmul('pwconv1', 3136, 40, 160, 'bias_gelu');
matmul('pwconv2', 3136, 160, 40, 'plain');
matmul('pwconv1 b8', 8 * 3136, 40, 160, 'plain');
matmul('pwconv2 b8', 8 * 3136, 160, 40, 'plain');
// weight gradients of the stage-1 pointwise convs at batch 8: dW1 = x^T dy, dW2 = h^T dy
matmul('wgrad pw1 b8', 40, 8 * 3136, 160, 'plain', true);
matmul('wgrad pw2 b8', 160, 8 * 3136, 40, 'plain', true);
for (const B of [1, 8]) {
  conv(`dwconv 7x7 56x56x40 NHWC b${B}`, [B, 56, 56, 40], [7, 7, 1, 40], [B, 56, 56, 40], { windowStrides: sq(1), padding: sq([3, 3] as const), lhsDilation: sq(1), rhsDilation: sq(1), featureGroupCount: 40, batchGroupCount: 1, dims: NHWC }, 2 * B * 56 * 56 * 40 * 49);
}
conv('stem 4x4/4 224x224x3 -> 56x56x40 b1', [1, 224, 224, 3], [4, 4, 3, 40], [1, 56, 56, 40], { windowStrides: sq(4), padding: sq([0, 0] as const), lhsDilation: sq(1), rhsDilation: sq(1), featureGroupCount: 1, batchGroupCount: 1, dims: NHWC }, 2 * 3136 * 40 * 48);
conv('downsample 2x2/2 56x56x40 -> 28x28x80 b1', [1, 56, 56, 40], [2, 2, 40, 80], [1, 28, 28, 80], { windowStrides: sq(2), padding: sq([0, 0] as const), lhsDilation: sq(1), rhsDilation: sq(1), featureGroupCount: 1, batchGroupCount: 1, dims: NHWC }, 2 * 784 * 80 * 160);
{
  // depthwise weight gradient, batch 8: lhs x (NHWC, roles swapped), rhs dy, out dW (HWIO)
  const B = 8;
  conv(
    'dw wgrad 7x7 56x56x40 b8',
    [B, 56, 56, 40],
    [B, 56, 56, 40],
    [7, 7, 1, 40],
    { windowStrides: sq(1), padding: sq([3, 3] as const), lhsDilation: sq(1), rhsDilation: sq(1), featureGroupCount: 1, batchGroupCount: 40, dims: { lhs: [3, 0, 1, 2], rhs: [3, 0, 1, 2], out: [2, 3, 0, 1] } },
    2 * B * 56 * 56 * 40 * 49,
  );
}
{
  // the same with x as autodiff hands it over (CHWN: channel-major, images innermost), at the
  // Fashion-MNIST model's stage 1 (batch 128, 16x16, 32 channels)
  const [B, S, C] = [128, 16, 32];
  conv(
    'dw wgrad 7x7 16x16x32 b128 (x CHWN)',
    [C, S, S, B],
    [B, S, S, C],
    [1, 7, 7, C],
    { windowStrides: sq(1), padding: sq([3, 3] as const), lhsDilation: sq(1), rhsDilation: sq(1), featureGroupCount: 1, batchGroupCount: C, dims: { lhs: [0, 3, 1, 2], rhs: [3, 0, 1, 2], out: [0, 3, 1, 2] } },
    2 * B * S * S * C * 49,
  );
}
{
  // bias gradient: column sums of a (25088 x 160) gradient (column-mode loop kernel)
  const R = 25088;
  const C = 160;
  const k: Kernel = { kind: 'loop', name: 'colsum', outer: [C], row: [R], reductions: [{ id: 0, op: 'sum', expr: ld(0, lin(['r0', 'o0'], [R, C])), dtype: 'f32' }], outerOutputs: [{ buf: 1, index: v('o0'), expr: { op: 'acc', id: 0, dtype: 'f32' } }], rowOutputs: [] };
  const ins = [rand([R, C])];
  time('column sums 25088x160 -> 160 (flops = 1/elem)', R * C, graph(k, ins, { buf: 1, shape: [C] }), ins);
}
{
  // LayerNorm over channels, 3136 x 40
  const R = 3136;
  const C = 40;
  const xi = lin(['o0', 'r0'], [R, C]);
  const x = ld(0, xi);
  const mean = bin('div', { op: 'acc', id: 0, dtype: 'f32' }, cst(C));
  const d = bin('sub', x, mean);
  const rstd: SExpr = { op: 'unary', fn: 'rsqrt', a: bin('add', bin('div', { op: 'acc', id: 1, dtype: 'f32' }, cst(C)), cst(1e-6)), dtype: 'f32' };
  const k: Kernel = {
    kind: 'loop',
    name: 'layernorm',
    outer: [R],
    row: [C],
    reductions: [
      { id: 0, op: 'sum', expr: x, dtype: 'f32' },
      { id: 1, op: 'sum', expr: bin('mul', d, d), dtype: 'f32' },
    ],
    outerOutputs: [],
    rowOutputs: [{ buf: 3, index: xi, expr: bin('add', bin('mul', bin('mul', d, rstd), ld(1, v('r0'))), ld(2, v('r0'))) }],
  };
  const ins = [rand([R, C]), rand([C]), rand([C])];
  time('layernorm 3136x40 (flops = 8/elem)', 8 * R * C, graph(k, ins, { buf: 3, shape: [R, C] }), ins);
}
