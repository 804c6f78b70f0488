/** Shape primitives: reshape, transpose, broadcast_in_dim, slice, pad, concatenate, rev,
 * gather, scatter_add, iota. */
import { castScalar, isFloat } from '../dtype.js';
import { OpError } from '../errors.js';
import * as ops from '../ops.js';
import type { PrimDef, PrimParams } from '../primitive.js';
import type { AbstractValue } from '../program.js';
import { fmtShape, type Shape, shapeEq, sizeOf, stridesOf } from '../shape.js';
import type { MaybeTensor } from '../primitive.js';
import type { Tensor } from '../tensor.js';
import { bind1 } from '../trace.js';
import { alloc, avalStr, expectArity, expectAxes, forEachStrided } from './util.js';

const reshape: PrimDef<PrimParams['reshape']> = {
  lowering: 'view',
  shape: (inputs, { shape }) => {
    expectArity('reshape', inputs, 1);
    const x = inputs[0]!;
    if (!shape.every((d) => Number.isInteger(d) && d >= 0) || sizeOf(shape) !== sizeOf(x.shape)) {
      throw new OpError('reshape', `cannot reshape ${avalStr(x)} to ${fmtShape(shape)}`);
    }
    return [{ shape: [...shape], dtype: x.dtype }];
  },
  impl: ([x], { shape }, ctx) => {
    const out = alloc(x!.dtype, shape, ctx);
    out.data.set(x!.data as never);
    return [out];
  },
  jvp: (_x, [t], { shape }) => [t ? bind1('reshape', [t], { shape }) : null],
  vjp: ([x], _y, [ct]) => [ct ? bind1('reshape', [ct], { shape: [...x!.shape] }) : null],
};

function inversePerm(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

const transpose: PrimDef<PrimParams['transpose']> = {
  lowering: 'view',
  shape: (inputs, { perm }) => {
    expectArity('transpose', inputs, 1);
    const x = inputs[0]!;
    if (perm.length !== x.shape.length) throw new OpError('transpose', `permutation ${JSON.stringify(perm)} does not fit ${avalStr(x)}`);
    expectAxes('transpose', perm, x.shape.length, x.shape);
    return [{ shape: perm.map((p) => x.shape[p]!), dtype: x.dtype }];
  },
  impl: ([x], { perm }, ctx) => {
    const outShape = perm.map((p) => x!.shape[p]!);
    const out = alloc(x!.dtype, outShape, ctx);
    const st = stridesOf(x!.shape);
    const xd = x!.data;
    const od = out.data;
    forEachStrided(outShape, perm.map((p) => st[p]!), 0, (i, off) => {
      od[i] = xd[off]!;
    });
    return [out];
  },
  jvp: (_x, [t], { perm }) => [t ? bind1('transpose', [t], { perm }) : null],
  vjp: (_x, _y, [ct], { perm }) => [ct ? bind1('transpose', [ct], { perm: inversePerm(perm) }) : null],
};

const broadcast_in_dim: PrimDef<PrimParams['broadcast_in_dim']> = {
  lowering: 'view',
  shape: (inputs, { shape, dims }) => {
    expectArity('broadcast_in_dim', inputs, 1);
    const x = inputs[0]!;
    const ok =
      dims.length === x.shape.length &&
      dims.every((d, i) => Number.isInteger(d) && d >= 0 && d < shape.length && (i === 0 || d > dims[i - 1]!)) &&
      x.shape.every((s, i) => s === 1 || s === shape[dims[i]!]);
    if (!ok) throw new OpError('broadcast_in_dim', `cannot broadcast ${avalStr(x)} to ${fmtShape(shape)} with dims ${JSON.stringify(dims)}`);
    return [{ shape: [...shape], dtype: x.dtype }];
  },
  impl: ([x], { shape, dims }, ctx) => {
    const out = alloc(x!.dtype, shape, ctx);
    const xs = stridesOf(x!.shape);
    const st = shape.map(() => 0);
    dims.forEach((d, i) => {
      if (x!.shape[i] !== 1) st[d] = xs[i]!;
    });
    const xd = x!.data;
    const od = out.data;
    forEachStrided(shape, st, 0, (i, off) => {
      od[i] = xd[off]!;
    });
    return [out];
  },
  jvp: (_x, [t], p) => [t ? bind1('broadcast_in_dim', [t], p) : null],
  vjp: ([x], _y, [ct], { shape, dims }) => {
    if (!ct) return [null];
    const summed = shape.map((_, k) => k).filter((k) => {
      const i = dims.indexOf(k);
      return i < 0 || (x!.shape[i] === 1 && shape[k] !== 1);
    });
    const r = summed.length ? ops.sum(ct, summed) : ct;
    return [ops.reshape(r, [...x!.shape])];
  },
};

function sliceOutShape(p: PrimParams['slice']): number[] {
  return p.start.map((s, i) => Math.max(0, Math.ceil((p.limit[i]! - s) / p.strides[i]!)));
}

const slice: PrimDef<PrimParams['slice']> = {
  lowering: 'view',
  shape: (inputs, p) => {
    expectArity('slice', inputs, 1);
    const x = inputs[0]!;
    const r = x.shape.length;
    const ok =
      p.start.length === r && p.limit.length === r && p.strides.length === r &&
      x.shape.every((d, i) => p.start[i]! >= 0 && p.start[i]! <= p.limit[i]! && p.limit[i]! <= d && p.strides[i]! >= 1);
    if (!ok) throw new OpError('slice', `start ${JSON.stringify(p.start)} limit ${JSON.stringify(p.limit)} strides ${JSON.stringify(p.strides)} do not fit ${avalStr(x)}`);
    return [{ shape: sliceOutShape(p), dtype: x.dtype }];
  },
  impl: ([x], p, ctx) => {
    const outShape = sliceOutShape(p);
    const out = alloc(x!.dtype, outShape, ctx);
    const xs = stridesOf(x!.shape);
    const base = p.start.reduce((a, s, i) => a + s * xs[i]!, 0);
    const xd = x!.data;
    const od = out.data;
    forEachStrided(outShape, xs.map((s, i) => s * p.strides[i]!), base, (i, off) => {
      od[i] = xd[off]!;
    });
    return [out];
  },
  jvp: (_x, [t], p) => [t ? bind1('slice', [t], p) : null],
  vjp: ([x], _y, [ct], p) => {
    if (!ct) return [null];
    const outShape = sliceOutShape(p);
    const hi = x!.shape.map((d, i) => (outShape[i]! === 0 ? d - p.start[i]! : d - (p.start[i]! + (outShape[i]! - 1) * p.strides[i]! + 1)));
    return [bind1('pad', [ct], { lo: [...p.start], hi, interior: p.strides.map((s) => s - 1), value: 0 })];
  },
};

function padOutShape(x: Shape, p: PrimParams['pad']): number[] {
  return x.map((n, i) => p.lo[i]! + p.hi[i]! + n + Math.max(0, n - 1) * p.interior[i]!);
}

const pad: PrimDef<PrimParams['pad']> = {
  lowering: 'view',
  shape: (inputs, p) => {
    expectArity('pad', inputs, 1);
    const x = inputs[0]!;
    const r = x.shape.length;
    if (p.lo.length !== r || p.hi.length !== r || p.interior.length !== r || p.interior.some((v) => v < 0)) {
      throw new OpError('pad', `lo ${JSON.stringify(p.lo)} hi ${JSON.stringify(p.hi)} interior ${JSON.stringify(p.interior)} do not fit ${avalStr(x)}`);
    }
    const out = padOutShape(x.shape, p);
    if (out.some((d) => d < 0)) throw new OpError('pad', `negative padding crops ${avalStr(x)} below zero size`);
    return [{ shape: out, dtype: x.dtype }];
  },
  impl: ([x], p, ctx) => {
    const outShape = padOutShape(x!.shape, p);
    const out = alloc(x!.dtype, outShape, ctx);
    const fill = ctx.wide && isFloat(x!.dtype) ? p.value : castScalar(p.value, x!.dtype);
    out.data.fill(fill);
    const os = stridesOf(outShape);
    const xd = x!.data;
    const od = out.data;
    const r = outShape.length;
    const idx = new Array<number>(r).fill(0);
    // walk input elements; drop the ones cropped by negative padding
    forEachStrided(x!.shape, stridesOf(x!.shape), 0, (i) => {
      let rem = i;
      let off = 0;
      for (let d = r - 1; d >= 0; d--) {
        const n = x!.shape[d]!;
        idx[d] = rem % n;
        rem = Math.floor(rem / n);
        const pos = p.lo[d]! + idx[d]! * (p.interior[d]! + 1);
        if (pos < 0 || pos >= outShape[d]!) return;
        off += pos * os[d]!;
      }
      od[off] = xd[i]!;
    });
    return [out];
  },
  jvp: (_x, [t], p) => [t ? bind1('pad', [t], { ...p, value: 0 }) : null],
  vjp: (_x, _y, [ct], p) => {
    if (!ct) return [null];
    // restore cropped regions as zeros, then take every (interior+1)-th element after lo
    const full = bind1('pad', [ct], { lo: p.lo.map((l) => Math.max(-l, 0)), hi: p.hi.map((h) => Math.max(-h, 0)), interior: p.lo.map(() => 0), value: 0 });
    const start = p.lo.map((l) => Math.max(l, 0));
    const limit = full.shape.map((d, i) => d - Math.max(p.hi[i]!, 0));
    return [bind1('slice', [full], { start, limit, strides: p.interior.map((v) => v + 1) })];
  },
};

const concatenate: PrimDef<PrimParams['concatenate']> = {
  lowering: 'view',
  shape: (inputs, { axis }) => {
    if (inputs.length === 0) throw new OpError('concatenate', 'needs at least one operand');
    const a = inputs[0]!;
    expectAxes('concatenate', [axis], a.shape.length, a.shape);
    for (const b of inputs) {
      if (b.dtype !== a.dtype || b.shape.length !== a.shape.length || b.shape.some((d, i) => i !== axis && d !== a.shape[i])) {
        throw new OpError('concatenate', `operands ${inputs.map(avalStr).join(', ')} do not match outside axis ${axis}`);
      }
    }
    const shape = [...a.shape];
    shape[axis] = inputs.reduce((s, b) => s + b.shape[axis]!, 0);
    return [{ shape, dtype: a.dtype }];
  },
  impl: (xs, { axis }, ctx) => {
    const shape = [...xs[0]!.shape];
    shape[axis] = xs.reduce((s, b) => s + b.shape[axis]!, 0);
    const out = alloc(xs[0]!.dtype, shape, ctx);
    const outer = sizeOf(shape.slice(0, axis));
    const inner = sizeOf(shape.slice(axis + 1));
    const rowOut = shape[axis]! * inner;
    let col = 0;
    for (const x of xs) {
      const row = x.shape[axis]! * inner;
      for (let o = 0; o < outer; o++) out.data.set(x.data.subarray(o * row, (o + 1) * row) as never, o * rowOut + col);
      col += row;
    }
    return [out];
  },
  jvp: (xs, ts, p) => {
    if (ts.every((t) => !t)) return [null];
    return [bind1('concatenate', ts.map((t, i) => t ?? ops.zerosLike(xs[i]!)), p)];
  },
  vjp: (xs, _y, [ct], { axis }) => {
    if (!ct) return xs.map(() => null);
    let off = 0;
    return xs.map((x) => {
      const start = ct.shape.map((_, i) => (i === axis ? off : 0));
      const limit = ct.shape.map((d, i) => (i === axis ? off + x.shape[axis]! : d));
      off += x.shape[axis]!;
      return bind1('slice', [ct], { start, limit, strides: ct.shape.map(() => 1) });
    });
  },
};

const rev: PrimDef<PrimParams['rev']> = {
  lowering: 'view',
  shape: (inputs, { axes }) => {
    expectArity('rev', inputs, 1);
    expectAxes('rev', axes, inputs[0]!.shape.length, inputs[0]!.shape);
    return [inputs[0]!];
  },
  impl: ([x], { axes }, ctx) => {
    const out = alloc(x!.dtype, x!.shape, ctx);
    const xs = stridesOf(x!.shape);
    const st = xs.map((s, i) => (axes.includes(i) ? -s : s));
    const base = axes.reduce((a, i) => a + (x!.shape[i]! - 1) * xs[i]!, 0);
    const xd = x!.data;
    const od = out.data;
    forEachStrided(x!.shape, st, base, (i, off) => {
      od[i] = xd[off]!;
    });
    return [out];
  },
  jvp: (_x, [t], p) => [t ? bind1('rev', [t], p) : null],
  vjp: (_x, _y, [ct], p) => [ct ? bind1('rev', [ct], p) : null],
};

// ---------------------------------------------------------------------------------------
// gather / scatter_add

interface GatherGeom {
  B: number;
  P: number;
  I: number;
  A: number;
  Q: number;
  outShape: number[];
}

function gatherGeom(op: string, x: AbstractValue, idx: AbstractValue, axis: number, batchDims: number): GatherGeom {
  const r = x.shape.length;
  const ok =
    Number.isInteger(axis) && Number.isInteger(batchDims) && batchDims >= 0 && axis >= batchDims && axis < r &&
    idx.shape.length >= batchDims && x.shape.slice(0, batchDims).every((d, i) => d === idx.shape[i]);
  if (!ok) throw new OpError(op, `indices ${avalStr(idx)} do not fit operand ${avalStr(x)} (axis ${axis}, batch dims ${batchDims})`);
  if (idx.dtype !== 'i32' && idx.dtype !== 'u32') throw new OpError(op, `indices must be i32 or u32, got ${avalStr(idx)}`);
  return {
    B: sizeOf(x.shape.slice(0, batchDims)),
    P: sizeOf(x.shape.slice(batchDims, axis)),
    I: sizeOf(idx.shape.slice(batchDims)),
    A: x.shape[axis]!,
    Q: sizeOf(x.shape.slice(axis + 1)),
    outShape: [...x.shape.slice(0, axis), ...idx.shape.slice(batchDims), ...x.shape.slice(axis + 1)],
  };
}

const gather: PrimDef<PrimParams['gather']> = {
  lowering: 'gather',
  shape: (inputs, { axis, batchDims }) => {
    expectArity('gather', inputs, 2);
    const g = gatherGeom('gather', inputs[0]!, inputs[1]!, axis, batchDims);
    return [{ shape: g.outShape, dtype: inputs[0]!.dtype }];
  },
  impl: ([x, idx], { axis, batchDims }, ctx) => {
    const g = gatherGeom('gather', x!, idx!, axis, batchDims);
    const out = alloc(x!.dtype, g.outShape, ctx);
    const xd = x!.data;
    const id = idx!.data;
    const od = out.data;
    let o = 0;
    for (let b = 0; b < g.B; b++)
      for (let p = 0; p < g.P; p++)
        for (let i = 0; i < g.I; i++) {
          const a = Math.min(Math.max(id[b * g.I + i]!, 0), g.A - 1);
          const src = ((b * g.P + p) * g.A + a) * g.Q;
          for (let q = 0; q < g.Q; q++) od[o++] = xd[src + q]!;
        }
    return [out];
  },
  jvp: ([, idx], [t], p) => [t ? bind1('gather', [t, idx!], p) : null],
  // gather clamps out-of-range indices but scatter_add drops them: clamp before scattering.
  vjp: ([x, idx], _y, [ct], p) => [ct ? bind1('scatter_add', [ops.zerosLike(x!), clampIndices(idx!, x!.shape[p.axis]!), ct], p) : null, null],
};

/** Indices clamped to [0, n - 1], as gather reads them. */
function clampIndices(idx: Tensor, n: number): Tensor {
  return ops.minimum(ops.maximum(idx, 0), n - 1);
}

/**
 * Where scatter_add keeps each update: true where its index is in [0, n), broadcast from the
 * indices' shape to the updates' shape (x.shape[:axis] ++ idx.shape[batchDims:] ++ x.shape[axis+1:]).
 */
function inRangeMask(idx: Tensor, n: number, updShape: readonly number[], { axis, batchDims }: PrimParams['scatter_add']): Tensor {
  const ok = ops.logicalAnd(ops.greaterEqual(idx, 0), ops.less(idx, n));
  const dims = idx.shape.map((_, j) => (j < batchDims ? j : axis + j - batchDims));
  return bind1('broadcast_in_dim', [ok], { shape: [...updShape], dims });
}

const scatter_add: PrimDef<PrimParams['scatter_add']> = {
  lowering: 'scatter',
  shape: (inputs, { axis, batchDims }) => {
    expectArity('scatter_add', inputs, 3);
    const [x, idx, upd] = inputs as [AbstractValue, AbstractValue, AbstractValue];
    const g = gatherGeom('scatter_add', x, idx, axis, batchDims);
    if (!shapeEq(upd.shape, g.outShape) || upd.dtype !== x.dtype) {
      throw new OpError('scatter_add', `updates ${avalStr(upd)} must be ${x.dtype}${fmtShape(g.outShape)} for operand ${avalStr(x)} and indices ${avalStr(idx)}`);
    }
    return [x];
  },
  impl: ([x, idx, upd], { axis, batchDims }, ctx) => {
    const g = gatherGeom('scatter_add', x!, idx!, axis, batchDims);
    const out = alloc(x!.dtype, x!.shape, ctx);
    out.data.set(x!.data as never);
    const ud = upd!.data;
    const id = idx!.data;
    const od = out.data;
    let u = 0;
    for (let b = 0; b < g.B; b++)
      for (let p = 0; p < g.P; p++)
        for (let i = 0; i < g.I; i++) {
          const a = id[b * g.I + i]!;
          if (a < 0 || a >= g.A) {
            u += g.Q;
            continue;
          }
          const dst = ((b * g.P + p) * g.A + a) * g.Q;
          for (let q = 0; q < g.Q; q++) od[dst + q] += ud[u++]!;
        }
    return [out];
  },
  jvp: ([x, idx, upd], [tx, , tu], p) => {
    if (!tx && !tu) return [null];
    return [bind1('scatter_add', [tx ?? ops.zerosLike(x!), idx!, tu ?? ops.zerosLike(upd!)], p)];
  },
  // Out-of-range updates were dropped, so their cotangent is zero (gather alone would clamp).
  vjp: ([x, idx, upd], _y, [ct], p): MaybeTensor[] => {
    if (!ct) return [null, null, null];
    const taken = bind1('gather', [ct, idx!], p);
    const keep = inRangeMask(idx!, x!.shape[p.axis]!, upd!.shape, p);
    return [ct, null, ops.where(keep, taken, ops.zerosLike(taken))];
  },
};

const iota: PrimDef<PrimParams['iota']> = {
  lowering: 'view',
  shape: (inputs, { shape, dim, dtype }) => {
    expectArity('iota', inputs, 0);
    if (!shape.every((d) => Number.isInteger(d) && d >= 0) || !(dim >= 0 && dim < shape.length)) {
      throw new OpError('iota', `invalid shape ${fmtShape(shape)} or dimension ${dim}`);
    }
    return [{ shape: [...shape], dtype }];
  },
  impl: (_x, { shape, dim, dtype }, ctx) => {
    const out = alloc(dtype, shape, ctx);
    const stride = stridesOf(shape)[dim]!;
    const n = shape[dim]!;
    const od = out.data;
    for (let i = 0; i < od.length; i++) od[i] = Math.floor(i / stride) % n;
    return [out];
  },
  jvp: () => [null],
  vjp: () => [],
};

export const shapePrims = {
  reshape,
  transpose,
  broadcast_in_dim,
  slice,
  pad,
  concatenate,
  rev,
  gather,
  scatter_add,
  iota,
};
