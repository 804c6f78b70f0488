/**
 * Mixed precision (jit option precision: 'bf16', src/passes/mixed_precision.ts): the casts it
 * puts in a ConvNeXt V2 training step (read off the printed program), a matmul against a
 * hand-computed bf16 reference, and a whole training step on the CPU against the f32 one
 * within bf16's tolerance.
 */
import { describe, expect, it } from 'vitest';
import * as ng from '../../src/index.js';
import { config } from '../../src/convnextv2/config.js';
import { paramSpec } from '../../src/convnextv2/model.js';
import { roundBf16 } from '../../src/ir/dtype.js';
import { type Eqn, Program, Var } from '../../src/ir/program.js';
import { specEntries, unflattenParams } from '../../src/nn/init.js';
import { checkProgram } from '../../src/passes/check.js';
import { MIN_STORED_ELEMENTS, mixedPrecision } from '../../src/passes/mixed_precision.js';
import { relErr } from '../helpers/refs.js';

const cfg = config('custom', { depths: [1, 1, 2, 1], dims: [8, 16, 32, 64], numClasses: 10 });

function trainStep() {
  const params = unflattenParams(specEntries(paramSpec(cfg)).map(([n, s]) => [n, ng.random.normal(ng.random.key(n.length), s.shape).mul(0.1)] as const));
  const opt = ng.nn.adamw({ lr: 1e-3, weightDecay: 0.05 });
  const lossFn = (q: any, xs: ng.Tensor, ys: ng.Tensor) => ng.nn.crossEntropy(ng.convnextv2.apply(q, xs, { cfg }), ys);
  const step = (p: any, s: any, xs: ng.Tensor, ys: ng.Tensor) => {
    const [l, g] = ng.valueAndGrad(lossFn)(p, xs, ys);
    const u = opt.update(g, s, p);
    return { loss: l, params: u.params, state: u.state };
  };
  const grads = (p: any, xs: ng.Tensor, ys: ng.Tensor) => {
    const [l, g] = ng.valueAndGrad(lossFn)(p, xs, ys);
    return { loss: l, grads: g };
  };
  const x = ng.random.normal(ng.random.key(7), [4, 3, 32, 32]);
  const y = ng.tensor([1, 2, 3, 4], { dtype: 'i32' });
  return { step, grads, params, state: opt.init(params), x, y };
}

/** Every equation of a program and of the bodies inside it. */
function allEqns(p: Program, out: Eqn[] = []): Eqn[] {
  for (const e of p.eqns) {
    out.push(e);
    for (const v of Object.values(e.params as Record<string, unknown>)) if (v instanceof Program) allEqns(v, out);
  }
  return out;
}

describe('the bf16 policy on a ConvNeXt V2 training step (printed program)', () => {
  const { step, params, state, x, y } = trainStep();
  const f32 = ng.trace(step, params, state, x, y);
  const mixed = mixedPrecision(f32, 'bf16');
  const producer = new Map<Var, Eqn>();
  for (const e of allEqns(mixed)) e.outputs.forEach((o) => producer.set(o, e));
  const text = mixed.toString();

  it('is a valid program with the same inputs and outputs, f32 throughout them', () => {
    checkProgram(mixed, 'mixed precision');
    expect(mixed.inputs).toBe(f32.inputs);
    expect(mixed.outputs.map((a) => `${a.aval.dtype}[${a.aval.shape}]`)).toEqual(f32.outputs.map((a) => `${a.aval.dtype}[${a.aval.shape}]`));
    expect(mixed.outputs.every((a) => a.aval.dtype === 'f32' || a.aval.dtype === 'i32')).toBe(true);
    expect(f32.toString()).not.toContain('bf16');
  });

  it('every matmul and convolution reads bf16 casts and writes bf16, widened to f32 for its readers', () => {
    const contractions = allEqns(mixed).filter((e) => e.prim === 'dot_general' || e.prim === 'conv_general');
    expect(contractions.length).toBe(allEqns(f32).filter((e) => e.prim === 'dot_general' || e.prim === 'conv_general').length);
    for (const e of contractions) {
      expect(e.outputs[0]!.aval.dtype).toBe('bf16');
      for (const a of e.inputs) {
        expect(a.aval.dtype).toBe('bf16');
        const p = producer.get(a as Var);
        expect(p?.prim).toBe('cast');
      }
    }
    // the printed form: operands cast to bf16 right before, the product widened right after
    expect(text).toMatch(/(\w+):bf16\[[\d,]+\] = cast\[dtype=bf16\] \w+\n\s+(\w+):bf16\[[\d,]+\] = conv_general\[.*\] \w+ \w+\n\s+\w+:f32\[[\d,]+\] = cast\[dtype=f32\] \2/);
  });

  it('reductions, normalisation statistics and the optimizer compute in f32', () => {
    for (const e of allEqns(mixed)) {
      if (e.prim.startsWith('reduce_') || e.prim === 'argmax') expect(e.inputs[0]!.aval.dtype, `${e.prim} input`).toBe('f32');
      if (e.prim === 'region') {
        const body = (e.params as { body: Program }).body;
        expect(body.toString(), `region ${(e.params as { name: string }).name}`).not.toContain('bf16');
      }
    }
    // the AdamW update: every program output is computed by an f32 equation from f32 operands
    for (const a of mixed.outputs) {
      const p = producer.get(a as Var);
      if (p) expect(p.inputs.every((i) => i.aval.dtype !== 'bf16'), `output producer ${p.prim}`).toBe(true);
    }
  });

  it('activations read several times are stored as bf16 copies (large ones only)', () => {
    const contractionInputs = new Set(allEqns(mixed).filter((e) => e.prim === 'dot_general' || e.prim === 'conv_general').flatMap((e) => e.inputs));
    const readsOf = new Map<Var, number>();
    for (const e of mixed.eqns) for (const a of e.inputs) if (a instanceof Var) readsOf.set(a, (readsOf.get(a) ?? 0) + 1);
    // a bf16 copy some non-contraction reads (through a widening cast)
    const stored = mixed.eqns.filter((e) => e.prim === 'cast' && e.outputs[0]!.aval.dtype === 'bf16' && !contractionInputs.has(e.outputs[0]!));
    expect(stored.length).toBeGreaterThan(0);
    for (const e of stored) {
      expect(e.outputs[0]!.aval.shape.reduce((a, b) => a * b, 1)).toBeGreaterThanOrEqual(MIN_STORED_ELEMENTS);
      const widened = mixed.eqns.filter((w) => w.prim === 'cast' && w.inputs[0] === e.outputs[0] && w.outputs[0]!.aval.dtype === 'f32');
      expect(widened.length).toBe(1);
      expect(readsOf.get(widened[0]!.outputs[0]!) ?? 0).toBeGreaterThanOrEqual(1);
    }
  });

  it("'f32' is the identity and an unknown precision is refused", () => {
    expect(mixedPrecision(f32, 'f32')).toBe(f32);
    expect(() => mixedPrecision(f32, 'f16' as never)).toThrow(/mixed precision: unknown precision "f16"; expected one of f32, bf16/);
    expect(() => ng.jit((a: ng.Tensor) => a, { precision: 'fp16' as never })).toThrow(/jit: option precision must be one of 'f32', 'bf16', got "fp16"/);
  });
});

describe('jit precision: bf16 on the CPU', () => {
  it('a matmul rounds its operands and its product to bf16 and sums in f32 (hand-computed reference)', async () => {
    const m = 5;
    const k = 33;
    const n = 7;
    const a = ng.random.normal(ng.random.key(1), [m, k]);
    const b = ng.random.normal(ng.random.key(2), [k, n]);
    const f = ng.jit((p: ng.Tensor, q: ng.Tensor) => ng.sum(ng.matmul(p, q)), { precision: 'bf16', cacheDir: false });
    const got = (await f(a, b).data())[0]!;
    const ad = a.dataSync();
    const bd = b.dataSync();
    let want = 0;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let t = 0; t < k; t++) acc += roundBf16(ad[i * k + t]!) * roundBf16(bd[t * n + j]!);
        want += roundBf16(acc);
      }
    }
    expect(Math.abs(got - want)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want)));
    // and it is not the f32 result
    const exact = (await ng.jit((p: ng.Tensor, q: ng.Tensor) => ng.sum(ng.matmul(p, q)), { cacheDir: false })(a, b).data())[0]!;
    expect(Math.abs(exact - got)).toBeGreaterThan(1e-5);
  });

  it('values flowing into outputs through elementwise operations are not rounded for storage', async () => {
    // g (4096 elements, derived from a matmul, read twice) flows into both outputs: it stays f32,
    // so the outputs are the bf16 product times 3 computed in f32, plus 1 / times 5
    const x = ng.random.normal(ng.random.key(3), [64, 16]);
    const w = ng.random.normal(ng.random.key(4), [16, 64]);
    const f = ng.jit(
      (xx: ng.Tensor, ww: ng.Tensor) => {
        const g = ng.matmul(xx, ww).mul(3);
        return [g.add(1), g.mul(5)];
      },
      { precision: 'bf16', cacheDir: false },
    );
    const [p, q] = f(x, w) as ng.Tensor[];
    const pd = await p!.data();
    const qd = await q!.data();
    const xd = x.dataSync();
    const wd = w.dataSync();
    let worst = 0;
    for (let i = 0; i < 64; i++) {
      for (let j = 0; j < 64; j++) {
        let acc = 0;
        for (let t = 0; t < 16; t++) acc += roundBf16(xd[i * 16 + t]!) * roundBf16(wd[t * 64 + j]!);
        const g = Math.fround(roundBf16(acc) * 3);
        worst = Math.max(worst, Math.abs(pd[i * 64 + j]! - Math.fround(g + 1)), Math.abs(qd[i * 64 + j]! - Math.fround(g * 5)));
      }
    }
    expect(worst).toBe(0);
  });

  it('a ConvNeXt V2 step: loss and every gradient within bf16 tolerance of the f32 step, outputs f32', async () => {
    const { grads, params, x, y } = trainStep();
    const full = ng.jit(grads, { cacheDir: false });
    const half = ng.jit(grads, { cacheDir: false, precision: 'bf16' });
    const a = full(params, x, y);
    const b = half(params, x, y);
    const la = ng.treeLeaves(a);
    const lb = ng.treeLeaves(b);
    expect(lb.map((t) => t.dtype)).toEqual(la.map((t) => t.dtype));
    let worst = 0;
    let total = 0;
    la.forEach((t, i) => {
      const e = relErr(ng.cast(lb[i]!, 'f64'), ng.cast(t, 'f64'));
      worst = Math.max(worst, e);
      total += e;
    });
    console.log(`bf16 vs f32 training step: ${la.length} tensors, worst relative error ${worst.toExponential(2)}, mean ${(total / la.length).toExponential(2)}`);
    // bf16 keeps 8 bits: about 4e-3 per rounding, a few roundings deep
    expect(worst).toBeLessThan(0.1);
    expect(total / la.length).toBeLessThan(0.03);
    // the policy is active: the step is not the f32 one
    expect(total / la.length).toBeGreaterThan(1e-4);
  });
});
