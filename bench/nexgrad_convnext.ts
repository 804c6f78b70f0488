/**
 * The nexgrad side of the CPU benchmark: convnextv2.apply under jit on the CPU backend, and a
 * jitted training step (forward + cross-entropy + backward + AdamW) with the parameters and the
 * optimizer state donated. nexgrad is imported dynamically so that the benchmark still runs the
 * other frameworks while nexgrad (or its CPU backend) cannot load.
 */
import type { NamedArray } from './weights.js';
import type { AdamWConfig } from './tfjs_convnext.js';

type NG = typeof import('../src/index.js');
type Tensor = import('../src/index.js').Tensor;
type Params = import('../src/convnextv2/model.js').ConvNeXtV2Params;
type AdamWState = import('../src/nn/optim.js').AdamWState;

let ngModule: NG | undefined;

/** Imports nexgrad and checks that the CPU backend is there; throws the reason otherwise. */
export async function loadNexgrad(): Promise<NG> {
  if (ngModule) return ngModule;
  const ng = (await import('../src/index.js')) as NG;
  if (!ng.availableBackends().includes('cpu')) throw new Error(`the cpu backend is not available (backends: ${ng.availableBackends().join(', ') || 'none'})`);
  ngModule = ng;
  return ng;
}

/**
 * The CPU device jit will use, after applying BENCH_NEXGRAD_THREADS (a count or 'auto') when set
 * (otherwise nexgrad's default device is used as is); returns its id.
 */
export async function configureDevice(): Promise<string> {
  const backends = await import('../src/passes/backends.js');
  const t = process.env.BENCH_NEXGRAD_THREADS;
  if (t !== undefined && t !== '') {
    if (t !== 'auto' && !(Number.isInteger(Number(t)) && Number(t) >= 1)) throw new Error(`BENCH_NEXGRAD_THREADS must be a positive integer or 'auto', got ${JSON.stringify(t)}`);
    const { createCpuDevice } = await import('../src/codegen/cpu/device.js');
    const dev = createCpuDevice({ threads: t === 'auto' ? 'auto' : Number(t) });
    backends.registerBackend('cpu', () => dev);
  }
  return backends.getDevice('cpu').id;
}

/** The parameter tree (numeric name segments as array indices), copying the host arrays. */
export function buildParams(ng: NG, ws: readonly NamedArray[]): Params {
  const root: Record<string, unknown> = {};
  for (const w of ws) {
    const parts = w.name.split('.');
    let node: Record<string, unknown> | unknown[] = root;
    parts.forEach((seg, i) => {
      const last = i === parts.length - 1;
      const nextIsIndex = !last && /^\d+$/.test(parts[i + 1]!);
      const key: string | number = /^\d+$/.test(seg) ? Number(seg) : seg;
      const container = node as Record<string | number, unknown>;
      if (last) {
        container[key] = ng.fromHost('f32', w.shape, w.data.slice());
      } else {
        container[key] ??= nextIsIndex ? [] : {};
        node = container[key] as Record<string, unknown> | unknown[];
      }
    });
  }
  return root as unknown as Params;
}

export function imagesTensor(ng: NG, data: Float32Array, shape: number[]): Tensor {
  return ng.fromHost('f32', shape, data.slice());
}

export function labelsTensor(ng: NG, data: Int32Array): Tensor {
  return ng.fromHost('i32', [data.length], data.slice());
}

/** A jitted inference function: (params, NCHW images) -> logits. */
export function makeForward(ng: NG) {
  const cfg = ng.convnextv2.config('atto');
  return ng.jit((p: Params, x: Tensor) => ng.convnextv2.apply(p, x, { cfg }), { backend: 'cpu' });
}

export interface StepOut {
  loss: Tensor;
  params: Params;
  state: AdamWState;
}

/** A jitted training step with params (arg 0) and optimizer state (arg 1) donated. */
export function makeTrainer(ng: NG, opt: AdamWConfig) {
  const cfg = ng.convnextv2.config('atto');
  const adamw = ng.nn.adamw({ lr: opt.lr, betas: opt.betas, eps: opt.eps, weightDecay: opt.weightDecay });
  const lossFn = (p: Params, x: Tensor, y: Tensor): Tensor => ng.nn.crossEntropy(ng.convnextv2.apply(p, x, { cfg }), y);
  const step = ng.jit(
    (p: Params, s: AdamWState, x: Tensor, y: Tensor): StepOut => {
      const [loss, grads] = ng.valueAndGrad(lossFn)(p, x, y) as [Tensor, Params];
      const r = adamw.update(grads, s, p);
      return { loss, params: r.params, state: r.state };
    },
    { backend: 'cpu', donate: [0, 1] },
  );
  return { step, initState: (p: Params): AdamWState => adamw.init(p) };
}
