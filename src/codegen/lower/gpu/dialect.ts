/**
 * The GPU dialect: what the dialect-generic kernel emitters of this folder need from a GPU
 * language (WGSL, CUDA C++) beyond the scalar Dialect of ../dialect.ts: a module with storage
 * bindings, workgroup-shared arrays and entry points; the thread's index in its workgroup and
 * the workgroup's linear number; loops, mutable locals, barriers and 32-bit bitcasts.
 *
 * The emitters write everything else in the syntax C, CUDA and WGSL share: `a + b`, `a * b`,
 * `a & b`, `a << b` (both operands of one integer type), comparisons, `&&`, `||`, `!`, `a[i]`,
 * `if (c) { ... }`, and literals printed by `literal` (so `3u` / `3` / `3.0f` come out right).
 *
 * Conventions every dialect implements:
 *   - Index expressions and loop variables are i32 (signed 32-bit). `localIndex` and
 *     `groupIndex` are i32 expressions available anywhere in an entry body.
 *   - A module is dispatched over a 1-D count of workgroups; the runtime may fold a large count
 *     into y and z, and `groupIndex` is the linear number (x + nx * (y + ny * z)), so an entry
 *     returns early when `groupIndex` is past the count it was given (a workgroup-uniform test,
 *     so barriers after it stay in uniform control flow).
 *   - Registers hold f32 for f32, f16 and bf16 (values rounded to their precision by `cast`),
 *     i32, u32 and bool; `type` is the register type. Buffers may store differently (bool as a
 *     32-bit word in WGSL, f16 as f16 where the device supports it): `load` and `store` convert.
 *   - Buffer bindings are named bufName(id) of their first buffer (../dialect.ts); scratch
 *     bindings `scratchName(i)`; dispatch parameters are read with `param(i)`.
 */
import type { DType } from '../../../ir/dtype.js';
import type { Dialect } from '../dialect.js';

/** A storage buffer one kernel binds, in binding order. */
export type GpuBinding =
  | {
      readonly kind: 'buffer';
      /**
       * The graph buffers bound here (more than one when the memory plan puts them in one
       * storage, e.g. a donated input and the output updated in place): loads and stores of
       * any of them go through this binding, named bufName(bufs[0]).
       */
      readonly bufs: readonly number[];
      /** Element type (every buffer of `bufs` has it). */
      readonly dtype: DType;
      readonly access: 'read' | 'read_write';
      /** Written by accumulating stores: an atomic array where the language needs one (WGSL). */
      readonly atomic: boolean;
    }
  | {
      /** A buffer the kernel needs for itself (a sort's pairs between passes), u32 elements. */
      readonly kind: 'scratch';
      readonly index: number;
      /** Bytes. */
      readonly bytes: number;
    };

/** A workgroup-shared array (`var<workgroup>` / `__shared__`), of a register type. */
export interface GpuSharedArray {
  readonly name: string;
  readonly dtype: 'f32' | 'i32' | 'u32';
  readonly size: number;
}

/** One entry point of a module: its name and its body (statements, without the signature). */
export interface GpuEntry {
  readonly name: string;
  readonly body: string;
}

/** Everything `GpuDialect.module` needs to print a whole compilation unit. */
export interface GpuModule {
  /** The kernel's name (for labels and comments; entries carry their own names). */
  readonly name: string;
  /** Threads per workgroup (1-D). */
  readonly workgroupSize: number;
  readonly bindings: readonly GpuBinding[];
  readonly shared: readonly GpuSharedArray[];
  /** How many u32 dispatch parameters the entries read with `param(i)`. */
  readonly paramCount: number;
  readonly entries: readonly GpuEntry[];
}

export interface GpuDialect extends Dialect {
  /**
   * This dialect specialised to one kernel's bindings: loads and stores of every buffer in a
   * binding's `bufs` go through that binding, and accumulating stores into an `atomic` binding
   * are atomic adds (loads of it read atomically where the language requires). The emitters
   * call this once per kernel and print the kernel with the result.
   */
  forKernel(bindings: readonly GpuBinding[]): GpuDialect;
  /** The complete source of a module (bindings, shared arrays, helpers, entry points). */
  module(m: GpuModule): string;
  /** The register type of a dtype (`f32`, `float`, `i32`, `int`, `bool` ...). */
  type(dtype: DType): string;
  /** i32: the thread's index in its workgroup, in [0, workgroupSize). */
  readonly localIndex: string;
  /** i32: the workgroup's linear number in the (folded) 1-D dispatch. */
  readonly groupIndex: string;
  /**
   * Dispatch parameter `i` as an i32 expression (the runtime passes u32 values below 2^31: a
   * uniform in WGSL, a kernel argument in CUDA).
   */
  param(i: number): string;
  /** The name of scratch binding `i`. */
  scratchName(i: number): string;
  /** A mutable local with an initial value: `var x: f32 = v;` / `float x = v;`. */
  declareMutable(name: string, dtype: DType, init: string): string;
  /** `x = v;` */
  assign(name: string, value: string): string;
  /** The head of `for (i = from; i < to; i += step)` with an i32 loop variable `i`. */
  forHead(v: string, from: string, to: string, step: string): string;
  /** A workgroup barrier (also a memory barrier for shared arrays): `workgroupBarrier();` / `__syncthreads();`. */
  barrier(): string;
  /** Leaves the entry point: `return;`. */
  readonly exit: string;
  /** The bits of a 32-bit value as another 32-bit type (f32 <-> u32 <-> i32). */
  bitcast(a: string, from: 'f32' | 'i32' | 'u32', to: 'f32' | 'i32' | 'u32'): string;
  /** a * b + c in `dtype` (a fused multiply-add for floats). */
  mulAdd(a: string, b: string, c: string, dtype: DType): string;
  /** Whether a float register value is NaN (on the bits: a compiler may assume x == x). */
  isNan(a: string): string;
}
