/**
 * The depthwise micro-kernels of the native CPU backend, part of every object's prelude: channels
 * contiguous (NHWC activations, HWIO / tap-major weights), stride and dilation 1. They use GCC/clang
 * vector extensions (8 floats: one AVX2 register, half an AVX-512 one) rather than immintrin.h,
 * which would cost ~0.4 s of every compile, and accumulate f32 products in f32 with FMA (the
 * policy of the GEMM micro-kernels). Several independent accumulators hide the FMA latency; the
 * plain compiler-vectorised loops they replace kept the accumulators in memory (a load and a
 * store per multiply-add) and ran at 5-8 GFLOP/s.
 */
export const DEPTHWISE_RUNTIME_C = String.raw`
typedef float ng_v8f __attribute__((vector_size(32)));
static inline ng_v8f ng_ld8(const float* p) { ng_v8f v; memcpy(&v, p, 32); return v; }
static inline void ng_st8(float* p, ng_v8f v) { memcpy(p, &v, 32); }

/* acc[c] += sum_{j < L} x[j * xs + c] * y[j * ys + c] for c < C (a depthwise weight gradient's
   contribution of one row of positions). */
static void ng_dw_dot_rows(const float* x, const float* y, float* acc, int64_t L, int64_t C, int64_t xs, int64_t ys) {
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) {
    ng_v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    const float* xp = x + c;
    const float* yp = y + c;
    int64_t j = 0;
    for (; j + 4 <= L; j += 4) {
      a0 += ng_ld8(xp) * ng_ld8(yp);
      a1 += ng_ld8(xp + xs) * ng_ld8(yp + ys);
      a2 += ng_ld8(xp + 2 * xs) * ng_ld8(yp + 2 * ys);
      a3 += ng_ld8(xp + 3 * xs) * ng_ld8(yp + 3 * ys);
      xp += 4 * xs;
      yp += 4 * ys;
    }
    for (; j < L; j++, xp += xs, yp += ys) a0 += ng_ld8(xp) * ng_ld8(yp);
    ng_st8(acc + c, ng_ld8(acc + c) + ((a0 + a1) + (a2 + a3)));
  }
  for (; c < C; c++) {
    float s = 0;
    for (int64_t j = 0; j < L; j++) s += x[j * xs + c] * y[j * ys + c];
    acc[c] += s;
  }
}

/* One kernel row of a depthwise convolution into one output row: out[ox * C + c] +=
   sum_kx x[(ox + kx - pad) * xs + c] * w[kx * ws + c] over the taps inside [0, W). Four output
   pixels at a time where all their taps are inside, one at a time at the borders. */
static void ng_dw_row(const float* x, const float* w, float* out, int64_t OW, int64_t W, int64_t C, int64_t KW, int64_t pad, int64_t xs, int64_t ws) {
  /* interior pixels: ox - pad >= 0 and ox - pad + KW - 1 < W */
  int64_t lo = pad, hi = W - KW + 1 + pad;
  if (lo > OW) lo = OW;
  if (hi > OW) hi = OW;
  if (hi < lo) hi = lo;
  for (int64_t c = 0; c + 8 <= C; c += 8) {
    int64_t ox = lo;
    for (; ox + 4 <= hi; ox += 4) {
      float* o = out + ox * C + c;
      ng_v8f a0 = ng_ld8(o), a1 = ng_ld8(o + C), a2 = ng_ld8(o + 2 * C), a3 = ng_ld8(o + 3 * C);
      const float* xp = x + (ox - pad) * xs + c;
      const float* wp = w + c;
      for (int64_t kx = 0; kx < KW; kx++, xp += xs, wp += ws) {
        const ng_v8f wv = ng_ld8(wp);
        a0 += ng_ld8(xp) * wv;
        a1 += ng_ld8(xp + xs) * wv;
        a2 += ng_ld8(xp + 2 * xs) * wv;
        a3 += ng_ld8(xp + 3 * xs) * wv;
      }
      ng_st8(o, a0);
      ng_st8(o + C, a1);
      ng_st8(o + 2 * C, a2);
      ng_st8(o + 3 * C, a3);
    }
    for (int64_t p = 0; p < OW; p++) {
      if (p >= lo && p < ox) { p = ox - 1; continue; }
      int64_t k0 = pad - p > 0 ? pad - p : 0, k1 = W + pad - p < KW ? W + pad - p : KW;
      ng_v8f a = ng_ld8(out + p * C + c);
      for (int64_t kx = k0; kx < k1; kx++) a += ng_ld8(x + (p + kx - pad) * xs + c) * ng_ld8(w + kx * ws + c);
      ng_st8(out + p * C + c, a);
    }
  }
  for (int64_t c = C - C % 8; c < C; c++) {
    for (int64_t p = 0; p < OW; p++) {
      int64_t k0 = pad - p > 0 ? pad - p : 0, k1 = W + pad - p < KW ? W + pad - p : KW;
      float a = out[p * C + c];
      for (int64_t kx = k0; kx < k1; kx++) a += x[(p + kx - pad) * xs + c] * w[kx * ws + c];
      out[p * C + c] = a;
    }
  }
}
`;
