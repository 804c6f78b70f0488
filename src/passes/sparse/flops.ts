/**
 * Work of a program, counted from its equations (regions, checkpoints and custom_vjp bodies
 * recursively): floating-point operations of contractions (2 per multiply-add) and of
 * elementwise ops and reductions (1 per element), and the elements gathered or scattered. Views
 * (reshape, transpose, broadcast, pad, ...) are free: fusion turns them into index expressions.
 * It measures what the masked sparse rewrite saves; the kernel cost model lives in src/codegen.
 */
import type { Eqn, Program } from '../../ir/program.js';
import { ELEMENTWISE, REDUCE } from '../prim_kinds.js';

export interface FlopCount {
  /** Multiply-adds of dot_general and conv_general, times 2. */
  contraction: number;
  /** Elementwise ops (one per output element) and reductions (one per input element). */
  pointwise: number;
  /** Elements moved by gather and scatter_add (data movement, not flops). */
  moved: number;
}

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

function contraction(e: Eqn): number {
  if (e.prim === 'dot_general') {
    const lhs = e.inputs[0]!.aval.shape;
    return 2 * prod(e.outputs[0]!.aval.shape) * prod(e.params.contracting[0].map((a) => lhs[a]!));
  }
  if (e.prim === 'conv_general') {
    const p = e.params;
    const w = e.inputs[1]!.aval.shape;
    const inPerGroup = w[p.dims.rhs[1]!]!;
    const window = prod(p.dims.rhs.slice(2).map((a) => w[a]!));
    return 2 * prod(e.outputs[0]!.aval.shape) * inPerGroup * window;
  }
  return 0;
}

function add(into: FlopCount, c: FlopCount): void {
  into.contraction += c.contraction;
  into.pointwise += c.pointwise;
  into.moved += c.moved;
}

export function countFlops(p: Program): FlopCount {
  const total: FlopCount = { contraction: 0, pointwise: 0, moved: 0 };
  for (const e of p.eqns) {
    const body = (e.params as { body?: unknown }).body;
    if (e.prim === 'region' || e.prim === 'checkpoint' || e.prim === 'custom_vjp') {
      add(total, countFlops(body as Program));
      continue;
    }
    const out = prod(e.outputs[0]?.aval.shape ?? []);
    if (e.prim === 'dot_general' || e.prim === 'conv_general') total.contraction += contraction(e);
    else if (ELEMENTWISE.has(e.prim)) total.pointwise += out;
    else if (REDUCE.has(e.prim)) total.pointwise += prod(e.inputs[0]!.aval.shape);
    else if (e.prim === 'gather') total.moved += out;
    else if (e.prim === 'scatter_add') total.moved += prod(e.inputs[2]!.aval.shape);
  }
  return total;
}

/** Total flops (contractions and pointwise). */
export const flopsOf = (c: FlopCount): number => c.contraction + c.pointwise;
