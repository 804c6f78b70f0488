/**
 * The CUDA backend's numerical suites as a standalone script for a GPU host (vitest and its
 * dependencies do not travel there): every check jits on the backend and compares with an
 * independent reference computed on the host.
 *   - primitives: elementwise, casts, reductions, views, matmul, convolutions (strided,
 *     padded, dilated, grouped, depthwise 7x7), data kernels bit for bit; f16/bf16 variants;
 *   - gradients: VJPs of composites (layerNorm, GELU, GRN, softmax cross-entropy, conv, matmul);
 *   - random programs of test/helpers/program_gen.ts (the test suite's generator);
 *   - parity: tiny ConvNeXt V2 and FCMAE against the PyTorch float64 vectors (a refs folder);
 *   - atto training step: one AdamW step on the backend against the CPU backend, a bf16
 *     mixed-precision step against the f32 one, and graph replay on later steps.
 * The reference is the float64 interpreter unless said otherwise.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as ng from '../../src/index.js';
import { config } from '../../src/convnextv2/config.js';
import type { FcmaeParams } from '../../src/convnextv2/fcmae.js';
import type { ConvNeXtV2Params } from '../../src/convnextv2/model.js';
import { paramSpec } from '../../src/convnextv2/model.js';
import type { Program } from '../../src/ir/program.js';
import { bind1, evalProgram } from '../../src/ir/trace.js';
import { flattenParams, specEntries, unflattenParams } from '../../src/nn/init.js';
import { readSafetensors } from '../../src/nn/safetensors.js';
import { relMaxError, worstError } from './report.js';

export interface SuiteContext {
  readonly backend: string;
  /** Folder of tiny.safetensors and fcmae_tiny.safetensors (PyTorch float64 vectors). */
  readonly refs: string;
  /** Random programs to run. */
  readonly randomPrograms: number;
  readonly log: (line: string) => void;
}

export interface Suite {
  readonly name: string;
  /** Runs the suite; returns its measurements, throws on the first failure. */
  run(ctx: SuiteContext): Promise<Record<string, number | string>>;
}

const host = async (t: ng.Tensor): Promise<Float64Array> => Float64Array.from(await t.data());

/** Compares fn on the backend with the f64 interpreter: |got - want| <= atol + rtol |want| per element. */
async function against(ctx: SuiteContext, what: string, fn: (...xs: ng.Tensor[]) => ng.Tensor | ng.Tensor[], args: ng.Tensor[], atol = 1e-5, rtol = 1e-4): Promise<void> {
  const outs = ng.jit(fn, { backend: ctx.backend, cacheDir: false })(...args);
  const got = Array.isArray(outs) ? outs : [outs];
  const want = ng.interpret(ng.trace(fn, ...args), args, { dtype: 'f64' });
  if (got.length !== want.length) throw new Error(`${what}: ${got.length} outputs, the interpreter ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const g = await host(got[i]!);
    const w = want[i]!.dataSync();
    const scale = Math.max(1, ...Array.from(w, (x) => (Number.isFinite(x) ? Math.abs(x) : 0)));
    const e = worstError(g, w, atol * scale, rtol);
    if (!(e <= 1)) throw new Error(`${what}: output ${i} off by ${e.toExponential(2)} of its tolerance`);
  }
}

/** Bit-for-bit agreement with the interpreter in the program's own dtypes. */
async function bitwise(ctx: SuiteContext, what: string, fn: (...xs: ng.Tensor[]) => ng.Tensor, args: ng.Tensor[]): Promise<void> {
  const got = await ng.jit(fn, { backend: ctx.backend, cacheDir: false })(...args).data();
  const want = ng.interpret(ng.trace(fn, ...args), args)[0]!.dataSync();
  for (let i = 0; i < want.length; i++) {
    if (!(Object.is(got[i], want[i]) || (Number.isNaN(got[i]!) && Number.isNaN(want[i]!)))) throw new Error(`${what}: element ${i} is ${got[i]}, the interpreter's ${want[i]}`);
  }
}

const normal = (shape: number[], seed: number): ng.Tensor => ng.random.normal(ng.random.key(seed), shape);

const UNARY: readonly [string, (x: ng.Tensor) => ng.Tensor][] = [
  ['exp', ng.exp],
  ['log', (x) => ng.log(ng.abs(x).add(0.5))],
  ['log1p', (x) => ng.log1p(ng.abs(x))],
  ['expm1', ng.expm1],
  ['tanh', ng.tanh],
  ['sigmoid', ng.sigmoid],
  ['erf', ng.erf],
  ['sin', ng.sin],
  ['cos', ng.cos],
  ['sqrt', (x) => ng.sqrt(ng.abs(x))],
  ['rsqrt', (x) => ng.rsqrt(ng.abs(x).add(0.5))],
  ['floor', (x) => ng.floor(x.mul(3))],
  ['round', (x) => ng.round(x.mul(3))],
  ['sign', ng.sign],
  ['abs', ng.abs],
];

const BINARY: readonly [string, (a: ng.Tensor, b: ng.Tensor) => ng.Tensor][] = [
  ['add', ng.add],
  ['sub', ng.sub],
  ['mul', ng.mul],
  ['div', (a, b) => ng.div(a, ng.abs(b).add(0.5))],
  ['pow', (a, b) => ng.pow(ng.abs(a).add(0.1), b)],
  ['maximum', ng.maximum],
  ['minimum', ng.minimum],
  ['rem', (a, b) => ng.rem(a, ng.abs(b).add(0.5))],
  ['where', (a, b) => ng.where(ng.less(a, b), a, b)],
];

const PRIMITIVES: Suite = {
  name: 'primitives',
  async run(ctx) {
    let checks = 0;
    const x = normal([7, 33], 1);
    const y = normal([7, 33], 2);
    for (const [name, f] of UNARY) {
      await against(ctx, name, f, [x]);
      checks++;
    }
    for (const [name, f] of BINARY) {
      await against(ctx, name, f, [x, y]);
      checks++;
    }
    const t = normal([4, 5, 6, 7], 3);
    for (const axes of [[0], [3], [1, 2], [0, 1, 2, 3]]) {
      await against(ctx, `sum/max/min over ${axes}`, (a: ng.Tensor) => [ng.sum(a, axes), ng.max(a, axes), ng.min(a, axes), ng.mean(a, axes)], [t]);
      checks++;
    }
    await against(ctx, 'long row sums', (a: ng.Tensor) => ng.sum(a, 1), [normal([3, 50000], 4)], 1e-4);
    await against(ctx, 'views', (a: ng.Tensor) => [ng.transpose(a, [2, 0, 3, 1]), ng.slice(a, [1, 0, 2, 1], [3, 5, 6, 7]), ng.pad(a, [[1, 0], [0, 2], [0, 0], [3, 1]]), ng.concat([a, a.mul(2)], 2), ng.flip(a, [1, 3])], [t]);
    // casts round and wrap exactly as the host does (the f32 interpreter: the f64 one keeps halves wide)
    for (const [name, f] of [
      ['i32', (a: ng.Tensor) => ng.cast(ng.cast(a.mul(100), 'i32'), 'f32')],
      ['bf16', (a: ng.Tensor) => ng.cast(ng.cast(a, 'bf16'), 'f32')],
      ['f16', (a: ng.Tensor) => ng.cast(ng.cast(a.mul(1000), 'f16'), 'f32')],
      ['u32 (wrapping)', (a: ng.Tensor) => ng.cast(ng.cast(a.mul(3e9), 'u32'), 'f32')],
    ] as const) {
      await bitwise(ctx, `cast to ${name}`, f, [t]);
      checks++;
    }
    await against(ctx, 'batched matmul', ng.matmul, [normal([3, 70, 90], 5), normal([3, 90, 40], 6)], 1e-5, 2e-4);
    await against(ctx, 'large matmul', ng.matmul, [normal([300, 257], 7), normal([257, 129], 8)], 1e-5, 5e-4);
    const img = normal([2, 8, 20, 20], 9);
    await against(ctx, 'conv stride 2 pad 1', (a: ng.Tensor, w: ng.Tensor) => ng.conv2d(a, w, { strides: 2, padding: 1 }), [img, normal([6, 8, 3, 3], 10)], 1e-5, 2e-4);
    await against(ctx, 'conv dilated, grouped', (a: ng.Tensor, w: ng.Tensor) => ng.conv2d(a, w, { dilation: 2, padding: 2, groups: 2 }), [img, normal([4, 4, 3, 3], 11)], 1e-5, 2e-4);
    await against(ctx, 'depthwise 7x7', (a: ng.Tensor, w: ng.Tensor) => ng.conv2d(a, w, { padding: 3, groups: 8 }), [img, normal([8, 1, 7, 7], 12)], 1e-5, 2e-4);
    await against(ctx, 'patchify conv', (a: ng.Tensor, w: ng.Tensor) => ng.conv2d(a, w, { strides: 4 }), [img, normal([16, 8, 4, 4], 13)], 1e-5, 2e-4);
    checks += 10;
    for (const dtype of ['f16', 'bf16'] as const) {
      const a = ng.cast(normal([20, 48], 14), dtype);
      const b = ng.cast(normal([48, 24], 15), dtype);
      // the interpreter rounds a half matmul's result once; the tensor cores add in f32 first
      await against(ctx, `${dtype} matmul`, ng.matmul, [a, b], 1e-2, 1e-2);
      await against(ctx, `${dtype} elementwise`, (p: ng.Tensor) => ng.exp(p).mul(p).add(1), [a], 1e-2, 1e-2);
      checks += 2;
    }
    const data = normal([4, 6, 5], 16);
    const idx = ng.tensor([0, 5, 2, -1, 9, 3], { dtype: 'i32' });
    await bitwise(ctx, 'gather', (a: ng.Tensor, i: ng.Tensor) => bind1('gather', [a, i], { axis: 1, batchDims: 0 }), [data, idx]);
    await bitwise(ctx, 'argmax', (a: ng.Tensor) => bind1('argmax', [a], { axis: 2 }), [data]);
    await bitwise(ctx, 'argsort', (a: ng.Tensor) => bind1('argsort', [a], { axis: 1, descending: false }), [normal([5, 700], 17)]);
    await bitwise(ctx, 'random bits', (k: ng.Tensor) => ng.random.bits(k, [33, 17]), [ng.random.key(3)]);
    await against(ctx, 'scatter_add', (a: ng.Tensor, i: ng.Tensor, u: ng.Tensor) => bind1('scatter_add', [a, i, u], { axis: 1, batchDims: 0 }), [data, idx, normal([4, 6, 5], 18)]);
    checks += 5;
    return { checks };
  },
};

const GRADIENTS: Suite = {
  name: 'gradients',
  async run(ctx) {
    const x = normal([2, 6, 6, 16], 20);
    const w = ng.random.normal(ng.random.key(21), [16]).mul(0.1).add(1);
    const b = normal([16], 22).mul(0.1);
    const cases: [string, (...a: ng.Tensor[]) => ng.Tensor, ng.Tensor[]][] = [
      ['layerNorm', (a, ww, bb) => ng.sum(ng.nn.layerNorm({ weight: ww, bias: bb }, a).mul(a)), [x, w, b]],
      ['gelu', (a) => ng.sum(ng.nn.gelu(a).mul(a)), [x]],
      ['grn', (a, g, bb) => ng.sum(ng.nn.grn({ gamma: g, beta: bb }, a).mul(a)), [x, w, b]],
      ['softmax cross-entropy', (a) => ng.nn.crossEntropy(a, ng.tensor([1, 3, 0], { dtype: 'i32' })), [normal([3, 10], 23)]],
      ['conv', (a, k) => ng.sum(ng.conv2d(a, k, { padding: 1 }).mul(2)), [normal([2, 3, 8, 8], 24), normal([5, 3, 3, 3], 25)]],
      ['matmul', (a, c) => ng.sum(ng.matmul(a, c).mul(ng.matmul(a, c))), [normal([9, 14], 26), normal([14, 5], 27)]],
    ];
    for (const [name, f, args] of cases) {
      const argnums = args.map((_, i) => i);
      await against(ctx, `grad ${name}`, (...a: ng.Tensor[]) => ng.grad(f, { argnums })(...a) as ng.Tensor[], args, 1e-5, 5e-4);
    }
    return { checks: cases.length };
  },
};

/** What the random-program suite uses of test/helpers/program_gen.ts (and fast-check). */
interface ProgramGen {
  buildProgram(r: unknown): { program: Program; inputs: ng.Tensor[]; info: { red: number[] } };
  recipeInputs(r: unknown): ng.Tensor[];
  tolerance(ref: ArrayLike<number>, red: number): number;
  firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): { index: number; got: number; want: number } | undefined;
  recipeArb: unknown;
}

/**
 * The test suite's program generator, compiled to dist/test/helpers by `check.sh prepare`
 * (it is test code, outside this build), with fast-check beside it.
 */
async function programGen(): Promise<{ gen: ProgramGen; sample: (arb: unknown, o: { seed: number; numRuns: number }) => { seed: number }[] }> {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const file = path.join(root, 'test', 'helpers', 'program_gen.js');
  if (!existsSync(file)) throw new Error(`${file} is missing: run 'bash bench/gpu/check.sh prepare' (it compiles the generator)`);
  const gen = (await import(pathToFileURL(file).href)) as ProgramGen;
  const fcName = 'fast-check';
  const fc = (await import(fcName)) as { default: { sample: (arb: unknown, o: { seed: number; numRuns: number }) => { seed: number }[] } };
  return { gen, sample: fc.default.sample };
}

const RANDOM: Suite = {
  name: 'random programs',
  async run(ctx) {
    const { gen, sample } = await programGen();
    const { buildProgram, recipeInputs, tolerance, firstMismatch } = gen;
    const recipes = sample(gen.recipeArb, { seed: 20251127, numRuns: ctx.randomPrograms });
    for (const [n, r] of recipes.entries()) {
      const { program, inputs, info } = buildProgram(r);
      const f = ng.jit((...xs: ng.Tensor[]) => evalProgram(program, xs), { backend: ctx.backend, cacheDir: false });
      for (const set of [inputs, recipeInputs({ ...r, seed: (r.seed ^ 0x5bd1e995) >>> 0 })]) {
        const got = f(...set) as ng.Tensor[];
        const want = ng.interpret(program, set, { dtype: 'f64' });
        for (let i = 0; i < want.length; i++) {
          const w = want[i]!.dataSync();
          const tol = Math.max(tolerance(w, info.red[i]!), 1e-4 * Math.max(1, ...Array.from(w, (v) => (Number.isFinite(v) ? Math.abs(v) : 0))));
          const m = firstMismatch(await got[i]!.data(), w, tol);
          if (m) throw new Error(`random program ${n}, output ${i} element ${m.index}: got ${m.got}, want ${m.want}\n${program.toString()}`);
        }
      }
    }
    return { programs: recipes.length };
  },
};

/** PyTorch float64 reference vectors as tensors (F64 data as f64, I64 labels as i32). */
function loadRefs(file: string): { get(k: string): ng.Tensor; params(): ConvNeXtV2Params & FcmaeParams; names(): string[] } {
  const f = readSafetensors(file);
  const get = (k: string): ng.Tensor => {
    const t = f.tensors.get(k);
    if (!t) throw new Error(`${file} has no ${k}`);
    return t.dtype === 'I64' ? ng.fromHost('i32', [...t.shape], Int32Array.from(t.data as ArrayLike<number>)) : ng.fromHost('f64', [...t.shape], Float64Array.from(t.data as ArrayLike<number>));
  };
  const names = (): string[] => [...f.tensors.keys()].filter((k) => k.startsWith('param.')).map((k) => k.slice(6));
  return { get, names, params: () => unflattenParams(names().map((n) => [n, ng.cast(get(`param.${n}`), 'f32')] as const)) as never };
}

const PARITY: Suite = {
  name: 'parity with PyTorch (tiny ConvNeXt V2, FCMAE)',
  async run(ctx) {
    const out: Record<string, number> = {};
    for (const [tag, file] of [['tiny', 'tiny.safetensors'], ['fcmae', 'fcmae_tiny.safetensors']] as const) {
      const where = path.join(ctx.refs, file);
      if (!existsSync(where)) throw new Error(`${where} is missing (copy ../shared/refs there; check.sh prepare does)`);
      const r = loadRefs(where);
      const params = r.params();
      const x = ng.cast(r.get('input'), 'f32');
      let loss: ng.Tensor;
      let grads: Record<string, ng.Tensor>;
      if (tag === 'tiny') {
        const cfg = ng.convnextv2.config('custom', { depths: [1, 1, 2, 1], dims: [8, 16, 32, 64], numClasses: 10 });
        const labels = r.get('labels');
        const step = ng.jit((p: ConvNeXtV2Params, xx: ng.Tensor, y: ng.Tensor) => ng.valueAndGrad((q: ConvNeXtV2Params) => ng.nn.crossEntropy(ng.convnextv2.apply(q, xx, { cfg }), y))(p), { backend: ctx.backend, cacheDir: false });
        const [l, g] = step(params, x, labels) as unknown as [ng.Tensor, ConvNeXtV2Params];
        loss = l;
        grads = Object.fromEntries(flattenParams(g));
      } else {
        const { fcmae } = ng.convnextv2;
        const cfg = fcmae.config({ depths: [1, 1, 1, 1], dims: [8, 16, 32, 64] }, { decoderDim: 16, decoderDepth: 1, patchSize: 32, imgSize: 64 });
        const mask = ng.cast(r.get('mask'), 'f32');
        const step = ng.jit((p: FcmaeParams, xx: ng.Tensor, m: ng.Tensor) => ng.valueAndGrad((q: FcmaeParams) => fcmae.forward(q, xx, m, { cfg, normPixLoss: true }).loss)(p), { backend: ctx.backend, cacheDir: false });
        const [l, g] = step(params, x, mask) as unknown as [ng.Tensor, FcmaeParams];
        loss = l;
        grads = Object.fromEntries(flattenParams(g));
      }
      const prefix = tag === 'tiny' ? '' : 'npl.';
      let worst = relMaxError(await host(ng.reshape(loss, [1])), r.get(`${prefix}loss`).dataSync());
      for (const n of r.names()) worst = Math.max(worst, relMaxError(await host(grads[n]!), r.get(`${prefix}grad.${n}`).dataSync()));
      out[`${tag} worst relative error`] = worst;
      if (!(worst <= 1e-4)) throw new Error(`${tag}: worst relative error ${worst.toExponential(2)} of loss and gradients (tolerance 1e-4)`);
    }
    return out;
  },
};

/** A training step of ConvNeXt V2 atto: forward, cross-entropy, backward, AdamW; params and state donated. */
export function attoTrainer(backend: string, precision: 'f32' | 'bf16' = 'f32', variant: 'atto' | 'tiny' = 'atto') {
  const cfg = config(variant);
  const opt = ng.nn.adamw({ lr: 1e-3, weightDecay: 0.05 });
  const lossFn = (p: ConvNeXtV2Params, x: ng.Tensor, y: ng.Tensor): ng.Tensor => ng.nn.crossEntropy(ng.convnextv2.apply(p, x, { cfg }), y);
  const step = ng.jit(
    (p: ConvNeXtV2Params, s: any, x: ng.Tensor, y: ng.Tensor) => {
      const [loss, g] = ng.valueAndGrad(lossFn)(p, x, y) as [ng.Tensor, ConvNeXtV2Params];
      const u = opt.update(g, s, p);
      return { loss, params: u.params, state: u.state };
    },
    { backend, donate: [0, 1], precision, cacheDir: false },
  );
  const init = (seed: number) => {
    const params = unflattenParams<ConvNeXtV2Params>(specEntries(paramSpec(cfg)).map(([n, s]) => [n, ng.random.normal(ng.random.key(seed + n.length), s.shape).mul(0.02)] as const));
    return { params, state: opt.init(params) };
  };
  return { cfg, step, init };
}

const ATTO: Suite = {
  name: 'atto training step',
  async run(ctx) {
    const batch = 8;
    const x = normal([batch, 3, 64, 64], 30);
    const y = ng.tensor(Array.from({ length: batch }, (_, i) => (i * 37) % 1000), { dtype: 'i32' });
    const run = async (backend: string, precision: 'f32' | 'bf16') => {
      const t = attoTrainer(backend, precision);
      const { params, state } = t.init(1);
      const dev = (v: ng.Tensor) => v.to(backend);
      let p = ng.treeMap<ConvNeXtV2Params>(dev, params);
      let s = ng.treeMap<typeof state>(dev, state);
      const xs = dev(x);
      const ys = dev(y);
      const losses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const o = t.step(p, s, xs, ys) as unknown as { loss: ng.Tensor; params: typeof p; state: typeof s };
        losses.push((await o.loss.data())[0]!);
        p = o.params;
        s = o.state;
      }
      return { losses, params: p };
    };
    const cpu = await run('cpu', 'f32');
    const gpu = await run(ctx.backend, 'f32');
    const half = await run(ctx.backend, 'bf16');
    const lossErr = Math.max(...cpu.losses.map((l, i) => Math.abs(l - gpu.losses[i]!) / Math.abs(l)));
    const cpuParams = ng.treeLeaves(cpu.params);
    const gpuParams = ng.treeLeaves(gpu.params);
    let paramErr = 0;
    for (let i = 0; i < cpuParams.length; i++) paramErr = Math.max(paramErr, relMaxError(await host(gpuParams[i]!), await host(cpuParams[i]!)));
    const halfErr = Math.max(...cpu.losses.map((l, i) => Math.abs(l - half.losses[i]!) / Math.abs(l)));
    if (!(lossErr <= 1e-4)) throw new Error(`f32 losses ${gpu.losses} vs the CPU's ${cpu.losses}`);
    if (!(paramErr <= 1e-3)) throw new Error(`f32 parameters after 3 steps differ from the CPU's by ${paramErr.toExponential(2)} (relative)`);
    if (!(halfErr <= 5e-2)) throw new Error(`bf16 losses ${half.losses} vs f32 ${cpu.losses}`);
    return { lossRelErr: lossErr, paramRelErr: paramErr, bf16LossRelErr: halfErr };
  },
};

export const SUITES: readonly Suite[] = [PRIMITIVES, GRADIENTS, RANDOM, PARITY, ATTO];

export type { Program };
