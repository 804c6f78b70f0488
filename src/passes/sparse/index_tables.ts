/**
 * The index tables of one patch mask, built inside the rewritten program from the mask itself
 * (once per step, memoised per scale), and the moves between dense and compact forms. Only
 * existing primitives are used (argsort, gather, iota, integer arithmetic, select), so every
 * backend runs them and autodiff transposes the gathers into scatter-adds.
 *
 * - keptIds [N, K] i32: the kept patch ids of each sample, increasing (K = lenKeep).
 * - slotOf [N, L] i32: a kept patch's position among its sample's kept patches, K when masked.
 * - toCompact / toDense: whole-patch gathers between [N, side*s, side*s, ...r] and [M, s, s, ...r].
 * - halo(s, pads): for each kept patch, the (s+lo+hi) x (s+lo+hi) cells around it as rows of the
 *   flattened compact tensor, or M*s*s (read as zero) where the cell is masked or outside.
 */
import { bind1, withScopePath } from '../../ir/trace.js';
import * as ops from '../../ir/ops.js';
import type { Tensor } from '../../ir/tensor.js';
import { compactRows, type MaskGeometry } from './geometry.js';

/** The named scope the index tables are traced in. */
export const TABLES_SCOPE = 'masked_sparse.tables';

type Pads = readonly [readonly [number, number], readonly [number, number]];

/** gather along `axis` with the first `batchDims` axes shared (the primitive, not a wrapper). */
const gather = (x: Tensor, idx: Tensor, axis: number, batchDims: number): Tensor => bind1('gather', [x, idx], { axis, batchDims });

export class MaskTables {
  private readonly memo = new Map<string, Tensor>();

  /**
   * `mask` is the [N, L] mask (1 = removed) as a tensor of the trace the tables are built in;
   * `parent` holds the tables of an enclosing trace (usable here: they are captured).
   */
  constructor(
    readonly g: MaskGeometry,
    private readonly mask: Tensor,
    private readonly parent?: MaskTables,
  ) {}

  /**
   * Tables for a region body traced inside the current trace: it reads this trace's mask and
   * tables (captured into the body), and keeps what it builds itself to itself.
   */
  child(): MaskTables {
    return new MaskTables(this.g, this.mask, this);
  }

  private lookup(key: string): Tensor | undefined {
    return this.memo.get(key) ?? this.parent?.lookup(key);
  }

  private cached(key: string, make: () => Tensor): Tensor {
    const have = this.lookup(key);
    if (have) return have;
    // the tables are the mask's, not the block's that first needs them
    const t = withScopePath(TABLES_SCOPE, make);
    this.memo.set(key, t);
    return t;
  }

  /** The patch order: a stable argsort of the mask row puts the K kept patches (0) first. */
  private order(): Tensor {
    return this.cached('order', () => ops.argsort(this.mask, 1));
  }

  keptIds(): Tensor {
    const { n, lenKeep } = this.g;
    return this.cached('kept', () => ops.slice(this.order(), [0, 0], [n, lenKeep]));
  }

  slotOf(): Tensor {
    return this.cached('slot', () => ops.minimum(ops.argsort(this.order(), 1), this.g.lenKeep));
  }

  /** [N, side*s, side*s, ...r] -> [M, s, s, ...r]: the kept patches' cells. */
  toCompact(dense: Tensor, s: number): Tensor {
    const { n, L, side, lenKeep } = this.g;
    const rest = dense.shape.slice(3);
    const tail = rest.map((_, i) => 5 + i);
    const grid = ops.transpose(ops.reshape(dense, [n, side, s, side, s, ...rest]), [0, 1, 3, 2, 4, ...tail]);
    const patches = ops.reshape(grid, [n, L, s, s, ...rest]);
    return ops.reshape(gather(patches, this.keptIds(), 1, 1), [compactRows(this.g), s, s, ...rest]);
  }

  /** [M, s, s, ...r] -> [N, side*s, side*s, ...r], zero at masked patches. */
  toDense(compact: Tensor, s: number): Tensor {
    const { n, side, L, lenKeep } = this.g;
    const rest = compact.shape.slice(3);
    const tail = rest.map((_, i) => 5 + i);
    const denseShape = [n, side * s, side * s, ...rest];
    if (lenKeep === 0) return ops.broadcastTo(ops.scalar(0, compact.dtype), denseShape);
    const perSample = ops.reshape(compact, [n, lenKeep, s, s, ...rest]);
    const slot = this.slotOf();
    // a masked patch (slot K) reads a clamped slot and is then zeroed: no padded copy of the data
    const read = gather(perSample, ops.minimum(slot, lenKeep - 1), 1, 1); // [N, L, s, s, ...r]
    const visible = ops.reshape(ops.less(slot, lenKeep), [n, L, 1, 1, ...rest.map(() => 1)]);
    const patches = ops.where(visible, read, 0);
    const grid = ops.transpose(ops.reshape(patches, [n, side, side, s, s, ...rest]), [0, 1, 3, 2, 4, ...tail]);
    return ops.reshape(grid, denseShape);
  }

  /**
   * [M, s+lo0+hi0, s+lo1+hi1] i32: for each kept patch, the row of the flattened compact tensor
   * holding each cell of its halo tile, or M*s*s (one past the last row: a zero) where that cell
   * is outside the image or in a masked patch.
   */
  halo(s: number, pads: Pads): Tensor {
    const key = `halo:${s}:${pads.flat().join(',')}`;
    return this.cached(key, () => this.buildHalo(s, pads));
  }

  private buildHalo(s: number, pads: Pads): Tensor {
    const { n, side, lenKeep: K } = this.g;
    const [[lo0, hi0], [lo1, hi1]] = pads;
    const th = s + lo0 + hi0;
    const tw = s + lo1 + hi1;
    const H = side * s;
    const shape = [n, K, th, tw];
    const kept = ops.reshape(this.keptIds(), [n, K, 1, 1]);
    const at = (axis: number) => ops.iota(shape, axis, 'i32');
    const gy = ops.add(ops.mul(ops.div(kept, side), s), ops.sub(at(2), lo0));
    const gx = ops.add(ops.mul(ops.rem(kept, side), s), ops.sub(at(3), lo1));
    const inside = ops.logicalAnd(
      ops.logicalAnd(ops.greaterEqual(gy, 0), ops.less(gy, H)),
      ops.logicalAnd(ops.greaterEqual(gx, 0), ops.less(gx, H)),
    );
    const cy = ops.minimum(ops.maximum(gy, 0), H - 1);
    const cx = ops.minimum(ops.maximum(gx, 0), H - 1);
    const neighbour = ops.add(ops.mul(ops.div(cy, s), side), ops.div(cx, s));
    const slot = ops.reshape(gather(this.slotOf(), ops.reshape(neighbour, [n, K * th * tw]), 1, 1), shape);
    const visible = ops.logicalAnd(inside, ops.less(slot, K));
    const row = ops.add(ops.mul(ops.add(ops.mul(ops.add(ops.mul(at(0), K), slot), s), ops.rem(cy, s)), s), ops.rem(cx, s));
    const zeroRow = compactRows(this.g) * s * s;
    return ops.reshape(ops.where(visible, row, zeroRow), [n * K, th, tw]);
  }

}

/**
 * The halo tiles [M, th, tw, C] of a compact [M, s, s, C] through a halo table: rows past the
 * end read a clamped row and are zeroed by a select (a padded copy of the input would cost a
 * pass over it).
 */
export function gatherTiles(compact: Tensor, halo: Tensor): Tensor {
  const [m, s, , c] = compact.shape as [number, number, number, number];
  const rows = m * s * s;
  const read = gather(ops.reshape(compact, [rows, c]), ops.minimum(halo, Math.max(rows - 1, 0)), 0, 0);
  return ops.where(ops.reshape(ops.less(halo, rows), [...halo.shape, 1]), read, 0);
}
