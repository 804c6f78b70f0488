/**
 * Tracing: a stack of trace contexts. While one is active every primitive application is
 * recorded into the innermost context as an equation; with none active it runs eagerly on the
 * device its operands live on (see `bind`).
 */
import { type DeviceArray, getDefaultBackend, resolveDevice } from './device_array.js';
import { NexgradError, OpError } from './errors.js';
import { HostArray } from './host.js';
import { type AnyParams, type Atom, type Eqn, Literal, makeEqn, Program, type ProgramConst, Var, type AbstractValue } from './program.js';
import type { PrimName, PrimParams } from './primitive.js';
import { PRIMS } from './primitives/index.js';
import { Tensor } from './tensor.js';

export class TraceContext {
  readonly eqns: Eqn[] = [];
  readonly consts: ProgramConst[] = [];
  /** Tracers of enclosing traces used inside this one: extra program inputs. */
  readonly captured: { tensor: Tensor; v: Var }[] = [];
  private readonly lifted = new Map<Tensor, Var>();
  active = true;

  constructor(readonly level: number) {}

  /** The atom standing for `t` inside this trace (lifting outer tracers and concrete data). */
  atomFor(t: Tensor): Atom {
    if (t._trace === this) return t._var!;
    if (t._trace && !t._trace.active) {
      throw new NexgradError(
        `a traced tensor ${t.dtype}[${t.shape.join(',')}] escaped the function it was traced in; return it instead of keeping it`,
      );
    }
    const host = t._host;
    if (host && host.shape.length === 0 && !host.wide) return new Literal(host.data[0]!, host.dtype);
    let v = this.lifted.get(t);
    if (v) return v;
    v = new Var({ shape: t.shape, dtype: t.dtype });
    this.lifted.set(t, v);
    // host data becomes a constant of the program; outer tracers and arrays on other devices
    // become inputs (a device array is never copied to the host to be baked in)
    if (host) this.consts.push({ v, value: host });
    else this.captured.push({ tensor: t, v });
    return v;
  }
}

const stack: TraceContext[] = [];

// ---------------------------------------------------------------------------------------
// named scopes

/** The scope path of traced equations (`stages.1.0`), set by namedScope; '' outside any. */
let scopePath = '';
/** The scope each traced variable was created in (kernels are named after it; see passes/inline.ts). */
const varScopes = new WeakMap<Var, string>();

/** @internal The scope a traced variable was created in, if any. */
export function scopeOf(v: Var): string | undefined {
  return varScopes.get(v);
}

/** @internal Runs fn with the scope path set to `path` (autodiff replays equations in their own scope). */
export function withScopePath<T>(path: string | undefined, fn: () => T): T {
  const saved = scopePath;
  scopePath = path ?? '';
  try {
    return fn();
  } finally {
    scopePath = saved;
  }
}

/**
 * @internal Runs fn in the scope `v` was traced in (with `.suffix` appended), or in the current
 * one when v has none: autodiff replays forward equations and emits their backward there.
 */
export function inScopeOf<T>(v: Var | undefined, suffix: string | undefined, fn: () => T): T {
  const sc = v && varScopes.get(v);
  if (sc === undefined) return fn();
  return withScopePath(suffix ? `${sc}.${suffix}` : sc, fn);
}

const SCOPE_NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;

/**
 * Runs fn with every equation it traces tagged with the scope `name` (nested scopes join with
 * '.'), like jax.named_scope: kernels are named after their scope (`nexgrad ir --print
 * kernels` groups by it; profiles show it), and nothing else changes. Names are letters,
 * digits, _ and -, dot-separated.
 */
export function namedScope<T>(name: string, fn: () => T): T {
  if (typeof name !== 'string' || !SCOPE_NAME.test(name) || name.length > 96) {
    throw new OpError('namedScope', `a scope name is letters, digits, _ and - in dot-separated parts (at most 96 characters), got ${JSON.stringify(name)}`);
  }
  if (typeof fn !== 'function') throw new OpError('namedScope', 'the second argument must be a function');
  return withScopePath(scopePath ? `${scopePath}.${name}` : name, fn);
}

/**
 * Runs one primitive eagerly on a device's arrays. Without an executor the CPU runs the
 * reference interpreter's implementation; the compiler installs executors per backend (single-op
 * programs, compiled once and cached), keeping src/ir free of imports from above.
 */
export type EagerExecutor = (prim: PrimName, inputs: readonly DeviceArray[], params: Record<string, unknown>) => DeviceArray[];

let executorFor: (device: string) => EagerExecutor | undefined = () => undefined;

/** @internal installed by src/passes/eager.ts: the eager executor of a backend (undefined: the CPU interprets). */
export function setEagerExecutors(f: (device: string) => EagerExecutor | undefined): void {
  executorFor = f;
}

export function currentTrace(): TraceContext | undefined {
  return stack[stack.length - 1];
}

export function isTracing(): boolean {
  return stack.length > 0;
}

/** Applies a primitive: records it in the active trace, or evaluates it eagerly. */
export function bind<K extends PrimName>(prim: K, inputs: readonly Tensor[], params: PrimParams[K]): Tensor[] {
  const def = PRIMS[prim];
  inputs.forEach((t, i) => {
    if (t._trace && !t._trace.active) {
      throw new OpError(
        prim,
        `operand ${i + 1}, a traced tensor ${t.dtype}[${t.shape.join(',')}], escaped the function it was traced in (trace, jit or grad); return it instead of keeping it`,
      );
    }
  });
  const avals = inputs.map((t) => t.aval);
  const outAvals = def.shape(avals, params);
  const ctx = currentTrace();
  if (ctx) {
    const atoms = inputs.map((t) => ctx.atomFor(t));
    const outputs = outAvals.map((a) => new Var(a));
    if (scopePath) for (const v of outputs) varScopes.set(v, scopePath);
    ctx.eqns.push(makeEqn(prim, params as AnyParams, atoms, outputs));
    return outputs.map((v) => Tensor._traced(ctx, v));
  }
  return runEager(prim, inputs, params as Record<string, unknown>).map((a) => Tensor._wrap(a));
}

/**
 * Eager execution: on the device the operands live on (operands on the host are moved to it;
 * two different non-host devices are an error), on the default backend for an operation
 * without operands, and on the host when every operand is there.
 */
function runEager(prim: PrimName, inputs: readonly Tensor[], params: Record<string, unknown>): DeviceArray[] {
  let target: string | undefined;
  const arrays = inputs.map((t, i) => {
    const a = t._array;
    if (!a) throw new OpError(prim, `operand ${i + 1}, a traced tensor, escaped the function it was traced in; return it instead of keeping it`);
    if (a.device.name !== 'cpu') {
      if (target !== undefined && target !== a.device.name) {
        throw new OpError(prim, `operands live on different devices ('${target}' and '${a.device.name}'); move one with t.to(backend) or ng.devicePut`);
      }
      target = a.device.name;
    }
    return a;
  });
  if (inputs.length === 0) target = getDefaultBackend();
  if (target === undefined || target === 'cpu') {
    const hosts = arrays as HostArray[];
    const wide = hosts.some((h) => h.wide);
    const exec = wide ? undefined : executorFor('cpu');
    return exec ? exec(prim, hosts, params) : PRIMS[prim].impl(hosts, params as never, { wide });
  }
  const device = resolveDevice(target);
  const moved = arrays.map((a) => (a.device.name === target ? a : device.upload(a as HostArray)));
  const exec = executorFor(target);
  if (!exec) throw new OpError(prim, `no eager executor is installed for the '${target}' backend`);
  return exec(prim, moved, params);
}

export function bind1<K extends PrimName>(prim: K, inputs: readonly Tensor[], params: PrimParams[K]): Tensor {
  return bind(prim, inputs, params)[0]!;
}

export interface Traced {
  readonly program: Program;
  /** Tracers of enclosing traces the function used: the program's trailing inputs. */
  readonly captured: readonly Tensor[];
}

/**
 * Traces `fn` on fresh tracers with the given abstract values into a Program whose inputs are
 * the arguments followed by any captured outer tracers.
 */
export function traceFlat(fn: (...args: Tensor[]) => Tensor[], avals: readonly AbstractValue[]): Traced {
  const ctx = new TraceContext(stack.length);
  const inVars = avals.map((a) => new Var({ shape: [...a.shape], dtype: a.dtype }));
  stack.push(ctx);
  let outAtoms: Atom[];
  try {
    const outs = fn(...inVars.map((v) => Tensor._traced(ctx, v)));
    outAtoms = outs.map((t) => ctx.atomFor(t));
  } finally {
    stack.pop();
    ctx.active = false;
  }
  const program = new Program(
    [...inVars, ...ctx.captured.map((c) => c.v)],
    ctx.eqns,
    outAtoms,
    ctx.consts,
  );
  return { program, captured: ctx.captured.map((c) => c.tensor) };
}

const constTensors = new WeakMap<ProgramConst, Tensor>();

function constTensor(c: ProgramConst): Tensor {
  let t = constTensors.get(c);
  if (!t) {
    t = Tensor._concrete(c.value);
    constTensors.set(c, t);
  }
  return t;
}

export function literalTensor(l: Literal): Tensor {
  return Tensor._concrete(HostArray.scalar(l.value, l.dtype));
}

/** Reads an atom from an environment of tensors. */
export function readAtom(env: Map<Var, Tensor>, a: Atom): Tensor {
  if (a instanceof Literal) return literalTensor(a);
  const t = env.get(a);
  if (!t) throw new NexgradError(`internal: variable used before definition in program`);
  return t;
}

/** Seeds an environment with a program's inputs and constants. */
export function programEnv(p: Program, inputs: readonly Tensor[]): Map<Var, Tensor> {
  if (inputs.length !== p.inputs.length) {
    throw new NexgradError(`program expects ${p.inputs.length} inputs, got ${inputs.length}`);
  }
  const env = new Map<Var, Tensor>();
  p.inputs.forEach((v, i) => env.set(v, inputs[i]!));
  for (const c of p.consts) env.set(c.v, constTensor(c));
  return env;
}

/** Evaluates a program by binding each equation (eagerly, or into the active trace). */
export function evalProgram(p: Program, inputs: readonly Tensor[]): Tensor[] {
  const env = programEnv(p, inputs);
  for (const e of p.eqns) {
    const outs = bind(e.prim, e.inputs.map((a) => readAtom(env, a)), e.params);
    e.outputs.forEach((v, i) => env.set(v, outs[i]!));
  }
  return p.outputs.map((a) => readAtom(env, a));
}
