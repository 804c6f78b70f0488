/**
 * The jit disk cache and the new kernel-IR fields: a block graph with row statistics and a
 * reducing epilogue survives serialize -> deserialize (and runs to the same values), and every
 * tampered statistic or zero-init field is rejected with a CacheFormatError naming the field.
 */
import { describe, expect, it } from 'vitest';
import { createCpuDevice } from '../../../src/codegen/cpu/device.js';
import { CPU_CAPS } from '../../../src/codegen/kernel/device.js';
import { printKernelGraph } from '../../../src/codegen/kernel/kernel_graph.js';
import { CacheFormatError, deserializeLowered, serializeLowered } from '../../../src/codegen/kernel/serialize.js';
import { block, type BlockParams, blockSpec } from '../../../src/convnextv2/model.js';
import { traceTree } from '../../../src/ir/functional.js';
import { HostArray } from '../../../src/ir/host.js';
import * as ops from '../../../src/ir/ops.js';
import { treeFlatten } from '../../../src/ir/pytree.js';
import * as random from '../../../src/ir/random.js';
import type { Tensor } from '../../../src/ir/tensor.js';
import { initFromSpec } from '../../../src/nn/init.js';
import { lower } from '../../../src/passes/pipeline.js';

const p = initFromSpec<BlockParams>(random.key(3), blockSpec(8), 'f32');
const x = random.normal(random.key(4), [2, 5, 5, 8]);
const { program } = traceTree('block', (pp: BlockParams, xx: Tensor) => block(pp, xx), [p, x]);
const low = lower(program, undefined, CPU_CAPS);
const text = serializeLowered(low.graph, low.plan);
const consts = low.graph.consts.map((c) => c.value);
const inputs = (treeFlatten([p, x]).leaves as Tensor[]).map((t) => new HostArray('f32', [...t.shape], Float32Array.from(ops.cast(t, 'f32').dataSync() as ArrayLike<number>)));

/** The payload with one change applied. */
function tampered(change: (j: any) => void): string {
  const j = JSON.parse(text);
  change(j);
  return JSON.stringify(j);
}
const pw1 = (j: any) => j.graph.kernels.find((k: any) => k.kind === 'matmul' && k.a.stats);
const reducingOut = (j: any) => pw1(j).outputs.find((o: any) => o.init);

describe('the kernel cache with row statistics and reducing epilogues', () => {
  it('round trips: the same printed graph, and the read graph computes the same values', () => {
    expect(text).toContain('"stats"');
    expect(text).toContain('"init":"zero"');
    const back = deserializeLowered(text, consts);
    expect(printKernelGraph(back.graph)).toBe(printKernelGraph(low.graph));
    const dev = createCpuDevice({ threads: 1 });
    const a = dev.compile(low.graph, low.plan).run(inputs)[0] as HostArray;
    const b = dev.compile(back.graph, back.plan).run(inputs)[0] as HostArray;
    expect([...b.data]).toEqual([...a.data]);
  });

  const cases: [string, (j: any) => void, RegExp][] = [
    ['a statistic that is not a sum', (j) => (pw1(j).a.stats.reductions[0].op = 'max'), /stats\.reductions\[0\]\.op/],
    ['a statistic row longer than k', (j) => (pw1(j).a.stats.row = [pw1(j).k + 1]), /stats: expected one row axis/],
    ['two statistic row axes', (j) => (pw1(j).a.stats.row = [2, 4]), /stats/],
    ['statistic ids out of order', (j) => (pw1(j).a.stats.reductions[1].id = 0), /reductions\[1\]\.id/],
    ['statistics on the B operand', (j) => {
      const k = pw1(j);
      k.b = { kind: 'expr', expr: k.a.expr, stats: k.a.stats };
    }, /\.b\.stats/],
    ['a statistics field that is not an object', (j) => (pw1(j).a.stats = 'sum'), /stats: expected an object/],
    ['an unknown init', (j) => (reducingOut(j).init = 'one'), /init: expected one of zero/],
    ['a zero-initialised store that does not accumulate', (j) => delete reducingOut(j).accumulate, /must accumulate/],
    ['a missing reduceRows', (j) => delete pw1(j).reduceRows, /reduceRows/],
    ['a reduceRows that does not divide m', (j) => (pw1(j).reduceRows = 7), /does not divide m/],
    ['a reduceRows without a reducing output', (j) => {
      delete reducingOut(j).init;
    }, /reduceRows: must be given exactly/],
    ['init on a loop kernel output', (j) => {
      const k = j.graph.kernels.find((q: any) => q.kind === 'loop');
      const o = k.outerOutputs[0] ?? k.rowOutputs[0];
      o.init = 'zero';
      o.accumulate = true;
    }, /only a matmul output may be zero-initialised/],
  ];
  for (const [what, change, msg] of cases) {
    it(`rejects ${what}`, () => {
      let err: unknown;
      try {
        deserializeLowered(tampered(change), consts);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CacheFormatError);
      expect((err as Error).message).toMatch(msg);
    });
  }

  it('rejects a statistic that reads itself (acc id not computed before it)', () => {
    const j = JSON.parse(text);
    const st = pw1(j).a.stats.reductions[0];
    // point statistic 0 at an acc node (the variance reads acc 0; reading it from statistic 0 is a cycle)
    const accNode = j.nodes.findIndex((n: any) => n.op === 'acc' && n.id === 0);
    st.expr = accNode;
    expect(() => deserializeLowered(JSON.stringify(j), consts)).toThrow(/reads a statistic not computed before it/);
  });
});
