/**
 * Phase 4 of fusion: building kernels. Each materialised value gets one kernel (in dependency
 * order, built on first need); inlined values become scalar expressions inside it (VALUE_RULES),
 * reductions its phases. The kernel-kind builders live beside this file.
 */
import { AX, type Axis } from '../../codegen/kernel/axis.js';
import { affineStrides, type Idx, idx, idxKey, linearize } from '../../codegen/kernel/index_expr.js';
import { type DeviceCaps, UNLIMITED_CAPS } from '../../codegen/kernel/device.js';
import type { BufferDecl, Kernel, SExpr, StridedOperand } from '../../codegen/kernel/kernel_graph.js';
import type { DType } from '../../ir/dtype.js';
import { NexgradError } from '../../ir/errors.js';
import { type Atom, type Eqn, Literal, Var } from '../../ir/program.js';
import { sizeOf } from '../../ir/shape.js';
import type { Origins } from '../inline.js';
import type { Epilogues } from './anchors.js';
import { buildAnchor } from './anchor_kernel.js';
import { type Ctx, newCtx, sameIndex } from './context.js';
import { buildLoop, reductionPhase } from './loop_kernel.js';
import { isAnchor, isInlinable, isReducing, loweringOf, type ProgramView } from './program_view.js';
import { buildScatter, buildSort } from './data_kernels.js';
import { VALUE_RULES } from './views.js';

export class KernelBuilder {
  readonly buffers: BufferDecl[] = [];
  readonly bufOf = new Map<Var, number>();
  readonly kernels: Kernel[] = [];
  private readonly building = new Set<Var>();
  private kcount = 0;

  constructor(
    readonly view: ProgramView,
    /** Materialised values (grows while building: shared reductions, operands that must be buffers). */
    readonly M: Set<Var>,
    readonly ep: Epilogues,
    private readonly origins: Origins,
    /** What the device's kernels can do (prologue statistics, reducing epilogues). */
    readonly caps: DeviceCaps = UNLIMITED_CAPS,
  ) {}

  newBuf(v: Var, kind: BufferDecl['kind']): number {
    const id = this.newTemp(v.aval.dtype, sizeOf(v.aval.shape), kind);
    this.bufOf.set(v, id);
    return id;
  }

  newTemp(dtype: DType, size: number, kind: BufferDecl['kind'] = 'temp'): number {
    const id = this.buffers.length;
    this.buffers.push({ id, dtype, size, kind });
    return id;
  }

  /**
   * A kernel name: a counter, the region (or primitive) it comes from in [A-Za-z0-9_], and the
   * named scope it was traced in after a dot (`k12_gelu.stages.1.0`; backward: `....bwd`).
   */
  kname(v: Var | undefined, what: string): string {
    const o = v && this.origins.get(v);
    const base = `k${this.kcount++}_${(o?.region ?? what).replace(/[^A-Za-z0-9_]/g, '_').slice(0, 64)}`;
    return o?.scope ? `${base}.${o.scope.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 96)}` : base;
  }

  outKind(v: Var): BufferDecl['kind'] {
    return this.view.outputVars.has(v) ? 'output' : 'temp';
  }

  /** A value that is materialised, or about to be (so it is read from its buffer). */
  isKept(v: Var): boolean {
    return this.M.has(v) || this.bufOf.has(v) || this.ep.anchorOf.has(v);
  }

  load(v: Var, index: readonly Idx[]): SExpr {
    return { op: 'load', buf: this.bufOf.get(v)!, index: linearize(index, v.aval.shape), dtype: v.aval.dtype };
  }

  /** Ensures v has a buffer, building its kernel now if needed. */
  ensureBuilt(v: Var): number {
    const have = this.bufOf.get(v);
    if (have !== undefined) return have;
    if (this.building.has(v)) throw new NexgradError(`fusion: cycle while materialising a ${this.view.prim(v)} value`);
    this.building.add(v);
    this.M.add(v);
    const anchor = this.ep.anchorOf.get(v);
    const reducedBy = this.ep.reducedBy.get(v);
    const storedBy = this.ep.extraOf.get(v);
    const e = this.view.producer.get(v)!;
    if (reducedBy) this.ensureBuilt(reducedBy.root); // the anchor kernel storing the root accumulates v
    else if (storedBy) this.ensureBuilt(storedBy); // the anchor kernel stores v as an extra output
    else if (anchor) buildAnchor(this, anchor, v);
    else if (isAnchor(e.prim)) buildAnchor(this, v, v);
    else if (isInlinable(e.prim) || isReducing(e.prim)) buildLoop(this, v);
    else if (loweringOf(e.prim) === 'sort') buildSort(this, e);
    else if (loweringOf(e.prim) === 'scatter') buildScatter(this, e);
    else throw new NexgradError(`fusion: internal: no kernel for ${e.prim}`);
    this.building.delete(v);
    return this.bufOf.get(v)!;
  }

  atomValue(a: Atom, index: readonly Idx[], ctx: Ctx): SExpr {
    if (a instanceof Literal) return { op: 'const', value: a.value, dtype: a.dtype };
    return this.valueAt(a, index, ctx);
  }

  /** The scalar expression for element `index` of v inside the kernel described by ctx. */
  valueAt(v: Var, index: readonly Idx[], ctx: Ctx): SExpr {
    const key = `${v.id}@${index.map(idxKey).join('|')}`;
    const hit = ctx.memo.get(key);
    if (hit) return hit;
    const r = this.computeValue(v, index, ctx);
    ctx.memo.set(key, r);
    return r;
  }

  private computeValue(v: Var, index: readonly Idx[], ctx: Ctx): SExpr {
    if (ctx.anchor && v === ctx.anchor.v) {
      if (!sameIndex(index, ctx.anchor.index, ctx.ranges)) throw new NexgradError('fusion: internal: anchor read off its own index in an epilogue');
      return { op: 'acc', id: 0, dtype: v.aval.dtype };
    }
    const inline = ctx.inline?.has(v) ?? false;
    if (this.bufOf.has(v) && !inline) return this.load(v, index);
    if ((this.M.has(v) || this.ep.anchorOf.has(v)) && v !== ctx.root && !inline) {
      this.ensureBuilt(v);
      return this.load(v, index);
    }
    const e = this.view.producer.get(v)!;
    if (isReducing(e.prim)) {
      const acc = reductionPhase(this, v, e, index, ctx);
      if (acc) return acc;
      this.ensureBuilt(v);
      return this.load(v, index);
    }
    const rule = VALUE_RULES[loweringOf(e.prim)];
    if (!rule) throw new NexgradError(`fusion: internal: cannot inline ${e.prim}`);
    return rule({
      v,
      e,
      index,
      ranges: ctx.ranges,
      read: (k, at) => this.atomValue(e.inputs[k]!, at, ctx),
      bufferOf: (k) => {
        const a = e.inputs[k]!;
        return { buf: this.contiguous(a), dtype: a.aval.dtype };
      },
    });
  }

  /** Reads operand `a` through `index` (over the kernel's axes) as a strided buffer, if it is one. */
  stridedOperand(a: Atom, index: readonly Idx[], ranges: Map<Axis, number>, axes: readonly Axis[]): StridedOperand | undefined {
    if (!(a instanceof Var)) return undefined;
    const se = this.valueAt(a, index, newCtx(ranges));
    if (se.op !== 'load' || se.dyn) return undefined;
    const aff = affineStrides(se.index);
    if (!aff || [...aff.strides.keys()].some((k) => !axes.includes(k))) return undefined;
    return { kind: 'strided', buf: se.buf, offset: aff.offset, strides: axes.map((k) => aff.strides.get(k) ?? 0) as unknown as [number, number, number] };
  }

  /** Copies operand `a`, read through index(o0, o1, o2), into a fresh contiguous [d0, d1, d2] buffer. */
  pack(a: Atom, dims: readonly [number, number, number], index: (r: Map<Axis, number>) => Idx[]): StridedOperand {
    if (!(a instanceof Var)) throw new NexgradError('fusion: internal: literal operand to a matmul');
    const ranges = new Map<Axis, number>(dims.map((n, i) => [AX.outer(i), n]));
    const expr = this.valueAt(a, index(ranges), newCtx(ranges));
    const id = this.newTemp(a.aval.dtype, dims[0] * dims[1] * dims[2]);
    const outIdx = [0, 1, 2].map((i) => idx.var(AX.outer(i)));
    this.kernels.push({ kind: 'loop', name: this.kname(undefined, 'pack'), outer: [...dims], row: [], reductions: [], outerOutputs: [{ buf: id, index: linearize(outIdx, dims), expr }], rowOutputs: [] });
    return { kind: 'strided', buf: id, offset: 0, strides: [dims[1] * dims[2], dims[2], 1] };
  }

  /** A buffer holding operand `a` in row-major order. */
  contiguous(a: Atom): number {
    if (!(a instanceof Var)) throw new NexgradError('fusion: internal: literal operand');
    const ranges = new Map<Axis, number>(a.aval.shape.map((n, i) => [AX.outer(i), n]));
    const id = a.aval.shape.map((_, i) => idx.var(AX.outer(i)));
    const se = this.valueAt(a, id, newCtx(ranges));
    if (se.op === 'load' && !se.dyn && idxKey(se.index) === idxKey(linearize(id, a.aval.shape))) return se.buf;
    return this.ensureBuilt(a);
  }

  /** The kernels for every materialised value, then the program's outputs. */
  buildAll(): void {
    for (const e of this.view.program.eqns) for (const v of e.outputs) if (this.M.has(v) || this.ep.anchorOf.has(v)) this.ensureBuilt(v);
  }
}

export type { Eqn };
