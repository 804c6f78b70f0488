/**
 * Eager execution on a compiled backend: each primitive application outside jit runs as a
 * single-op program, compiled once per (primitive, params, input types) and cached.
 * Higher-order primitives (regions, checkpoints) run their bodies op by op.
 */
import type { Executable } from '../codegen/device.js';
import type { HostArray } from '../ir/host.js';
import { interpretHost } from '../ir/interpreter.js';
import type { PrimName } from '../ir/primitive.js';
import { Program, Var } from '../ir/program.js';
import { type EagerExecutor, setEagerExecutor } from '../ir/trace.js';
import { PRIMS } from '../ir/primitives/index.js';
import { type BackendName, getDevice } from './backends.js';
import { lower } from './pipeline.js';

const HIGHER_ORDER = new Set(['region', 'checkpoint', 'custom_vjp']);

export function compiledEagerExecutor(backend: BackendName, maxEntries = 4096): EagerExecutor {
  const device = getDevice(backend);
  const cache = new Map<string, Executable>();
  return (prim, inputs, params) => {
    if (HIGHER_ORDER.has(prim)) return interpretHost(params.body as Program, inputs, { wide: false });
    const key = `${prim}|${JSON.stringify(params)}|${inputs.map((h) => `${h.dtype}[${h.shape.join(',')}]`).join(';')}`;
    let exec = cache.get(key);
    if (!exec) {
      const ins = inputs.map((h) => new Var({ shape: [...h.shape], dtype: h.dtype }));
      const outAvals = PRIMS[prim as PrimName].shape(ins.map((v) => v.aval), params as never);
      const outs = outAvals.map((a) => new Var(a));
      const program = new Program(ins, [{ prim, params, inputs: ins, outputs: outs }], outs);
      const low = lower(program);
      exec = device.compile(low.graph, low.plan);
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
      cache.set(key, exec);
    }
    return exec.run(inputs as HostArray[]);
  };
}

/** Makes eager operations run on `backend` ('interpreter' restores the reference interpreter). */
export function setEagerBackend(backend: BackendName | 'interpreter'): void {
  setEagerExecutor(backend === 'interpreter' ? undefined : compiledEagerExecutor(backend));
}
