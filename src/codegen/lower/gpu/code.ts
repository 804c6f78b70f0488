/**
 * The statement builder of the GPU emitters: the neutral ScopeBuilder (placement at the
 * outermost loop an expression depends on, index caching, CSE) speaking a GpuDialect, plus the
 * loop, guard and index-splitting shapes every GPU kernel uses.
 */
import { ScopeBuilder } from '../scope_builder.js';
import type { GpuDialect } from './dialect.js';

export class GpuCode extends ScopeBuilder {
  constructor(readonly gpu: GpuDialect) {
    super(gpu);
  }

  /** Fresh names carry an underscore: a counter alone would make `i32` or `f16`, which are WGSL types. */
  override fresh(prefix = 't'): string {
    return super.fresh(`${prefix}_`);
  }

  /** An i32 literal. */
  int(v: number): string {
    return this.gpu.literal(v, 'i32');
  }

  /**
   * `for (v = from; v < to; v += step) { body }`; the scope defines `defines` (the variables
   * body declares itself, e.g. through `split`, must be listed there or defined by it).
   */
  loop(v: string, from: string, to: string | number, step: string | number, body: () => void): void {
    this.open(v);
    body();
    this.close(this.gpu.forHead(v, from, typeof to === 'number' ? this.int(to) : to, typeof step === 'number' ? this.int(step) : step));
  }

  /** `if (c) { body }` (a scope of its own: what body declares stays inside). */
  when(c: string, body: () => void): void {
    this.open();
    body();
    this.close(`if (${c})`);
  }

  /**
   * Declares `vars[d]` = the d-th coordinate of the row-major flat index `flat` over `dims`, at
   * the current depth (a size-1 dimension is the constant 0).
   */
  split(flat: string, dims: readonly number[], vars: readonly string[]): void {
    const D = this.gpu;
    let stride = 1;
    const strides = dims.map(() => 0);
    for (let d = dims.length - 1; d >= 0; d--) {
      strides[d] = stride;
      stride *= dims[d]!;
    }
    dims.forEach((n, d) => {
      let src: string;
      if (n === 1) src = this.int(0);
      else {
        const q = strides[d] === 1 ? flat : D.indexDiv(flat, strides[d]!);
        src = d === 0 ? q : D.indexMod(q, n);
      }
      this.line(D.declareIndex(vars[d]!, src));
      this.defineVars(vars[d]!);
    });
  }

  /** Declares constant-0 variables (size-1 dimensions) at the current depth. */
  zeros(vars: readonly string[]): void {
    for (const v of vars) {
      this.line(this.gpu.declareIndex(v, this.int(0)));
      this.defineVars(v);
    }
  }
}

/** The smallest power of two >= n (1 for n <= 1). */
export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export const product = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);
