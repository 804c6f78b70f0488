/**
 * Eager execution on a compiled backend: each primitive application outside jit runs as a
 * single-op program, compiled once per (primitive, params, input types) and cached.
 * Higher-order primitives (regions, checkpoints) run their bodies op by op.
 */
import type { Executable } from '../codegen/kernel/device.js';
import type { DeviceArray } from '../ir/device_array.js';
import { HostArray } from '../ir/host.js';
import type { PrimName } from '../ir/primitive.js';
import { type Atom, Literal, makeEqn, Program, Var } from '../ir/program.js';
import { type EagerExecutor, setEagerExecutors } from '../ir/trace.js';
import { PRIMS } from '../ir/primitives/index.js';
import { type BackendName, getDevice } from './backends.js';
import { HIGHER_ORDER } from './prim_kinds.js';
import { lower } from './pipeline.js';
import { exactKey } from '../ir/exact_key.js';

/** Counters of the compiled eager path (single-op programs compiled, and runs). */
export const eagerStats = { compiled: 0, runs: 0 };

export function compiledEagerExecutor(backend: BackendName, maxEntries = 4096): EagerExecutor {
  const device = getDevice(backend);
  const cache = new Map<string, Executable>();
  const run: EagerExecutor = (prim, inputs, params) => {
    // a region's body runs op by op, each op compiled like any other
    if (HIGHER_ORDER.has(prim)) return runBody(params.body as Program, inputs, run, (h) => device.upload(h));
    eagerStats.runs++;
    const key = `${prim}|${exactKey(params, prim)}|${inputs.map((h) => `${h.dtype}[${h.shape.join(',')}]`).join(';')}`;
    let exec = cache.get(key);
    if (!exec) {
      const ins = inputs.map((h) => new Var({ shape: [...h.shape], dtype: h.dtype }));
      const outAvals = PRIMS[prim as PrimName].shape(ins.map((v) => v.aval), params as never);
      const outs = outAvals.map((a) => new Var(a));
      const program = new Program(ins, [makeEqn(prim, params, ins, outs)], outs);
      const low = lower(program, undefined, device.caps);
      exec = device.compile(low.graph, low.plan);
      eagerStats.compiled++;
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
      cache.set(key, exec);
    }
    return exec.run(inputs);
  };
  return run;
}

function runBody(p: Program, inputs: readonly DeviceArray[], run: EagerExecutor, upload: (h: HostArray) => DeviceArray): DeviceArray[] {
  const env = new Map<Var, DeviceArray>();
  p.inputs.forEach((v, i) => env.set(v, inputs[i]!));
  for (const c of p.consts) env.set(c.v, upload(c.value));
  const read = (a: Atom): DeviceArray => (a instanceof Literal ? upload(HostArray.scalar(a.value, a.dtype)) : env.get(a)!);
  for (const e of p.eqns) {
    const outs = run(e.prim as PrimName, e.inputs.map(read), e.params as Record<string, unknown>);
    e.outputs.forEach((v, i) => env.set(v, outs[i]!));
  }
  return p.outputs.map(read);
}

let cpuMode: 'cpu' | 'interpreter' = 'cpu';
const executors = new Map<string, EagerExecutor>();

setEagerExecutors((backend) => {
  if (backend === 'cpu' && cpuMode === 'interpreter') return undefined;
  let e = executors.get(backend);
  if (!e) {
    e = compiledEagerExecutor(backend);
    executors.set(backend, e);
  }
  return e;
});

/**
 * How eager operations on CPU tensors run: compiled by the CPU backend ('cpu', the default), or
 * on the reference interpreter ('interpreter'). Tensors on other devices always run there.
 */
export function setEagerBackend(backend: 'cpu' | 'interpreter'): void {
  cpuMode = backend;
}

/** The library's default (NEXGRAD_EAGER=interpreter keeps the reference interpreter). */
const envChoice = typeof process !== 'undefined' ? process.env.NEXGRAD_EAGER : undefined;
setEagerBackend(envChoice === 'interpreter' ? 'interpreter' : 'cpu');
