/**
 * GEMM weights packed once and kept in WebAssembly memory across calls (the WebAssembly path of
 * the CPU device). A GEMM whose B reads only constants and inputs the executable does not
 * donate (matmul.ts: `bCache`) gets a region of its own behind the kernels' shared scratch; the
 * kernel asks `state()` before packing B:
 *
 * | state | meaning                                              | the kernel                        |
 * |-------|------------------------------------------------------|-----------------------------------|
 * | 2     | the region holds the packing of the current sources | reads B from the region           |
 * | 1     | the sources are those of the previous call           | packs into Bp, copies, `kept()`   |
 * | 0     | the sources changed (or the first call)              | packs into Bp, as without a cache |
 *
 * Sources are identified by the caller's HostArray objects: host arrays are not written after
 * they are made except by executables updating donated inputs in place, which count in
 * `inPlaceWriteCount` (ir/host.ts); any such write since the last call counts as a change of every
 * input. Keeping needs the same sources twice in a row, so a training loop (new weights every
 * step) never pays the copy.
 */
import type { HostArray } from '../../ir/host.js';
import { inPlaceWriteCount } from '../../ir/host.js';
import type { MemoryPlan } from '../kernel/device.js';
import type { KernelGraph } from '../kernel/kernel_graph.js';
import type { KernelCode, PackedBCache } from './common.js';
import type { WasmMemory } from './wasm.js';

/** Most bytes of WebAssembly memory an executable spends on kept packings (the rest pack per call). */
export const MAX_KEPT_BYTES = 256 << 20;

export interface KeptRegion {
  readonly kernel: number;
  /** Byte offset in the executable's WebAssembly memory. */
  readonly offset: number;
  readonly bytes: number;
  /** Input positions B reads (constants need no check). */
  readonly inputs: readonly number[];
}

const align64 = (x: number): number => Math.ceil(x / 64) * 64;

/** Regions for the kernels whose B may be kept, placed from byte `base` on; and the memory's new end. */
export function planKeptB(codes: readonly KernelCode[], graph: KernelGraph, plan: MemoryPlan, base: number): { regions: KeptRegion[]; end: number } {
  const consts = new Set(graph.consts.map((c) => c.buf));
  const inputPos = new Map(graph.inputs.map((b, i) => [b, i]));
  const donated = new Set(plan.outputAliases.values());
  const regions: KeptRegion[] = [];
  let end = align64(base);
  codes.forEach((c, kernel) => {
    if (!c.bCache) return;
    const inputs: number[] = [];
    for (const b of c.bCache.bufs) {
      if (consts.has(b)) continue;
      const p = inputPos.get(b);
      if (p === undefined || donated.has(p)) return; // a temporary, or written by this executable
      inputs.push(p);
    }
    if (end + c.bCache.bytes - base > MAX_KEPT_BYTES) return;
    regions.push({ kernel, offset: end, bytes: c.bCache.bytes, inputs });
    end = align64(end + c.bCache.bytes);
  });
  return { regions, end };
}

/** A version per input position, bumped when the caller passes another array or any array was written in place. */
export class InputVersions {
  readonly version: number[];
  private readonly last: (WeakRef<HostArray> | undefined)[];
  private lastWrites = -1;

  constructor(n: number) {
    this.version = new Array<number>(n).fill(0);
    this.last = new Array<WeakRef<HostArray> | undefined>(n);
  }

  /** Call at the start of every run, before the executable writes anything. */
  update(inputs: readonly HostArray[]): void {
    const writes = inPlaceWriteCount();
    const all = writes !== this.lastWrites;
    this.lastWrites = writes;
    for (let i = 0; i < inputs.length; i++) {
      const a = inputs[i]!;
      if (all || this.last[i]?.deref() !== a) {
        this.version[i]!++;
        this.last[i] = new WeakRef(a);
      }
    }
  }
}

/** The cache object a kernel receives as `BC`. */
export function keptB(mem: WasmMemory, r: KeptRegion, versions: InputVersions): PackedBCache {
  const v = versions.version;
  const sig = (): number[] => r.inputs.map((p) => v[p]!);
  const same = (a: readonly number[] | null, b: readonly number[]): boolean => a !== null && a.length === b.length && a.every((x, i) => x === b[i]);
  let last: number[] | null = null;
  let keptSig: number[] | null = null;
  let cur: number[] = [];
  return {
    view: new Float32Array(mem.buffer as ArrayBuffer, r.offset, r.bytes / 4),
    state() {
      cur = sig();
      if (same(keptSig, cur)) return 2;
      if (same(last, cur)) return 1;
      last = cur;
      keptSig = null;
      return 0;
    },
    kept() {
      keptSig = cur;
    },
  };
}
