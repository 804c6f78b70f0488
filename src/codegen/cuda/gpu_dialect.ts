/**
 * The CUDA GpuDialect (../lower/gpu/dialect.ts): the scalar CUDA dialect plus modules of
 * `extern "C" __global__` entry points, bindings as kernel parameters, `__shared__` arrays,
 * thread and block indices, loops, barriers and bitcasts.
 *
 * Kernel parameters, in order: one pointer per binding (a buffer binding points at its
 * storage's element type, `const` when only read; a scratch binding is `unsigned*`), then the
 * dispatch parameters as `int` (ng_p0, ng_p1, ...). Bindings never alias one another (buffers
 * sharing a storage share a binding), so every pointer is `__restrict__`. A large 1-D grid is
 * folded into y and z by the runtime; `groupIndex` is the linear block number.
 */
import type { DType } from '../../ir/dtype.js';
import { NexgradError } from '../../ir/errors.js';
import { bufName, type Dialect } from '../lower/dialect.js';
import type { GpuBinding, GpuDialect, GpuModule } from '../lower/gpu/dialect.js';
import { CUDA_DIALECT, CUDA_PRELUDE, CUDA_TABLE, cudaLiteral, REGISTER_TYPE, STORAGE_TYPE } from './dialect.js';

export const scratchName = (i: number): string => `ng_s${i}`;
export const paramName = (i: number): string => `ng_p${i}`;

/** The C parameter declaring a binding. */
export function bindingParam(b: GpuBinding): string {
  if (b.kind === 'scratch') return `unsigned* __restrict__ ${scratchName(b.index)}`;
  const name = bufName(b.bufs[0]!);
  return `${b.access === 'read' ? 'const ' : ''}${STORAGE_TYPE[b.dtype]}* __restrict__ ${name}`;
}

const BITCAST: Readonly<Record<string, (a: string) => string>> = {
  'f32>u32': (a) => `__float_as_uint(${a})`,
  'f32>i32': (a) => `__float_as_int(${a})`,
  'u32>f32': (a) => `__uint_as_float(${a})`,
  'i32>f32': (a) => `__int_as_float(${a})`,
  'u32>i32': (a) => `(int)(${a})`,
  'i32>u32': (a) => `(unsigned)(${a})`,
};

/** The source of a module: the prelude, shared arrays, then every entry point. */
function moduleSource(m: GpuModule, extraPrelude: string): string {
  if (!Number.isInteger(m.workgroupSize) || m.workgroupSize < 1 || m.workgroupSize > 1024) {
    throw new NexgradError(`cuda codegen: kernel ${m.name} asks for ${m.workgroupSize} threads per block (1..1024)`);
  }
  const params = [...m.bindings.map(bindingParam), ...Array.from({ length: m.paramCount }, (_, i) => `int ${paramName(i)}`)];
  const lines = [CUDA_PRELUDE + extraPrelude, `// kernel ${m.name.replace(/[^\w.-]/g, '_')}`];
  for (const s of m.shared) lines.push(`__shared__ ${REGISTER_TYPE[s.dtype]} ${s.name}[${Math.max(1, s.size)}];`);
  for (const e of m.entries) {
    lines.push(`extern "C" __global__ void __launch_bounds__(${m.workgroupSize}) ${e.name}(${params.join(', ')}) {`);
    for (const l of e.body.split('\n')) lines.push(`  ${l}`);
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}

/** The storage names of one kernel's bindings: every buffer id -> the name it is reached by. */
function bindingNames(bindings: readonly GpuBinding[]): Map<number, string> {
  const names = new Map<number, string>();
  for (const b of bindings) if (b.kind === 'buffer') for (const id of b.bufs) names.set(id, bufName(b.bufs[0]!));
  return names;
}

export interface CudaGpuDialect extends GpuDialect {
  forKernel(bindings: readonly GpuBinding[]): CudaGpuDialect;
  /** The name buffer `buf` is reached by in this kernel. */
  nameOf(buf: number): string;
  /** A module whose prelude also holds `extra` (helpers a particular emitter needs). */
  moduleWith(m: GpuModule, extra: string): string;
}

function make(scalar: Dialect, names: ReadonlyMap<number, string> | undefined): CudaGpuDialect {
  const nameOf = (buf: number): string => {
    if (!names) return bufName(buf);
    const n = names.get(buf);
    if (n === undefined) throw new NexgradError(`cuda codegen: buffer ${buf} is not bound by this kernel`);
    return n;
  };
  return {
    ...scalar,
    load: (buf, index, dtype) => CUDA_TABLE.load(nameOf(buf), index, dtype),
    store: (buf, index, value, dtype, accumulate) =>
      accumulate ? CUDA_TABLE.atomicAdd(nameOf(buf), index, value, dtype) : CUDA_TABLE.store(nameOf(buf), index, value, dtype),
    forKernel: (bindings) => make(scalar, bindingNames(bindings)),
    nameOf,
    module: (m) => moduleSource(m, ''),
    moduleWith: moduleSource,
    type: (dtype: DType) => REGISTER_TYPE[dtype],
    localIndex: '((int)threadIdx.x)',
    groupIndex: '((int)(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z)))',
    param: paramName,
    scratchName,
    declareMutable: (name, dtype, init) => `${REGISTER_TYPE[dtype]} ${name} = ${init};`,
    assign: (name, value) => `${name} = ${value};`,
    forHead: (v, from, to, step) => `for (int ${v} = ${from}; ${v} < ${to}; ${v} += ${step})`,
    barrier: () => '__syncthreads();',
    exit: 'return;',
    bitcast: (a, from, to) => (from === to ? a : BITCAST[`${from}>${to}`]!(a)),
    mulAdd: (a, b, c, dtype) => {
      if (dtype === 'f64') return `fma(${a}, ${b}, ${c})`;
      if (dtype === 'i32' || dtype === 'u32') return scalar.binary('add', scalar.binary('mul', a, b, dtype), c, dtype);
      return `fmaf(${a}, ${b}, ${c})`;
    },
    isNan: (a) => `((__float_as_uint(${a}) & 0x7fffffffu) > 0x7f800000u)`,
  };
}

/** The CUDA dialect for the GPU emitters (call forKernel per kernel). */
export const CUDA_GPU_DIALECT: CudaGpuDialect = make(CUDA_DIALECT, undefined);

export { cudaLiteral };
