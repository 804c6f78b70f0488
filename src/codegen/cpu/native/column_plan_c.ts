/**
 * How a column-mode loop kernel (reductions over leading axes, the last outer axis innermost and
 * contiguous: bias and GRN gradients, GELU/GRN backward) walks memory in C.
 *
 * Passes: reductions that read no accumulator of one another share one pass over the rows (a
 * GRN backward kernel has six to twenty-seven sums over the same activations: one pass each read
 * every activation six to twenty-seven times). A reduction reading another's result (a variance
 * after its mean) starts the next pass.
 *
 * (Cutting the last outer axis into blocks whose rows fit the L2 cache, so that a second pass
 * rereads from the cache, was measured and lost: at the block lengths that fit, 16-32 channels,
 * the innermost loop is too short to vectorise well and the rows' 64-128-byte pieces defeat the
 * prefetchers; GELU's backward went from 15 to 39 ms.)
 */
import type { LoopKernel, SExpr } from '../../kernel/kernel_graph.js';
import { visitSExpr } from '../../kernel/sexpr.js';

type Reduction = LoopKernel['reductions'][number];

/** Consecutive groups of reductions, none reading an accumulator of its own group. */
export function reductionPasses(k: LoopKernel): Reduction[][] {
  const passes: Reduction[][] = [];
  let cur: Reduction[] = [];
  let ids = new Set<number>();
  for (const r of k.reductions) {
    if (cur.length && readsAcc(r.expr, ids)) {
      passes.push(cur);
      cur = [];
      ids = new Set();
    }
    cur.push(r);
    ids.add(r.id);
  }
  if (cur.length) passes.push(cur);
  return passes;
}

function readsAcc(e: SExpr, ids: ReadonlySet<number>): boolean {
  let hit = false;
  visitSExpr(e, (n) => {
    if (n.op === 'acc' && ids.has(n.id)) hit = true;
  });
  return hit;
}
