import { describe, expect, it } from 'vitest';
import * as ops from '../../src/ir/ops.js';
import { traceTree } from '../../src/ir/functional.js';
import { interpret } from '../../src/ir/interpreter.js';
import { treeFlatten, treeUnflatten } from '../../src/ir/pytree.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { adamw, sgd, type AdamWState } from '../../src/nn/optim.js';
import { parseSafetensors, serializeSafetensors } from '../../src/nn/safetensors.js';
import { emaInit, emaUpdate } from '../../src/nn/ema.js';

// ---------------------------------------------------------------------------------------
// Independent float64 references, written from the torch.optim docs' formulas.

interface RefAdamW {
  lr: number;
  b1: number;
  b2: number;
  eps: number;
  wd: number;
}

/** torch.optim.AdamW on one flat array, for the given gradient sequence. */
function refAdamW(p0: number[], grads: number[][], h: RefAdamW | ((t: number) => RefAdamW)): number[][] {
  const p = [...p0];
  const m = p0.map(() => 0);
  const v = p0.map(() => 0);
  const out: number[][] = [];
  grads.forEach((g, k) => {
    const t = k + 1;
    const { lr, b1, b2, eps, wd } = typeof h === 'function' ? h(t) : h;
    for (let i = 0; i < p.length; i++) {
      p[i] = p[i]! * (1 - lr * wd);
      m[i] = b1 * m[i]! + (1 - b1) * g[i]!;
      v[i] = b2 * v[i]! + (1 - b2) * g[i]! * g[i]!;
      const mhat = m[i]! / (1 - Math.pow(b1, t));
      const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - Math.pow(b2, t)) + eps;
      p[i] = p[i]! - lr * (mhat / denom);
    }
    out.push([...p]);
  });
  return out;
}

/** torch.optim.SGD on one flat array. */
function refSgd(p0: number[], grads: number[][], o: { lr: number; momentum: number; dampening: number; nesterov: boolean; wd: number }): number[][] {
  const p = [...p0];
  let buf: number[] | null = null;
  const out: number[][] = [];
  for (const g of grads) {
    const d = p.map((x, i) => g[i]! + o.wd * x);
    let step = d;
    if (o.momentum !== 0) {
      buf = buf === null ? [...d] : buf.map((b, i) => o.momentum * b + (1 - o.dampening) * d[i]!);
      step = o.nesterov ? d.map((x, i) => x + o.momentum * buf![i]!) : buf;
    }
    for (let i = 0; i < p.length; i++) p[i] = p[i]! - o.lr * step[i]!;
    out.push([...p]);
  }
  return out;
}

function expectClose(actual: ArrayLike<number>, expected: readonly number[], rtol = 1e-12, atol = 1e-14): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      throw new Error(`element ${i}: got ${a}, expected ${e} (|diff| ${Math.abs(a - e)})`);
    }
  }
}

const f64 = (xs: number[], shape?: number[]) => ops.tensor(xs, { dtype: 'f64', shape: shape ?? [xs.length] });

// Parameters: a 2x2 weight and a length-3 bias; three steps of distinct gradients.
const W0 = [0.5, -1.25, 2.0, 0.75];
const B0 = [0.1, -0.2, 0.3];
const GW = [
  [0.3, -0.1, 0.25, -2.0],
  [-0.05, 0.4, 0.1, 1.5],
  [0.2, 0.2, -0.3, 0.01],
];
const GB = [
  [1.0, -0.5, 0.0],
  [0.5, 0.25, -1.0],
  [-0.75, 0.1, 2.0],
];

function makeParams() {
  return { w: f64(W0, [2, 2]), b: f64(B0) };
}
function makeGrads(k: number) {
  return { w: f64(GW[k]!, [2, 2]), b: f64(GB[k]!) };
}

describe('adamw', () => {
  it('first step by hand: p(1 - lr wd) - lr g / (|g| + eps)', () => {
    const opt = adamw({ lr: 0.1, weightDecay: 0.01 });
    const p = { x: f64([1]) };
    const r = opt.update({ x: f64([0.5]) }, opt.init(p), p);
    // 1 * (1 - 0.1 * 0.01) - 0.1 * 0.5 / (0.5 + 1e-8)
    expect(r.params.x.item()).toBeCloseTo(0.899000002, 15);
    expect(r.state.step.item()).toBe(1);
    expect(r.state.step.dtype).toBe('i32');
  });

  it('matches torch.optim.AdamW for three steps (decoupled decay, bias correction)', () => {
    const h = { lr: 0.01, b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.05 };
    const opt = adamw({ lr: h.lr, betas: [h.b1, h.b2], eps: h.eps, weightDecay: h.wd });
    let params = makeParams();
    let state = opt.init(params);
    const refW = refAdamW(W0, GW, h);
    const refB = refAdamW(B0, GB, h);
    for (let k = 0; k < 3; k++) {
      ({ params, state } = opt.update(makeGrads(k), state, params));
      expectClose(params.w.dataSync(), refW[k]!);
      expectClose(params.b.dataSync(), refB[k]!);
    }
    expect(state.step.item()).toBe(3);
  });

  it('applies per-leaf weight decay and lr scale from a group tree', () => {
    const base = { lr: 0.02, b1: 0.9, b2: 0.999, eps: 1e-8 };
    const opt = adamw({ lr: base.lr, weightDecay: 0.3, groups: { w: { wd: 0.1, lrScale: 0.5 }, b: { wd: 0, lrScale: 0.9 ** 3 } } });
    let params = makeParams();
    let state = opt.init(params);
    const refW = refAdamW(W0, GW, { ...base, lr: base.lr * 0.5, wd: 0.1 });
    const refB = refAdamW(B0, GB, { ...base, lr: base.lr * 0.9 ** 3, wd: 0 });
    for (let k = 0; k < 3; k++) ({ params, state } = opt.update(makeGrads(k), state, params));
    expectClose(params.w.dataSync(), refW[2]!);
    expectClose(params.b.dataSync(), refB[2]!);
  });

  it('accepts groups as a function of the dotted name, defaulting to weightDecay', () => {
    const base = { lr: 0.02, b1: 0.9, b2: 0.999, eps: 1e-8 };
    const seen: string[] = [];
    const opt = adamw({
      lr: base.lr,
      weightDecay: 0.2,
      groups: (name) => {
        seen.push(name);
        return name.endsWith('.bias') ? { wd: 0 } : { lrScale: 2 };
      },
    });
    let params = { layer: [{ weight: f64(W0, [2, 2]), bias: f64(B0) }] };
    let state = opt.init(params);
    for (let k = 0; k < 2; k++) ({ params, state } = opt.update({ layer: [{ weight: makeGrads(k).w, bias: makeGrads(k).b }] }, state, params));
    expect(seen.slice(0, 2)).toEqual(['layer.0.weight', 'layer.0.bias']);
    expectClose(params.layer[0]!.weight.dataSync(), refAdamW(W0, GW.slice(0, 2), { ...base, lr: 0.04, wd: 0.2 })[1]!);
    expectClose(params.layer[0]!.bias.dataSync(), refAdamW(B0, GB.slice(0, 2), { ...base, lr: 0.02, wd: 0 })[1]!);
  });

  it('takes a per-step lr (number or Tensor) like a schedule', () => {
    const lrs = [0, 0.005, 0.01];
    const opt = adamw({ lr: 1, weightDecay: 0.05 });
    let params = makeParams();
    let state = opt.init(params);
    for (let k = 0; k < 3; k++) {
      const lr = k === 1 ? ops.scalar(lrs[k]!, 'f32') : lrs[k]!;
      ({ params, state } = opt.update(makeGrads(k), state, params, { lr }));
    }
    // the f32 lr tensor is cast to the parameters' dtype (f64)
    const hOf = (t: number) => ({ lr: t === 2 ? Math.fround(0.005) : lrs[t - 1]!, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.05 });
    expectClose(params.w.dataSync(), refAdamW(W0, GW, hOf)[2]!);
    expectClose(params.b.dataSync(), refAdamW(B0, GB, hOf)[2]!);
  });

  it('traces: a step with a Tensor lr gives the eager result through the interpreter', () => {
    const opt = adamw({ lr: 0.01, betas: [0.9, 0.95], weightDecay: 0.05 });
    const params = makeParams();
    let state = opt.init(params);
    ({ state } = opt.update(makeGrads(0), state, params));
    const step = (p: typeof params, g: typeof params, s: AdamWState, lr: Tensor) => opt.update(g, s, p, { lr });
    const args = [params, makeGrads(1), state, ops.scalar(0.003, 'f64')] as const;
    const traced = traceTree('test', step, args);
    const flatArgs = args.flatMap((a) => treeFlatten(a).leaves);
    const outs = interpret(traced.program, flatArgs);
    const got = treeUnflatten<{ params: typeof params; state: AdamWState }>(traced.outDef, outs);
    const eager = step(...args);
    expectClose(got.params.w.dataSync(), Array.from(eager.params.w.dataSync()), 1e-15);
    expectClose(got.params.b.dataSync(), Array.from(eager.params.b.dataSync()), 1e-15);
    expect(got.state.step.item()).toBe(2);
    // lr is a program input, not a constant: a different value changes the result without retracing
    const outs2 = interpret(traced.program, [...flatArgs.slice(0, -1), ops.scalar(0, 'f64')]);
    const got2 = treeUnflatten<{ params: typeof params }>(traced.outDef, outs2);
    expectClose(got2.params.w.dataSync(), Array.from(params.w.dataSync()));
  });

  it('state round-trips through safetensors and the run continues identically', () => {
    const opt = adamw({ lr: 0.01, weightDecay: 0.05 });
    let params = makeParams();
    let state = opt.init(params);
    for (let k = 0; k < 2; k++) ({ params, state } = opt.update(makeGrads(k), state, params));
    // save: flat dotted names -> safetensors bytes -> back
    const { leaves, def } = treeFlatten(state);
    const record = new Map(leaves.map((t, i) => [`s${i}`, { dtype: t.dtype === 'i32' ? ('I32' as const) : ('F64' as const), shape: [...t.shape], data: t.dataSync() as Float64Array | Int32Array }]));
    const file = parseSafetensors(serializeSafetensors(record));
    const restored = treeUnflatten<AdamWState>(
      def,
      leaves.map((t, i) => {
        const e = file.tensors.get(`s${i}`)!;
        return ops.tensor(e.data, { dtype: t.dtype, shape: e.shape });
      }),
    );
    const a = opt.update(makeGrads(2), state, params);
    const b = opt.update(makeGrads(2), restored, params);
    expect(Array.from(b.params.w.dataSync())).toEqual(Array.from(a.params.w.dataSync()));
    expect(Array.from(b.params.b.dataSync())).toEqual(Array.from(a.params.b.dataSync()));
    expect(b.state.step.item()).toBe(3);
  });

  it('updates f32 parameters in f32 (close to the f64 reference)', () => {
    const h = { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.05 };
    const opt = adamw({ lr: h.lr, weightDecay: h.wd });
    let params = { w: ops.tensor(W0, { dtype: 'f32', shape: [2, 2] }) };
    let state = opt.init(params);
    for (let k = 0; k < 3; k++) ({ params, state } = opt.update({ w: ops.tensor(GW[k]!, { dtype: 'f32', shape: [2, 2] }) }, state, params));
    expect(params.w.dtype).toBe('f32');
    expect((state.m as { w: Tensor }).w.dtype).toBe('f32');
    expectClose(params.w.dataSync(), refAdamW(W0, GW, h)[2]!, 1e-6, 1e-7);
  });

  it('explicit step number sets the bias correction', () => {
    const h = { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0 };
    const opt = adamw({ lr: h.lr, weightDecay: 0 });
    const params = { x: f64([1]) };
    const r = opt.update({ x: f64([0.5]) }, opt.init(params), params, { step: 5 });
    // m = 0.05, v = 0.00025 (from zero state); corrections at t = 5
    const mhat = 0.05 / (1 - 0.9 ** 5);
    const vhat = Math.sqrt(0.001 * 0.25) / Math.sqrt(1 - 0.999 ** 5) + 1e-8;
    expect(r.params.x.item()).toBeCloseTo(1 - 0.01 * (mhat / vhat), 14);
    expect(r.state.step.item()).toBe(5);
  });

  it('names the parameter when grads do not match', () => {
    const opt = adamw({ lr: 0.1 });
    const params = makeParams();
    expect(() => opt.update({ w: f64([1, 2, 3, 4], [4]), b: f64(B0) }, opt.init(params), params)).toThrow(/grads for parameter "w" has shape \[4\], the parameter \[2,2\]/);
    expect(() => opt.update({ w: f64(W0, [2, 2]) } as never, opt.init(params), params)).toThrow(/grads has no key "b"/);
    expect(() => adamw({ lr: 0.1, betas: [1, 0.9] })).toThrow(/beta1/);
    expect(() => adamw({ lr: 0.1, groups: { w: { wd: 0 } } }).update(makeGrads(0), opt.init(params), params)).toThrow(/no entry for parameter "b"/);
  });
});

describe('optimizers match grads to parameters by key', () => {
  it('grads given with their keys in another order update the same parameters', () => {
    const params = { a: f64([1, 2]), b: f64([10, 20]) };
    const ga = f64([0.5, -0.5]);
    const gb = f64([3, -3]);
    for (const opt of [adamw({ lr: 0.1, weightDecay: 0.01 }), sgd({ lr: 0.1, momentum: 0.9 })] as const) {
      const inOrder = opt.update({ a: ga, b: gb }, opt.init(params) as never, params);
      const reordered = opt.update({ b: gb, a: ga }, opt.init(params) as never, params);
      expect(Array.from(reordered.params.a.dataSync())).toEqual(Array.from(inOrder.params.a.dataSync()));
      expect(Array.from(reordered.params.b.dataSync())).toEqual(Array.from(inOrder.params.b.dataSync()));
      // and the first parameter moved against its own gradient: a[0] goes down, a[1] up
      const a = Array.from(reordered.params.a.dataSync());
      expect(a[0]!).toBeLessThan(1);
      expect(a[1]!).toBeGreaterThan(2);
    }
  });

  it('a grads tree with a renamed key is refused, naming it', () => {
    const params = { a: f64([1, 2]), b: f64([10, 20]) };
    const opt = adamw({ lr: 0.1 });
    expect(() => opt.update({ a: f64([1, 1]), c: f64([1, 1]) } as never, opt.init(params), params)).toThrow(/grads has no key "b"/);
  });
});

describe('sgd', () => {
  const cases = [
    { lr: 0.1, momentum: 0, dampening: 0, nesterov: false, wd: 0 },
    { lr: 0.1, momentum: 0.9, dampening: 0, nesterov: false, wd: 0.01 },
    { lr: 0.05, momentum: 0.9, dampening: 0, nesterov: true, wd: 0.001 },
    { lr: 0.05, momentum: 0.8, dampening: 0.25, nesterov: false, wd: 0 },
  ];
  for (const c of cases) {
    it(`matches torch.optim.SGD for 3 steps: ${JSON.stringify(c)}`, () => {
      const opt = sgd({ lr: c.lr, momentum: c.momentum, dampening: c.dampening, nesterov: c.nesterov, weightDecay: c.wd });
      let params = makeParams();
      let state = opt.init(params);
      const refW = refSgd(W0, GW, c);
      const refB = refSgd(B0, GB, c);
      for (let k = 0; k < 3; k++) {
        ({ params, state } = opt.update(makeGrads(k), state, params));
        expectClose(params.w.dataSync(), refW[k]!);
        expectClose(params.b.dataSync(), refB[k]!);
      }
      expect(state.momentum === null).toBe(c.momentum === 0);
    });
  }

  it('by hand: momentum 0.9, two steps', () => {
    const opt = sgd({ lr: 0.1, momentum: 0.9 });
    let params = { x: f64([1]) };
    let state = opt.init(params);
    ({ params, state } = opt.update({ x: f64([2]) }, state, params)); // buf = 2, p = 1 - 0.2
    expect(params.x.item()).toBeCloseTo(0.8, 15);
    ({ params, state } = opt.update({ x: f64([1]) }, state, params)); // buf = 1.8 + 1 = 2.8, p = 0.8 - 0.28
    expect(params.x.item()).toBeCloseTo(0.52, 15);
  });

  it('uses group lr scales and weight decay', () => {
    const c = { lr: 0.1, momentum: 0.9, dampening: 0, nesterov: false };
    const opt = sgd({ lr: c.lr, momentum: c.momentum, weightDecay: 0.5, groups: { w: { lrScale: 0.25 }, b: { wd: 0 } } });
    let params = makeParams();
    let state = opt.init(params);
    for (let k = 0; k < 3; k++) ({ params, state } = opt.update(makeGrads(k), state, params));
    expectClose(params.w.dataSync(), refSgd(W0, GW, { ...c, lr: 0.025, wd: 0.5 })[2]!);
    expectClose(params.b.dataSync(), refSgd(B0, GB, { ...c, wd: 0 })[2]!);
  });

  it('rejects nesterov without momentum', () => {
    expect(() => sgd({ lr: 0.1, nesterov: true })).toThrow(/nesterov/);
  });
});

describe('ema', () => {
  it('ema = decay * ema + (1 - decay) * param, leaf by leaf', () => {
    const p0 = makeParams();
    let ema = emaInit(p0);
    const p1 = { w: f64([1, 2, 3, 4], [2, 2]), b: f64([0, 0, 1]) };
    ema = emaUpdate(ema, p1, 0.9);
    expectClose(ema.w.dataSync(), W0.map((x, i) => 0.9 * x + 0.1 * [1, 2, 3, 4][i]!));
    ema = emaUpdate(ema, p1, ops.scalar(0.5, 'f64'));
    const w1 = W0.map((x, i) => 0.9 * x + 0.1 * [1, 2, 3, 4][i]!);
    expectClose(ema.w.dataSync(), w1.map((x, i) => 0.5 * x + 0.5 * [1, 2, 3, 4][i]!));
    expectClose(ema.b.dataSync(), B0.map((x, i) => 0.5 * (0.9 * x + 0.1 * [0, 0, 1][i]!) + 0.5 * [0, 0, 1][i]!));
    expect(() => emaUpdate(ema, { w: f64([1, 2], [2]), b: f64([0, 0, 1]) }, 0.9)).toThrow(/"w"/);
  });
});
