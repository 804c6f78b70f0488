/**
 * The primitive set: every primitive's params type, and the shape of its rule-table entry.
 * The table itself (src/ir/primitives/index.ts) is a mapped type over PrimParams, so a
 * primitive without a shape rule, interpreter implementation, JVP or VJP rule does not compile.
 */
import type { DType } from './dtype.js';
import type { HostArray } from './host.js';
import type { AbstractValue, Program } from './program.js';
import type { Tensor } from './tensor.js';

type None = Record<string, never>;

/** Convolution dimension numbers: positions of [batch, feature, ...spatial] (lhs, out) and
 * [outFeature, inFeature, ...spatial] (rhs) in each operand's shape. */
export interface ConvDims {
  readonly lhs: readonly number[];
  readonly rhs: readonly number[];
  readonly out: readonly number[];
}

export interface ConvParams {
  readonly windowStrides: readonly number[];
  readonly padding: readonly (readonly [number, number])[];
  readonly lhsDilation: readonly number[];
  readonly rhsDilation: readonly number[];
  readonly featureGroupCount: number;
  readonly batchGroupCount: number;
  readonly dims: ConvDims;
}

export interface DotParams {
  /** [lhs axes, rhs axes] summed over. */
  readonly contracting: readonly [readonly number[], readonly number[]];
  /** [lhs axes, rhs axes] batched over; output is (batch..., lhs free..., rhs free...). */
  readonly batch: readonly [readonly number[], readonly number[]];
}

export interface PrimParams {
  // unary elementwise (float unless noted)
  neg: None;
  exp: None;
  log: None;
  log1p: None;
  expm1: None;
  sin: None;
  cos: None;
  tanh: None;
  logistic: None;
  sqrt: None;
  rsqrt: None;
  erf: None;
  abs: None;
  sign: None;
  floor: None;
  ceil: None;
  round: None;
  not: None; // bool / integer bitwise not
  // binary elementwise (operands of one shape and dtype)
  add: None;
  sub: None;
  mul: None;
  div: None;
  max: None;
  min: None;
  pow: None;
  rem: None;
  and: None;
  or: None;
  xor: None;
  shift_left: None;
  shift_right_logical: None;
  // comparisons -> bool
  eq: None;
  ne: None;
  lt: None;
  le: None;
  gt: None;
  ge: None;
  /** select(pred: bool, onTrue, onFalse), all one shape. */
  select: None;
  cast: { readonly dtype: DType };
  // reductions
  reduce_sum: { readonly axes: readonly number[] };
  reduce_max: { readonly axes: readonly number[] };
  reduce_min: { readonly axes: readonly number[] };
  argmax: { readonly axis: number };
  /** Stable argsort along an axis, i32 indices. */
  argsort: { readonly axis: number; readonly descending: boolean };
  // shape ops
  reshape: { readonly shape: readonly number[] };
  transpose: { readonly perm: readonly number[] };
  /** Operand dim i maps to output dim dims[i]; operand dims are 1 or equal to the output's. */
  broadcast_in_dim: { readonly shape: readonly number[]; readonly dims: readonly number[] };
  slice: { readonly start: readonly number[]; readonly limit: readonly number[]; readonly strides: readonly number[] };
  /** Pads with a constant; lo/hi may be negative (cropping), interior inserts between elements. */
  pad: { readonly lo: readonly number[]; readonly hi: readonly number[]; readonly interior: readonly number[]; readonly value: number };
  concatenate: { readonly axis: number };
  rev: { readonly axes: readonly number[] };
  /**
   * gather(x, idx): takes along `axis` of x with integer indices. The first batchDims dims of
   * x and idx are shared. out.shape = x.shape[:axis] ++ idx.shape[batchDims:] ++ x.shape[axis+1:].
   * Out-of-range indices are clamped.
   */
  gather: { readonly axis: number; readonly batchDims: number };
  /** scatter_add(x, idx, updates): the transpose of gather; out-of-range updates are dropped. */
  scatter_add: { readonly axis: number; readonly batchDims: number };
  iota: { readonly shape: readonly number[]; readonly dim: number; readonly dtype: DType };
  // contractions
  dot_general: DotParams;
  conv_general: ConvParams;
  /** random_bits(key u32[2], counter u32[...]) -> u32[...]: threefry2x32 of the counter. */
  random_bits: None;
  // higher-order
  /** A named composite op; autodiff goes through its body. */
  region: { readonly name: string; readonly attrs: Readonly<Record<string, unknown>>; readonly body: Program };
  /** Rematerialised in the backward pass. */
  checkpoint: { readonly body: Program };
  /** fwd: inputs -> (outputs, residuals); bwd: (residuals, output cotangents) -> input cotangents. */
  custom_vjp: { readonly body: Program; readonly fwd: Program; readonly bwd: Program; readonly numResiduals: number };
}

export type PrimName = keyof PrimParams;

export interface ImplContext {
  /** Store every float in float64 (the reference interpreter's f64 mode). */
  readonly wide: boolean;
}

/** Tangent of zero is null. */
export type MaybeTensor = Tensor | null;

export type JvpRule<P> = (primals: Tensor[], tangents: MaybeTensor[], params: P, outputs: Tensor[]) => MaybeTensor[];
export type VjpRule<P> = (primals: Tensor[], outputs: Tensor[], cotangents: MaybeTensor[], params: P) => MaybeTensor[];

/**
 * How a primitive becomes kernel IR. Every backend lowers every kind (src/passes/fusion builds
 * the kernel IR; the dialects print it), so a primitive never falls back to the host.
 */
export type Lowering =
  /** scalar expressions, fused into whatever kernel consumes them */
  | 'unary' | 'binary' | 'compare' | 'select' | 'cast'
  /** index remappings (reshape, transpose, broadcast, slice, pad, concat, rev, iota): inlined as index expressions */
  | 'view'
  /** reduce_sum/max/min: a loop kernel's reduction phase */
  | 'reduce'
  /** a reduction carrying its index (first index on ties) */
  | 'argmax'
  /** a sort kernel per row (argsort) */
  | 'sort'
  /** a load at a data-dependent index */
  | 'gather'
  /** accumulating stores at data-dependent indices */
  | 'scatter'
  /** the threefry2x32 scalar expression */
  | 'random'
  /** matmul and convolution anchor kernels */
  | 'contraction'
  /** higher-order primitives: their bodies are inlined before fusion */
  | 'body';

export interface PrimDef<P> {
  /** How the compiler lowers it (see Lowering). */
  readonly lowering: Lowering;
  /** Output abstract values; throws OpError naming the op and the shapes when input is bad. */
  readonly shape: (inputs: AbstractValue[], params: P) => AbstractValue[];
  /** Host implementation (the reference interpreter). */
  readonly impl: (inputs: HostArray[], params: P, ctx: ImplContext) => HostArray[];
  /** 'structural' marks higher-order primitives the autodiff drivers handle themselves. */
  readonly jvp: JvpRule<P> | 'structural';
  readonly vjp: VjpRule<P> | 'structural';
}

export type PrimTable = { readonly [K in PrimName]: PrimDef<PrimParams[K]> };
