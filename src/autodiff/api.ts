/** The public autodiff transformations over pytree functions. */
import { isFloat } from '../ir/dtype.js';
import { NexgradError, OpError } from '../ir/errors.js';
import { traceTree } from '../ir/functional.js';
import * as ops from '../ir/ops.js';
import type { MaybeTensor } from '../ir/primitive.js';
import { treeFlatten, treeUnflatten } from '../ir/pytree.js';
import type { Tensor } from '../ir/tensor.js';
import { bind, traceFlat } from '../ir/trace.js';
import { jvpProgram } from './jvp_program.js';
import { vjpProgram } from './vjp_program.js';

type Fn = (...args: any[]) => any;

// ---------------------------------------------------------------------------------------
// result types, derived from the function's signature (as JAX's typeshed does): the gradient
// with respect to an argument has that argument's (pytree) type.

/** The gradients for `argnums` A of F: one argument's type, or a tuple for an array of positions. */
export type GradsOf<F extends Fn, A> = A extends number
  ? Parameters<F>[A]
  : A extends readonly number[]
    ? { -readonly [K in keyof A]: Parameters<F>[A[K] & number] }
    : Parameters<F>[0];

type ArgnumsOf<O> = O extends { argnums: infer A } ? (A extends undefined ? 0 : A) : 0;
type HasAux<O> = O extends { hasAux: true } ? true : false;
/** With hasAux, F returns [value, aux]. */
export type AuxOf<F extends Fn> = ReturnType<F> extends readonly [unknown, infer X] ? X : unknown;

/** What grad(fn, opts)(...) returns: the gradients, or [gradients, aux] with hasAux. */
export type GradResult<F extends Fn, O> = HasAux<O> extends true ? [GradsOf<F, ArgnumsOf<O>>, AuxOf<F>] : GradsOf<F, ArgnumsOf<O>>;

/** What valueAndGrad(fn, opts)(...) returns: [value, gradients], or [[value, aux], gradients]. */
export type ValueAndGradResult<F extends Fn, O> = HasAux<O> extends true
  ? [[Tensor, AuxOf<F>], GradsOf<F, ArgnumsOf<O>>]
  : [Tensor, GradsOf<F, ArgnumsOf<O>>];

function describeValue(x: unknown): string {
  if (x === null || x === undefined) return String(x);
  if (typeof x === 'number') return `the number ${x}`;
  if (typeof x === 'string') return `the string ${JSON.stringify(x)}`;
  if (Array.isArray(x)) return 'an array';
  return typeof x === 'object' ? `an instance of ${(x as object).constructor?.name ?? 'Object'}` : typeof x;
}

/** `ng.grad(5)` fails here, naming the transformation and what it was given. */
function checkFn(op: string, fn: unknown, what = 'the function to transform', position = 'first'): void {
  if (typeof fn !== 'function') throw new OpError(op, `the ${position} argument must be ${what}, got ${describeValue(fn)}`);
}

function checkOptions(op: string, opts: unknown): void {
  if (opts === undefined) return;
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) {
    throw new OpError(op, `options must be an object {argnums?, hasAux?}, got ${describeValue(opts)}`);
  }
  const o = opts as GradOptions;
  const a = o.argnums;
  const okNum = (n: unknown) => Number.isInteger(n) && (n as number) >= 0;
  if (a !== undefined && !(okNum(a) || (Array.isArray(a) && a.length > 0 && a.every(okNum)))) {
    throw new OpError(op, `argnums must be a non-negative integer or a non-empty array of them, got ${JSON.stringify(a)}`);
  }
  if (o.hasAux !== undefined && typeof o.hasAux !== 'boolean') throw new OpError(op, `hasAux must be a boolean, got ${describeValue(o.hasAux)}`);
}

function zerosFor(ct: MaybeTensor, like: Tensor): Tensor {
  return ct ?? ops.zerosLike(like);
}

/** vjp(fn, ...primals) -> [out, vjpFn]; vjpFn(outCotangent) returns one cotangent per primal. */
export function vjp<F extends Fn>(fn: F, ...primals: Parameters<F>): [ReturnType<F>, (ct: ReturnType<F>) => Parameters<F>] {
  checkFn('vjp', fn, 'the function to differentiate');
  const t = traceTree('vjp', fn, primals);
  const flats = primals.map((p, i) => treeFlatten(p, 'vjp', `argument ${i}`));
  const leaves = flats.flatMap((f) => f.leaves);
  const lin = vjpProgram(t.program, [...leaves, ...t.captured]);
  const out = treeUnflatten(t.outDef, lin.outputs);
  const vjpFn = (ct: unknown): Parameters<F> => {
    const fc = treeFlatten(ct, 'vjp', 'cotangent');
    if (fc.leaves.length !== lin.outputs.length) {
      throw new OpError('vjp', `the cotangent has ${fc.leaves.length} leaves, the output has ${lin.outputs.length}`);
    }
    fc.leaves.forEach((c, i) => {
      const o = lin.outputs[i]!;
      if (c.dtype !== o.dtype || c.shape.join() !== o.shape.join()) {
        throw new OpError('vjp', `cotangent ${i} is ${c.dtype}[${c.shape.join(',')}], the output is ${o.dtype}[${o.shape.join(',')}]`);
      }
    });
    const cts = lin.backward(fc.leaves);
    let k = 0;
    return flats.map((f) => treeUnflatten(f.def, f.leaves.map((l) => zerosFor(cts[k++] ?? null, l)))) as Parameters<F>;
  };
  return [out as ReturnType<F>, vjpFn];
}

/** jvp(fn, primals, tangents) -> [out, tangentOut]. */
export function jvp<F extends Fn>(fn: F, primals: Readonly<Parameters<F>>, tangents: Readonly<Parameters<F>>): [ReturnType<F>, ReturnType<F>] {
  checkFn('jvp', fn, 'the function to differentiate');
  if (!Array.isArray(primals) || !Array.isArray(tangents) || primals.length !== tangents.length) {
    throw new OpError('jvp', 'primals and tangents must be arrays of the same length');
  }
  const t = traceTree('jvp', fn, primals);
  const pl = primals.flatMap((p, i) => treeFlatten(p, 'jvp', `primal ${i}`).leaves);
  const tl = tangents.flatMap((p, i) => treeFlatten(p, 'jvp', `tangent ${i}`).leaves);
  if (pl.length !== tl.length) throw new OpError('jvp', `primals have ${pl.length} leaves, tangents ${tl.length}`);
  pl.forEach((p, i) => {
    const q = tl[i]!;
    if (p.dtype !== q.dtype || p.shape.join() !== q.shape.join()) {
      throw new OpError('jvp', `tangent ${i} is ${q.dtype}[${q.shape.join(',')}], its primal is ${p.dtype}[${p.shape.join(',')}]`);
    }
  });
  const r = jvpProgram(t.program, [...pl, ...t.captured], [...tl, ...t.captured.map(() => null)]);
  return [treeUnflatten<ReturnType<F>>(t.outDef, r.outputs), treeUnflatten<ReturnType<F>>(t.outDef, r.tangents.map((x, i) => zerosFor(x, r.outputs[i]!)))];
}

export interface GradOptions {
  /** Which arguments to differentiate (default 0); an array gives a tuple of gradients. */
  argnums?: number | readonly number[];
  /** fn returns [value, aux]; aux is passed through undifferentiated. */
  hasAux?: boolean;
}

function gradCore(op: string, fn: Fn, opts: GradOptions, args: unknown[]): { value: Tensor; aux: unknown; grads: unknown } {
  const argnums = opts.argnums ?? 0;
  const nums = typeof argnums === 'number' ? [argnums] : [...argnums];
  for (const n of nums) {
    if (!Number.isInteger(n) || n < 0 || n >= args.length) {
      throw new OpError(op, `argnums ${JSON.stringify(argnums)} is out of range for ${args.length} arguments`);
    }
  }
  if (new Set(nums).size !== nums.length) throw new OpError(op, `argnums ${JSON.stringify(argnums)} repeats an argument`);
  // Flatten the differentiated arguments before tracing (which sees them permuted), so that a
  // bad leaf is reported at its real position, e.g. `argument 1.w`.
  const flats = nums.map((i) => treeFlatten(args[i], op, `argument ${i}`));
  const fixed = args.map((_, i) => !nums.includes(i));
  // trace with the differentiated args first, in argnums order
  const order = [...nums, ...args.map((_, i) => i).filter((i) => fixed[i])];
  const permuted = order.map((i) => args[i]);
  const wrapped = (...p: unknown[]) => {
    const a = new Array<unknown>(args.length);
    order.forEach((i, j) => (a[i] = p[j]));
    const r = fn(...a);
    if (opts.hasAux && (!Array.isArray(r) || r.length !== 2)) {
      throw new OpError(op, `with hasAux the function must return [value, aux]`);
    }
    return r;
  };
  const t = traceTree(op, wrapped, permuted, order.map((i) => fixed[i]!));
  const valueDef = opts.hasAux && t.outDef.kind === 'array' ? t.outDef.children[0]! : t.outDef;
  if (valueDef.kind !== 'leaf' || (!opts.hasAux && t.program.outputs.length !== 1)) {
    throw new OpError(op, `the function must return a single scalar Tensor${opts.hasAux ? ' as the first element of [value, aux]' : ''}`);
  }
  const outAval = t.program.outputs[0]!.aval;
  if (outAval.shape.length !== 0 || !isFloat(outAval.dtype)) {
    throw new OpError(op, `the function must return a float scalar, got ${outAval.dtype}[${outAval.shape.join(',')}]`);
  }
  const leaves = flats.flatMap((f) => f.leaves);
  leaves.forEach((l) => {
    if (!isFloat(l.dtype)) throw new OpError(op, `cannot differentiate with respect to a ${l.dtype} input [${l.shape.join(',')}]; only float inputs have gradients`);
  });
  const lin = vjpProgram(t.program, [...leaves, ...t.captured]);
  const value = lin.outputs[0]!;
  const cts = lin.backward([ops.onesLike(value), ...lin.outputs.slice(1).map(() => null)]);
  let k = 0;
  const gs = flats.map((f) => treeUnflatten(f.def, f.leaves.map((l) => zerosFor(cts[k++] ?? null, l))));
  const aux = opts.hasAux ? (treeUnflatten(t.outDef, lin.outputs) as unknown[])[1] : undefined;
  return { value, aux, grads: typeof argnums === 'number' ? gs[0] : gs };
}

/**
 * grad(fn, {argnums, hasAux}) -> (...args) => gradients (and aux with hasAux). The result is
 * typed from fn: the gradient of argument i has argument i's type.
 */
export function grad<F extends Fn, const O extends GradOptions = {}>(fn: F, opts?: O): (...args: Parameters<F>) => GradResult<F, O> {
  checkFn('grad', fn, 'the function to differentiate');
  checkOptions('grad', opts);
  const o: GradOptions = opts ?? {};
  return (...args) => {
    const r = gradCore('grad', fn, o, args);
    return (o.hasAux ? [r.grads, r.aux] : r.grads) as GradResult<F, O>;
  };
}

/** valueAndGrad(fn, opts) -> (...args) => [value, grads] (or [[value, aux], grads]), typed from fn. */
export function valueAndGrad<F extends Fn, const O extends GradOptions = {}>(fn: F, opts?: O): (...args: Parameters<F>) => ValueAndGradResult<F, O> {
  checkFn('valueAndGrad', fn, 'the function to differentiate');
  checkOptions('valueAndGrad', opts);
  const o: GradOptions = opts ?? {};
  return (...args) => {
    const r = gradCore('valueAndGrad', fn, o, args);
    return [o.hasAux ? [r.value, r.aux] : r.value, r.grads] as ValueAndGradResult<F, O>;
  };
}

/** checkpoint(fn): the same function, whose intermediates are recomputed in the backward pass. */
export function checkpoint<F extends Fn>(fn: F): F {
  checkFn('checkpoint', fn);
  return ((...args: unknown[]) => {
    const t = traceTree('checkpoint', fn, args);
    const leaves = args.flatMap((a, i) => treeFlatten(a, 'checkpoint', `argument ${i}`).leaves);
    const outs = bind('checkpoint', [...leaves, ...t.captured], { body: t.program });
    return treeUnflatten(t.outDef, outs);
  }) as F;
}

/**
 * customVjp(fn, fwd, bwd): fn with a user-defined reverse-mode derivative.
 * fwd(...args) returns [out, residuals] (residuals: a pytree of Tensors);
 * bwd(residuals, outCotangent) returns an array with one cotangent pytree per argument.
 */
export function customVjp<F extends Fn>(fn: F, fwd: (...args: any[]) => [any, any], bwd: (res: any, ct: any) => any[]): F {
  checkFn('customVjp', fn);
  checkFn('customVjp', fwd, 'fwd, a function returning [output, residuals]', 'second');
  checkFn('customVjp', bwd, 'bwd, a function (residuals, cotangent) => cotangents', 'third');
  return ((...args: unknown[]) => {
    const body = traceTree('customVjp', fn, args);
    const flats = args.map((a, i) => treeFlatten(a, 'customVjp', `argument ${i}`));
    const leaves = flats.flatMap((f) => f.leaves);
    let resDef: ReturnType<typeof treeFlatten>['def'] | undefined;
    let numRes = 0;
    const fwdT = traceTree(
      'customVjp fwd',
      (...a: unknown[]) => {
        const r = fwd(...a);
        if (!Array.isArray(r) || r.length !== 2) throw new NexgradError('customVjp: fwd must return [output, residuals]');
        const fo = treeFlatten(r[0], 'customVjp fwd', 'output');
        const fr = treeFlatten(r[1], 'customVjp fwd', 'residuals');
        resDef = fr.def;
        numRes = fr.leaves.length;
        return [...fo.leaves, ...fr.leaves];
      },
      args,
    );
    const resAvals = fwdT.program.outputs.slice(fwdT.program.outputs.length - numRes).map((a) => a.aval);
    const outAvals = body.program.outputs.map((a) => a.aval);
    const bwdT = traceFlat((...xs) => {
      const res = treeUnflatten(resDef!, xs.slice(0, numRes));
      const ct = treeUnflatten(body.outDef, xs.slice(numRes));
      const r = bwd(res, ct);
      if (!Array.isArray(r) || r.length !== args.length) throw new NexgradError(`customVjp: bwd must return an array of ${args.length} cotangents, one per argument`);
      return r.flatMap((c, i) => {
        if (c === null || c === undefined) return flats[i]!.leaves.map((l) => ops.zerosLike(l));
        const fc = treeFlatten(c, 'customVjp bwd', `cotangent ${i}`);
        if (fc.leaves.length !== flats[i]!.leaves.length) throw new NexgradError(`customVjp: cotangent ${i} does not match argument ${i}'s structure`);
        // a cotangent of another shape would be broadcast silently when gradients are summed
        fc.leaves.forEach((l, j) => {
          const want = flats[i]!.leaves[j]!;
          if (l.dtype !== want.dtype || l.shape.join() !== want.shape.join()) {
            throw new OpError('customVjp', `bwd returned ${l.dtype}[${l.shape.join(',')}] as cotangent ${i} (leaf ${j}), but that argument is ${want.dtype}[${want.shape.join(',')}]`);
          }
        });
        return fc.leaves;
      });
    }, [...resAvals, ...outAvals]);
    if (body.captured.length || fwdT.captured.length || bwdT.captured.length) {
      throw new NexgradError('customVjp: fn, fwd and bwd must not close over traced values; pass them as arguments');
    }
    const outs = bind('custom_vjp', leaves, { body: body.program, fwd: fwdT.program, bwd: bwdT.program, numResiduals: numRes });
    return treeUnflatten(body.outDef, outs);
  }) as F;
}
