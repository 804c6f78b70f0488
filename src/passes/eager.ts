/**
 * Eager execution on a compiled backend: each primitive application outside jit runs as a
 * single-op program, compiled once per (primitive, params, input types) and cached.
 * Higher-order primitives (regions, checkpoints) run their bodies op by op.
 */
import type { Executable } from '../codegen/kernel/device.js';
import { HostArray } from '../ir/host.js';
import type { PrimName } from '../ir/primitive.js';
import { type Atom, Literal, Program, Var } from '../ir/program.js';
import { type EagerExecutor, setEagerExecutor } from '../ir/trace.js';
import { PRIMS } from '../ir/primitives/index.js';
import { type BackendName, getDevice } from './backends.js';
import { HIGHER_ORDER } from './inline.js';
import { lower } from './pipeline.js';


/** Counters of the compiled eager path (single-op programs compiled, and runs). */
export const eagerStats = { compiled: 0, runs: 0 };

export function compiledEagerExecutor(backend: BackendName, maxEntries = 4096): EagerExecutor {
  const device = getDevice(backend);
  const cache = new Map<string, Executable>();
  const run: EagerExecutor = (prim, inputs, params) => {
    // a region's body runs op by op, each op compiled like any other
    if (HIGHER_ORDER.has(prim)) return runBody(params.body as Program, inputs, run);
    eagerStats.runs++;
    const key = `${prim}|${JSON.stringify(params)}|${inputs.map((h) => `${h.dtype}[${h.shape.join(',')}]`).join(';')}`;
    let exec = cache.get(key);
    if (!exec) {
      const ins = inputs.map((h) => new Var({ shape: [...h.shape], dtype: h.dtype }));
      const outAvals = PRIMS[prim as PrimName].shape(ins.map((v) => v.aval), params as never);
      const outs = outAvals.map((a) => new Var(a));
      const program = new Program(ins, [{ prim, params, inputs: ins, outputs: outs }], outs);
      const low = lower(program);
      exec = device.compile(low.graph, low.plan);
      eagerStats.compiled++;
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
      cache.set(key, exec);
    }
    return exec.run(inputs as HostArray[]);
  };
  return run;
}

function runBody(p: Program, inputs: readonly HostArray[], run: EagerExecutor): HostArray[] {
  const env = new Map<Var, HostArray>();
  p.inputs.forEach((v, i) => env.set(v, inputs[i]!));
  for (const c of p.consts) env.set(c.v, c.value);
  const read = (a: Atom): HostArray => (a instanceof Literal ? HostArray.scalar(a.value, a.dtype) : env.get(a)!);
  for (const e of p.eqns) {
    const outs = run(e.prim as PrimName, e.inputs.map(read), e.params as Record<string, unknown>);
    e.outputs.forEach((v, i) => env.set(v, outs[i]!));
  }
  return p.outputs.map(read);
}

/** Makes eager operations run on `backend` ('interpreter' restores the reference interpreter). */
export function setEagerBackend(backend: BackendName | 'interpreter'): void {
  setEagerExecutor(backend === 'interpreter' ? undefined : compiledEagerExecutor(backend));
}

/**
 * The library's default: eager operations run on the CPU backend (NEXGRAD_EAGER=interpreter
 * keeps the reference interpreter). Installed when this module is first imported, which the
 * public entry point (src/index.ts) does; the IR layer on its own always interprets.
 */
const envChoice = typeof process !== 'undefined' ? process.env.NEXGRAD_EAGER : undefined;
setEagerBackend(envChoice === 'interpreter' ? 'interpreter' : 'cpu');
