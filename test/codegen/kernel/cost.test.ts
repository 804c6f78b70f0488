// The kernel cost model (src/codegen/kernel/cost.ts) against counts worked out by hand from the
// programs' shapes: operations per element, each buffer's bytes read and written once.
import { describe, expect, it } from 'vitest';
import * as ng from '../../../src/index.js';
import { graphCost, kernelCost } from '../../../src/codegen/kernel/cost.js';
import { kernelReport, kernelScope } from '../../../src/codegen/kernel/report.js';
import { lower } from '../../../src/passes/pipeline.js';

const graphOf = (f: (...xs: ng.Tensor[]) => ng.Tensor, ...args: ng.Tensor[]) => lower(ng.trace(f, ...args)).graph;

describe('kernel costs', () => {
  it('an elementwise kernel: one op per element per operation; inputs read and the output written once', () => {
    const n = 1000;
    const g = graphOf((a, b) => a.mul(b).add(a), ng.zeros([n]), ng.zeros([n]));
    expect(g.kernels.length).toBe(1);
    // a*b + a: two operations per element; a is loaded twice but read once
    expect(kernelCost(g.kernels[0]!, g)).toEqual({ flops: 2 * n, bytesRead: 2 * 4 * n, bytesWritten: 4 * n });
  });

  it('a matmul with a bias epilogue: 2 m n k plus the epilogue; the bias counted at its own size', () => {
    const [m, k, n] = [64, 32, 48];
    const g = graphOf((x, w, b) => x.matmul(w).add(b), ng.zeros([m, k]), ng.zeros([k, n]), ng.zeros([n]));
    expect(g.kernels.map((x) => x.kind)).toEqual(['matmul']);
    expect(kernelCost(g.kernels[0]!, g)).toEqual({ flops: 2 * m * n * k + m * n, bytesRead: 4 * (m * k + k * n + n), bytesWritten: 4 * m * n });
  });

  it('a row reduction: the rows are read once even when two reductions pass over them', () => {
    const [r, c] = [10, 40];
    const g = graphOf((x) => x.sub(x.mean(1, true)).square().mean(1), ng.zeros([r, c]));
    const total = graphCost(g);
    expect(total.bytesRead).toBe(4 * r * c);
    expect(total.bytesWritten).toBe(4 * r);
    expect(total.flops).toBeGreaterThanOrEqual(3 * r * c); // sum, sub, square (+ the sums)
  });

  it('a depthwise 7x7 convolution: two operations per tap of each output', () => {
    const [h, w, c] = [9, 11, 5];
    const x = ng.zeros([1, h, w, c]);
    const k = ng.zeros([c, 1, 7, 7]);
    const g = graphOf((a, b) => ng.conv2d(a, b, { padding: 'SAME', groups: c, layout: 'NHWC' }), x, k);
    const conv = g.kernels.find((q) => q.kind === 'conv')!;
    expect(conv).toBeDefined();
    expect(kernelCost(conv, g).flops).toBe(2 * h * w * c * 49);
  });

  it('the report groups kernels by named scope, forward and backward', () => {
    const f = (w: ng.Tensor, x: ng.Tensor) =>
      ng.namedScope('layer', () => ng.nn.gelu(x.matmul(w))).sum();
    const g = lower(ng.trace(ng.valueAndGrad(f), ng.ones([4, 3]), ng.ones([2, 4]))).graph;
    const scopes = g.kernels.map((k) => kernelScope(k.name));
    expect(scopes).toContain('layer');
    expect(scopes).toContain('layer.bwd');
    const report = kernelReport(g);
    const line = report.scopes.split('\n').find((l) => l.startsWith('layer '))!;
    const [fwd, bwd] = line.trim().split(/\s+/).slice(1, 3).map(Number);
    expect(fwd).toBe(scopes.filter((s) => s === 'layer').length);
    expect(bwd).toBe(scopes.filter((s) => s === 'layer.bwd').length);
    expect(report.total).toEqual(graphCost(g));
  });
});
