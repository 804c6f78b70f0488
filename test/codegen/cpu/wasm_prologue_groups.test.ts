/**
 * The WebAssembly A prologue's per-block streams (wasm_prologue.ts, Stream.perBlock): with the
 * images of a batch folded into the GEMM's rows, GRN's per-image scale s[floor(m / D), k] and a
 * per-image scalar t[floor(m / D)] are staged once per row block instead of once per row, and
 * row blocks end at multiples of D. Checked against a float64 evaluation written here, with
 * the JavaScript GEMM (wasm: false) as a second implementation and a split across two threads
 * (ranges that start inside a group), for D a multiple of the 64-row block, D not (49, 20),
 * K blocks (K = 1300, past the single-block limit of 1280), a batch of 2 GEMMs, and an odd
 * column count.
 */
import { describe, expect, it } from 'vitest';
import { createCpuDevice } from '../../../src/codegen/cpu/device.js';
import { jsPathDevices } from './js_path_devices.js';
import { wasmSimdAvailable } from '../../../src/codegen/cpu/wasm.js';
import type { Idx } from '../../../src/codegen/kernel/index_expr.js';
import type { KernelGraph, MatmulKernel, SExpr } from '../../../src/codegen/kernel/kernel_graph.js';
import { bin, buf, expectClose, ld, lin, mulberry32, randArray, simplePlan, v } from './util.js';

interface Case {
  readonly name: string;
  readonly batch: number;
  readonly groups: number;
  readonly D: number;
  readonly n: number;
  readonly k: number;
}

const CASES: Case[] = [
  { name: 'D = 128 (a multiple of the block)', batch: 1, groups: 3, D: 128, n: 24, k: 40 },
  { name: 'D = 49 (stage 3 of ConvNeXt at 224)', batch: 1, groups: 4, D: 49, n: 37, k: 20 },
  { name: 'D = 20, K blocks (K = 1300: blocks of 256)', batch: 1, groups: 5, D: 20, n: 16, k: 1300 },
  { name: 'D = 70, two GEMM batch entries', batch: 2, groups: 2, D: 70, n: 9, k: 12 },
];

const group = (D: number): Idx => ({ c: 0, terms: [{ coef: 1, atom: { k: 'div', a: v('m'), d: D } }] });

/** x[b, m, k] * s[b, m / D, k] + beta[k] + t[b, m / D] (buffers 0, 2, 3, 4); B (1) is [n][k]. */
function build(c: Case): { g: KernelGraph; M: number } {
  const M = c.groups * c.D;
  const x = ld(0, lin(['b', 'm', 'k'], [c.batch, M, c.k]));
  const s = ld(2, lin(['b', group(c.D), 'k'], [c.batch, c.groups, c.k]));
  const t = ld(4, lin(['b', group(c.D)], [c.batch, c.groups]));
  const a: SExpr = bin('add', bin('add', bin('mul', x, s), ld(3, v('k'))), t);
  const kern: MatmulKernel = {
    kind: 'matmul',
    name: 'grn_groups',
    batch: c.batch,
    m: M,
    n: c.n,
    k: c.k,
    dtype: 'f32',
    a: { kind: 'expr', expr: a },
    b: { kind: 'strided', buf: 1, offset: 0, strides: [0, 1, c.k] },
    outputs: [{ buf: 10, index: lin(['b', 'm', 'n'], [c.batch, M, c.n]), expr: { op: 'acc', id: 0, dtype: 'f32' } }],
  };
  const sizes = [c.batch * M * c.k, c.k * c.n, c.batch * c.groups * c.k, c.k, c.batch * c.groups];
  const g: KernelGraph = {
    buffers: [...sizes.map((n, i) => buf(i, 'f32', n, 'input')), buf(10, 'f32', c.batch * M * c.n, 'output')],
    kernels: [kern],
    inputs: [0, 1, 2, 3, 4],
    outputs: [{ kind: 'buffer', buf: 10, shape: [c.batch * M * c.n], dtype: 'f32' }],
    consts: [],
  };
  return { g, M };
}

describe.runIf(wasmSimdAvailable())('WebAssembly A prologue: streams staged once per block of a group of rows', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const { g, M } = build(c);
      const rng = mulberry32(c.D * 17 + c.k);
      const inputs = g.inputs.map((id) => randArray('f32', [g.buffers.find((b) => b.id === id)!.size], rng, -1, 1));
      const [X, B, S, beta, T] = inputs.map((h) => h.data as Float32Array) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
      const want = new Float64Array(c.batch * M * c.n);
      for (let b = 0; b < c.batch; b++)
        for (let m = 0; m < M; m++) {
          const gi = b * c.groups + Math.floor(m / c.D);
          for (let n = 0; n < c.n; n++) {
            let acc = 0;
            for (let k = 0; k < c.k; k++) acc += (X[(b * M + m) * c.k + k]! * S[gi * c.k + k]! + beta[k]! + T[gi]!) * B[n * c.k + k]!;
            want[(b * M + m) * c.n + n] = acc;
          }
        }
      const tol = 3e-7 * c.k + 2e-6;
      const wasm = createCpuDevice().compile(g, simplePlan(g));
      // per block: the chunk ends at the group's end, and the scale is staged without a per-row loop
      expect(wasm.sources[0]).toMatch(new RegExp(`if \\(_c1 > \\(\\(_c0 / ${c.D} \\| 0\\) \\+ 1\\) \\* ${c.D}\\)`));
      expect(wasm.sources[0]!.includes('_pc += 256')).toBe(c.k > 1280);
      expect(wasm.sources[0]).not.toMatch(/for \(let m = _ic; m < _ic \+ _mc; m\+\+\) \{\s*const i\d+ = \(\(m\)/);
      for (const [dev, what] of jsPathDevices()) {
        const out = dev.compile(g, simplePlan(g)).run(inputs)[0]!;
        expectClose(out.data, want, tol, tol, `${c.name} (${what})`);
      }
    });
  }
});
