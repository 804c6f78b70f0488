/**
 * Random programs (1-30 primitives over random shapes: elementwise ops, broadcasts, reductions,
 * reshapes/transposes/slices/pads/concats/flips, matmuls, convolutions, selects, casts, iota,
 * named regions) compiled with jit on every available backend and compared with the float64
 * reference interpreter. Tolerance per output: 1e-5 * sqrt(reduction length) * max(1, max|reference|)
 * (see test/helpers/program_gen.ts for how the generator keeps values tame and discontinuous
 * operations exact).
 *
 * Every failure fast-check has found is kept in REGRESSION_SEEDS (its seed and shrunk path,
 * replayable with fast-check, and the shrunk recipe itself, replayed directly).
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { interpret } from '../../src/ir/interpreter.js';
import * as ops from '../../src/ir/ops.js';
import { Program } from '../../src/ir/program.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { evalProgram } from '../../src/ir/trace.js';
import { jit } from '../../src/passes/jit.js';
import { devicePutAsync, getDevice } from '../../src/passes/backends.js';
import { describeEachBackend } from '../helpers/backends.js';
import { buildProgram, firstMismatch, KINDS_V1, primsOf, type Recipe, recipeArb, recipeArbOf, recipeInputs, tolerance } from '../helpers/program_gen.js';

interface Regression {
  /** Which property failed: 'compiled' (jit vs interpreter) or 'donated' (inputs donated). */
  readonly property: 'compiled' | 'donated';
  /** The fast-check run that found it: `fc.assert(..., {seed, path})` replays the shrunk case. */
  readonly seed: number;
  /** How many step kinds the generator had then (its arbitrary, which the path belongs to). */
  readonly kinds: number;
  readonly path: string;
  /** What went wrong, and where it was fixed. */
  readonly note: string;
  /** The shrunk counterexample. */
  readonly recipe: Recipe;
}

/** Failures found by this test (each replayed below on every run). */
export const REGRESSION_SEEDS: readonly Regression[] = [
  {
    property: 'compiled',
    // rev(reshape(a f32[2,2] -> [1,4]), axes [0,1]) gave NaN at element 2 (found by every seed
    // in 1..6 at 2000 runs, and by the first seed of this file before the generator grew
    // 'big'). The fused load index is ((1 - o1) % 2) + 2 * ((3 - o1 - 4 o0) / 2): idx.mod
    // (src/codegen/index_expr.ts) drops the multiples of d from its argument and then builds
    // a mod atom of the remainder, which can be negative, and the emitted `%` truncates.
    // Fixed in src/codegen/index_expr.ts (splitBy: remainders shifted to be non-negative).
    seed: 6,
    kinds: KINDS_V1,
    path: '199:3:1:4:9:7:7:7:7:7:7:7:7:7:7:14:14:14:14:14:14:14:14:14:14:18:18:18:18:18:18:18:18:18:18:18:22:22:22:22:22:22:22:22:22:22:22:26:32:13:27:30:29:33:28:26:26:26:26:26:26:26:27:27:27:32:26:27:3:29:26:26:26:26:15:15:15:15:15:15:23:19:12:18:19:18:17:19:19:19:19:19:19:19:19:19:19:8:11:4:10:10:10:13:13',
    note: 'negative operand of a mod atom in a fused rev-of-reshape index; fixed (index_expr.ts)',
    recipe: {
      inputs: [[2, 2]],
      steps: [
        { kind: 4, a: 0, b: 0, p: [0, 0, 0, 0, 0, 0, 0, 0] },
        { kind: 9, a: 849, b: 339, p: [0, 0, 0, 0, 0, 0, 0, 0] },
      ],
      outputs: [0],
      seed: 0,
    },
  },
  {
    property: 'donated',
    // f(a f32[]) = (neg a, a) with a donated returned a's storage overwritten by neg a: the
    // memory planner let neg's output take over a donated input that is itself an output.
    // Fixed in src/passes/memory.ts (a donated input returned unchanged is not reused).
    seed: 20251128,
    kinds: KINDS_V1,
    path: '43:3:1:2:2:2:2:2:2:2:2:2:2:2:2:1:1:1:1:1:1:1:1:1:1:1:2:2:2:0:1',
    note: 'donated input also returned as an output was overwritten in place; fixed (memory.ts)',
    recipe: { inputs: [[]], steps: [{ kind: 0, a: 0, b: 0, p: [0, 0, 0, 0, 0, 0, 0, 0] }], outputs: [0, 0], seed: 0 },
  },
  {
    property: 'donated',
    // f(a f32[2] donated) = (sin a, neg a): the two loop kernels over one space were merged,
    // sin's output took over a's storage (reads-only-in-place holds), and the emitted loop
    // stored sin(a[i]) before loading a[i] again for neg -- the second output read sin(a).
    // Found when the generator grew new kinds (seed 20251128, 300 runs). Fixed in
    // src/codegen/lower/scope_builder.ts (storeAll: every value before the first store) and
    // equal loads of merged DAGs read once.
    seed: 20251128,
    kinds: 26,
    path: '154:2:1:6:7:5:5:5:5:6:6:6:6:6:6:6:6:6:7:8:9:8:8:9:8:10:9:9:9:9:9:9:9:9:9:12:14:13:12:8:9:8:8:8:8:12:12:12:12:12:12:12:12:12:13:8:8:13:12:19:19:19:19:19:19:19:19:19:19:20:23:20:20:10:10:11:11:11:11:12:11:11:7:10:11:11:11:11:11:11:11:11:11:11:12:12:20:14',
    note: 'a merged kernel stored an in-place (donated) output before another output re-read the input; fixed (scope_builder.ts storeAll)',
    recipe: {
      inputs: [[2], []],
      steps: [
        { kind: 0, a: 68, b: 0, p: [0, 0, 0, 0, 0, 0, 0, 0] },
        { kind: 0, a: 0, b: 0, p: [0, 0, 0, 0, 0, 0, 0, 0] },
        { kind: 0, a: 8, b: 0, p: [0, 0, 0, 0, 0, 0, 0, 0] },
        { kind: 2, a: 516, b: 0, p: [0, 0, 0, 0, 0, 0, 0, 0] },
      ],
      outputs: [0, 955],
      seed: 0,
    },
  },
];

/** Fixed in CI; NEXGRAD_FUZZ_SEED / NEXGRAD_FUZZ_RUNS explore further (e.g. 5000 runs of a new seed). */
const SEED = Number(process.env.NEXGRAD_FUZZ_SEED ?? 20251127);
const NUM_RUNS = Number(process.env.NEXGRAD_FUZZ_RUNS ?? 500);

/**
 * Compiles `program` on the CPU backend and runs it on each input set in turn (the later runs
 * reuse the executable and its arena), comparing every output with the f64 interpreter.
 */
async function checkCompiled(backend: string, program: Program, inputSets: readonly (readonly Tensor[])[], red: readonly number[]): Promise<void> {
  const f = jit((...xs: Tensor[]) => evalProgram(program, xs), { backend, cacheDir: false });
  for (const [run, inputs] of inputSets.entries()) {
    let outs: Tensor[];
    try {
      outs = f(...inputs) as Tensor[];
    } catch (e) {
      if (refusesF64(backend, program) && F64_REFUSAL.test(String(e))) return;
      throw e;
    }
    const got = await devicePutAsync(outs, 'cpu');
    const want = interpret(program, inputs, { dtype: 'f64' });
    expect(got.length).toBe(want.length);
    want.forEach((w, i) => {
      const g = got[i]!;
      expect(g.shape, `output ${i} shape`).toEqual(w.shape);
      const wd = w.dataSync();
      const tol = tolerance(wd, red[i]!);
      const m = firstMismatch(g.dataSync(), wd, tol);
      if (m) {
        throw new Error(`run ${run + 1}, output ${i} (${g.dtype}[${g.shape.join(',')}]) element ${m.index}: got ${m.got}, want ${m.want} (tolerance ${tol.toExponential(2)})\n${program.toString()}`);
      }
    });
  }
  expect(f.stats.traces).toBe(1);
}

/**
 * Backends without f64 (WGSL) refuse a program that still computes in f64 after simplification
 * (the generator's f32 -> f64 -> f32 round trips, in about 7% of programs) with an error naming
 * the kernel: that error, and only for such programs, is an accepted outcome there.
 */
const F64_REFUSAL = /is f64, which \w+ does not have/;
const usesF64 = (p: Program): boolean => p.eqns.some((e) => e.outputs.some((v) => v.aval.dtype === 'f64') || ((e.params as { body?: unknown }).body instanceof Program && usesF64((e.params as { body: Program }).body)));
const refusesF64 = (backend: string, p: Program): boolean => !getDevice(backend).caps.dtypes.has('f64') && usesF64(p);

/** Two input sets per recipe: the recipe's own, and fresh data of the same shapes. */
function inputSets(r: Recipe, first: Tensor[]): Tensor[][] {
  return [first, recipeInputs({ ...r, seed: (r.seed ^ 0x5bd1e995) >>> 0 })];
}

function checkRecipe(backend: string, r: Recipe): Promise<void> {
  const { program, inputs, info } = buildProgram(r);
  return checkCompiled(backend, program, inputSets(r, inputs), info.red);
}

/**
 * Runs the recipe's program with its inputs donated (those some output could take over, else
 * all): either jit refuses the donation with its error, or the results are right.
 */
async function checkDonated(backend: string, r: Recipe): Promise<'inPlace' | 'refused'> {
  const { program, inputs, info } = buildProgram(r);
  const want = interpret(program, inputs, { dtype: 'f64' }).map((t) => t.dataSync());
  const copies = inputs.map((t) => ops.add(t, 0)); // fresh storage per input
  const sizes = new Set(program.outputs.map((o) => o.aval.shape.reduce((a, b) => a * b, 1)));
  const fits = inputs.flatMap((t, i) => (sizes.has(t.size) ? [i] : []));
  const donate = fits.length ? fits : inputs.map((_, i) => i);
  const f = jit((...xs: Tensor[]) => evalProgram(program, xs), { backend, cacheDir: false, donate });
  let got: Tensor[];
  try {
    got = await devicePutAsync(f(...copies) as Tensor[], 'cpu');
  } catch (e) {
    if (refusesF64(backend, program) && F64_REFUSAL.test(String(e))) return 'refused';
    expect(String(e)).toMatch(/donated argument \d+ cannot be reused in place/);
    return 'refused';
  }
  expect(donate.every((i) => copies[i]!.isDonated)).toBe(true);
  want.forEach((w, i) => {
    const tol = tolerance(w, info.red[i]!);
    const m = firstMismatch(got[i]!.dataSync(), w, tol);
    if (m) throw new Error(`output ${i} element ${m.index}: got ${m.got}, want ${m.want}\n${program.toString()}`);
  });
  return 'inPlace';
}

const checks = (backend: string) => ({ compiled: (r: Recipe) => checkRecipe(backend, r), donated: async (r: Recipe) => void (await checkDonated(backend, r)) }) as const;

describeEachBackend('random programs: jit against the float64 interpreter', (backend) => {
  const CHECKS = checks(backend);
  it(`${NUM_RUNS} random programs (seed ${SEED})`, async () => {
    const prims = new Map<string, number>();
    const sizes: number[] = [];
    await fc.assert(
      fc.asyncProperty(recipeArb, async (r) => {
        const { program, inputs, info } = buildProgram(r);
        sizes.push(program.eqns.length);
        for (const p of primsOf(program)) prims.set(p, (prims.get(p) ?? 0) + 1);
        await checkCompiled(backend, program, inputSets(r, inputs), info.red);
      }),
      { numRuns: NUM_RUNS, seed: SEED },
    );
    // the programs have 1 to 30 primitives and cover every family the generator knows
    expect(sizes.length).toBe(NUM_RUNS);
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(30);
    const want = [
      'add', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'rem', 'neg', 'abs', 'exp', 'expm1', 'log', 'log1p', 'sqrt', 'rsqrt',
      'sin', 'cos', 'tanh', 'logistic', 'erf', 'floor', 'ceil', 'round', 'sign', 'lt', 'le', 'gt', 'ge', 'eq', 'ne',
      'select', 'cast', 'iota', 'reduce_sum', 'reduce_max', 'reduce_min', 'reshape', 'transpose', 'broadcast_in_dim',
      'slice', 'pad', 'concatenate', 'rev', 'dot_general', 'conv_general', 'region',
      'gather', 'scatter_add', 'argmax', 'argsort', 'random_bits',
    ];
    const missing = want.filter((p) => (prims.get(p) ?? 0) < 3);
    expect(missing, 'primitives in fewer than 3 programs').toEqual([]);
    const coverage = [...prims].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`random programs [${backend}]: ${NUM_RUNS} programs, ${sizes.reduce((a, b) => a + b, 0)} primitives; programs using each: ${coverage}`);
  });

  it(`${Math.round(NUM_RUNS * 0.6)} random programs with their inputs donated: in-place updates or the donation error, never a wrong value`, async () => {
    const outcome = { inPlace: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(recipeArb, async (r) => {
        outcome[await checkDonated(backend, r)]++;
      }),
      { numRuns: Math.round(NUM_RUNS * 0.6), seed: SEED + 1 },
    );
    expect(outcome.inPlace).toBeGreaterThan(NUM_RUNS * 0.12);
    console.log(`donated random programs: ${outcome.inPlace} ran in place, ${outcome.refused} refused donation`);
  });

  it('regression cases (shrunk recipes) still pass', async () => {
    for (const reg of REGRESSION_SEEDS) await CHECKS[reg.property](reg.recipe);
  });

  it('regression cases replay through fast-check (seed and path)', async () => {
    for (const reg of REGRESSION_SEEDS) {
      await fc.assert(fc.asyncProperty(recipeArbOf(reg.kinds), (r) => CHECKS[reg.property](r)), { seed: reg.seed, path: reg.path, numRuns: 1 });
    }
  });
});
