// ng.namedScope: equations traced inside carry the scope; kernels are named after it (forward,
// and '.bwd' for the backward autodiff emits for them); values and programs are unchanged.
import { describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';
import { kernelScope } from '../../src/codegen/kernel/report.js';
import { lower } from '../../src/passes/pipeline.js';

const scopesOf = (p: ng.Program): string[] => lower(p).graph.kernels.map((k) => kernelScope(k.name));

describe('namedScope', () => {
  it('names kernels after nested scopes, and the backward after the forward with .bwd', () => {
    const f = (w: ng.Tensor, x: ng.Tensor) =>
      ng.namedScope('net', () => {
        const h = ng.namedScope('l1', () => x.matmul(w).tanh());
        return ng.namedScope('l2', () => h.mul(h).sum());
      });
    const w = ng.random.normal(ng.random.key(1), [3, 3]);
    const x = ng.random.normal(ng.random.key(2), [5, 3]);
    const fwd = scopesOf(ng.trace(f, w, x));
    expect(fwd).toContain('net.l1');
    expect(fwd).toContain('net.l2');
    const both = scopesOf(ng.trace(ng.valueAndGrad(f), w, x));
    expect(both.some((s) => s === 'net.l1.bwd' || s === 'net.l2.bwd')).toBe(true);
    // the scope changes names only: the same program and value as without it
    const plain = (w2: ng.Tensor, x2: ng.Tensor) => x2.matmul(w2).tanh().square().sum();
    expect(ng.trace(f, w, x).toString()).toBe(ng.trace(plain, w, x).toString());
    expect(f(w, x).item()).toBeCloseTo(plain(w, x).item(), 5);
  });

  it('refuses names that are not dot-separated letters, digits, _ and -', () => {
    for (const bad of ['', 'a b', 'a..b', '.a', 'x/y', 'a'.repeat(97)]) {
      expect(() => ng.namedScope(bad, () => 0)).toThrow(/namedScope: a scope name is letters, digits/);
    }
    expect(() => ng.namedScope('ok', 5 as never)).toThrow(/second argument must be a function/);
    expect(ng.namedScope('stages.1.0', () => 7)).toBe(7);
  });

  it('ConvNeXt V2 kernels are named after the parameters of their block', () => {
    const cfg = ng.convnextv2.config({ depths: [1, 1], dims: [8, 16], numClasses: 3, stemStride: 2 });
    const params = ng.convnextv2.init(ng.random.key(0), cfg);
    const x = ng.zeros([1, 3, 8, 8]);
    const scopes = new Set(scopesOf(ng.trace((p: typeof params, im: ng.Tensor) => ng.convnextv2.apply(p, im, { cfg }), params, x)));
    for (const s of ['downsample_layers.0', 'stages.0.0', 'downsample_layers.1', 'stages.1.0', 'head']) expect(scopes).toContain(s);
  });
});
