/**
 * Memory planning: liveness-based reuse of arena storages for temporaries, and in-place
 * updates of donated inputs (an output takes over a donated input's storage when nothing reads
 * the input afterwards, or the kernel writing the output reads it only at the same element).
 */
import { NexgradError } from '../ir/errors.js';
import { type DeviceCaps, type MemoryPlan, UNLIMITED_CAPS } from '../codegen/kernel/device.js';
import { idxKey } from '../codegen/kernel/index_expr.js';
import { type Kernel, type KernelGraph, kernelIO, type SExpr, visitSExpr } from '../codegen/kernel/kernel_graph.js';

/** Bytes of a buffer on the device (its storage type per element, from the device's caps). */
const bytesOf = (g: KernelGraph, b: number, caps: Pick<DeviceCaps, 'elementBytes'>): number => g.buffers[b]!.size * caps.elementBytes[g.buffers[b]!.dtype];

/** True when kernel k reads buffer `inBuf` only at the element it writes to `outBuf`. */
function readsOnlyInPlace(k: Kernel, inBuf: number, outBuf: number): boolean {
  if (k.kind !== 'loop' || k.reductions.length > 0 || k.rowOutputs.length > 0) return false;
  const out = k.outerOutputs.find((o) => o.buf === outBuf);
  if (!out) return false;
  const key = idxKey(out.index);
  let ok = true;
  const seen = new Set<SExpr>();
  const visit = (e: SExpr): void =>
    visitSExpr(e, (n) => {
      if (n.op === 'load' && n.buf === inBuf && idxKey(n.index) !== key) ok = false;
    }, seen);
  k.outerOutputs.forEach((o) => visit(o.expr));
  return ok;
}

export interface DonationInfo {
  /** Input positions the caller donates. */
  readonly donated: readonly number[];
  /** A label per input for error messages (e.g. "argument 0.stages[1][0].dwconv.weight"). */
  readonly labels?: readonly string[];
}

export function planMemory(g: KernelGraph, donation: DonationInfo = { donated: [] }, caps: Pick<DeviceCaps, 'elementBytes'> = UNLIMITED_CAPS): MemoryPlan {
  const n = g.buffers.length;
  const firstWrite = new Array<number>(n).fill(-1);
  const lastRead = new Array<number>(n).fill(-1);
  g.kernels.forEach((k, i) => {
    const { reads, writes } = kernelIO(k);
    for (const b of writes) if (firstWrite[b] === -1) firstWrite[b] = i;
    for (const b of reads) lastRead[b] = i;
  });
  const outputBufs = new Set(g.outputs.flatMap((o) => (o.kind === 'buffer' ? [o.buf] : [])));
  outputBufs.forEach((b) => (lastRead[b] = g.kernels.length));

  // donated inputs -> outputs
  const outputAliases = new Map<number, number>();
  for (const pos of donation.donated) {
    const inBuf = g.inputs[pos]!;
    // An input the program returns unchanged hands its storage back as that output: no other
    // output may overwrite it.
    if (outputBufs.has(inBuf)) continue;
    const inDecl = g.buffers[inBuf]!;
    const label = donation.labels?.[pos] ?? `input ${pos}`;
    const candidates = g.outputs.flatMap((o) => (o.kind === 'buffer' && g.buffers[o.buf]!.kind === 'output' && !outputAliases.has(o.buf) ? [o.buf] : []));
    const fits = candidates.filter((b) => g.buffers[b]!.dtype === inDecl.dtype && g.buffers[b]!.size === inDecl.size);
    const inputLast = g.kernels.reduce((acc, k, i) => (kernelIO(k).reads.includes(inBuf) ? i : acc), -1);
    const ok = fits.find((b) => {
      const w = firstWrite[b]!;
      if (w < 0) return false;
      if (inputLast < w) return true;
      return inputLast === w && readsOnlyInPlace(g.kernels[w]!, inBuf, b);
    });
    if (ok === undefined) {
      const why = fits.length === 0 ? `no output has its dtype and size (${inDecl.dtype}, ${inDecl.size} elements)` : 'every output of its dtype and size is written while the input is still needed';
      throw new NexgradError(`jit: donated ${label} cannot be reused in place: ${why}. Remove it from donate, or return an updated value of the same shape.`);
    }
    outputAliases.set(ok, pos);
  }

  // temporaries: greedy best-fit reuse over kernel order
  const storageOf = new Array<number>(n).fill(-1);
  const storageBytes: number[] = [];
  const freeAt: number[] = []; // kernel index after which a storage is free
  const order = g.buffers.map((b) => b.id).filter((b) => g.buffers[b]!.kind === 'temp' && firstWrite[b]! >= 0);
  order.sort((a, b) => firstWrite[a]! - firstWrite[b]!);
  for (const b of order) {
    const need = bytesOf(g, b, caps);
    const start = firstWrite[b]!;
    let best = -1;
    for (let s = 0; s < storageBytes.length; s++) {
      if (freeAt[s]! < start && storageBytes[s]! >= need && (best < 0 || storageBytes[s]! < storageBytes[best]!)) best = s;
    }
    if (best < 0) {
      best = storageBytes.length;
      storageBytes.push(need);
      freeAt.push(-1);
    }
    storageOf[b] = best;
    freeAt[best] = Math.max(lastRead[b]!, start);
  }
  const arena = storageBytes.reduce((a, b) => a + b, 0);
  const io = g.buffers.filter((b) => b.kind !== 'temp').reduce((a, b) => a + bytesOf(g, b.id, caps), 0);
  return { storageOf, storageBytes, outputAliases, peakBytes: arena + io };
}
