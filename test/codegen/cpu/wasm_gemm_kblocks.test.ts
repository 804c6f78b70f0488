/**
 * The WebAssembly GEMM packs K up to 1280 as one block (matmul.ts, gemmTiles), so a LayerNorm
 * A prologue with its row statistics runs in WebAssembly at ConvNeXt's K = 640 (the last
 * downsample layer), and K past 1280 falls back to blocks of 256 (statistics in JavaScript).
 * Checked against a float64 evaluation written here and the JavaScript GEMM, with batch 2, an
 * odd row count and an odd column count, on one thread and split across two.
 */
import { describe, expect, it } from 'vitest';
import { createCpuDevice } from '../../../src/codegen/cpu/device.js';
import { jsPathDevices } from './js_path_devices.js';
import { wasmSimdAvailable } from '../../../src/codegen/cpu/wasm.js';
import type { KernelGraph, MatmulKernel, SExpr } from '../../../src/codegen/kernel/kernel_graph.js';
import { acc, bin, buf, cst, expectClose, ld, lin, mulberry32, randArray, simplePlan, un, v } from './util.js';

const CASES = [
  { k: 640, m: 9, n: 37, batch: 2, blocks: false },
  { k: 1280, m: 13, n: 8, batch: 1, blocks: false },
  { k: 1290, m: 9, n: 21, batch: 2, blocks: true },
];

describe.runIf(wasmSimdAvailable())('WebAssembly GEMM: one K block up to 1280, LayerNorm prologue', () => {
  for (const c of CASES) {
    it(`K = ${c.k}, m = ${c.m}, n = ${c.n}, batch ${c.batch}`, () => {
      const x = (kv: string): SExpr => ld(0, lin(['b', 'm', kv], [c.batch, c.m, c.k]));
      const mean = bin('div', acc(0), cst(c.k));
      const d = bin('sub', x('r0'), mean);
      const rstd = un('rsqrt', bin('add', bin('div', acc(1), cst(c.k)), cst(1e-6)));
      const kern: MatmulKernel = {
        kind: 'matmul',
        name: 'ln_gemm',
        batch: c.batch,
        m: c.m,
        n: c.n,
        k: c.k,
        dtype: 'f32',
        a: {
          kind: 'expr',
          expr: bin('add', bin('mul', bin('mul', bin('sub', x('k'), mean), rstd), ld(2, v('k'))), ld(3, v('k'))),
          stats: { row: [c.k], reductions: [{ id: 0, op: 'sum', expr: x('r0'), dtype: 'f32' }, { id: 1, op: 'sum', expr: bin('mul', d, d), dtype: 'f32' }] },
        },
        b: { kind: 'strided', buf: 1, offset: 0, strides: [0, 1, c.k] },
        outputs: [{ buf: 10, index: lin(['b', 'm', 'n'], [c.batch, c.m, c.n]), expr: acc(0) }],
      };
      const sizes = [c.batch * c.m * c.k, c.k * c.n, c.k, c.k];
      const g: KernelGraph = {
        buffers: [...sizes.map((n, i) => buf(i, 'f32', n, 'input')), buf(10, 'f32', c.batch * c.m * c.n, 'output')],
        kernels: [kern],
        inputs: [0, 1, 2, 3],
        outputs: [{ kind: 'buffer', buf: 10, shape: [c.batch * c.m * c.n], dtype: 'f32' }],
        consts: [],
      };
      const rng = mulberry32(c.k + c.m);
      const inputs = sizes.map((n, i) => randArray('f32', [n], rng, i === 0 ? 1 : -1, i === 0 ? 3 : 1));
      const [X, B, gamma, beta] = inputs.map((h) => h.data as Float32Array) as [Float32Array, Float32Array, Float32Array, Float32Array];
      const want = new Float64Array(c.batch * c.m * c.n);
      for (let r = 0; r < c.batch * c.m; r++) {
        let s = 0;
        for (let k = 0; k < c.k; k++) s += X[r * c.k + k]!;
        const mu = s / c.k;
        let q = 0;
        for (let k = 0; k < c.k; k++) q += (X[r * c.k + k]! - mu) ** 2;
        const rs = 1 / Math.sqrt(q / c.k + 1e-6);
        for (let n = 0; n < c.n; n++) {
          let a = 0;
          for (let k = 0; k < c.k; k++) a += ((X[r * c.k + k]! - mu) * rs * gamma[k]! + beta[k]!) * B[n * c.k + k]!;
          want[r * c.n + n] = a;
        }
      }
      const wasm = createCpuDevice().compile(g, simplePlan(g));
      expect(wasm.sources[0]!.includes('_pc += 256')).toBe(c.blocks);
      // one block: the statistics and the apply in WebAssembly (G(2, ...)); K blocks: JavaScript
      expect(wasm.sources[0]!.includes('G(2, _mcp, _kc)')).toBe(!c.blocks);
      const tol = 2e-7 * c.k + 2e-5;
      for (const [dev, what] of jsPathDevices()) {
        const out = dev.compile(g, simplePlan(g)).run(inputs)[0]!;
        expectClose(out.data, want, tol, tol, `K = ${c.k} (${what})`);
      }
    });
  }
});
