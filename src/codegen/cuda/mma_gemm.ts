/**
 * The tensor-core GEMM of the CUDA backend: C[b, m, n] = sum_k A[b, m, k] * B[b, k, n] for a
 * GemmSpec whose operands are bf16 or f16 (mma.sync m16n8k16) or f32 run as tf32 (m16n8k8, an
 * opt-in), always accumulating in f32, with the spec's prologues and epilogue.
 *
 * One block of 4 or 8 warps computes a BM x BN tile (each warp 32 x 32: 2 x 4 mma tiles of
 * 16 x 8). Per slab of BK along k (32 for 16-bit operands, 16 for tf32; 16 words a row), the
 * block stages A as [m][k] and B as [n][k] 32-bit words in shared memory (rows padded to 20
 * words, so fragment loads hit 32 different banks): every staged element is computed by the
 * ScopeBuilder from the operand's expression (strided views, im2col gathers and prologues
 * alike) inside its bounds test, zero outside [M, N, K]. The next slab's elements are loaded
 * into registers while the current one is multiplied. Fragment layouts follow the PTX ISA:
 * with g = lane / 4 and q = lane % 4, A registers hold rows g and g + 8 at word columns q and
 * q + 4 of the k step, B registers column g at word rows q and q + 4, C rows g and g + 8 at
 * columns 2q, 2q + 1.
 *
 * The epilogue goes through shared memory: the accumulators are written to an f32 tile there
 * (aliasing the staging arrays), then the block walks the tile with consecutive threads on
 * consecutive columns, so the epilogue is printed once and its stores are coalesced.
 */
import type { DType } from '../../ir/dtype.js';
import { NexgradError } from '../../ir/errors.js';
import { AX } from '../kernel/axis.js';
import type { SExpr } from '../kernel/kernel_graph.js';
import { type GemmSpec, usesReducingFeatures } from '../lower/gemm_spec.js';
import type { GpuBinding } from '../lower/gpu/dialect.js';
import type { GpuKernelCode } from '../lower/gpu/kernel_code.js';
import { ScopeBuilder } from '../lower/scope_builder.js';
import { cudaCast } from './dialect.js';
import type { CudaGpuDialect } from './gpu_dialect.js';

export type MmaKind = 'bf16' | 'f16' | 'tf32';

/** The entry point of the GEMM module. */
export const MMA_ENTRY = 'ng_mma_gemm';

/** Words per staged row per slab, and the padded row stride in words. */
const SLAB_WORDS = 16;
const ROW_WORDS = SLAB_WORDS + 4;
/** Column padding of the f32 epilogue tile. */
const C_PAD = 4;

export interface MmaConfig {
  /** Warps along m and n; each warp computes 32 x 32. */
  readonly warpsM: number;
  readonly warpsN: number;
}

export interface MmaGemmInput {
  readonly spec: GemmSpec;
  readonly kind: MmaKind;
  /** The dialect specialised to the kernel's bindings. */
  readonly dialect: CudaGpuDialect;
  readonly bindings: readonly GpuBinding[];
  readonly dtypeOf: (buf: number) => DType;
  readonly config?: MmaConfig;
}

/** The mma.sync wrappers (PTX), left to the tests' host emulation under NG_EMULATION. */
const MMA_PRELUDE = String.raw`#ifndef NG_EMULATION
static __device__ __forceinline__ void ng_mma_bf16(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
static __device__ __forceinline__ void ng_mma_f16(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
static __device__ __forceinline__ void ng_mma_tf32(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
static __device__ __forceinline__ unsigned ng_f2tf32(float f) { unsigned r; asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f)); return r; }
#endif
`;

/** Operand dtypes each kind multiplies. */
const OPERAND_DTYPE: Readonly<Record<MmaKind, DType>> = { bf16: 'bf16', f16: 'f16', tf32: 'f32' };

/** The tensor-core kind for a GEMM of `dtype`, or undefined (f64 and integers use the FMA GEMM). */
export function mmaKindFor(dtype: DType, tf32: boolean): MmaKind | undefined {
  if (dtype === 'bf16' || dtype === 'f16') return dtype;
  return dtype === 'f32' && tf32 ? 'tf32' : undefined;
}

/** Larger tiles for tall problems; a 64 x 64 tile otherwise. */
export function mmaConfig(M: number, N: number): MmaConfig {
  return M >= 2048 && N >= 64 ? { warpsM: 4, warpsN: 2 } : { warpsM: 2, warpsN: 2 };
}

interface Geometry {
  readonly BM: number;
  readonly BN: number;
  readonly threads: number;
  /** Elements per word (2 for 16-bit operands, 1 for tf32) and per slab along k. */
  readonly perWord: number;
  readonly BK: number;
}

function geometry(kind: MmaKind, c: MmaConfig): Geometry {
  const perWord = kind === 'tf32' ? 1 : 2;
  return { BM: 32 * c.warpsM, BN: 32 * c.warpsN, threads: 32 * c.warpsM * c.warpsN, perWord, BK: SLAB_WORDS * perWord };
}

/** One operand's staging: rows of `tile` free-axis elements, `regs` prefetch words per thread. */
interface Operand {
  readonly value: SExpr;
  readonly free: typeof AX.m | typeof AX.n;
  readonly origin: string;
  readonly extent: number;
  readonly tile: number;
  /** Word offset of its rows in the shared array. */
  readonly base: number;
  readonly regs: string;
  /** Consecutive threads take consecutive free-axis rows (else consecutive k words). */
  readonly freeFast: boolean;
}

class MmaEmitter {
  readonly cb: ScopeBuilder;
  readonly D: CudaGpuDialect;
  readonly g: Geometry;

  constructor(readonly input: MmaGemmInput) {
    this.D = input.dialect;
    this.cb = new ScopeBuilder(input.dialect);
    this.g = geometry(input.kind, input.config ?? mmaConfig(input.spec.m, input.spec.n));
  }

  int(v: number): string {
    return this.D.literal(v, 'i32');
  }

  /** `if (c) { body }` in a scope of its own (what body declares stays inside). */
  when(c: string, body: () => void): void {
    this.cb.open();
    body();
    this.cb.close(`if (${c})`);
  }

  /** The 32-bit word (as `unsigned`) of one operand element's bits (the 16 low bits for 16-bit kinds). */
  private elementBits(value: SExpr): string {
    const { kind } = this.input;
    // a plain load of the operand's own dtype: its stored bits as they are
    if (value.op === 'load' && !value.dyn && value.dtype === OPERAND_DTYPE[kind] && kind !== 'tf32') {
      return `(unsigned)${this.D.nameOf(value.buf)}[${this.cb.index(value.index)}]`;
    }
    const v = this.cb.value(value);
    const f = value.dtype === OPERAND_DTYPE[kind] ? v : cudaCast(v, value.dtype, OPERAND_DTYPE[kind]);
    if (kind === 'tf32') return `ng_f2tf32(${f})`;
    return kind === 'bf16' ? `(unsigned)ng_f2bf(${f})` : `(unsigned)ng_f2h(${f})`;
  }

  /** Loads one operand's share of the slab starting at k element `k0` into its prefetch registers. */
  private prefetch(op: Operand, k0: string): void {
    const { cb, D, g } = this;
    const K = this.input.spec.k;
    const words = op.tile * SLAB_WORDS;
    for (let r = 0; r * g.threads < words; r++) {
      cb.open();
      cb.line(D.declareIndex('ng_p', `ng_tid + ${this.int(r * g.threads)}`));
      const [fl, kw] = op.freeFast ? [D.indexMod('ng_p', op.tile), D.indexDiv('ng_p', op.tile)] : [D.indexDiv('ng_p', SLAB_WORDS), D.indexMod('ng_p', SLAB_WORDS)];
      cb.line(D.declareIndex('ng_fl', fl));
      cb.line(D.declareIndex('ng_kw', kw));
      cb.line(D.declareIndex('ng_gf', `${op.origin} + ng_fl`));
      cb.line(D.declareMutable('ng_word', 'u32', '0u'));
      for (let e = 0; e < g.perWord; e++) {
        cb.line(D.declareIndex(`ng_gk${e}`, `${k0} + ng_kw * ${this.int(g.perWord)} + ${this.int(e)}`));
        this.when(`ng_gf < ${this.int(op.extent)} && ng_gk${e} < ${this.int(K)}`, () => {
          cb.line(D.declareIndex(op.free.name, 'ng_gf'));
          cb.line(D.declareIndex(AX.k.name, `ng_gk${e}`));
          cb.defineVars(op.free.name, AX.k.name);
          const bits = this.elementBits(op.value);
          cb.line(D.assign('ng_word', e === 0 ? `${bits}` : `ng_word | (${bits} << 16)`));
        });
      }
      cb.line(`${op.regs}[${r}] = ng_word;`);
      cb.close('');
    }
  }

  /** Stores the prefetch registers into the operand's rows of the shared array. */
  private stage(op: Operand): void {
    const { cb, D, g } = this;
    const words = op.tile * SLAB_WORDS;
    for (let r = 0; r * g.threads < words; r++) {
      const p = `(ng_tid + ${this.int(r * g.threads)})`;
      const [fl, kw] = op.freeFast ? [D.indexMod(p, op.tile), D.indexDiv(p, op.tile)] : [D.indexDiv(p, SLAB_WORDS), D.indexMod(p, SLAB_WORDS)];
      cb.line(`ng_sm[${this.int(op.base)} + ${fl} * ${this.int(ROW_WORDS)} + ${kw}] = ${op.regs}[${r}];`);
    }
  }

  /** The mma steps of one slab: 2 k steps of 8 words, 2 x 4 tiles per warp. */
  private multiply(a: Operand, b: Operand): void {
    const { cb } = this;
    for (let ks = 0; ks < 2; ks++) {
      const kw = ks * 8;
      for (let mt = 0; mt < 2; mt++) {
        const row = (dr: number): string => `(${this.int(a.base)} + (ng_wm + ${this.int(mt * 16 + dr)}) * ${this.int(ROW_WORDS)} + ${this.int(kw)} + ng_q)`;
        cb.line(`const unsigned ng_a${mt}_0 = ng_sm[${row(0)} + ng_g * ${this.int(ROW_WORDS)}];`);
        cb.line(`const unsigned ng_a${mt}_1 = ng_sm[${row(8)} + ng_g * ${this.int(ROW_WORDS)}];`);
        cb.line(`const unsigned ng_a${mt}_2 = ng_sm[${row(0)} + ng_g * ${this.int(ROW_WORDS)} + 4];`);
        cb.line(`const unsigned ng_a${mt}_3 = ng_sm[${row(8)} + ng_g * ${this.int(ROW_WORDS)} + 4];`);
      }
      for (let nt = 0; nt < 4; nt++) {
        const at = `${this.int(b.base)} + (ng_wn + ${this.int(nt * 8)} + ng_g) * ${this.int(ROW_WORDS)} + ${this.int(kw)} + ng_q`;
        cb.line(`const unsigned ng_b${nt}_0 = ng_sm[${at}];`);
        cb.line(`const unsigned ng_b${nt}_1 = ng_sm[${at} + 4];`);
      }
      for (let mt = 0; mt < 2; mt++) {
        for (let nt = 0; nt < 4; nt++) {
          const a = [0, 1, 2, 3].map((i) => `ng_a${mt}_${i}`).join(', ');
          cb.line(`ng_mma_${this.input.kind}(ng_c + ${(mt * 4 + nt) * 4}, ${a}, ng_b${nt}_0, ng_b${nt}_1);`);
        }
      }
      // the next k step declares the same fragment names: a scope per step
      if (ks === 0) {
        cb.close('');
        cb.open();
      }
    }
  }

  /** The accumulators through the shared f32 tile into the epilogue (printed once, in a block-strided loop). */
  private epilogue(): void {
    const { cb, D, g } = this;
    const { spec } = this.input;
    const SC = g.BN + C_PAD;
    cb.line(D.barrier());
    for (let mt = 0; mt < 2; mt++) {
      for (let nt = 0; nt < 4; nt++) {
        const base = (mt * 4 + nt) * 4;
        const at = (dr: number): string => `(ng_wm + ${this.int(mt * 16 + dr)} + ng_g) * ${this.int(SC)} + ng_wn + ${this.int(nt * 8)} + 2 * ng_q`;
        cb.line(`ng_cs[${at(0)}] = ng_c[${base}]; ng_cs[${at(0)} + 1] = ng_c[${base + 1}];`);
        cb.line(`ng_cs[${at(8)}] = ng_c[${base + 2}]; ng_cs[${at(8)} + 1] = ng_c[${base + 3}];`);
      }
    }
    cb.line(D.barrier());
    cb.open('ng_e');
    cb.line(D.declareIndex('ng_ml', D.indexDiv('ng_e', g.BN)));
    cb.line(D.declareIndex('ng_nl', D.indexMod('ng_e', g.BN)));
    this.when(`ng_m0 + ng_ml < ${this.int(spec.m)} && ng_n0 + ng_nl < ${this.int(spec.n)}`, () => {
      cb.line(D.declareIndex(AX.m.name, 'ng_m0 + ng_ml'));
      cb.line(D.declareIndex(AX.n.name, 'ng_n0 + ng_nl'));
      cb.defineVars(AX.m.name, AX.n.name);
      const depth = cb.depth;
      // the product of the IR's dtype: rounded once from the f32 accumulator
      const src = cudaCast(`ng_cs[ng_ml * ${this.int(SC)} + ng_nl]`, 'f32', spec.dtype);
      cb.accResolver = () => ({ src, depth });
      cb.storeAll(spec.outputs, this.input.dtypeOf);
    });
    cb.close(`for (int ng_e = ng_tid; ng_e < ${this.int(g.BM * g.BN)}; ng_e += ${this.int(g.threads)})`);
  }

  emit(): GpuKernelCode {
    const { cb, D, g } = this;
    const { spec, kind } = this.input;
    const { batch, m: M, n: N, k: K } = spec;
    const tilesM = Math.ceil(M / g.BM);
    const tilesN = Math.ceil(N / g.BN);
    const total = batch * tilesM * tilesN;
    const aValue: SExpr = spec.aExpr ?? { op: 'load', buf: spec.aBuf, index: spec.aIdx, dtype: this.input.dtypeOf(spec.aBuf) };
    const bValue: SExpr = spec.bExpr ?? { op: 'load', buf: spec.bBuf, index: spec.bIdx, dtype: this.input.dtypeOf(spec.bBuf) };
    for (const v of [aValue, bValue]) if (v.dtype !== OPERAND_DTYPE[kind]) throw new NexgradError(`cuda mma gemm ${spec.name}: ${OPERAND_DTYPE[kind]} operands expected for ${kind}, got ${v.dtype}`);
    const a: Operand = {
      value: aValue,
      free: AX.m,
      origin: 'ng_m0',
      extent: M,
      tile: g.BM,
      base: 0,
      regs: 'ng_ra',
      freeFast: freeFastest(aValue, AX.m),
    };
    const b: Operand = {
      value: bValue,
      free: AX.n,
      origin: 'ng_n0',
      extent: N,
      tile: g.BN,
      base: g.BM * ROW_WORDS,
      regs: 'ng_rb',
      freeFast: freeFastest(bValue, AX.n),
    };
    cb.line(D.declareIndex('ng_t', D.groupIndex));
    cb.line(`if (ng_t >= ${this.int(total)}) { ${D.exit} }`);
    cb.line(D.declareIndex(AX.b.name, D.indexDiv('ng_t', tilesM * tilesN)));
    cb.defineVars(AX.b.name);
    cb.line(D.declareIndex('ng_m0', `${D.indexMod(D.indexDiv('ng_t', tilesN), tilesM)} * ${this.int(g.BM)}`));
    cb.line(D.declareIndex('ng_n0', `${D.indexMod('ng_t', tilesN)} * ${this.int(g.BN)}`));
    cb.line(D.declareIndex('ng_tid', D.localIndex));
    cb.line(D.declareIndex('ng_warp', 'ng_tid >> 5'));
    cb.line(D.declareIndex('ng_g', '(ng_tid & 31) >> 2'));
    cb.line(D.declareIndex('ng_q', 'ng_tid & 3'));
    cb.line(D.declareIndex('ng_wm', `(ng_warp / ${this.int(g.BN / 32)}) * 32`));
    cb.line(D.declareIndex('ng_wn', `(ng_warp % ${this.int(g.BN / 32)}) * 32`));
    cb.line('float* ng_cs = (float*)ng_sm;');
    cb.line('float ng_c[32];');
    cb.line('#pragma unroll');
    cb.line('for (int ng_i = 0; ng_i < 32; ng_i++) ng_c[ng_i] = 0.0f;');
    if (K > 0) {
      const regsA = (g.BM * SLAB_WORDS) / g.threads;
      const regsB = (g.BN * SLAB_WORDS) / g.threads;
      cb.line(`unsigned ng_ra[${regsA}], ng_rb[${regsB}];`);
      this.prefetch(a, this.int(0));
      this.prefetch(b, this.int(0));
      cb.open('ng_k0');
      this.stage(a);
      this.stage(b);
      cb.line(D.barrier());
      this.when(`ng_k0 + ${this.int(g.BK)} < ${this.int(K)}`, () => {
        cb.line(D.declareIndex('ng_kn', `ng_k0 + ${this.int(g.BK)}`));
        this.prefetch(a, 'ng_kn');
        this.prefetch(b, 'ng_kn');
      });
      cb.open();
      this.multiply(a, b);
      cb.close('');
      cb.line(D.barrier());
      cb.close(D.forHead('ng_k0', this.int(0), this.int(K), this.int(g.BK)));
    }
    this.epilogue();
    const words = Math.max((g.BM + g.BN) * ROW_WORDS, g.BM * (g.BN + C_PAD));
    const source = D.moduleWith(
      { name: spec.name, workgroupSize: g.threads, bindings: this.input.bindings, shared: [{ name: 'ng_sm', dtype: 'u32', size: words }], paramCount: 0, entries: [{ name: MMA_ENTRY, body: cb.finish() }] },
      MMA_PRELUDE,
    );
    return { name: spec.name, source, workgroupSize: g.threads, bindings: this.input.bindings, paramCount: 0, dispatches: total > 0 ? [{ entry: MMA_ENTRY, groups: total, params: [] }] : [] };
  }
}

/** Whether an operand's free axis has a smaller stride than k (then threads walk the free axis). */
function freeFastest(value: SExpr, free: typeof AX.m | typeof AX.n): boolean {
  if (value.op !== 'load') return false;
  let sFree = Infinity;
  let sK = Infinity;
  for (const t of value.index.terms) {
    if (t.atom.k !== 'var') continue;
    if (t.atom.axis === free) sFree = Math.abs(t.coef);
    if (t.atom.axis === AX.k) sK = Math.abs(t.coef);
  }
  return sFree < sK;
}

/** The tensor-core GEMM kernel of a spec (see the file comment). */
export function emitMmaGemm(input: MmaGemmInput): GpuKernelCode {
  if (usesReducingFeatures(input.spec)) throw new NexgradError(`cuda: matmul ${input.spec.name} has row statistics or reducing outputs, which the tensor-core GEMM does not implement`);
  return new MmaEmitter(input).emit();
}
