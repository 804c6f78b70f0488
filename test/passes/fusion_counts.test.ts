/**
 * Kernel counts: what fusion makes of LayerNorm, matmul/conv epilogues, and one ConvNeXt V2
 * block forward and forward+backward (dim 16, 8x8, batch 2, NHWC as src/convnextv2/model.ts
 * builds it). The counts are exact: a change in fusion that adds or removes kernels shows up
 * here and the numbers are updated on purpose. Each compiled graph is also run and compared
 * with the float64 interpreter.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../../src/autodiff/index.js';
import { block, type BlockParams, blockSpec } from '../../src/convnextv2/model.js';
import { isExprOperand, type Kernel, type MatmulKernel, printKernelGraph, printSExpr } from '../../src/codegen/kernel/kernel_graph.js';
import { traceTree } from '../../src/ir/functional.js';
import { interpret } from '../../src/ir/interpreter.js';
import * as ops from '../../src/ir/ops.js';
import { treeFlatten } from '../../src/ir/pytree.js';
import * as random from '../../src/ir/random.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { initFromSpec } from '../../src/nn/init.js';
import { conv2d, gelu, layerNorm, linear } from '../../src/nn/layers.js';
import { jit } from '../../src/passes/jit.js';
import { relErr } from '../helpers/refs.js';

const opts = { backend: 'cpu', cacheDir: false } as const;

/** Kernels by kind, e.g. {loop: 4, matmul: 2, conv: 1}. */
function kinds(ks: readonly Kernel[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ks) out[k.kind] = (out[k.kind] ?? 0) + 1;
  return out;
}

/** A loop kernel that only copies (every output a bare load, no reductions): a layout change. */
function isCopy(k: Kernel): boolean {
  if (k.kind !== 'loop' || k.reductions.length > 0) return false;
  return [...k.outerOutputs, ...k.rowOutputs].every((o) => o.expr.op === 'load');
}

/** Runs the jitted function and compares every output leaf with the f64 interpreter. */
function checkAgainstInterpreter(fn: (...a: any[]) => unknown, args: readonly unknown[], tol: number): void {
  const f = jit(fn as (...a: unknown[]) => unknown, opts);
  const got = treeFlatten(f(...(args as unknown[]))).leaves;
  const { program } = traceTree('test', fn, args);
  const inputs = args.flatMap((a) => treeFlatten(a).leaves);
  const want = interpret(program, inputs, { dtype: 'f64' });
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => expect(relErr(ops.cast(g, 'f64'), want[i]!), `output ${i}`).toBeLessThan(tol));
}

describe('LayerNorm', () => {
  it('compiles to one kernel (last axis of 2-D and 4-D inputs, and channels_first over axis 1)', () => {
    const ln = (cf: boolean) => (x: Tensor, w: Tensor, b: Tensor) => layerNorm({ weight: w, bias: b }, x, { dataFormat: cf ? 'channels_first' : 'channels_last' });
    const cases: [boolean, number[], number][] = [
      [false, [4, 8], 8],
      [false, [2, 5, 5, 16], 16],
      [true, [2, 8, 5, 5], 8],
    ];
    for (const [cf, shape, c] of cases) {
      const x = random.normal(random.key(shape.length), shape);
      const w = random.normal(random.key(1), [c]);
      const b = random.normal(random.key(2), [c]);
      const { graph } = jit(ln(cf), opts).lower(x, w, b);
      expect(graph.kernels.length, `${shape}`).toBe(1);
      const k = graph.kernels[0]!;
      expect(k.kind).toBe('loop');
      if (k.kind === 'loop') {
        expect(k.reductions.map((r) => r.op)).toEqual(['sum', 'sum']);
        expect(k.rowOutputs.length).toBe(1);
      }
      checkAgainstInterpreter(ln(cf), [x, w, b], 1e-5);
    }
  });
});

describe('reduction epilogues', () => {
  it('mean, exp of a row sum and a global average pool are one kernel each (the epilogue reads acc)', () => {
    const cases: [string, (x: Tensor) => Tensor, number[], string][] = [
      ['mean', (x) => ops.mean(x, -1), [3, 4], 't0 = div(acc0, 4:f32); t0'],
      ['exp(sum)', (x) => ops.exp(ops.sum(x, -1)), [3, 4], 't0 = exp(acc0); t0'],
      ['global average pool', (x) => ops.mean(x, [1, 2]), [2, 4, 4, 8], 't0 = div(acc0, 16:f32); t0'],
    ];
    for (const [name, fn, shape, expr] of cases) {
      const x = random.normal(random.key(0), shape);
      const { graph } = jit(fn, opts).lower(x);
      expect(graph.kernels.length, name).toBe(1);
      const k = graph.kernels[0]!;
      if (k.kind === 'loop') expect(printSExpr(k.outerOutputs[0]!.expr), name).toBe(expr);
      checkAgainstInterpreter(fn, [x], 1e-5);
    }
  });
});

describe('a row kernel that needs a reduction over other axes (GRN-like)', () => {
  it('builds that reduction as its own kernel first: 2 kernels (used to throw "fusion: internal: buffer numbering")', () => {
    const fn = (x: Tensor) => ops.mul(ops.mul(x, ops.sum(x, [1], true)), ops.sum(ops.exp(x), [2], true));
    const x = random.normal(random.key(0), [2, 3, 4]);
    const { graph } = jit(fn, opts).lower(x);
    expect(printKernelGraph(graph)).toBe(
      [
        'buffers: buf0:f32[24] input, buf1:f32[8] temp, buf2:f32[24] output',
        'loop k0_reduce_sum outer=[2,4] row=[3]',
        '  acc0 = sum over row: buf0[o1 + 4 * r0 + 12 * o0]',
        '  buf1[o1 + 4 * o0] = acc0',
        'loop k1_mul outer=[2,3] row=[4]',
        '  acc0 = sum over row: t0 = exp(buf0[r0 + 4 * o1 + 12 * o0]); t0',
        '  row: buf2[r0 + 4 * o1 + 12 * o0] = t0 = mul(buf0[r0 + 4 * o1 + 12 * o0], buf1[r0 + 4 * o0]); t1 = mul(t0, acc0); t1',
      ].join('\n'),
    );
    checkAgainstInterpreter(fn, [x], 1e-5);
  });
});

describe('matmul and convolution epilogues', () => {
  it('bias, GELU, scaling, tanh and a residual add after a matmul land in its epilogue: 1 kernel', () => {
    const fn = (x: Tensor, w: Tensor, b: Tensor, r: Tensor) => ops.add(ops.tanh(ops.mul(gelu(linear({ weight: w, bias: b }, x)), 0.5)), r);
    const args = [random.normal(random.key(0), [6, 8]), random.normal(random.key(1), [16, 8]), random.normal(random.key(2), [16]), random.normal(random.key(3), [6, 16])] as const;
    const { graph } = jit(fn, opts).lower(...args);
    expect(graph.kernels.length).toBe(1);
    const k = graph.kernels[0]!;
    expect(k.kind).toBe('matmul');
    if (k.kind !== 'matmul') return;
    expect(k.outputs.length).toBe(1);
    const expr = printSExpr(k.outputs[0]!.expr);
    for (const op of ['acc0', 'erf(', 'tanh(', 'mul(', 'add(']) expect(expr).toContain(op);
    // the bias (buf2) and the residual (buf3) are read inside the epilogue
    expect(expr).toContain('buf2[n]');
    expect(expr).toContain('buf3[n + 16 * m]');
    checkAgainstInterpreter(fn, args, 1e-5);
  });

  it('a batched matmul with a relu and a broadcast scale: 1 kernel', () => {
    const fn = (a: Tensor, b: Tensor, s: Tensor) => ops.mul(ops.relu(ops.matmul(a, b)), s);
    const args = [random.normal(random.key(0), [3, 5, 7]), random.normal(random.key(1), [3, 7, 4]), random.normal(random.key(2), [4])] as const;
    const { graph } = jit(fn, opts).lower(...args);
    expect(kinds(graph.kernels)).toEqual({ matmul: 1 });
    const k = graph.kernels[0]!;
    if (k.kind === 'matmul') expect(printSExpr(k.outputs[0]!.expr)).toMatch(/max\(acc0, 0:f32\).*mul\(/);
    checkAgainstInterpreter(fn, args, 1e-5);
  });

  it('a matmul whose exp is both an output and reduced: the exp is its epilogue, the row sum reads the result', () => {
    const fn = (a: Tensor, b: Tensor) => {
      const y = ops.exp(ops.matmul(a, b));
      return [y, ops.sum(y, -1)];
    };
    const args = [random.normal(random.key(0), [5, 7], { std: 0.3 }), random.normal(random.key(1), [7, 4], { std: 0.3 })] as const;
    const { graph } = jit(fn, opts).lower(...args);
    // the matmul stores y = exp(acc) (the output), then one loop kernel sums its rows
    expect(kinds(graph.kernels)).toEqual({ matmul: 1, loop: 1 });
    const k = graph.kernels[0]!;
    if (k.kind === 'matmul') expect(printSExpr(k.outputs[0]!.expr)).toBe('t0 = exp(acc0); t0');
    checkAgainstInterpreter(fn, args, 1e-5);
  });

  it('an NHWC conv with bias and GELU: 1 conv kernel with the epilogue', () => {
    const fn = (x: Tensor, w: Tensor, b: Tensor) => gelu(conv2d({ weight: w, bias: b }, x, { layout: 'NHWC', padding: 1 }));
    const args = [random.normal(random.key(0), [2, 6, 6, 4]), random.normal(random.key(1), [8, 4, 3, 3]), random.normal(random.key(2), [8])] as const;
    const { graph } = jit(fn, opts).lower(...args);
    expect(kinds(graph.kernels)).toEqual({ conv: 1 });
    const k = graph.kernels[0]!;
    if (k.kind === 'conv') expect(printSExpr(k.outputs[0]!.expr)).toContain('erf(');
    checkAgainstInterpreter(fn, args, 1e-5);
  });
});

describe('one ConvNeXt V2 block (dim 16, 8x8, batch 2, NHWC)', () => {
  const p = initFromSpec<BlockParams>(random.key(0), blockSpec(16), 'f32');
  // perturb LayerNorm and GRN parameters away from 1/0 so every path is live
  const params: BlockParams = {
    ...p,
    norm: { weight: random.normal(random.key(5), [16], { mean: 1, std: 0.2 }), bias: random.normal(random.key(6), [16], { std: 0.2 }) },
    grn: { gamma: random.normal(random.key(7), [1, 1, 1, 64], { std: 0.2 }), beta: random.normal(random.key(8), [1, 1, 1, 64], { std: 0.2 }) },
  };
  const x = random.normal(random.key(1), [2, 8, 8, 16]);
  const ct = random.normal(random.key(2), [2, 8, 8, 16]);

  it('forward: 4 kernels (dwconv, pwconv1, GRN channel mean, pwconv2), no copies', () => {
    const fwd = (pp: BlockParams, xx: Tensor) => block(pp, xx);
    const { graph } = jit(fwd, opts).lower(params, x);
    const listing = printKernelGraph(graph);
    expect(graph.kernels.length, listing).toBe(4);
    expect(kinds(graph.kernels)).toEqual({ conv: 1, loop: 1, matmul: 2 });
    // LayerNorm's statistics (row statistics) and normalisation are pwconv1's prologue, bias +
    // GELU its epilogue, which also accumulates GRN's sum of squares (a reducing epilogue; the
    // CPU has both capabilities, test/passes/fusion/reducing_epilogues.test.ts); GRN's channel
    // mean is one reduction, its scale and shift pwconv2's prologue
    expect(graph.kernels.map((k) => k.name)).toEqual(['k0_conv', 'k1_gelu', 'k2_grn', 'k3_matmul']);
    const mm = graph.kernels.filter((k) => k.kind === 'matmul');
    expect(mm.every((k) => k.kind === 'matmul' && isExprOperand(k.a)), listing).toBe(true);
    expect(graph.kernels.filter(isCopy).length).toBe(0);
    // the residual add and pwconv2's bias are in the last matmul's epilogue
    const last = graph.kernels[3]!;
    if (last.kind === 'matmul') expect(printSExpr(last.outputs[0]!.expr)).toMatch(/add\(acc0, buf\d+\[n\]\).*add\(buf\d+\[n \+ 16 \* m\]/);
    checkAgainstInterpreter(fwd, [params, x], 1e-5);
  });

  it('forward + backward (gradients of <block(p, x), ct> for every parameter and the input): 22 kernels', () => {
    const g = grad((pp: BlockParams, xx: Tensor, c: Tensor) => ops.sum(ops.mul(block(pp, xx), c)), { argnums: [0, 1] });
    const { graph } = jit(g, opts).lower(params, x, ct);
    const listing = printKernelGraph(graph);
    expect(graph.kernels.length, listing).toBe(22);
    // forward: the dwconv and pwconv1 (pwconv2's forward product is dead); backward: 4 matmuls
    // (2 per linear; transpose(dot) is rewritten as the swapped dot, so weight gradients come
    // out as (out, in) directly) and 2 convs (the depthwise input gradient and weight gradient)
    expect(kinds(graph.kernels)).toEqual({ conv: 3, loop: 14, matmul: 5 });
    // pwconv1 stores its product (for the GELU backward), the GELU output and its erf term (extra
    // outputs: no GELU kernel); dY = dOut W2^T accumulates GRN backward's per-image sum of
    // dY * gamma * x (a reducing epilogue reading the stored GELU output: no kernel of its own)
    const mms = graph.kernels.filter((k): k is MatmulKernel => k.kind === 'matmul');
    expect(mms.map((k) => k.outputs.length), listing).toEqual([3, 2, 1, 1, 1]);
    expect(mms.map((k) => k.outputs.filter((o) => o.init === 'zero').length)).toEqual([0, 1, 0, 0, 0]);
    // Loop kernels over one index space share a pass: LayerNorm's mean and variance, x-hat and
    // the output, the parameter gradients of a LayerNorm and of the biases.
    expect(graph.kernels.filter((k) => k.name.includes('+')).length, listing).toBeGreaterThanOrEqual(4);
    // Two kernels only move data: the reversed depthwise kernel for the input-gradient conv, and
    // for the weight-gradient conv the input transposed to (C, H, W, N) (conv operands must be
    // contiguous); the weight gradient's transpose back to OIHW is its epilogue's store index.
    expect(graph.kernels.filter(isCopy).map((k) => k.name), listing).toEqual(['k26_reshape', 'k27_transpose']);
    checkAgainstInterpreter(g, [params, x, ct], 1e-4);
  });
});

describe('patchify convolutions (kernel == stride) become matmuls', () => {
  it('a 4x4/4 stem conv with bias on NCHW input is one matmul reading the image in place', () => {
    const x = random.normal(random.key(11), [2, 3, 16, 16]);
    const w = random.normal(random.key(12), [8, 3, 4, 4]);
    const b = random.normal(random.key(13), [8]);
    const stem = (xx: Tensor, ww: Tensor, bb: Tensor) => conv2d({ weight: ww, bias: bb }, xx, { stride: 4 });
    const { graph } = jit(stem, opts).lower(x, w, b);
    const listing = printKernelGraph(graph);
    // the matmul reads the NCHW image through its patch index, the bias is its epilogue, and
    // the NCHW result is written through the epilogue's store index: one kernel
    expect(kinds(graph.kernels), listing).toEqual({ matmul: 1 });
    checkAgainstInterpreter(stem, [x, w, b], 1e-5);
  });

  it('LayerNorm before a 2x2/2 downsampler is the matmul prologue; a cropped input works', () => {
    const down = (xx: Tensor, g: Tensor, bt: Tensor, ww: Tensor, bb: Tensor) =>
      conv2d({ weight: ww, bias: bb }, layerNorm({ weight: g, bias: bt }, xx, { dataFormat: 'channels_first' }), { stride: 2 });
    for (const hw of [8, 9]) {
      const args = [random.normal(random.key(hw), [2, 4, hw, hw]), random.normal(random.key(21), [4]), random.normal(random.key(22), [4]), random.normal(random.key(23), [8, 4, 2, 2]), random.normal(random.key(24), [8])];
      const { graph } = jit(down, opts).lower(...(args as [Tensor, Tensor, Tensor, Tensor, Tensor]));
      const listing = printKernelGraph(graph);
      expect(kinds(graph.kernels), listing).toEqual({ loop: 1, matmul: 1 }); // LN statistics, then the GEMM
      const mm = graph.kernels.find((k) => k.kind === 'matmul');
      expect(mm?.kind === 'matmul' && isExprOperand(mm.a), listing).toBe(true);
      checkAgainstInterpreter(down, args, 1e-5);
    }
  });

  it('a padded 3x3 convolution stays a convolution', () => {
    const x = random.normal(random.key(31), [1, 4, 6, 6]);
    const w = random.normal(random.key(32), [4, 4, 3, 3]);
    const f = (xx: Tensor, ww: Tensor) => ops.conv2d(xx, ww, { padding: 1 });
    expect(kinds(jit(f, opts).lower(x, w).graph.kernels).conv).toBe(1);
    checkAgainstInterpreter(f, [x, w], 1e-5);
  });
});
