/**
 * Mixed precision (jit option `precision: 'bf16'`): a Program -> Program pass on the traced
 * (already differentiated) step. Policy:
 *   - matmuls and convolutions take bf16 operands (f32 operands are cast; the kernels accumulate
 *     in f32) and produce bf16, cast back to f32 for their consumers;
 *   - every other operation computes in f32: reductions (LayerNorm/GRN statistics, losses,
 *     bias gradients) and the regions' bodies see f32 values;
 *   - f32 program inputs and outputs keep their dtype, and so does every value that flows into
 *     a program output through elementwise and view operations only: master weights, the
 *     optimizer's state and its update arithmetic stay f32;
 *   - activations are stored in bf16: a value derived from a matmul or convolution that several
 *     operations read (so it is likely materialised, e.g. saved for the backward pass) is
 *     rounded to bf16 once, and its readers widen that copy. Small values (per-channel
 *     statistics, scalars) stay f32: they cost no bandwidth and their precision matters.
 * Bodies of regions, checkpoints and custom VJPs get the matmul/convolution rule; their
 * inputs and outputs keep their dtypes.
 */
import type { DType } from '../ir/dtype.js';
import { NexgradError } from '../ir/errors.js';
import { type AnyParams, type Atom, type Eqn, paramsOf, Program, Var } from '../ir/program.js';
import { sizeOf } from '../ir/shape.js';
import { ELEMENTWISE, HIGHER_ORDER, VIEW } from './prim_kinds.js';
import { ProgramBuilder } from './rewrite.js';

export type Precision = 'f32' | 'bf16';
export const PRECISIONS: readonly Precision[] = ['f32', 'bf16'];

const CONTRACTIONS: ReadonlySet<string> = new Set(['dot_general', 'conv_general']);

/** Activations smaller than this (elements) are not rounded for storage. */
export const MIN_STORED_ELEMENTS = 4096;

/** The sub-programs a higher-order equation holds, by param name. */
const BODY_PARAMS: Readonly<Record<string, readonly string[]>> = { region: ['body'], checkpoint: ['body'], custom_vjp: ['body', 'fwd', 'bwd'] };

const isF32Var = (a: Atom): a is Var => a instanceof Var && a.aval.dtype === 'f32';

/** The bodies of a higher-order equation. */
function bodiesOf(e: Eqn): Program[] {
  const params = paramsOf(e);
  return (BODY_PARAMS[e.prim] ?? []).map((k) => params[k]).filter((b): b is Program => b instanceof Program);
}

function containsContraction(p: Program): boolean {
  return p.eqns.some((e) => CONTRACTIONS.has(e.prim) || bodiesOf(e).some(containsContraction));
}

/** Vars that flow into a program output through elementwise and view operations only. */
function highRequired(p: Program): Set<Var> {
  const high = new Set<Var>(p.outputs.filter((a): a is Var => a instanceof Var));
  for (let i = p.eqns.length - 1; i >= 0; i--) {
    const e = p.eqns[i]!;
    if (!(ELEMENTWISE.has(e.prim) || VIEW.has(e.prim)) || !e.outputs.some((o) => high.has(o))) continue;
    for (const a of e.inputs) if (a instanceof Var) high.add(a);
  }
  return high;
}

/** Vars derived from a matmul or convolution (activations and their gradients). */
function activations(p: Program): Set<Var> {
  const act = new Set<Var>();
  for (const e of p.eqns) {
    const derived = CONTRACTIONS.has(e.prim) || e.inputs.some((a) => a instanceof Var && act.has(a)) || bodiesOf(e).some(containsContraction);
    if (derived) e.outputs.forEach((o) => act.add(o));
  }
  return act;
}

/**
 * How many reads a var gets that would each need it stored: every non-contraction consumer,
 * plus one for all contraction consumers together (they share one bf16 copy).
 */
function storedReads(p: Program): Map<Var, number> {
  const others = new Map<Var, number>();
  const byContraction = new Set<Var>();
  for (const e of p.eqns) {
    for (const a of new Set(e.inputs)) {
      if (!(a instanceof Var)) continue;
      if (CONTRACTIONS.has(e.prim)) byContraction.add(a);
      else others.set(a, (others.get(a) ?? 0) + 1);
    }
  }
  const out = new Map<Var, number>();
  for (const v of new Set([...others.keys(), ...byContraction])) out.set(v, (others.get(v) ?? 0) + (byContraction.has(v) ? 1 : 0));
  return out;
}

class LowBuilder extends ProgramBuilder {
  /** A (new-program) f32 atom -> its bf16 form, when one exists. */
  private readonly lowOf = new Map<Atom, Atom>();

  constructor(private readonly low: DType) {
    super();
  }

  cast(a: Atom, dtype: DType): Var {
    const v = new Var({ shape: a.aval.shape, dtype });
    this.emit('cast', { dtype }, [a], [v]);
    return v;
  }

  /** The bf16 form of a (new-program) atom, cast once. */
  toLow(a: Atom): Atom {
    let l = this.lowOf.get(a);
    if (!l) {
      l = this.cast(a, this.low);
      this.lowOf.set(a, l);
    }
    return l;
  }

  /** Replaces `v` (an old var) by f32 widening of a bf16 copy of what stands for it now. */
  roundForStorage(v: Var): void {
    const low = this.toLow(this.read(v));
    const wide = this.cast(low, 'f32');
    this.lowOf.set(wide, low);
    this.alias(v, wide);
  }

  /** A matmul or convolution on bf16 operands; its (old) output var reads the f32 widening. */
  contraction(e: Eqn): void {
    const out = e.outputs[0]!;
    const product = new Var({ shape: out.aval.shape, dtype: this.low });
    this.emit(e.prim, paramsOf(e), e.inputs.map((a) => this.toLow(this.read(a))), [product]);
    const wide = this.cast(product, 'f32');
    this.lowOf.set(wide, product);
    this.alias(out, wide);
  }

  /** A higher-order equation with the contraction rule applied inside its bodies. */
  higherOrder(e: Eqn): void {
    const params: Record<string, unknown> = { ...paramsOf(e) };
    for (const k of BODY_PARAMS[e.prim] ?? []) {
      if (params[k] instanceof Program) params[k] = lowerContractions(params[k], this.low);
    }
    const outs = e.outputs.map((v) => new Var(v.aval));
    this.emit(e.prim, params as AnyParams, e.inputs.map((a) => this.read(a)), outs);
    e.outputs.forEach((v, i) => this.alias(v, outs[i]!));
  }

  /** One equation: contractions on f32 operands in bf16, bodies rewritten, the rest copied. */
  rewrite(e: Eqn): void {
    if (CONTRACTIONS.has(e.prim) && e.inputs.every(isF32Var)) this.contraction(e);
    else if (HIGHER_ORDER.has(e.prim)) this.higherOrder(e);
    else this.copy(e);
  }
}

/** The contraction rule alone (for bodies: their inputs and outputs keep their dtypes). */
function lowerContractions(p: Program, low: DType): Program {
  const b = new LowBuilder(low);
  for (const e of p.eqns) b.rewrite(e);
  return b.finish(p);
}

/** The program under a precision policy (see the file comment); 'f32' returns it unchanged. */
export function mixedPrecision(p: Program, precision: Precision): Program {
  if (precision === 'f32') return p;
  if (precision !== 'bf16') throw new NexgradError(`mixed precision: unknown precision ${JSON.stringify(precision)}; expected one of ${PRECISIONS.join(', ')}`);
  const high = highRequired(p);
  const act = activations(p);
  const reads = storedReads(p);
  const stored = (v: Var): boolean =>
    v.aval.dtype === 'f32' && act.has(v) && !high.has(v) && (reads.get(v) ?? 0) >= 2 && sizeOf(v.aval.shape) >= MIN_STORED_ELEMENTS;
  const b = new LowBuilder('bf16');
  for (const e of p.eqns) {
    b.rewrite(e);
    // a contraction's output is already stored in bf16
    if (!(CONTRACTIONS.has(e.prim) && e.inputs.every(isF32Var))) for (const v of e.outputs) if (stored(v)) b.roundForStorage(v);
  }
  return b.finish(p);
}
