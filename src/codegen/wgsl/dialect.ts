/**
 * The WGSL dialect: the C-style base (../lower/c_style.ts) with WGSL's table, plus the GPU
 * module, thread ids, loops, barriers and atomics of ../lower/gpu/dialect.ts.
 *
 * WGSL specifics it hides from the emitters:
 *   - registers: i32 indices, f32 for f32/f16/bf16 (f16 and bf16 values rounded to their
 *     precision by helper functions on the bits), bool; buffers store bool as a u32 word, bf16
 *     as f32, f16 as f16 with `enable f16` where the adapter has shader-f16 (else as f32);
 *   - `select(f, t, c)` takes the false value first;
 *   - a compiler may assume floats are finite, and a constant expression may not produce an
 *     infinity or NaN: non-finite literals and -0 come from `ng_f32_bits(bits)` (a function
 *     call, so never constant-folded) and NaN tests are on the bits;
 *   - shift amounts are u32; a float-to-integer conversion saturates in WGSL, so casts go
 *     through helpers that wrap modulo 2^32 like the host (NaN and infinities give 0);
 *   - atomics exist for i32/u32 only: an accumulating f32 store is a compare-exchange loop on
 *     an `array<atomic<u32>>` holding the float's bits.
 */
import type { DType } from '../../ir/dtype.js';
import { NexgradError } from '../../ir/errors.js';
import { cStyleDialect, type CStyleTable } from '../lower/c_style.js';
import { bufName, type Dialect } from '../lower/dialect.js';
import type { NativeOp } from '../lower/expr_rules.js';
import type { GpuBinding, GpuDialect, GpuModule } from '../lower/gpu/dialect.js';
import type { UnaryFn } from '../kernel/sexpr.js';

/** Operations WGSL prints natively (log1p, expm1 and pow keep their rewrites: WGSL lacks the first two and its pow is exp2(y log2 x)). */
export const WGSL_NATIVE: ReadonlySet<NativeOp> = new Set<NativeOp>();

export interface WgslDialectOptions {
  /** The device has shader-f16: f16 buffers hold f16 (else f32). */
  readonly f16: boolean;
}

const F32_BITS: Readonly<Record<string, string>> = { nan: '0x7fc00000u', inf: '0x7f800000u', '-inf': '0xff800000u', '-0': '0x80000000u' };

function floatLiteral(v: number): string {
  if (Number.isNaN(v)) return `ng_f32_bits(${F32_BITS.nan})`;
  if (v === Infinity) return `ng_f32_bits(${F32_BITS.inf})`;
  if (v === -Infinity) return `ng_f32_bits(${F32_BITS['-inf']})`;
  if (Object.is(v, -0)) return `ng_f32_bits(${F32_BITS['-0']})`;
  const f = Math.fround(v);
  if (!Number.isFinite(f)) return f > 0 ? `ng_f32_bits(${F32_BITS.inf})` : `ng_f32_bits(${F32_BITS['-inf']})`;
  const s = `${String(Math.abs(f))}f`;
  return f < 0 ? `(-${s})` : s;
}

function literal(v: number, dtype: DType): string {
  switch (dtype) {
    case 'f32':
    case 'f16':
    case 'bf16':
      return floatLiteral(v);
    case 'i32': {
      const i = v | 0;
      if (i === -2147483648) return '(-2147483647i - 1i)';
      return i < 0 ? `(${i}i)` : `${i}i`;
    }
    case 'u32':
      return `${v >>> 0}u`;
    case 'bool':
      return v ? 'true' : 'false';
    case 'f64':
      throw f64Error('a literal');
  }
}

export function f64Error(what: string): NexgradError {
  return new NexgradError(`wgsl: ${what} is f64, which WGSL does not have; cast to f32 before running on the 'wgsl' backend`);
}

function registerType(dtype: DType): string {
  switch (dtype) {
    case 'f32':
    case 'f16':
    case 'bf16':
      return 'f32';
    case 'i32':
      return 'i32';
    case 'u32':
      return 'u32';
    case 'bool':
      return 'bool';
    case 'f64':
      throw f64Error('a value');
  }
}

const isFloat = (d: DType): boolean => d === 'f32' || d === 'f16' || d === 'bf16';

/** Rounds an f32 register to the precision of `to` (f16 / bf16), or leaves it. */
function roundTo(a: string, to: DType): string {
  if (to === 'f16') return `ng_round_f16(${a})`;
  if (to === 'bf16') return `ng_round_bf16(${a})`;
  return a;
}

function cast(a: string, from: DType, to: DType): string {
  if (from === 'f64' || to === 'f64') throw f64Error('a cast operand');
  // `!(x == 0)`, not `x != 0`: a float != may compile to an ordered compare, false for NaN
  if (to === 'bool') return isFloat(from) ? `(!(${a} == 0.0f))` : from === 'bool' ? a : `(${a} != ${literal(0, from)})`;
  if (isFloat(to)) {
    // registers hold f32; a value of `from` is already rounded to its precision
    if (isFloat(from)) return to === 'f32' || to === from ? a : roundTo(a, to);
    return roundTo(`f32(${a})`, to);
  }
  if (to === 'i32') return isFloat(from) ? `ng_f32_to_i32(${a})` : from === 'u32' ? `bitcast<i32>(${a})` : `i32(${a})`;
  // to u32
  return isFloat(from) ? `bitcast<u32>(ng_f32_to_i32(${a}))` : from === 'i32' ? `bitcast<u32>(${a})` : `u32(${a})`;
}

const MATH: Readonly<Partial<Record<UnaryFn, string>>> = {
  exp: 'exp', log: 'log', sin: 'ng_sin', cos: 'ng_cos', tanh: 'ng_tanh', sqrt: 'sqrt', abs: 'abs', floor: 'floor', ceil: 'ceil',
};

function intOp(fn: string, a: string, b: string, dtype: 'i32' | 'u32'): string {
  const u = dtype === 'u32';
  switch (fn) {
    case 'add':
      return `(${a} + ${b})`;
    case 'sub':
      return `(${a} - ${b})`;
    case 'mul':
      return `(${a} * ${b})`;
    case 'neg':
      return u ? `(0u - ${a})` : `(-${a})`;
    case 'abs':
      return u ? a : `abs(${a})`;
    case 'not':
      return `(~${a})`;
    case 'shift_left':
      return u ? `(${a} << ${b})` : `(${a} << bitcast<u32>(${b}))`;
    case 'shift_right_logical':
      return u ? `(${a} >> ${b})` : `bitcast<i32>(bitcast<u32>(${a}) >> bitcast<u32>(${b}))`;
    case 'pow':
      return `ng_ipow_${dtype}(${a}, ${b})`;
  }
  throw new NexgradError(`wgsl codegen: integer ${fn}`);
}

/** The bits-level helpers every module carries (unused ones cost nothing). */
export const WGSL_HELPERS = /* wgsl */ `
fn ng_f32_bits(b: u32) -> f32 { return bitcast<f32>(b); }
fn ng_is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn ng_round_bf16(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  if ((u & 0x7f800000u) == 0x7f800000u) { return x; }
  return bitcast<f32>((u + 0x7fffu + ((u >> 16u) & 1u)) & 0xffff0000u);
}
fn ng_round_f16(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let a = u & 0x7fffffffu;
  let s = u & 0x80000000u;
  if (a >= 0x7f800000u) { return x; }
  if (a >= 0x477ff000u) { return bitcast<f32>(s | 0x7f800000u); }
  if (a < 0x38800000u) {
    let q = bitcast<f32>(a) * 16777216.0f;
    let f = floor(q);
    let d = q - f;
    var r = f;
    if (d > 0.5f || (d == 0.5f && (f % 2.0f) != 0.0f)) { r = f + 1.0f; }
    return bitcast<f32>(s | bitcast<u32>(r * 5.9604644775390625e-8f));
  }
  return bitcast<f32>(s | ((a + 0x0fffu + ((a >> 13u) & 1u)) & 0xffffe000u));
}
fn ng_f32_to_i32(x: f32) -> i32 {
  if ((bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u) { return 0i; }
  let t = trunc(x);
  if (abs(t) < 2147483648.0f) { return i32(t); }
  let hi = floor(t / 4294967296.0f);
  return bitcast<i32>(u32(t - hi * 4294967296.0f));
}
// sin and cos to about an ulp for |x| < 2^15 (GPU builtins may be far coarser): x = j pi/2 + r
// with pi/2 in three parts (the first two exact in the product), |r| <= pi/4, Cephes' polynomials.
fn ng_sincos_poly(r: f32, q: i32) -> f32 {
  let z = r * r;
  let s = r + r * z * ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f);
  let c = 1.0f - 0.5f * z + z * z * ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f);
  let v = select(s, c, (q & 1i) != 0i);
  return select(v, -v, (q & 2i) != 0i);
}
fn ng_sincos(x: f32, shift: i32) -> f32 {
  if ((bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u) { return ng_f32_bits(0x7fc00000u); }
  let j = round(x * 0.63661977236758134f);
  var r = fma(-j, 1.5703125f, x);
  r = fma(-j, 4.837512969970703125e-4f, r);
  r = fma(-j, 7.54978995489188216e-8f, r);
  return ng_sincos_poly(r, (i32(j) + shift) & 3i);
}
fn ng_sin(x: f32) -> f32 { return ng_sincos(x, 0i); }
fn ng_cos(x: f32) -> f32 { return ng_sincos(x, 1i); }
fn ng_tanh(x: f32) -> f32 {
  let e = exp(-2.0f * abs(x));
  let t = (1.0f - e) / (1.0f + e);
  return select(t, -t, x < 0.0f);
}
fn ng_ipow_i32(a: i32, b: i32) -> i32 {
  if (b < 0i) {
    if (a == 1i) { return 1i; }
    if (a == -1i) { return select(1i, -1i, (b & 1i) != 0i); }
    return 0i;
  }
  var r = 1i;
  var x = a;
  var e = bitcast<u32>(b);
  loop {
    if (e == 0u) { break; }
    if ((e & 1u) != 0u) { r = r * x; }
    x = x * x;
    e = e >> 1u;
  }
  return r;
}
fn ng_ipow_u32(a: u32, b: u32) -> u32 {
  var r = 1u;
  var x = a;
  var e = b;
  loop {
    if (e == 0u) { break; }
    if ((e & 1u) != 0u) { r = r * x; }
    x = x * x;
    e = e >> 1u;
  }
  return r;
}
`;

/** The buffer's storage element type in WGSL. */
function storageType(dtype: DType, f16: boolean, atomic: boolean): string {
  if (atomic) return dtype === 'i32' ? 'atomic<i32>' : 'atomic<u32>';
  switch (dtype) {
    case 'f32':
    case 'bf16':
      return 'f32';
    case 'f16':
      return f16 ? 'f16' : 'f32';
    case 'i32':
      return 'i32';
    case 'u32':
    case 'bool':
      return 'u32';
    case 'f64':
      throw f64Error('a buffer');
  }
}

interface BufferView {
  readonly name: string;
  readonly atomic: boolean;
}

/** Loads and stores through one kernel's bindings. */
function accessors(bindings: readonly GpuBinding[], f16: boolean) {
  const views = new Map<number, BufferView>();
  for (const b of bindings) {
    if (b.kind !== 'buffer') continue;
    for (const id of b.bufs) views.set(id, { name: bufName(b.bufs[0]!), atomic: b.atomic });
  }
  const view = (buf: number): BufferView => views.get(buf) ?? { name: bufName(buf), atomic: false };
  const load = (buf: number, index: string, dtype: DType): string => {
    const v = view(buf);
    const at = `${v.name}[${index}]`;
    if (v.atomic) {
      const word = `atomicLoad(&${at})`;
      return isFloat(dtype) ? `bitcast<f32>(${word})` : dtype === 'bool' ? `(${word} != 0u)` : word;
    }
    if (dtype === 'bool') return `(${at} != 0u)`;
    if (dtype === 'f16' && f16) return `f32(${at})`;
    if (dtype === 'f64') throw f64Error(`buffer ${buf}`);
    return at;
  };
  const storeValue = (value: string, dtype: DType): string => (dtype === 'bool' ? `select(0u, 1u, ${value})` : dtype === 'f16' && f16 ? `f16(${value})` : value);
  const store = (buf: number, index: string, value: string, dtype: DType, accumulate: boolean): string => {
    const v = view(buf);
    if (!accumulate) {
      if (v.atomic) return `atomicStore(&${v.name}[${index}], ${isFloat(dtype) ? `bitcast<u32>(${value})` : storeValue(value, dtype)});`;
      return `${v.name}[${index}] = ${storeValue(value, dtype)};`;
    }
    if (!v.atomic) {
      // a buffer one thread owns: a plain read-modify-write
      const cur = load(buf, index, dtype);
      const sum = dtype === 'bool' ? `(${cur} || ${value})` : isFloat(dtype) ? roundTo(`(${cur} + ${value})`, dtype) : `(${cur} + ${value})`;
      return `${v.name}[${index}] = ${storeValue(sum, dtype)};`;
    }
    if (dtype === 'i32' || dtype === 'u32') return `atomicAdd(&${v.name}[${index}], ${value});`;
    if (dtype === 'bool') return `atomicOr(&${v.name}[${index}], select(0u, 1u, ${value}));`;
    // floats: compare-exchange on the bits (f16/bf16 sums rounded like the host's)
    const sum = roundTo('(bitcast<f32>(ng_old) + ng_add)', dtype);
    return [
      `{ let ng_at = ${index}; let ng_add = ${value}; var ng_old = atomicLoad(&${v.name}[ng_at]);`,
      `  loop { let ng_r = atomicCompareExchangeWeak(&${v.name}[ng_at], ng_old, bitcast<u32>(${sum})); if (ng_r.exchanged) { break; } ng_old = ng_r.old_value; } }`,
    ].join('\n');
  };
  return { load, store };
}

function moduleSource(m: GpuModule, f16: boolean): string {
  const lines: string[] = [];
  const usesF16 = f16 && m.bindings.some((b) => b.kind === 'buffer' && b.dtype === 'f16' && !b.atomic);
  if (usesF16) lines.push('enable f16;');
  lines.push(`// nexgrad kernel ${m.name}`, WGSL_HELPERS.trim());
  m.bindings.forEach((b, i) => {
    if (b.kind === 'scratch') {
      lines.push(`@group(0) @binding(${i}) var<storage, read_write> ${scratchName(b.index)}: array<u32>;`);
      return;
    }
    const access = b.access === 'read' && !b.atomic ? 'read' : 'read_write';
    lines.push(`@group(0) @binding(${i}) var<storage, ${access}> ${bufName(b.bufs[0]!)}: array<${storageType(b.dtype, f16, b.atomic)}>;`);
  });
  if (m.paramCount > 0) {
    lines.push(`struct NgParams { ${Array.from({ length: m.paramCount }, (_, i) => `p${i}: u32`).join(', ')} }`);
    lines.push(`@group(0) @binding(${m.bindings.length}) var<uniform> ng_params: NgParams;`);
  }
  for (const s of m.shared) lines.push(`var<workgroup> ${s.name}: array<${s.dtype}, ${Math.max(1, s.size)}>;`);
  for (const e of m.entries) {
    lines.push(
      `@compute @workgroup_size(${m.workgroupSize})`,
      `fn ${e.name}(@builtin(workgroup_id) ng_wid: vec3<u32>, @builtin(num_workgroups) ng_nwg: vec3<u32>, @builtin(local_invocation_index) ng_lidu: u32) {`,
      '  let ng_lid = i32(ng_lidu);',
      '  let ng_group = i32(ng_wid.x + ng_nwg.x * (ng_wid.y + ng_nwg.y * ng_wid.z));',
      ...e.body.split('\n').map((l) => `  ${l}`),
      '}',
    );
  }
  return `${lines.join('\n')}\n`;
}

const scratchName = (i: number): string => `ng_s${i}`;

const TABLE: CStyleTable = {
  name: 'wgsl',
  type: registerType,
  indexType: 'i32',
  literal,
  declare: (name, type, src) => `let ${name}: ${type} = ${src};`,
  mathUnary: (fn, a, dtype) => {
    const f = MATH[fn];
    if (!f) throw new NexgradError(`wgsl codegen: ${dtype} ${fn} must be rewritten by expr_rules`);
    return `${f}(${a})`;
  },
  pow: (a, b) => `pow(${a}, ${b})`,
  frem: (a, b) => `(${a} % ${b})`,
  intOp: (fn, a, b, dtype) => intOp(fn, a, b, dtype),
  select: (c, a, b) => `select(${b}, ${a}, ${c})`,
  cast,
  indexValue: (src, dtype) => (dtype === 'i32' ? src : cast(src, 'i32', dtype)),
  load: (buf, index) => `${buf}[${index}]`,
  store: (buf, index, value) => `${buf}[${index}] = ${value};`,
  atomicAdd: (buf, index, value) => `atomicAdd(&${buf}[${index}], ${value});`,
};

/** The WGSL dialect for a device (f16 storage where it has shader-f16). */
export function createWgslDialect(opts: WgslDialectOptions, bindings: readonly GpuBinding[] = []): GpuDialect {
  const base: Dialect = cStyleDialect(TABLE);
  const { load, store } = accessors(bindings, opts.f16);
  return {
    ...base,
    compare: (fn, a, b, dtype) => {
      // x != x / x == x are NaN tests: on the bits, since WGSL may assume finite floats
      if (isFloat(dtype) && a === b && (fn === 'ne' || fn === 'eq')) return fn === 'ne' ? `ng_is_nan(${a})` : `(!ng_is_nan(${a}))`;
      // a float != may compile to an ordered not-equal (false when either side is NaN)
      if (isFloat(dtype) && fn === 'ne') return `(!(${a} == ${b}))`;
      return base.compare(fn, a, b, dtype);
    },
    load,
    store,
    forKernel: (b) => createWgslDialect(opts, b),
    module: (m) => moduleSource(m, opts.f16),
    type: registerType,
    localIndex: 'ng_lid',
    groupIndex: 'ng_group',
    param: (i) => `i32(ng_params.p${i})`,
    scratchName,
    declareMutable: (name, dtype, init) => `var ${name}: ${registerType(dtype)} = ${init};`,
    assign: (name, value) => `${name} = ${value};`,
    forHead: (v, from, to, step) => `for (var ${v}: i32 = ${from}; ${v} < ${to}; ${v} = ${v} + ${step})`,
    barrier: () => 'workgroupBarrier();',
    exit: 'return;',
    bitcast: (a, from, to) => (from === to ? a : `bitcast<${to}>(${a})`),
    mulAdd: (a, b, c, dtype) => (isFloat(dtype) ? `fma(${a}, ${b}, ${c})` : `(${a} * ${b} + ${c})`),
    isNan: (a) => `ng_is_nan(${a})`,
  };
}
