/**
 * Eager execution on a compiled backend: each primitive application outside jit runs as a
 * single-op program, compiled once per (primitive, params, input types) and cached. A named
 * composite (a region: layerNorm, gelu, grn, a random draw ...) runs as one fused program, so
 * it computes exactly as it does inside jit.
 */
import type { Executable } from '../codegen/kernel/device.js';
import type { HostArray } from '../ir/host.js';
import type { PrimName } from '../ir/primitive.js';
import { makeEqn, Program, Var } from '../ir/program.js';
import { type EagerExecutor, setEagerExecutors } from '../ir/trace.js';
import { PRIMS } from '../ir/primitives/index.js';
import { type BackendName, getDevice } from './backends.js';
import { HIGHER_ORDER } from './prim_kinds.js';
import { lower } from './pipeline.js';
import { exactKey } from '../ir/exact_key.js';

/** Counters of the compiled eager path (single-op programs compiled, and runs). */
export const eagerStats = { compiled: 0, runs: 0 };

interface Entry {
  readonly exec: Executable;
  /** A region's constants, compared byte for byte on every hit (the key holds only their hash). */
  readonly consts: readonly HostArray[];
}

export function compiledEagerExecutor(backend: BackendName, maxEntries = 4096): EagerExecutor {
  const device = getDevice(backend);
  const cache = new Map<string, Entry>();
  const run: EagerExecutor = (prim, inputs, params) => {
    eagerStats.runs++;
    const types = inputs.map((h) => `${h.dtype}[${h.shape.join(',')}]`).join(';');
    const body = HIGHER_ORDER.has(prim) ? (params.body as Program) : undefined;
    // an identity body (stopGradient, a pass-through region) returns its operands: an alias, not a copy
    const passed = body?.outputs.map((o) => (o instanceof Var ? body.inputs.indexOf(o) : -1));
    if (passed && passed.every((i) => i >= 0)) return passed.map((i) => inputs[i]!);
    const key = `${prim}|${body ? bodyKey(params, body) : exactKey(params, prim)}|${types}`;
    const consts = body ? body.consts.map((c) => c.value) : [];
    let entry = cache.get(key);
    if (!entry || !sameConsts(entry.consts, consts)) {
      const ins = inputs.map((h) => new Var({ shape: [...h.shape], dtype: h.dtype }));
      const outAvals = PRIMS[prim as PrimName].shape(ins.map((v) => v.aval), params as never);
      const outs = outAvals.map((a) => new Var(a));
      const program = new Program(ins, [makeEqn(prim, params, ins, outs)], outs);
      const low = lower(program, undefined, device.caps);
      entry = { exec: device.compile(low.graph, low.plan), consts };
      eagerStats.compiled++;
      cache.delete(key);
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value!);
      cache.set(key, entry);
    }
    return entry.exec.run(inputs);
  };
  return run;
}

function bytesOf(h: HostArray): Uint8Array {
  return new Uint8Array(h.data.buffer, h.data.byteOffset, h.data.byteLength);
}

function sameConsts(a: readonly HostArray[], b: readonly HostArray[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i]!;
    if (x === y) return true;
    const xb = bytesOf(x);
    const yb = bytesOf(y);
    return x.dtype === y.dtype && xb.length === yb.length && xb.every((v, j) => v === yb[j]);
  });
}

/**
 * The cache key of a higher-order primitive's params: a region is retraced on every call, so
 * its body is keyed by structure (its printed program, name and attrs) and a hash of its
 * constants' bytes; a hit is confirmed by comparing the constants themselves.
 */
function bodyKey(params: Readonly<Record<string, unknown>>, body: Program): string {
  let h = 0x811c9dc5;
  for (const c of body.consts) {
    const bytes = bytesOf(c.value);
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193) >>> 0;
  }
  const named = params.name === undefined ? '' : `${String(params.name)}|${exactKey(params.attrs ?? {}, 'region attrs')}|`;
  return `${named}${body.toString()}|consts ${h.toString(16)}`;
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
