/**
 * The programs whose kernels the CUDA compile check (nvcc_kernels.test.ts) generates: random
 * programs of test/helpers/program_gen.ts, ConvNeXt V2 (tiny custom and atto) and FCMAE
 * training steps in f32, bf16 mixed precision and tf32, the data kernels (gather, scatter_add,
 * argmax, argsort, random_bits) and f16/bf16 elementwise, reduction, matmul and convolution
 * programs. Each is lowered through the whole pass pipeline for an sm_90 device's
 * capabilities and printed as CUDA without a device.
 */
import fc from 'fast-check';
import { SM90_PROPERTIES, cudaCaps, cudaTarget } from '../../../src/codegen/cuda/device.js';
import { emitGraphKernels } from '../../../src/codegen/cuda/executable.js';
import type { DeviceCaps } from '../../../src/codegen/kernel/device.js';
import type { GpuKernelCode } from '../../../src/codegen/lower/gpu/kernel_code.js';
import { config } from '../../../src/convnextv2/config.js';
import type { FcmaeParams } from '../../../src/convnextv2/fcmae.js';
import { paramSpec } from '../../../src/convnextv2/model.js';
import * as ng from '../../../src/index.js';
import { bind1 } from '../../../src/ir/trace.js';
import type { Program } from '../../../src/ir/program.js';
import { specEntries, unflattenParams } from '../../../src/nn/init.js';
import { mixedPrecision } from '../../../src/passes/mixed_precision.js';
import { lower } from '../../../src/passes/pipeline.js';
import { buildProgram, recipeArb } from '../../helpers/program_gen.js';

export interface CorpusProgram {
  readonly label: string;
  readonly program: Program;
  /** Input positions donated (updated in place), as a training step donates params and state. */
  readonly donated?: readonly number[];
  readonly tf32?: boolean;
  /** Capabilities beyond an sm_90 device's (a GEMM feature the CUDA caps do not turn on yet: reducing epilogues). */
  readonly caps?: Partial<DeviceCaps>;
}

export interface CorpusKernel {
  /** "<program label> / <kernel name>". */
  readonly label: string;
  readonly code: GpuKernelCode;
}

const caps = cudaCaps(SM90_PROPERTIES);

/** Every kernel of a program, printed for an sm_90 device. */
export function kernelsOf(p: CorpusProgram): CorpusKernel[] {
  const low = lower(p.program, { donated: p.donated ?? [] }, { ...caps, ...p.caps });
  return emitGraphKernels(low.graph, low.plan, cudaTarget(caps, p.tf32 ?? false)).map((code) => ({ label: `${p.label} / ${code.name}`, code }));
}

/** `count` random programs from a fixed seed (the generator's full kind list). */
export function randomPrograms(count: number, seed: number): CorpusProgram[] {
  return fc.sample(recipeArb, { seed, numRuns: count }).map((r, i) => ({ label: `random program ${i} (seed ${seed})`, program: buildProgram(r).program }));
}

function convnextStep(name: 'atto' | 'tiny', batch: number, image: number) {
  const cfg = name === 'atto' ? config('atto') : config('custom', { depths: [1, 1, 2, 1], dims: [8, 16, 32, 64], numClasses: 10 });
  const params = unflattenParams(specEntries(paramSpec(cfg)).map(([n, s]) => [n, ng.random.normal(ng.random.key(n.length), s.shape).mul(0.1)] as const));
  const opt = ng.nn.adamw({ lr: 1e-3, weightDecay: 0.05 });
  const step = (p: any, s: any, xs: ng.Tensor, ys: ng.Tensor) => {
    const [l, g] = ng.valueAndGrad((q: any) => ng.nn.crossEntropy(ng.convnextv2.apply(q, xs, { cfg }), ys))(p);
    const u = opt.update(g, s, p);
    return { loss: l, params: u.params, state: u.state };
  };
  const state = opt.init(params);
  const x = ng.random.normal(ng.random.key(7), [batch, 3, image, image]);
  const y = ng.tensor(Array.from({ length: batch }, (_, i) => i % 10), { dtype: 'i32' });
  const program = ng.trace(step, params, state, x, y);
  // params and optimizer state (every input but the batch) are donated
  const donated = Array.from({ length: program.inputs.length - 2 }, (_, i) => i);
  return { program, donated };
}

/** Inference of a tiny custom ConvNeXt V2 (every block's pwconv1 has a LayerNorm prologue). */
function convnextInference(): Program {
  const cfg = config('custom', { depths: [1, 1, 1, 1], dims: [8, 16, 32, 64], numClasses: 10 });
  const params = unflattenParams(specEntries(paramSpec(cfg)).map(([n, s]) => [n, ng.random.normal(ng.random.key(n.length), s.shape).mul(0.1)] as const));
  return ng.trace((p: any, xs: ng.Tensor) => ng.convnextv2.apply(p, xs, { cfg }), params, ng.random.normal(ng.random.key(7), [2, 3, 32, 32]));
}

function fcmaeStep() {
  const { fcmae } = ng.convnextv2;
  const cfg = fcmae.config({ depths: [1, 1, 1, 1], dims: [8, 16, 32, 64] }, { decoderDim: 16, decoderDepth: 1, patchSize: 32, imgSize: 64 });
  const params = fcmae.init(ng.random.key(0), cfg);
  const imgs = ng.random.normal(ng.random.key(1), [2, 3, 64, 64]);
  const opt = ng.nn.adamw({ lr: 1e-3, weightDecay: 0.05 });
  const step = (p: FcmaeParams, s: any, x: ng.Tensor, key: ng.Tensor) => {
    const mask = fcmae.randomMask(key, 2, 64, 32, 0.6);
    const [l, g] = ng.valueAndGrad((q: FcmaeParams) => fcmae.forward(q, x, mask, { cfg }).loss)(p);
    const u = opt.update(g, s, p);
    return { loss: l, params: u.params, state: u.state };
  };
  return ng.trace(step, params, opt.init(params), imgs, ng.random.key(3));
}

/** Programs of the data-dependent primitives, over f32, i32, u32, f16 and bf16 data. */
function dataPrograms(): CorpusProgram[] {
  const out: CorpusProgram[] = [];
  const x = ng.random.normal(ng.random.key(1), [4, 6, 5]);
  const idx = ng.tensor([0, 5, 2, -1, 9, 3], { dtype: 'i32' });
  for (const dtype of ['f32', 'f16', 'bf16', 'i32', 'u32'] as const) {
    const xd = ng.cast(x, dtype);
    out.push({ label: `gather ${dtype}`, program: ng.trace((a: ng.Tensor, i: ng.Tensor) => bind1('gather', [a, i], { axis: 1, batchDims: 0 }), xd, idx) });
    out.push({ label: `scatter_add ${dtype}`, program: ng.trace((a: ng.Tensor, i: ng.Tensor, u: ng.Tensor) => bind1('scatter_add', [a, i, u], { axis: 1, batchDims: 0 }), xd, idx, ng.ones([4, 6, 5], dtype)) });
    out.push({ label: `argmax ${dtype}`, program: ng.trace((a: ng.Tensor) => bind1('argmax', [a], { axis: 2 }), xd) });
    out.push({ label: `argsort ${dtype}`, program: ng.trace((a: ng.Tensor) => bind1('argsort', [a], { axis: 1, descending: dtype === 'i32' }), xd) });
  }
  const long = ng.random.normal(ng.random.key(2), [3, 1500]);
  out.push({ label: 'argsort of long rows', program: ng.trace((a: ng.Tensor) => bind1('argsort', [a], { axis: 1, descending: false }), long) });
  out.push({ label: 'argmax of long rows', program: ng.trace((a: ng.Tensor) => bind1('argmax', [a], { axis: 1 }), long) });
  out.push({ label: 'random bits, uniform and normal', program: ng.trace((k: ng.Tensor) => [ng.random.bits(k, [7, 9]), ng.random.uniform(k, [300]), ng.random.normal(k, [2, 3, 4])], ng.random.key(5)) });
  return out;
}

/** f16 and bf16 elementwise, reduction, matmul and convolution programs. */
function halfPrograms(): CorpusProgram[] {
  const out: CorpusProgram[] = [];
  for (const dtype of ['f16', 'bf16'] as const) {
    const a = ng.cast(ng.random.normal(ng.random.key(1), [8, 40, 24]), dtype);
    const w = ng.cast(ng.random.normal(ng.random.key(2), [24, 36]), dtype);
    const img = ng.cast(ng.random.normal(ng.random.key(3), [2, 6, 16, 16]), dtype);
    const dw = ng.cast(ng.random.normal(ng.random.key(4), [6, 1, 7, 7]), dtype);
    const k3 = ng.cast(ng.random.normal(ng.random.key(5), [5, 6, 3, 3]), dtype);
    out.push({ label: `${dtype} elementwise and reductions`, program: ng.trace((x: ng.Tensor) => [ng.exp(x).mul(x).add(1), ng.sum(x, 2), ng.max(x, [0, 1]), ng.erf(x), ng.cast(x, 'f32')], a) });
    out.push({ label: `${dtype} matmul with epilogue`, program: ng.trace((x: ng.Tensor, y: ng.Tensor) => ng.nn.gelu(ng.matmul(x, y)).add(1), a, w) });
    out.push({ label: `${dtype} depthwise 7x7 and 3x3 convolutions`, program: ng.trace((x: ng.Tensor, d: ng.Tensor, k: ng.Tensor) => [ng.conv2d(x, d, { padding: 3, groups: 6 }), ng.conv2d(x, k, { padding: 1 })], img, dw, k3) });
    out.push({ label: `${dtype} matmul gradient`, program: ng.trace((x: ng.Tensor, y: ng.Tensor) => ng.grad((p: ng.Tensor) => ng.sum(ng.matmul(p, y).mul(ng.matmul(p, y))))(x), ng.cast(a, 'f32').cast(dtype), w) });
  }
  return out;
}

/** The whole corpus but the random programs. */
export function modelAndDataPrograms(): CorpusProgram[] {
  const tiny = convnextStep('tiny', 2, 32);
  const atto = convnextStep('atto', 2, 64);
  return [
    { label: 'tiny ConvNeXt V2 training step', ...tiny },
    { label: 'tiny ConvNeXt V2 training step, bf16 mixed precision', program: mixedPrecision(tiny.program, 'bf16'), donated: tiny.donated },
    { label: 'tiny ConvNeXt V2 training step, tf32', ...tiny, tf32: true },
    { label: 'atto ConvNeXt V2 training step', ...atto },
    { label: 'atto ConvNeXt V2 training step, bf16 mixed precision', program: mixedPrecision(atto.program, 'bf16'), donated: atto.donated },
    { label: 'tiny FCMAE training step', program: fcmaeStep() },
    // the SIMT GEMM's row statistics (LayerNorm's mean and variance in pwconv1's prologue) and
    // reducing epilogue (GRN's sum of squares; with the CPU's recompute limit pwconv1 stores the
    // GELU output it needs); f32 without tf32 takes the SIMT GEMM, the tensor-core one has neither
    { label: 'tiny ConvNeXt V2 inference with prologue statistics and reducing epilogues', program: convnextInference(), caps: { prologueStats: true, reducingEpilogues: true, recomputeCostLimit: 6 } },
    // bf16 and tf32 GEMMs with row statistics (the device's default caps) or reducing epilogues
    // fall back from the tensor-core GEMM to the SIMT one, kernel by kernel (kernels.ts gemmPath)
    { label: 'tiny ConvNeXt V2 inference, bf16 mixed precision', program: mixedPrecision(convnextInference(), 'bf16') },
    { label: 'tiny ConvNeXt V2 inference, tf32', program: convnextInference(), tf32: true },
    { label: 'tiny ConvNeXt V2 inference, bf16 mixed precision, reducing epilogues', program: mixedPrecision(convnextInference(), 'bf16'), caps: { reducingEpilogues: true, recomputeCostLimit: 6 } },
    ...dataPrograms(),
    ...halfPrograms(),
  ];
}
