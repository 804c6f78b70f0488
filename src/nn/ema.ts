/**
 * Parameter EMA as timm's ModelEma (used by the ConvNeXt V2 fine-tuning recipe, decay 0.9999,
 * updated after every optimizer step): ema <- decay * ema + (1 - decay) * param, leaf by leaf.
 * Pure functions over pytrees; `decay` may be a scalar Tensor so a jitted step can take it.
 */
import { OpError } from '../ir/errors.js';
import * as ops from '../ir/ops.js';
import { treeFlatten, treeUnflatten } from '../ir/pytree.js';
import { type DeviceArray, resolveDevice } from '../ir/device_array.js';
import { HostArray } from '../ir/host.js';
import { fmtShape } from '../ir/shape.js';
import { Tensor } from '../ir/tensor.js';
import { namedLeaves } from './tree_paths.js';

/**
 * The initial EMA: a copy of the parameters, with storage of its own on the same device.
 * (Returning the same Tensor objects would make the EMA an alias of the parameters: once a
 * train step donates the parameters, their buffers are reused and the EMA would read garbage or
 * throw.) Tracers inside trace/jit have no storage yet and are returned as they are. Parameters
 * on a device that only reads back asynchronously need emaInitAsync.
 */
export function emaInit<P>(params: P): P {
  const { def, leaves } = treeFlatten(params, 'emaInit', 'params');
  return treeUnflatten<P>(def, leaves.map((t) => copyOf(t, (a) => {
    if (!a.device.syncRead) {
      throw new OpError('emaInit', `a parameter lives on the '${a.device.name}' device, which reads back asynchronously; use \`await nn.emaInitAsync(params)\``);
    }
    return a.readSync();
  })));
}

/** emaInit for parameters on any device (reads back asynchronously where it must). */
export async function emaInitAsync<P>(params: P): Promise<P> {
  const { def, leaves } = treeFlatten(params, 'emaInitAsync', 'params');
  const hosts = await Promise.all(leaves.map((t) => (t.isTracer ? undefined : t._array!.read())));
  return treeUnflatten<P>(def, leaves.map((t, i) => copyOf(t, () => hosts[i]!)));
}

/** A new tensor on t's device holding t's values (host data from `read`). */
function copyOf(t: Tensor, read: (a: DeviceArray) => HostArray): Tensor {
  const a = t._array; // throws for a donated or disposed tensor
  if (a === undefined) return t;
  const h = read(a);
  // on the CPU, reading gives the array itself: copy its data
  const own = h === (a as unknown) ? new HostArray(h.dtype, [...h.shape], h.data.slice()) : h;
  return Tensor._wrap(a.device.name === 'cpu' ? own : resolveDevice(a.device.name).upload(own));
}

/** decay * ema + (1 - decay) * params, per leaf (float leaves; others are copied from params). */
export function emaUpdate<P>(ema: P, params: P, decay: number | Tensor): P {
  const op = 'emaUpdate';
  if (typeof decay === 'number') {
    if (!(decay >= 0 && decay <= 1)) throw new OpError(op, `decay must be in [0, 1], got ${decay}`);
  } else if (!(decay instanceof Tensor) || decay.size !== 1) {
    throw new OpError(op, 'decay must be a number or a scalar Tensor');
  }
  const e = treeFlatten(ema, op, 'ema');
  const p = treeFlatten(params, op, 'params');
  if (e.leaves.length !== p.leaves.length) {
    throw new OpError(op, `ema has ${e.leaves.length} tensors but params has ${p.leaves.length}; they must have the same structure`);
  }
  const names = namedLeaves(params, op).map((l) => l.name);
  const out = p.leaves.map((x, i) => {
    const m = e.leaves[i]!;
    if (m.ndim !== x.ndim || m.shape.some((d, j) => d !== x.shape[j])) {
      throw new OpError(op, `ema for ${JSON.stringify(names[i])} has shape ${fmtShape(m.shape)}, the parameter ${fmtShape(x.shape)}`);
    }
    if (x.dtype !== 'f32' && x.dtype !== 'f64' && x.dtype !== 'f16' && x.dtype !== 'bf16') return x;
    if (typeof decay === 'number') return ops.add(ops.mul(m, decay), ops.mul(x, 1 - decay));
    const d = ops.cast(decay.ndim === 0 ? decay : ops.reshape(decay, []), x.dtype);
    return ops.add(ops.mul(m, d), ops.mul(x, ops.sub(1, d)));
  });
  return treeUnflatten<P>(p.def, out);
}
