/**
 * The jit disk cache and the backward fusions: they add no kernel-IR field (extra outputs are
 * ordinary epilogue outputs, the backward reducing epilogue uses init 'zero' and reduceRows), so
 * a block's forward + backward graph survives serialize -> deserialize unchanged and runs to the
 * same values, and the existing strict checks reject a tampered reducing output of the backward
 * GEMM by field.
 */
import { expect, it } from 'vitest';
import { createCpuDevice } from '../../../src/codegen/cpu/device.js';
import { CPU_CAPS } from '../../../src/codegen/kernel/device.js';
import { printKernelGraph } from '../../../src/codegen/kernel/kernel_graph.js';
import { CacheFormatError, deserializeLowered, serializeLowered } from '../../../src/codegen/kernel/serialize.js';
import { HostArray } from '../../../src/ir/host.js';
import * as ops from '../../../src/ir/ops.js';
import { lower } from '../../../src/passes/pipeline.js';
import { blockGradCase } from './block_grad_case.js';

const c = blockGradCase(8, 4, 2, 9);
const low = lower(c.program, undefined, CPU_CAPS);
const text = serializeLowered(low.graph, low.plan);
const consts = low.graph.consts.map((k) => k.value);

it('round trips: the same printed graph, and the read graph computes the same gradients', () => {
  const back = deserializeLowered(text, consts);
  expect(printKernelGraph(back.graph)).toBe(printKernelGraph(low.graph));
  const dev = createCpuDevice({ threads: 2 });
  const inputs = c.leaves.map((t) => new HostArray('f32', [...t.shape], Float32Array.from(ops.cast(t, 'f32').dataSync() as ArrayLike<number>)));
  const a = dev.compile(low.graph, low.plan).run(inputs) as HostArray[];
  const b = dev.compile(back.graph, back.plan).run(inputs) as HostArray[];
  a.forEach((x, i) => expect([...(b[i]!.data as ArrayLike<number>)]).toEqual([...(x.data as ArrayLike<number>)]));
});

it('a tampered backward reducing output is rejected by field', () => {
  // the backward GEMM dY = dOut W2^T: a bare product plus GRN backward's per-image sum
  const bwd = (j: any) => j.graph.kernels.find((k: any) => k.kind === 'matmul' && k.outputs.length === 2 && k.outputs.some((o: any) => o.init));
  const cases: [string, (j: any) => void, RegExp][] = [
    ['reduceRows not dividing m', (j) => (bwd(j).reduceRows = 7), /reduceRows/],
    ['reduceRows dropped', (j) => delete bwd(j).reduceRows, /reduceRows/],
    ['an unknown init', (j) => (bwd(j).outputs.find((o: any) => o.init).init = 'one'), /init/],
  ];
  for (const [what, change, field] of cases) {
    const j = JSON.parse(text);
    expect(bwd(j), what).toBeDefined();
    change(j);
    let err: unknown;
    try {
      deserializeLowered(JSON.stringify(j), consts);
    } catch (e) {
      err = e;
    }
    expect(err, what).toBeInstanceOf(CacheFormatError);
    expect(String((err as Error).message), what).toMatch(field);
  }
});
