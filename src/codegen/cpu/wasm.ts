/**
 * Hand-assembled WebAssembly SIMD micro-kernels for the CPU backend (no toolchain needed).
 *
 * gemm(ap, bp, ct, kc, mcp, ncp, ldc, accumulate): C tile (mcp x ncp, row stride ldc bytes, f32)
 * = [C +] Ap * Bp over kc, where Ap holds mcp/MR strips laid out [k][MR] and Bp holds ncp/NR
 * strips laid out [k][NR] (f32, as the packing code in matmul.ts writes them). All pointers are
 * byte offsets into the imported memory `env.mem`. mcp and ncp must be multiples of MR and NR.
 * Accumulation is f32 (f32x4 mul + add), as XLA's f32 dot does.
 *
 * dwconv(...): see depthwiseModule below.
 */

export const uleb = (n: number): number[] => {
  const o: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    o.push(b);
  } while (n);
  return o;
};

export const sleb = (n: number): number[] => {
  const o: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) {
      o.push(b);
      return o;
    }
    o.push(b | 0x80);
  }
};

export const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
export const section = (id: number, bytes: number[]): number[] => [id, ...uleb(bytes.length), ...bytes];
export const str = (s: string): number[] => vec([...s].map((ch) => [ch.charCodeAt(0)]));

export const I32 = 0x7f;
export const V128 = 0x7b;

export const lget = (i: number): number[] => [0x20, ...uleb(i)];
export const lset = (i: number): number[] => [0x21, ...uleb(i)];
export const ltee = (i: number): number[] => [0x22, ...uleb(i)];
export const i32c = (v: number): number[] => [0x41, ...sleb(v)];
export const ADD = [0x6a];
export const SUB = [0x6b];
export const MUL = [0x6c];
export const GE_S = [0x4e];
export const BLOCK = [0x02, 0x40];
export const LOOP = [0x03, 0x40];
export const IF = [0x04, 0x40];
export const ELSE = [0x05];
export const END = [0x0b];
export const brIf = (l: number): number[] => [0x0d, ...uleb(l)];
export const br = (l: number): number[] => [0x0c, ...uleb(l)];
export const simd = (c: number, ...rest: number[]): number[] => [0xfd, ...uleb(c), ...rest];
const vload = (off: number): number[] => simd(0x00, 2, ...uleb(off));
const vsplat32 = (off: number): number[] => simd(0x09, 2, ...uleb(off));
const vstore = (off: number): number[] => simd(0x0b, 2, ...uleb(off));
const VZERO = simd(0x0c, ...new Array<number>(16).fill(0));
const FADD = simd(0xe4);
const FMUL = simd(0xe6);

/**
 * The body of a generated function being built: `e` appends instructions, `vLocal` hands out the
 * next v128 local after the `vBase` i32 ones, `nV` counts them (for the locals declaration).
 */
export function wasmBody(vBase: number): { code: number[]; e: (...xs: (readonly number[])[]) => void; vLocal: () => number; readonly nV: number } {
  const code: number[] = [];
  let nV = 0;
  return {
    code,
    e: (...xs) => {
      for (const x of xs) code.push(...x);
    },
    vLocal: () => vBase + nV++,
    get nV() {
      return nV;
    },
  };
}

/** A function of a generated module: `params` i32 parameters, no results, locals and body. */
export interface WasmFunc {
  readonly params: number;
  readonly locals: readonly (readonly [number, number])[];
  readonly code: readonly number[];
}

/**
 * A module of functions over the imported memory `env.mem` that exports function `exportIndex`
 * as `name` (functions call each other by index: `call` is 0x10 funcidx).
 */
export function funcsModuleBytes(funcs: readonly WasmFunc[], name: string, exportIndex: number, shared: boolean): Uint8Array {
  const type = section(1, vec(funcs.map((f) => [0x60, ...vec(new Array<number[]>(f.params).fill([I32])), ...vec([])])));
  // memory import: shared memories need a maximum (flags 0x03)
  const limits = shared ? [0x03, ...uleb(1), ...uleb(65536)] : [0x00, ...uleb(1)];
  const imp = section(2, vec([[...str('env'), ...str('mem'), 0x02, ...limits]]));
  const fn = section(3, vec(funcs.map((_, i) => uleb(i))));
  const exp = section(7, vec([[...str(name), 0x00, ...uleb(exportIndex)]]));
  const bodies = funcs.map((f) => {
    const body = [...vec(f.locals.map(([n, t]) => [...uleb(n), t])), ...f.code, ...END];
    return [...uleb(body.length), ...body];
  });
  const codeSec = section(10, vec(bodies));
  return new Uint8Array([0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...type, ...imp, ...fn, ...exp, ...codeSec]);
}

/** A module with one exported function over an imported memory. */
function moduleBytes(name: string, nParams: number, locals: [number, number][], code: number[], shared: boolean): Uint8Array {
  return funcsModuleBytes([{ params: nParams, locals, code }], name, 0, shared);
}

/**
 * Depthwise conv output row (f32, channels padded to a multiple of 4, NHWC-like packed input):
 * dwrow(xp, wp, out, ow) computes out[ox][c] = sum_{ky,kx} X[ky*dyB + ox*sxB + kx*dxB][c] *
 * W[(ky*KW + kx)][c] for ox < ow, all byte strides baked in: sxB between adjacent output
 * pixels, dxB between kernel columns, dyB between kernel rows (in X), cpB = channels * 4 (the
 * pixel stride of W and out). Four output pixels share each weight load.
 */
export interface DwRowConfig {
  readonly cg: number;
  readonly kh: number;
  readonly kw: number;
  readonly sxB: number;
  readonly dxB: number;
  readonly dyB: number;
  readonly cpB: number;
}

export function dwRowModuleBytes(cfg: DwRowConfig, shared = false): Uint8Array {
  const { cg, kh, kw, sxB, dxB, dyB, cpB } = cfg;
  const P = { xp: 0, wp: 1, out: 2, ow: 3 };
  let nl = 4;
  const ox = nl++;
  const c = nl++;
  const py = nl++;
  const pw = nl++;
  const ky = nl++;
  const po = nl++;
  const nI32 = nl - 4;
  const acc = nl;
  nl += 4;
  const wv = nl++;
  const code: number[] = [];
  const e = (...xs: number[][]): void => {
    for (const x of xs) code.push(...x);
  };
  const GT_S = [0x4a];
  /** The channel-group loop for a block of `pb` output pixels starting at ox. */
  const block = (pb: number): void => {
    e(i32c(0), lset(c));
    e(BLOCK, LOOP);
    e(lget(c), i32c(cg), GE_S, brIf(1));
    for (let j = 0; j < pb; j++) e(VZERO, lset(acc + j));
    // py = xp + ox * sxB + c * 16 ; pw = wp + c * 16
    e(lget(P.xp), lget(ox), i32c(sxB), MUL, ADD, lget(c), i32c(16), MUL, ADD, lset(py));
    e(lget(P.wp), lget(c), i32c(16), MUL, ADD, lset(pw));
    e(i32c(kh), lset(ky));
    e(LOOP);
    for (let kx = 0; kx < kw; kx++) {
      e(lget(pw), vload(kx * cpB), lset(wv));
      for (let j = 0; j < pb; j++) e(lget(acc + j), lget(py), vload(j * sxB + kx * dxB), lget(wv), FMUL, FADD, lset(acc + j));
    }
    e(lget(py), i32c(dyB), ADD, lset(py));
    e(lget(pw), i32c(kw * cpB), ADD, lset(pw));
    e(lget(ky), i32c(1), SUB, ltee(ky), brIf(0));
    e(END);
    // po = out + ox * cpB + c * 16
    e(lget(P.out), lget(ox), i32c(cpB), MUL, ADD, lget(c), i32c(16), MUL, ADD, lset(po));
    for (let j = 0; j < pb; j++) e(lget(po), lget(acc + j), vstore(j * cpB));
    e(lget(c), i32c(1), ADD, lset(c), br(0));
    e(END, END);
  };
  e(i32c(0), lset(ox));
  // blocks of 4 pixels
  e(BLOCK, LOOP);
  e(lget(ox), i32c(4), ADD, lget(P.ow), GT_S, brIf(1));
  block(4);
  e(lget(ox), i32c(4), ADD, lset(ox), br(0));
  e(END, END);
  // remaining pixels one at a time
  e(BLOCK, LOOP);
  e(lget(ox), lget(P.ow), GE_S, brIf(1));
  block(1);
  e(lget(ox), i32c(1), ADD, lset(ox), br(0));
  e(END, END);
  return moduleBytes('dwrow', 4, [
    [nI32, I32],
    [5, V128],
  ], code, shared);
}

export type DwRowFn = (xp: number, wp: number, out: number, ow: number) => void;

/**
 * Depthwise weight-gradient row: wgrow(xp, dp, acc) adds to acc[j][c] (j < ow, pixel stride
 * cpB) the sums over q0 < q0n, q1 < q1n of X[q0*ryB + j*sxB + q1*rxB][c] * D[(q0*q1n + q1)][c]
 * (D packed [q0][q1][cpB]); the ow outputs of a row are computed together in blocks of up to 8
 * so that each D load feeds several of them.
 */
export interface WgRowConfig {
  readonly cg: number;
  readonly q0n: number;
  readonly q1n: number;
  readonly ow: number;
  readonly sxB: number;
  readonly rxB: number;
  readonly ryB: number;
  readonly cpB: number;
}

export function wgRowModuleBytes(cfg: WgRowConfig, shared = false): Uint8Array {
  const { cg, q0n, q1n, ow, sxB, rxB, ryB, cpB } = cfg;
  const P = { xp: 0, dp: 1, acc: 2 };
  let nl = 3;
  const c = nl++;
  const pq = nl++;
  const px = nl++;
  const pd = nl++;
  const k0 = nl++;
  const k1 = nl++;
  const pa = nl++;
  const nI32 = nl - 3;
  const PBMAX = 8;
  const acc = nl;
  nl += PBMAX;
  const dv = nl++;
  const code: number[] = [];
  const e = (...xs: number[][]): void => {
    for (const x of xs) code.push(...x);
  };
  e(i32c(0), lset(c));
  e(BLOCK, LOOP);
  e(lget(c), i32c(cg), GE_S, brIf(1));
  for (let jb = 0; jb < ow; jb += PBMAX) {
    const pb = Math.min(PBMAX, ow - jb);
    // pa = acc + jb * cpB + c * 16
    e(lget(P.acc), lget(c), i32c(16), MUL, ADD, lset(pa));
    for (let j = 0; j < pb; j++) e(lget(pa), vload((jb + j) * cpB), lset(acc + j));
    e(lget(P.xp), lget(c), i32c(16), MUL, ADD, i32c(jb * sxB), ADD, lset(pq));
    e(lget(P.dp), lget(c), i32c(16), MUL, ADD, lset(pd));
    e(i32c(q0n), lset(k0));
    e(LOOP);
    e(lget(pq), lset(px));
    e(i32c(q1n), lset(k1));
    e(LOOP);
    e(lget(pd), vload(0), lset(dv));
    for (let j = 0; j < pb; j++) e(lget(acc + j), lget(px), vload(j * sxB), lget(dv), FMUL, FADD, lset(acc + j));
    e(lget(px), i32c(rxB), ADD, lset(px));
    e(lget(pd), i32c(cpB), ADD, lset(pd));
    e(lget(k1), i32c(1), SUB, ltee(k1), brIf(0));
    e(END);
    e(lget(pq), i32c(ryB), ADD, lset(pq));
    e(lget(k0), i32c(1), SUB, ltee(k0), brIf(0));
    e(END);
    for (let j = 0; j < pb; j++) e(lget(pa), lget(acc + j), vstore((jb + j) * cpB));
  }
  e(lget(c), i32c(1), ADD, lset(c), br(0));
  e(END, END);
  return moduleBytes('wgrow', 3, [
    [nI32, I32],
    [PBMAX + 1, V128],
  ], code, shared);
}

export type WgRowFn = (xp: number, dp: number, acc: number) => void;

/** The GEMM micro-kernel module: MR rows x (4 * NRV) columns per register tile. */
export function gemmModuleBytes(MR: number, NRV: number, shared = false, fma = gemmUsesFma()): Uint8Array {
  return funcsModuleBytes([gemmFunc(MR, NRV, fma)], 'gemm', 0, shared);
}

const gemmFuncs = new Map<string, WasmFunc>();

/** The GEMM micro-kernel function (see gemmModuleBytes; built once per register tile and FMA choice). */
function gemmFunc(MR: number, NRV: number, fma = gemmUsesFma()): WasmFunc {
  const key = `${MR}x${NRV}${fma ? 'f' : ''}`;
  let f = gemmFuncs.get(key);
  if (!f) {
    f = buildGemmFunc(MR, NRV, fma);
    gemmFuncs.set(key, f);
  }
  return f;
}

/** f32x4.relaxed_madd(a, b, c) = a * b + c, fused or not as the engine likes (relaxed SIMD). */
const RELAXED_MADD = simd(0x105);

function buildGemmFunc(MR: number, NRV: number, fma: boolean): WasmFunc {
  const NR = 4 * NRV;
  const P = { ap: 0, bp: 1, ct: 2, K: 3, mcp: 4, ncp: 5, ldc: 6, accum: 7 };
  let nl = 8;
  const jr = nl++;
  const ir = nl++;
  const pa = nl++;
  const pb = nl++;
  const kk = nl++;
  const pc = nl++;
  const nI32 = nl - 8;
  const acc = nl;
  nl += MR * NRV;
  const bv = nl;
  nl += NRV;
  const av = nl++;
  const nV = MR * NRV + NRV + 1;
  const c: number[] = [];
  const e = (...xs: number[][]): void => {
    for (const x of xs) c.push(...x);
  };
  e(i32c(0), lset(jr));
  e(BLOCK, LOOP); // jr loop
  e(lget(jr), lget(P.ncp), GE_S, brIf(1));
  e(i32c(0), lset(ir));
  e(BLOCK, LOOP); // ir loop
  e(lget(ir), lget(P.mcp), GE_S, brIf(1));
  e(lget(P.ap), lget(ir), lget(P.K), MUL, i32c(4), MUL, ADD, lset(pa));
  e(lget(P.bp), lget(jr), lget(P.K), MUL, i32c(4), MUL, ADD, lset(pb));
  e(lget(P.ct), lget(ir), lget(P.ldc), MUL, ADD, lget(jr), i32c(4), MUL, ADD, lset(pc));
  // accumulators: zero, or the current C tile
  e(lget(P.accum), IF);
  for (let i = 0; i < MR; i++) {
    for (let j = 0; j < NRV; j++) e(lget(pc), vload(16 * j), lset(acc + i * NRV + j));
    if (i < MR - 1) e(lget(pc), lget(P.ldc), ADD, lset(pc));
  }
  e(lget(P.ct), lget(ir), lget(P.ldc), MUL, ADD, lget(jr), i32c(4), MUL, ADD, lset(pc));
  e(ELSE);
  for (let i = 0; i < MR * NRV; i++) e(VZERO, lset(acc + i));
  e(END);
  e(lget(P.K), lset(kk));
  e(BLOCK, lget(kk), [0x45] /* i32.eqz */, brIf(0));
  e(LOOP);
  for (let j = 0; j < NRV; j++) e(lget(pb), vload(16 * j), lset(bv + j));
  for (let i = 0; i < MR; i++) {
    e(lget(pa), vsplat32(4 * i), lset(av));
    for (let j = 0; j < NRV; j++) {
      if (fma) e(lget(av), lget(bv + j), lget(acc + i * NRV + j), RELAXED_MADD, lset(acc + i * NRV + j));
      else e(lget(acc + i * NRV + j), lget(av), lget(bv + j), FMUL, FADD, lset(acc + i * NRV + j));
    }
  }
  e(lget(pa), i32c(4 * MR), ADD, lset(pa));
  e(lget(pb), i32c(4 * NR), ADD, lset(pb));
  e(lget(kk), i32c(1), SUB, ltee(kk), brIf(0));
  e(END, END);
  for (let i = 0; i < MR; i++) {
    for (let j = 0; j < NRV; j++) e(lget(pc), lget(acc + i * NRV + j), vstore(16 * j));
    if (i < MR - 1) e(lget(pc), lget(P.ldc), ADD, lset(pc));
  }
  e(lget(ir), i32c(MR), ADD, lset(ir), br(0));
  e(END, END);
  e(lget(jr), i32c(NR), ADD, lset(jr), br(0));
  e(END, END);
  return {
    params: 8,
    locals: [
      [nI32, I32],
      [nV, V128],
    ],
    code: c,
  };
}

/** The fused parts of a GEMM beside its micro-kernel (wasm_epilogue.ts, wasm_prologue.ts). */
export interface GemmParts {
  readonly epilogue?: WasmFunc;
  readonly prologue?: WasmFunc;
  /** B's packing (wasm_prologue.ts with rows n). */
  readonly bPrologue?: WasmFunc;
}

/**
 * The GEMM micro-kernel, a matmul's epilogue and its A prologue in one module, so that a kernel
 * still receives a single WebAssembly function: the export `gemm(op, ...)` runs the
 * micro-kernel on its next 8 arguments when op is 0, the epilogue on its next
 * `epilogue.params` arguments when op is 1, A's prologue when op is 2 and B's packing when 3.
 */
export function gemmFusedModuleBytes(parts: GemmParts, shared = false): Uint8Array {
  const g = gemmFunc(WASM_MR, WASM_NRV);
  const funcs: WasmFunc[] = [g];
  const CALL = (f: number): number[] => [0x10, ...uleb(f)];
  const callWith = (f: WasmFunc, index: number): number[] => {
    const c: number[] = [];
    for (let i = 0; i < f.params; i++) c.push(...lget(1 + i));
    return [...c, ...CALL(index)];
  };
  // if (op == 1) epilogue else if (op == 2) prologue else gemm
  const branches: { op: number; f: WasmFunc }[] = [];
  if (parts.epilogue) branches.push({ op: 1, f: parts.epilogue });
  if (parts.prologue) branches.push({ op: 2, f: parts.prologue });
  if (parts.bPrologue) branches.push({ op: 3, f: parts.bPrologue });
  let code: number[] = callWith(g, 0);
  for (const br of branches.reverse()) {
    funcs.push(br.f);
    code = [...lget(0), ...i32c(br.op), 0x46 /* i32.eq */, ...IF, ...callWith(br.f, funcs.length - 1), ...ELSE, ...code, ...END];
  }
  const P = Math.max(...funcs.map((f) => f.params));
  funcs.push({ params: P + 1, locals: [], code });
  return funcsModuleBytes(funcs, 'gemm', funcs.length - 1, shared);
}

/** The micro-kernel and an epilogue (gemmFusedModuleBytes). */
export function gemmEpilogueModuleBytes(epilogue: WasmFunc, shared = false): Uint8Array {
  return gemmFusedModuleBytes({ epilogue }, shared);
}

export type GemmFn = (ap: number, bp: number, ct: number, kc: number, mcp: number, ncp: number, ldc: number, accumulate: number) => void;

/** The slice of the WebAssembly API used here (the project's TS lib has no DOM types). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { readonly exports: Record<string, unknown> };
  Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
}

const WA: WasmApi | undefined = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let simdOk: boolean | undefined;

/** Whether this engine runs WebAssembly SIMD (Node >= 16.4, current browsers). */
export function wasmSimdAvailable(): boolean {
  if (simdOk === undefined) {
    try {
      simdOk = WA !== undefined && WA.validate(gemmModuleBytes(4, 2, false, false));
    } catch {
      simdOk = false;
    }
  }
  return simdOk;
}

let relaxedOk: boolean | undefined;

/**
 * Whether this engine runs relaxed SIMD (f32x4.relaxed_madd: an FMA where the CPU has one).
 * Current Chrome does by default; Node 20's V8 only with --experimental-wasm-relaxed-simd.
 * Validation of a module that uses it answers false, never throws, where it is absent.
 */
export function relaxedSimdAvailable(): boolean {
  if (relaxedOk === undefined) {
    try {
      relaxedOk = wasmSimdAvailable() && WA!.validate(gemmModuleBytes(4, 2, false, true));
    } catch {
      relaxedOk = false;
    }
  }
  return relaxedOk;
}

/** Whether the GEMM micro-kernel uses relaxed_madd (NEXGRAD_WASM_FMA=0 turns it off). */
export function gemmUsesFma(): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.NEXGRAD_WASM_FMA;
  return env !== '0' && relaxedSimdAvailable();
}

const moduleCache = new Map<string, object>();

function cachedModule(key: string, make: () => Uint8Array): object {
  let m = moduleCache.get(key);
  if (!m) {
    m = new WA!.Module(make());
    moduleCache.set(key, m);
  }
  return m;
}

/** Register tile of the WebAssembly GEMM. */
export const WASM_MR = 4;
export const WASM_NRV = 2;
export const WASM_NR = 4 * WASM_NRV;

/** Instantiates the GEMM micro-kernel over `mem`. */
export function instantiateGemm(mem: WasmMemory, shared = false): GemmFn {
  const mod = cachedModule(`gemm${WASM_MR}x${WASM_NRV}${gemmUsesFma() ? 'f' : ''}${shared ? 's' : ''}`, () => gemmModuleBytes(WASM_MR, WASM_NRV, shared));
  const inst = new WA!.Instance(mod, { env: { mem } });
  return inst.exports.gemm as GemmFn;
}

/** A cache key for a generated function: its bytes (memoized per function object). */
const funcKeys = new WeakMap<WasmFunc, string>();
function funcKey(f: WasmFunc): string {
  let k = funcKeys.get(f);
  if (k === undefined) {
    const parts: string[] = [String(f.params), f.locals.map(([n, t]) => `${n}:${t}`).join(',')];
    const code = f.code;
    for (let i = 0; i < code.length; i += 4096) parts.push(String.fromCharCode(...code.slice(i, i + 4096)));
    k = parts.join('|');
    funcKeys.set(f, k);
  }
  return k;
}

const partsKey = (p: GemmParts): string => `gf${gemmUsesFma() ? 'f' : ''}:${p.epilogue ? funcKey(p.epilogue) : ''}#${p.prologue ? funcKey(p.prologue) : ''}#${p.bPrologue ? funcKey(p.bPrologue) : ''}`;

/** Instantiates the GEMM micro-kernel combined with a matmul's epilogue and/or prologue (gemmFusedModuleBytes). */
export function instantiateGemmFused(mem: WasmMemory, parts: GemmParts, shared = false): GemmEpilogueFn {
  const mod = cachedModule(`${partsKey(parts)}${shared ? 's' : ''}`, () => gemmFusedModuleBytes(parts, shared));
  const inst = new WA!.Instance(mod, { env: { mem } });
  return inst.exports.gemm as GemmEpilogueFn;
}

/** Whether the engine accepts the combined GEMM module. */
export function validGemmFused(parts: GemmParts): boolean {
  try {
    return WA !== undefined && WA.validate(gemmFusedModuleBytes(parts));
  } catch {
    return false;
  }
}

/** Whether the engine accepts the combined GEMM + epilogue module. */
export const validGemmEpilogue = (epilogue: WasmFunc): boolean => validGemmFused({ epilogue });

/** gemm(0, ...GemmFn arguments), gemm(1, ...epilogue arguments), gemm(2 | 3, ...prologue arguments). */
export type GemmEpilogueFn = (op: number, ...args: number[]) => void;

/** Instantiates a depthwise row kernel (modules cached per configuration). */
export function instantiateDwRow(mem: WasmMemory, cfg: DwRowConfig, shared = false): DwRowFn {
  const key = `dw:${cfg.cg}:${cfg.kh}:${cfg.kw}:${cfg.sxB}:${cfg.dxB}:${cfg.dyB}:${cfg.cpB}${shared ? 's' : ''}`;
  const mod = cachedModule(key, () => dwRowModuleBytes(cfg, shared));
  const inst = new WA!.Instance(mod, { env: { mem } });
  return inst.exports.dwrow as DwRowFn;
}

/** Instantiates a depthwise weight-gradient row kernel (modules cached per configuration). */
export function instantiateWgRow(mem: WasmMemory, cfg: WgRowConfig, shared = false): WgRowFn {
  const key = `wg:${cfg.cg}:${cfg.q0n}:${cfg.q1n}:${cfg.ow}:${cfg.sxB}:${cfg.rxB}:${cfg.ryB}:${cfg.cpB}${shared ? 's' : ''}`;
  const mod = cachedModule(key, () => wgRowModuleBytes(cfg, shared));
  const inst = new WA!.Instance(mod, { env: { mem } });
  return inst.exports.wgrow as WgRowFn;
}

/** Whether the engine accepts a module of one generated function (exported as `f`). */
export function validFunc(f: WasmFunc): boolean {
  try {
    return WA !== undefined && WA.validate(funcsModuleBytes([f], 'f', 0, false));
  } catch {
    return false;
  }
}

/** Instantiates one generated function over `mem` (modules cached per function). */
export function instantiateFunc(mem: WasmMemory, f: WasmFunc, shared = false): (...args: number[]) => void {
  const mod = cachedModule(`fn:${funcKey(f)}${shared ? 's' : ''}`, () => funcsModuleBytes([f], 'f', 0, shared));
  return new WA!.Instance(mod, { env: { mem } }).exports.f as (...args: number[]) => void;
}

/** The compiled module and export name a kernel's WebAssembly use needs (for worker threads). */
export function wasmModuleFor(use: ({ kind: 'gemm_f32' } & GemmParts) | { kind: 'dwrow'; cfg: DwRowConfig } | { kind: 'wgrow'; cfg: WgRowConfig } | { kind: 'rowloop'; func: WasmFunc }): { module: object; name: string } {
  switch (use.kind) {
    case 'rowloop':
      return { module: cachedModule(`fn:${funcKey(use.func)}`, () => funcsModuleBytes([use.func], 'f', 0, false)), name: 'f' };
    case 'gemm_f32':
      if (use.epilogue || use.prologue || use.bPrologue) {
        const parts: GemmParts = { ...(use.epilogue ? { epilogue: use.epilogue } : {}), ...(use.prologue ? { prologue: use.prologue } : {}), ...(use.bPrologue ? { bPrologue: use.bPrologue } : {}) };
        return { module: cachedModule(partsKey(parts), () => gemmFusedModuleBytes(parts)), name: 'gemm' };
      }
      return { module: cachedModule(`gemm${WASM_MR}x${WASM_NRV}${gemmUsesFma() ? 'f' : ''}`, () => gemmModuleBytes(WASM_MR, WASM_NRV)), name: 'gemm' };
    case 'dwrow': {
      const c = use.cfg;
      return { module: cachedModule(`dw:${c.cg}:${c.kh}:${c.kw}:${c.sxB}:${c.dxB}:${c.dyB}:${c.cpB}`, () => dwRowModuleBytes(c)), name: 'dwrow' };
    }
    case 'wgrow': {
      const c = use.cfg;
      return { module: cachedModule(`wg:${c.cg}:${c.q0n}:${c.q1n}:${c.ow}:${c.sxB}:${c.rxB}:${c.ryB}:${c.cpB}`, () => wgRowModuleBytes(c)), name: 'wgrow' };
    }
  }
}

/** A memory of at least `bytes` bytes. */
export function makeMemory(bytes: number, shared = false): WasmMemory {
  const pages = Math.max(1, Math.ceil(bytes / 65536));
  return shared ? new WA!.Memory({ initial: pages, maximum: 65536, shared: true }) : new WA!.Memory({ initial: pages });
}
