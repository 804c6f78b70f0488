/**
 * A tiled f32 matmul, C[b, m, n] = sum_k A[b, m, k] * B[b, k, n], every operand addressed by an
 * offset and three strides from the uniform (so transposed and sliced views need no copy).
 *
 * Structure (the dialect generates prologues and epilogues around it through the hooks):
 * one workgroup computes a tileM x tileN block of C; per step of tileK it stages an A tile
 * (stored k-major) and a B tile in workgroup memory, then each thread accumulates a
 * threadM x threadN block in registers from threadM values of A and threadN values of B per k
 * (an outer product: threadM + threadN shared reads for threadM * threadN FMAs). Loads outside
 * [M, N, K] read zero and stores outside are skipped, so edge tiles need no padding.
 */
import { NexgradError } from '../../../ir/errors.js';
import { expectPow2, expectU32 } from './conventions.js';

export interface MatmulParams {
  readonly tileM?: number;
  readonly tileN?: number;
  readonly tileK?: number;
  readonly threadM?: number;
  readonly threadN?: number;
  /** WGSL f32 expression for A[b, m, k] (u32 operands); default reads binding 0 through the strides. */
  readonly loadA?: (b: string, m: string, k: string) => string;
  /** WGSL f32 expression for B[b, k, n]; default reads binding 1 through the strides. */
  readonly loadB?: (b: string, k: string, n: string) => string;
  /** WGSL statements storing `acc` as C[b, m, n]; default writes binding 2 through the strides. */
  readonly store?: (b: string, m: string, n: string, acc: string) => string;
  /** Declarations the hooks use: extra bindings (from @binding(4) on) and helper functions. */
  readonly declarations?: string;
}

type Resolved = Required<Pick<MatmulParams, 'tileM' | 'tileN' | 'tileK' | 'threadM' | 'threadN'>>;

function resolve(p: MatmulParams): Resolved & { threads: number } {
  const r = { tileM: p.tileM ?? 64, tileN: p.tileN ?? 64, tileK: p.tileK ?? 16, threadM: p.threadM ?? 4, threadN: p.threadN ?? 4 };
  for (const [k, v] of Object.entries(r)) expectPow2('matmul', k, v, 1, 256);
  if (r.threadM > r.tileM || r.threadN > r.tileN) throw new NexgradError(`wgsl matmul: a thread block ${r.threadM}x${r.threadN} is larger than the tile ${r.tileM}x${r.tileN}`);
  const threads = (r.tileM / r.threadM) * (r.tileN / r.threadN);
  if (threads > 1024) throw new NexgradError(`wgsl matmul: ${threads} threads per workgroup (tile ${r.tileM}x${r.tileN} over ${r.threadM}x${r.threadN}) is above 1024`);
  return { ...r, threads };
}

/** The uniform layout (16 u32): sizes, then offset and strides of A, B and C (in elements). */
const UNIFORM_FIELDS = ['M', 'N', 'K', 'batch', 'aOff', 'aB', 'aM', 'aK', 'bOff', 'bB', 'bK', 'bN', 'cOff', 'cB', 'cM', 'cN'] as const;

/** Statements that stage one tile: `count` elements, `per` per thread, index l -> (row, col). */
function stageLoop(threads: number, count: number, body: (l: string) => string): string {
  const lines: string[] = [];
  for (let r = 0; r * threads < count; r++) {
    const l = `(lid + ${r * threads}u)`;
    lines.push(count % threads === 0 || (r + 1) * threads <= count ? `    { ${body(l)} }` : `    if (${l} < ${count}u) { ${body(l)} }`);
  }
  return lines.join('\n');
}

/**
 * Bindings: 0 A, 1 B (f32, read), 2 C (f32, read_write), 3 uniform (UNIFORM_FIELDS), then the
 * hooks' own. Dispatch matmulDispatch(...).workgroups = [ceil(N/tileN), ceil(M/tileM), batch].
 */
export function matmulKernel(params: MatmulParams = {}): string {
  const { tileM, tileN, tileK, threadM, threadN, threads } = resolve(params);
  const loadA = params.loadA ?? ((b, m, k) => `a[u.aOff + ${b} * u.aB + ${m} * u.aM + ${k} * u.aK]`);
  const loadB = params.loadB ?? ((b, k, n) => `bm[u.bOff + ${b} * u.bB + ${k} * u.bK + ${n} * u.bN]`);
  const store = params.store ?? ((b, m, n, acc) => `c[u.cOff + ${b} * u.cB + ${m} * u.cM + ${n} * u.cN] = ${acc};`);
  const colsOfThreads = tileN / threadN;
  const stageA = stageLoop(threads, tileK * tileM, (l) =>
    `let kk = ${l} % ${tileK}u; let mm = ${l} / ${tileK}u; let gm = m0 + mm; let gk = k0 + kk; var v = 0.0; if (gm < u.M && gk < u.K) { v = ${loadA('b', 'gm', 'gk')}; } As[kk * ${tileM}u + mm] = v;`);
  const stageB = stageLoop(threads, tileK * tileN, (l) =>
    `let nn = ${l} % ${tileN}u; let kk = ${l} / ${tileN}u; let gn = n0 + nn; let gk = k0 + kk; var v = 0.0; if (gn < u.N && gk < u.K) { v = ${loadB('b', 'gk', 'gn')}; } Bs[kk * ${tileN}u + nn] = v;`);
  const regs: string[] = [];
  for (let i = 0; i < threadM; i++) regs.push(`      let a${i} = As[kk * ${tileM}u + row0 + ${i}u];`);
  for (let j = 0; j < threadN; j++) regs.push(`      let b${j} = Bs[kk * ${tileN}u + col0 + ${j}u];`);
  const fmas: string[] = [];
  for (let i = 0; i < threadM; i++) for (let j = 0; j < threadN; j++) fmas.push(`      acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`);
  const accs: string[] = [];
  const stores: string[] = [];
  for (let i = 0; i < threadM; i++)
    for (let j = 0; j < threadN; j++) {
      accs.push(`  var acc${i}_${j} = 0.0;`);
      stores.push(`  { let m = m0 + row0 + ${i}u; let n = n0 + col0 + ${j}u; if (m < u.M && n < u.N) { ${store('b', 'm', 'n', `acc${i}_${j}`)} } }`);
    }
  return /* wgsl */ `
struct MatmulParams { ${UNIFORM_FIELDS.map((f) => `${f}: u32`).join(', ')} }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> bm: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> u: MatmulParams;
${params.declarations ?? ''}
var<workgroup> As: array<f32, ${tileK * tileM}>;
var<workgroup> Bs: array<f32, ${tileK * tileN}>;

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wid.z;
  let m0 = wid.y * ${tileM}u;
  let n0 = wid.x * ${tileN}u;
  let row0 = (lid / ${colsOfThreads}u) * ${threadM}u;
  let col0 = (lid % ${colsOfThreads}u) * ${threadN}u;
${accs.join('\n')}
  for (var k0 = 0u; k0 < u.K; k0 = k0 + ${tileK}u) {
${stageA}
${stageB}
    workgroupBarrier();
    for (var kk = 0u; kk < ${tileK}u; kk = kk + 1u) {
${regs.join('\n')}
${fmas.join('\n')}
    }
    workgroupBarrier();
  }
${stores.join('\n')}
}
`;
}

export interface MatmulDims {
  readonly batch: number;
  readonly M: number;
  readonly N: number;
  readonly K: number;
}

/** Offset and [batch, row, col] strides (elements) of one operand. */
export interface OperandView {
  readonly offset: number;
  readonly strides: readonly [number, number, number];
}

/** Row-major contiguous views of A [batch, M, K], B [batch, K, N], C [batch, M, N]. */
export function contiguousViews(d: MatmulDims): { a: OperandView; b: OperandView; c: OperandView } {
  return {
    a: { offset: 0, strides: [d.M * d.K, d.K, 1] },
    b: { offset: 0, strides: [d.K * d.N, d.N, 1] },
    c: { offset: 0, strides: [d.M * d.N, d.N, 1] },
  };
}

/** Uniform and [x, y, z] workgroups for one matmul. */
export function matmulDispatch(d: MatmulDims, views = contiguousViews(d), params: MatmulParams = {}): { uniform: Uint32Array; workgroups: [number, number, number] } {
  const { tileM, tileN } = resolve(params);
  const values = [d.M, d.N, d.K, d.batch, views.a.offset, ...views.a.strides, views.b.offset, ...views.b.strides, views.c.offset, ...views.c.strides];
  values.forEach((v, i) => expectU32('matmul', UNIFORM_FIELDS[i]!, v));
  return { uniform: Uint32Array.from(values), workgroups: [Math.ceil(d.N / tileN), Math.ceil(d.M / tileM), d.batch] };
}
