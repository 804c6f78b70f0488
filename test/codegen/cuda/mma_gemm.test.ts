/**
 * The tensor-core GEMM (src/codegen/cuda/mma_gemm.ts): every variant compiles with nvcc for
 * sm_90, and runs on the host emulation (emulator/ngemu.h lays mma.sync fragments out as the
 * PTX ISA documents) against products computed here from the rounded operands: bf16, f16 and
 * tf32 operands, batches, transposed and strided operands, edge tiles, a prologue operand,
 * an epilogue with a bias and a maximum, K = 0, and the 128 x 64 tile.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { CUDA_NATIVE } from '../../../src/codegen/cuda/dialect.js';
import { CUDA_GPU_DIALECT } from '../../../src/codegen/cuda/gpu_dialect.js';
import { emitMmaGemm, type MmaConfig, type MmaKind } from '../../../src/codegen/cuda/mma_gemm.js';
import { CudaRuntime, type DeviceBuffer } from '../../../src/codegen/cuda/runtime.js';
import { AX } from '../../../src/codegen/kernel/axis.js';
import { idx } from '../../../src/codegen/kernel/index_expr.js';
import type { MatmulKernel, MatmulOperand, SExpr } from '../../../src/codegen/kernel/kernel_graph.js';
import { lowerExprs } from '../../../src/codegen/lower/expr_rules.js';
import { matmulSpec } from '../../../src/codegen/lower/gemm_spec.js';
import type { GpuBinding } from '../../../src/codegen/lower/gpu/dialect.js';
import type { GpuKernelCode } from '../../../src/codegen/lower/gpu/kernel_code.js';
import { type DType, roundBf16, roundF16 } from '../../../src/ir/dtype.js';
import { useEmulatedCuda, uniform } from './emulated.js';
import { compileWithNvcc } from './nvcc.js';

let rt: CudaRuntime;
beforeAll(() => {
  useEmulatedCuda();
  rt = CudaRuntime.open({ cacheDir: false });
});

interface Case {
  readonly name: string;
  readonly kind: MmaKind;
  readonly batch: number;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  /** B stored as [batch, n, k] (transposed) instead of [batch, k, n]. */
  readonly bTransposed?: boolean;
  /** A as a prologue: 2 * (an f32 buffer), cast to the operand dtype. */
  readonly prologue?: boolean;
  /** Epilogue: max(acc + bias[n], 0) instead of acc. */
  readonly epilogue?: boolean;
  readonly config?: MmaConfig;
}

const operandDtype = (k: MmaKind): DType => (k === 'tf32' ? 'f32' : k);
const round = (k: MmaKind, x: number): number => (k === 'bf16' ? roundBf16(x) : k === 'f16' ? roundF16(x) : tf32(x));

/** cvt.rna.tf32.f32: to 10 mantissa bits, ties away from zero. */
function tf32(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if ((u[0]! & 0x7f800000) !== 0x7f800000) u[0] = (u[0]! + 0x1000) & 0xffffe000;
  return f[0]!;
}

/** Host bits of values in a dtype's storage (16-bit kinds as raw halves). */
function storage(dtype: DType, values: Float32Array): ArrayBufferView {
  if (dtype === 'f32') return values;
  const out = new Uint16Array(values.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < values.length; i++) {
    if (dtype === 'bf16') {
      f[0] = roundBf16(values[i]!);
      out[i] = u[0]! >>> 16;
    } else {
      out[i] = halfBits(roundF16(values[i]!));
    }
  }
  return out;
}

function halfBits(x: number): number {
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  const e = Math.floor(Math.log2(a));
  if (e < -14) return sign | Math.round(a / 2 ** -24);
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

function kernelOf(c: Case): { kernel: MatmulKernel; dtypes: Map<number, DType> } {
  const od = operandDtype(c.kind);
  const strided = (buf: number, strides: [number, number, number]): MatmulOperand => ({ kind: 'strided', buf, offset: 0, strides });
  const a: MatmulOperand = c.prologue
    ? {
        kind: 'expr',
        expr: {
          op: 'cast',
          dtype: od,
          a: { op: 'binary', fn: 'mul', dtype: 'f32', a: { op: 'load', buf: 0, dtype: 'f32', index: idx.add(idx.scale(idx.var(AX.b), c.M * c.K), idx.scale(idx.var(AX.m), c.K), idx.var(AX.k)) }, b: { op: 'const', value: 2, dtype: 'f32' } },
        },
      }
    : strided(0, [c.M * c.K, c.K, 1]);
  const b = strided(1, c.bTransposed ? [c.N * c.K, 1, c.K] : [c.K * c.N, c.N, 1]);
  const accNode: SExpr = { op: 'cast', a: { op: 'acc', id: 0, dtype: od }, dtype: 'f32' };
  const expr: SExpr = c.epilogue
    ? { op: 'binary', fn: 'max', dtype: 'f32', a: { op: 'binary', fn: 'add', dtype: 'f32', a: accNode, b: { op: 'load', buf: 3, dtype: 'f32', index: idx.var(AX.n) } }, b: { op: 'const', value: 0, dtype: 'f32' } }
    : accNode;
  const out = idx.add(idx.scale(idx.var(AX.b), c.M * c.N), idx.scale(idx.var(AX.m), c.N), idx.var(AX.n));
  const kernel: MatmulKernel = { kind: 'matmul', name: c.name, batch: c.batch, m: c.M, n: c.N, k: c.K, dtype: od, a, b, outputs: [{ buf: 2, index: out, expr }] };
  const dtypes = new Map<number, DType>([
    [0, c.prologue ? 'f32' : od],
    [1, od],
    [2, 'f32'],
    [3, 'f32'],
  ]);
  return { kernel, dtypes };
}

function emit(c: Case): GpuKernelCode {
  const { kernel, dtypes } = kernelOf(c);
  const low = lowerExprs(kernel, { native: CUDA_NATIVE }) as MatmulKernel;
  const used = c.epilogue ? [0, 1, 2, 3] : [0, 1, 2];
  const bindings: GpuBinding[] = used.map((buf) => ({ kind: 'buffer', bufs: [buf], dtype: dtypes.get(buf)!, access: buf === 2 ? 'read_write' : 'read', atomic: false }));
  return emitMmaGemm({ spec: matmulSpec(low), kind: c.kind, dialect: CUDA_GPU_DIALECT.forKernel(bindings), bindings, dtypeOf: (b) => dtypes.get(b)!, ...(c.config ? { config: c.config } : {}) });
}

/** Runs a case on the emulation; returns the output and the expected values. */
async function run(c: Case): Promise<{ got: Float32Array; want: Float64Array }> {
  const code = emit(c);
  const od = operandDtype(c.kind);
  const A = uniform(c.batch * c.M * c.K, 1, -2, 2);
  const B = uniform(c.batch * c.K * c.N, 2, -2, 2);
  const bias = uniform(c.N, 3, -1, 1);
  const bufs: DeviceBuffer[] = [];
  const put = (v: ArrayBufferView): DeviceBuffer => {
    const b = rt.upload(v);
    bufs.push(b);
    return b;
  };
  const aBuf = put(c.prologue ? A : storage(od, A));
  const bBuf = put(storage(od, B));
  const out = rt.alloc(Math.max(4, c.batch * c.M * c.N * 4));
  bufs.push(out);
  const biasBuf = put(bias);
  const byId = new Map([
    [0, aBuf],
    [1, bBuf],
    [2, out],
    [3, biasBuf],
  ]);
  const kernel = await rt.compile(code.source, code.dispatches[0]?.entry ?? 'none');
  for (const d of code.dispatches) {
    rt.launch(kernel, [d.groups, 1, 1], [code.workgroupSize, 1, 1], code.bindings.map((b) => ({ ptr: byId.get(b.kind === 'buffer' ? b.bufs[0]! : -1)!.ptr })));
  }
  const got = new Float32Array(c.batch * c.M * c.N);
  if (got.length) await rt.read(out, got);
  bufs.forEach((b) => rt.free(b));
  // expected: operands rounded as the kernel stages them, exact products, f32-rounded sum
  const want = new Float64Array(c.batch * c.M * c.N);
  for (let bb = 0; bb < c.batch; bb++) {
    for (let m = 0; m < c.M; m++) {
      for (let n = 0; n < c.N; n++) {
        let s = 0;
        for (let k = 0; k < c.K; k++) {
          const av = c.prologue ? round(c.kind, Math.fround(2 * A[(bb * c.M + m) * c.K + k]!)) : round(c.kind, A[(bb * c.M + m) * c.K + k]!);
          const bIndex = c.bTransposed ? (bb * c.N + n) * c.K + k : (bb * c.K + k) * c.N + n;
          s += av * round(c.kind, B[bIndex]!);
        }
        let v = c.kind === 'tf32' ? Math.fround(s) : round(c.kind, s); // the product in the IR's dtype
        if (c.epilogue) v = Math.max(Math.fround(v + bias[n]!), 0);
        want[(bb * c.M + m) * c.N + n] = v;
      }
    }
  }
  return { got, want };
}

const CASES: readonly Case[] = [
  { name: 'bf16_edges', kind: 'bf16', batch: 2, M: 100, N: 50, K: 70 },
  { name: 'bf16_bT_epilogue', kind: 'bf16', batch: 1, M: 33, N: 72, K: 48, bTransposed: true, epilogue: true },
  { name: 'bf16_prologue', kind: 'bf16', batch: 1, M: 64, N: 64, K: 37, prologue: true },
  { name: 'f16_odd', kind: 'f16', batch: 1, M: 17, N: 9, K: 65 },
  { name: 'tf32_bT', kind: 'tf32', batch: 2, M: 40, N: 24, K: 33, bTransposed: true },
  { name: 'bf16_k0', kind: 'bf16', batch: 1, M: 20, N: 10, K: 0, epilogue: true },
  { name: 'bf16_tall', kind: 'bf16', batch: 1, M: 150, N: 70, K: 40, config: { warpsM: 4, warpsN: 2 } },
];

describe('the tensor-core GEMM', () => {
  test('every variant compiles with nvcc for sm_90', async () => {
    const results = await compileWithNvcc(CASES.map((c) => ({ name: c.name, source: emit(c).source })));
    for (const r of results) expect(r.ok, `${r.name}:\n${r.log}`).toBe(true);
  });

  for (const c of CASES) {
    test(`${c.name}: ${c.kind} ${c.batch}x${c.M}x${c.N}x${c.K} on the emulation equals the rounded-operand product`, async () => {
      const { got, want } = await run(c);
      let worst = 0;
      for (let i = 0; i < want.length; i++) {
        const err = Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!));
        if (!(err <= worst)) worst = Number.isNaN(err) ? Infinity : err;
      }
      // bf16/f16 products round to 8/11 bits; an f32 sum in another order can tip a rounding:
      // at most one unit of the product's precision
      const unit = c.kind === 'bf16' ? 2 ** -7 : c.kind === 'f16' ? 2 ** -10 : 2 ** -20;
      expect(worst).toBeLessThanOrEqual(unit);
    });
  }
});
