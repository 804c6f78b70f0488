/** The small interface every backend implements: compile a planned KernelGraph, run it. */
import type { HostArray } from '../../ir/host.js';
import type { KernelGraph } from './kernel_graph.js';

/**
 * Where each buffer lives. Inputs live in the caller's arrays; temporaries share arena
 * storages (liveness-based reuse); an output either aliases a donated input's storage (updated
 * in place) or gets fresh storage per call (it is handed to the caller).
 */
export interface MemoryPlan {
  /** For each buffer id: its storage index, or -1 for inputs, consts and fresh outputs. */
  readonly storageOf: readonly number[];
  /** Byte size of each arena storage. */
  readonly storageBytes: readonly number[];
  /** Output buffer id -> input position whose (donated) storage it reuses. */
  readonly outputAliases: ReadonlyMap<number, number>;
  /** Peak bytes of the arena plus inputs and outputs, for reports. */
  readonly peakBytes: number;
}

export interface RunStats {
  /** Bytes allocated by this call (fresh outputs; the arena on the first call). */
  readonly allocatedBytes: number;
}

export interface Executable {
  /**
   * Runs the graph. `donated[i]` lets the executable overwrite input i's storage (its array is
   * then owned by the output that aliases it).
   */
  run(inputs: readonly HostArray[]): HostArray[];
  readonly lastRun: RunStats;
  readonly kernelCount: number;
  /** Generated source per kernel (for NEXGRAD_DUMP=kernels). */
  readonly sources: readonly string[];
}

export interface Device {
  readonly name: string;
  /** A description for cache keys (e.g. cpu:2 threads). */
  readonly id: string;
  compile(graph: KernelGraph, plan: MemoryPlan): Executable;
}
