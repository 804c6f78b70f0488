/**
 * The storage bindings of one kernel: every graph buffer it reads or writes, buffers that share
 * a storage (a donated input and its in-place output) in one binding, written ones read_write,
 * those an accumulating store adds into marked atomic.
 */
import { NexgradError } from '../../../ir/errors.js';
import { type Kernel, kernelIO } from '../../kernel/kernel_graph.js';
import type { GpuBinding } from './dialect.js';
import type { GpuBuffers } from './kernel_code.js';

function accumulated(k: Kernel): Set<number> {
  const outs = k.kind === 'loop' ? [...k.outerOutputs, ...k.rowOutputs] : k.kind === 'sort' ? [] : k.outputs;
  return new Set(outs.filter((o) => o.accumulate).map((o) => o.buf));
}

export function kernelBindings(k: Kernel, buffers: GpuBuffers): GpuBinding[] {
  const { reads, writes } = kernelIO(k);
  const atomic = accumulated(k);
  const written = new Set(writes);
  const groups = new Map<number, { bufs: number[]; written: boolean; atomic: boolean }>();
  for (const buf of [...new Set([...reads, ...writes])].sort((a, b) => a - b)) {
    const s = buffers.storageOf(buf);
    let g = groups.get(s);
    if (!g) groups.set(s, (g = { bufs: [], written: false, atomic: false }));
    g.bufs.push(buf);
    g.written ||= written.has(buf);
    g.atomic ||= atomic.has(buf);
  }
  return [...groups.values()].map((g) => {
    const dtype = buffers.dtypeOf(g.bufs[0]!);
    const other = g.bufs.find((b) => buffers.dtypeOf(b) !== dtype);
    if (other !== undefined) {
      throw new NexgradError(`gpu codegen: kernel ${k.name} binds buffers ${g.bufs.join(', ')} of one storage with different dtypes (${dtype}, ${buffers.dtypeOf(other)})`);
    }
    return { kind: 'buffer', bufs: g.bufs, dtype, access: g.written ? 'read_write' : 'read', atomic: g.atomic };
  });
}
