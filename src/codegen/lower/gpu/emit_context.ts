/**
 * What every GPU kernel emitter receives: the target, the dialect specialised to the kernel's
 * bindings, buffer dtypes, and `finish`, which wraps a one-entry body into a GpuKernelCode.
 */
import type { DType } from '../../../ir/dtype.js';
import type { GpuCode } from './code.js';
import type { GpuBinding, GpuDialect, GpuSharedArray } from './dialect.js';
import type { GpuKernelCode, GpuTarget } from './kernel_code.js';

/** The entry point of one-entry kernels (`main` is not a legal CUDA kernel name). */
export const MAIN_ENTRY = 'ng_main';

export interface FinishOptions {
  readonly workgroupSize: number;
  readonly shared?: readonly GpuSharedArray[];
  /** Workgroups of the one dispatch (0: nothing to do, no dispatch). */
  readonly groups: number;
}

export interface EmitContext {
  readonly name: string;
  readonly target: GpuTarget;
  readonly dialect: GpuDialect;
  readonly bindings: readonly GpuBinding[];
  readonly dtypeOf: (buf: number) => DType;
  finish(cb: GpuCode, o: FinishOptions): GpuKernelCode;
}

export function emitContext(name: string, target: GpuTarget, bindings: readonly GpuBinding[], dtypeOf: (buf: number) => DType): EmitContext {
  const dialect = target.dialect.forKernel(bindings);
  return {
    name,
    target,
    dialect,
    bindings,
    dtypeOf,
    finish(cb, o) {
      const source = dialect.module({ name, workgroupSize: o.workgroupSize, bindings, shared: o.shared ?? [], paramCount: 0, entries: [{ name: MAIN_ENTRY, body: cb.finish() }] });
      return { name, source, workgroupSize: o.workgroupSize, bindings, paramCount: 0, dispatches: o.groups > 0 ? [{ entry: MAIN_ENTRY, groups: o.groups, params: [] }] : [] };
    },
  };
}
