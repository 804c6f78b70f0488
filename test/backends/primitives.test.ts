// Every differentiable primitive family compiled with jit on every available backend, in f32,
// against the float64 interpreter: the value, and the VJP (pullback of a random cotangent,
// itself compiled). Shapes and data are random (fast-check seeds); tolerances are f32's.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import * as ng from '../../src/index.js';
import { describeEachBackend, tolerance } from '../helpers/backends.js';
import { randAway, randDistinct, randn, randu, Rng, seedArb } from '../helpers/gradcheck.js';

type Fn = (...xs: ng.Tensor[]) => ng.Tensor;
interface Case {
  readonly name: string;
  /** The function and its f64 inputs for a seed. */
  readonly make: (rng: Rng) => { fn: Fn; args: ng.Tensor[] };
  /** Differentiable (checked through the VJP too). */
  readonly grad?: boolean;
}

const unary = (name: string, f: (x: ng.Tensor) => ng.Tensor, data: (rng: Rng, s: number[]) => ng.Tensor): Case => ({
  name,
  grad: true,
  make: (rng) => {
    const s = Array.from({ length: rng.int(0, 3) }, () => rng.int(1, 5));
    return { fn: f, args: [data(rng, s)] };
  },
});
const binary = (name: string, f: (a: ng.Tensor, b: ng.Tensor) => ng.Tensor, data: (rng: Rng, s: number[]) => ng.Tensor, grad = true): Case => ({
  name,
  grad,
  make: (rng) => {
    const s = Array.from({ length: rng.int(1, 3) }, () => rng.int(1, 5));
    return { fn: f, args: [data(rng, s), data(rng, s)] };
  },
});
const normal = (rng: Rng, s: number[]) => randn(rng, s);
const positive = (rng: Rng, s: number[]) => randu(rng, s, 0.3, 2.5);
const away = (rng: Rng, s: number[]) => randAway(rng, s, 0.4, 2);
const distinct = (rng: Rng, s: number[]) => randDistinct(rng, s);

const CASES: Case[] = [
  ...(['neg', 'exp', 'sin', 'cos', 'tanh', 'sigmoid', 'erf', 'abs'] as const).map((op) => unary(op, (x) => (x as any)[op](), op === 'abs' ? away : normal)),
  ...(['log', 'sqrt', 'rsqrt', 'log1p'] as const).map((op) => unary(op, (x) => (x as any)[op](), positive)),
  unary('expm1', (x) => x.expm1(), (rng, s) => randu(rng, s, -2, 2)),
  ...(['floor', 'ceil', 'round', 'sign'] as const).map((op) => ({ ...unary(op, (x) => (x as any)[op](), (rng: Rng, s: number[]) => randu(rng, s, -4, 4)), grad: false })),
  binary('add', (a, b) => a.add(b), normal),
  binary('sub', (a, b) => a.sub(b), normal),
  binary('mul', (a, b) => a.mul(b), normal),
  binary('div', (a, b) => a.div(b), away),
  binary('maximum', (a, b) => a.maximum(b), distinct),
  binary('minimum', (a, b) => a.minimum(b), distinct),
  binary('pow', (a, b) => a.pow(b), positive),
  binary('where(lt)', (a, b) => ng.where(a.lt(b), a.mul(2), b), distinct),
  {
    name: 'reductions sum/max/min over random axes',
    grad: true,
    make: (rng) => {
      const s = Array.from({ length: rng.int(1, 4) }, () => rng.int(1, 4));
      const axes = rng.subset(s.length);
      const op = rng.pick(['sum', 'max', 'min'] as const);
      return { fn: (x) => x[op](axes.length ? axes : undefined).mul(1.5), args: [randDistinct(rng, s)] };
    },
  },
  {
    name: 'views: reshape, transpose, broadcast, slice, pad, concat, flip',
    grad: true,
    make: (rng) => {
      const s = [rng.int(1, 4), rng.int(2, 4), rng.int(1, 3)];
      const perm = rng.perm(3);
      const fn: Fn = (x) => {
        const t = x.transpose(perm).reshape([-1]).reshape([s[2]!, s[0]! * s[1]!]);
        const p = ng.pad(t, [[1, -1], [2, 0]], 0.5);
        const c = ng.concat([p, p.flip(1).mul(2)], 0);
        return c.slice([0, 1], [c.shape[0]!, c.shape[1]!]).add(ng.broadcastTo(x.sum([0, 1]).reshape([s[2]!, 1]), [s[2]!, 1]).sum());
      };
      return { fn, args: [randn(rng, s)] };
    },
  },
  {
    name: 'dot_general: batched matmul',
    grad: true,
    make: (rng) => {
      const [b, m, k, n] = [rng.int(1, 3), rng.int(1, 5), rng.int(1, 6), rng.int(1, 5)];
      return { fn: (x, y) => x.matmul(y), args: [randn(rng, [b, m, k]), randn(rng, [b, k, n])] };
    },
  },
  {
    name: 'conv_general: strides, padding, dilation, groups',
    grad: true,
    make: (rng) => {
      const groups = rng.pick([1, 2]);
      const [n, c, o, h, w] = [rng.int(1, 2), 2 * rng.int(1, 2), 2 * rng.int(1, 2), rng.int(4, 7), rng.int(4, 7)];
      const kh = rng.int(1, 3);
      const opts = { strides: rng.int(1, 2), padding: rng.int(0, 1), dilation: rng.int(1, 2), groups };
      return { fn: (x, k) => ng.conv2d(x, k, opts), args: [randn(rng, [n, c, h, w]), randn(rng, [o, c / groups, kh, kh])] };
    },
  },
  {
    name: 'gather (take) and its scatter_add gradient',
    grad: true,
    make: (rng) => {
      const s = [rng.int(2, 5), rng.int(1, 4)];
      const idx = ng.tensor(Array.from({ length: rng.int(1, 6) }, () => rng.int(0, s[0]! - 1)), { dtype: 'i32' });
      return { fn: (x) => ng.take(x, idx, 0).mul(ng.take(x, idx, 0)), args: [randn(rng, s)] };
    },
  },
  {
    name: 'layerNorm, GELU, softmax cross-entropy',
    grad: true,
    make: (rng) => {
      const [b, d] = [rng.int(1, 4), rng.int(4, 8)]; // d = 2 makes LayerNorm's gradient exactly 0: f32 noise only
      const labels = ng.tensor(Array.from({ length: b }, () => rng.int(0, d - 1)), { dtype: 'i32' });
      const fn: Fn = (x, w) => ng.nn.crossEntropy(ng.nn.gelu(ng.nn.layerNorm({ weight: w, bias: w.mul(0.1) }, x)), labels);
      return { fn, args: [randn(rng, [b, d]), randu(rng, [d], 0.5, 1.5)] };
    },
  },
];

const f32 = (t: ng.Tensor): ng.Tensor => (t.dtype === 'f64' ? t.cast('f32') : t);

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 1e-2; // an absolute floor: values near 0 carry f32 noise
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Number.isNaN(want[i]!) ? (Number.isNaN(got[i]!) ? 0 : Infinity) : Math.abs(got[i]! - want[i]!);
    worst = Math.max(worst, d / scale);
  }
  return worst;
}

describeEachBackend('primitives and their gradients through jit, f32 against the float64 interpreter', (backend) => {
  const tol = tolerance(backend, 2e-5);
  for (const c of CASES) {
    it(c.name, async () => {
      await fc.assert(
        fc.asyncProperty(seedArb, async (seed) => {
          const { fn, args } = c.make(new Rng(seed));
          const want = ng.interpret(ng.trace(fn, ...args), args, { dtype: 'f64' })[0]!;
          const got = await ng.jit(fn, { backend, cacheDir: false })(...args.map(f32)).data();
          expect(maxRelErr(got, want.dataSync()), `${c.name} value (seed ${seed})`).toBeLessThanOrEqual(tol);
          if (!c.grad) return;
          const ct = randn(new Rng(seed + 1), want.shape);
          const pullback = (...xs: ng.Tensor[]) => ng.vjp(fn, ...xs.slice(0, -1))[1](xs[xs.length - 1]!);
          const gWant = ng.interpret(ng.trace(pullback, ...args, ct), [...args, ct], { dtype: 'f64' });
          const gGot = ng.jit(pullback, { backend, cacheDir: false })(...[...args, ct].map(f32)) as ng.Tensor[];
          for (let i = 0; i < gWant.length; i++) {
            expect(maxRelErr(await gGot[i]!.data(), gWant[i]!.dataSync()), `${c.name} gradient ${i} (seed ${seed})`).toBeLessThanOrEqual(tol * 5);
          }
        }),
        { numRuns: 12, seed: 42 },
      );
    });
  }
});

