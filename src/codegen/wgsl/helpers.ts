/**
 * The WGSL functions every generated module carries (unused ones cost nothing): bit-level NaN
 * tests and non-finite constants, f16/bf16 rounding on the bits (ties to even, overflow to
 * infinity, half subnormals), float -> i32 conversion that wraps modulo 2^32 like the host
 * (WGSL's own saturates), sin/cos by range reduction, an overflow-free tanh, integer pow.
 */
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
