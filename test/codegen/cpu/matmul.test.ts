/**
 * CPU backend, matmul anchor: strided / transposed / batched operands, sizes that are not
 * multiples of the register or cache tiles, several K and N blocks, a fused epilogue (bias,
 * GELU with erf, residual, a second output), the WebAssembly SIMD and JavaScript paths,
 * f64 and i32, compared with the host dot_general; and the row-range split.
 */
import { describe, expect, it } from 'vitest';
import { createCpuDevice, instantiateKernel } from '../../../src/codegen/cpu/device.js';
import { bufferDtypes, type JsKernelCode } from '../../../src/codegen/cpu/emit.js';
import { emitGemm } from '../../../src/codegen/cpu/matmul.js';
import { matmulSpec } from '../../../src/codegen/lower/gemm_spec.js';
import { instantiateGemm, makeMemory, wasmSimdAvailable } from '../../../src/codegen/cpu/wasm.js';
import type { KernelGraph, KernelOutput, MatmulKernel, SExpr } from '../../../src/codegen/kernel/kernel_graph.js';
import { castScalar, type DType } from '../../../src/ir/dtype.js';
import { HostArray } from '../../../src/ir/host.js';
import { erf } from '../../../src/ir/hostmath.js';
import { PRIMS } from '../../../src/ir/primitives/index.js';
import { acc, bin, buf, cst, expectClose, f32tol, ld, lin, mulberry32, randArray, simplePlan, un, v } from './util.js';

const gelu = (x: SExpr): SExpr => bin('mul', bin('mul', x, cst(0.5, x.dtype)), bin('add', cst(1, x.dtype), un('erf', bin('mul', x, cst(Math.SQRT1_2, x.dtype)))));

interface Case {
  name: string;
  batch: number;
  m: number;
  n: number;
  k: number;
  /** Operand layouts: 'mk' row-major A, 'km' A^T storage; 'kn' row-major B, 'nk' B^T storage. */
  aLayout: 'mk' | 'km';
  bLayout: 'kn' | 'nk';
  bBatched: boolean;
  /** Leading offset / padding elements in storage. */
  pad: number;
}

/** Builds A, B storage and the matmul kernel with strides for the layouts. */
function buildCase(c: Case, dtype: DType, epilogue: 'plain' | 'fused', rng: () => number) {
  const { batch, m, n, k, pad } = c;
  const aRow = c.aLayout === 'mk' ? [k, 1] : [1, m];
  const aSize = batch * m * k + pad;
  const bRow = c.bLayout === 'kn' ? [n, 1] : [1, k];
  const bSize = (c.bBatched ? batch : 1) * k * n + pad;
  const A = randArray(dtype, [aSize], rng, dtype === 'i32' ? -1000 : -1, dtype === 'i32' ? 1000 : 1);
  const B = randArray(dtype, [bSize], rng, dtype === 'i32' ? -1000 : -1, dtype === 'i32' ? 1000 : 1);
  const bias = randArray(dtype, [n], rng);
  const resid = randArray(dtype, [batch * m * n], rng);
  const outIdx = lin(['b', 'm', 'n'], [batch, m, n]);
  const outputs: KernelOutput[] =
    epilogue === 'plain'
      ? [{ buf: 4, index: outIdx, expr: acc(0, dtype) }]
      : [
          { buf: 4, index: outIdx, expr: bin('add', gelu(bin('add', acc(0, dtype), ld(2, v('n'), dtype))), ld(3, outIdx, dtype)) },
          { buf: 5, index: lin(['b', 'n', 'm'], [batch, n, m]), expr: bin('mul', acc(0, dtype), cst(2, dtype)) },
        ];
  const kern: MatmulKernel = {
    kind: 'matmul',
    name: `mm_${c.name}`,
    batch,
    m,
    n,
    k,
    dtype,
    a: { kind: 'strided', buf: 0, offset: pad, strides: [m * k, aRow[0]!, aRow[1]!] },
    b: { kind: 'strided', buf: 1, offset: pad, strides: [c.bBatched ? k * n : 0, bRow[0]!, bRow[1]!] },
    outputs,
  };
  const g: KernelGraph = {
    buffers: [buf(0, dtype, aSize, 'input'), buf(1, dtype, bSize, 'input'), buf(2, dtype, n, 'input'), buf(3, dtype, batch * m * n, 'input'), buf(4, dtype, batch * m * n, 'output'), buf(5, dtype, batch * m * n, 'output')],
    kernels: [kern],
    inputs: [0, 1, 2, 3],
    outputs: [
      { kind: 'buffer', buf: 4, shape: [batch, m, n], dtype },
      ...(epilogue === 'fused' ? [{ kind: 'buffer' as const, buf: 5, shape: [batch, n, m], dtype }] : []),
    ],
    consts: [],
  };
  // reference: canonical [batch, m, k] and [batch, k, n] arrays through the host dot_general
  const Ac = new HostArray(dtype, [batch, m, k], new (A.data.constructor as Float32ArrayConstructor)(batch * m * k));
  const Bc = new HostArray(dtype, [batch, k, n], new (B.data.constructor as Float32ArrayConstructor)(batch * k * n));
  for (let b = 0; b < batch; b++)
    for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) Ac.data[(b * m + i) * k + j] = A.data[pad + b * m * k + i * aRow[0]! + j * aRow[1]!]!;
  for (let b = 0; b < batch; b++)
    for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) Bc.data[(b * k + i) * n + j] = B.data[pad + (c.bBatched ? b * k * n : 0) + i * bRow[0]! + j * bRow[1]!]!;
  const prod = PRIMS.dot_general.impl([Ac, Bc], { contracting: [[2], [1]], batch: [[0], [0]] }, { wide: dtype !== 'i32' })[0]!;
  return { g, kern, inputs: [A, B, bias, resid], prod, bias, resid };
}

const CASES: Case[] = [
  { name: 'tiny', batch: 1, m: 1, n: 1, k: 1, aLayout: 'mk', bLayout: 'kn', bBatched: false, pad: 0 },
  { name: 'odd', batch: 1, m: 13, n: 11, k: 7, aLayout: 'mk', bLayout: 'kn', bBatched: false, pad: 3 },
  { name: 'transposed', batch: 1, m: 37, n: 29, k: 19, aLayout: 'km', bLayout: 'nk', bBatched: false, pad: 1 },
  { name: 'batched', batch: 3, m: 21, n: 18, k: 33, aLayout: 'mk', bLayout: 'nk', bBatched: true, pad: 0 },
  { name: 'bshared', batch: 4, m: 9, n: 16, k: 8, aLayout: 'km', bLayout: 'kn', bBatched: false, pad: 2 },
  { name: 'multiK', batch: 1, m: 70, n: 12, k: 777, aLayout: 'mk', bLayout: 'kn', bBatched: false, pad: 0 },
  { name: 'multiN', batch: 2, m: 67, n: 530, k: 5, aLayout: 'mk', bLayout: 'kn', bBatched: true, pad: 0 },
  { name: 'pwconv', batch: 1, m: 196, n: 160, k: 40, aLayout: 'mk', bLayout: 'kn', bBatched: false, pad: 0 },
  { name: 'k0', batch: 2, m: 5, n: 6, k: 0, aLayout: 'mk', bLayout: 'kn', bBatched: false, pad: 0 },
];

function checkCase(c: Case, dtype: DType, wasm: boolean, epilogue: 'plain' | 'fused'): void {
  const rng = mulberry32(c.m * 131 + c.n * 7 + c.k);
  const { g, inputs, prod, bias, resid } = buildCase(c, dtype, epilogue, rng);
  const dev = createCpuDevice({ wasm });
  const outs = dev.compile(g, simplePlan(g)).run(inputs);
  const { batch, m, n, k } = c;
  const tol = dtype === 'f64' ? 1e-12 : dtype === 'i32' ? 0 : f32tol(k);
  if (epilogue === 'plain') {
    expectClose(outs[0]!.data, prod.data, tol, tol, `${c.name} ${dtype}`);
    return;
  }
  const want0 = new Float64Array(batch * m * n);
  const want1 = new Float64Array(batch * m * n);
  for (let b = 0; b < batch; b++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        const p = prod.data[(b * m + i) * n + j]!;
        const x = p + bias.data[j]!;
        want0[(b * m + i) * n + j] = x * 0.5 * (1 + erf(x * castScalar(Math.SQRT1_2, dtype))) + resid.data[(b * m + i) * n + j]!;
        want1[(b * n + j) * m + i] = 2 * p;
      }
  expectClose(outs[0]!.data, want0, tol, tol, `${c.name} ${dtype} epilogue`);
  expectClose(outs[1]!.data, want1, tol, tol, `${c.name} ${dtype} second output`);
}

describe('matmul kernels against the host dot_general', () => {
  const paths: [string, boolean][] = [['js', false]];
  if (wasmSimdAvailable()) paths.push(['wasm-simd', true]);
  for (const [pname, wasm] of paths) {
    for (const c of CASES) {
      it(`${c.name} (${c.batch}x${c.m}x${c.k} @ ${c.k}x${c.n}, A ${c.aLayout}, B ${c.bLayout}) f32 ${pname}`, () => {
        checkCase(c, 'f32', wasm, 'plain');
        checkCase(c, 'f32', wasm, 'fused');
      });
    }
  }
  it('f64 keeps float64 accuracy', () => {
    for (const c of CASES.slice(0, 6)) checkCase(c, 'f64', true, 'fused');
  });
  it('i32 wraps exactly like the host', () => {
    for (const c of CASES.slice(0, 5)) checkCase(c, 'i32', true, 'plain');
  });
  it('wasm-simd is the default path for f32', () => {
    if (!wasmSimdAvailable()) return;
    const { g } = buildCase(CASES[1]!, 'f32', 'plain', mulberry32(1));
    const src = createCpuDevice().compile(g, simplePlan(g)).sources[0]!;
    expect(src).toContain('G(');
  });
});

describe('matmul range split over (batch, row)', () => {
  for (const wasm of [false, true]) {
    it(`two halves and uneven pieces equal the whole (${wasm ? 'wasm' : 'js'})`, () => {
      if (wasm && !wasmSimdAvailable()) return;
      const c: Case = { name: 'split', batch: 3, m: 70, n: 21, k: 300, aLayout: 'mk', bLayout: 'kn', bBatched: true, pad: 0 };
      const { g, kern, inputs } = buildCase(c, 'f32', 'plain', mulberry32(5));
      const spec = matmulSpec(kern);
      // small tiles so that every loop has several blocks
      const code: JsKernelCode = emitGemm(spec, bufferDtypes(g), [0, 1, 4], { wasm }, { mc: 16, nc: 8, kc: 64, rch: 32 });
      expect(code.total).toBe(210);
      const fn = instantiateKernel(code);
      const dev = createCpuDevice({ wasm });
      const want = dev.compile(g, simplePlan(g)).run(inputs)[0]!;
      // scratch for a direct call: Float64Arrays, or views of a wasm memory plus the micro-kernel
      let scratch: unknown[];
      if (wasm) {
        expect(code.wasm?.kind).toBe('gemm_f32');
        const mem = makeMemory(code.wasm!.bytes);
        scratch = [...code.scratch.map((s) => new Float32Array(mem.buffer as ArrayBuffer, s.wasmByteOffset, s.size)), instantiateGemm(mem)];
      } else {
        scratch = [...code.scratch.map((s) => new Float64Array(s.size)), null];
      }
      for (const cuts of [[105], [1, 69, 70, 71, 139, 200]]) {
        const out = new Float32Array(210 * 21).fill(NaN);
        const pts = [0, ...cuts, 210];
        for (let i = 0; i + 1 < pts.length; i++) fn(pts[i]!, pts[i + 1]!, inputs[0]!.data, inputs[1]!.data, out, ...scratch);
        expectClose(out, want.data, f32tol(300), 1e-6);
      }
    });
  }
});
