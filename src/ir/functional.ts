/** Pytree-level tracing (`trace`) and named composite regions (`region`). */
import { OpError } from './errors.js';
import type { Program } from './program.js';
import { treeFlatten, treeUnflatten, type TreeDef } from './pytree.js';
import { Tensor } from './tensor.js';
import { bind, traceFlat, type Traced } from './trace.js';

export interface TracedTree extends Traced {
  readonly outDef: TreeDef;
}

/**
 * Traces fn(...args) where args are pytrees of Tensors; `fixed[i]` true passes args[i] through
 * untraced (closed over). The program's inputs are the traced args' leaves, in order.
 */
export function traceTree(op: string, fn: (...args: any[]) => unknown, args: readonly unknown[], fixed: readonly boolean[] = []): TracedTree {
  const flat = args.map((a, i) => (fixed[i] ? null : treeFlatten(a, op, `argument ${i}`)));
  const avals = flat.flatMap((f) => (f ? f.leaves.map((t) => t.aval) : []));
  let outDef: TreeDef | undefined;
  const traced = traceFlat((...leaves) => {
    let k = 0;
    const rebuilt = args.map((a, i) => {
      const f = flat[i];
      if (!f) return a;
      const part = leaves.slice(k, k + f.leaves.length);
      k += f.leaves.length;
      return treeUnflatten(f.def, part);
    });
    const out = fn(...rebuilt);
    const fo = treeFlatten(out, op, 'result');
    outDef = fo.def;
    return fo.leaves;
  }, avals);
  return { ...traced, outDef: outDef! };
}

/** ng.trace: the Program of fn at the given example arguments (pytrees of Tensors). */
export function trace(fn: (...args: any[]) => unknown, ...args: unknown[]): Program {
  if (typeof fn !== 'function') throw new OpError('trace', 'the first argument must be a function');
  return traceTree('trace', fn, args).program;
}

/**
 * Wraps fn as a named composite op: each call traces fn into a sub-program and applies one
 * `region` primitive, which autodiff goes through and fusion passes can match by name.
 */
export function region<F extends (...xs: Tensor[]) => Tensor | Tensor[]>(name: string, fn: F, attrs: Readonly<Record<string, unknown>> = {}): F {
  const wrapped = (...xs: Tensor[]): Tensor | Tensor[] => {
    xs.forEach((x, i) => {
      if (!(x instanceof Tensor)) throw new OpError(name, `argument ${i + 1} must be a Tensor`);
    });
    let single = false;
    const t = traceFlat(
      (...a) => {
        const r = fn(...a);
        single = r instanceof Tensor;
        return single ? [r as Tensor] : (r as Tensor[]);
      },
      xs.map((x) => x.aval),
    );
    const outs = bind('region', [...xs, ...t.captured], { name, attrs, body: t.program });
    return single ? outs[0]! : outs;
  };
  return wrapped as F;
}
