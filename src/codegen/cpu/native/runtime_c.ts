/**
 * The C prelude every generated native CPU source starts with: the runtime interface the addon
 * passes in (thread pool), per-thread scratch, the host-semantics scalar helpers the C dialect
 * calls (ToInt32, pow, f16/bf16 rounding), a stable argsort, and the GEMM register tile of the
 * object's target ISA (-march=native or NEXGRAD_CPU_ISA). The hand-written micro-kernels are in
 * the addon (native/cpu/src/gemm.h): including immintrin.h would cost ~0.4 s of every compile.
 */

import { DEPTHWISE_RUNTIME_C } from './depthwise_runtime_c.js';

/** Bumped when the prelude's interface changes (part of every cache key through the source). */
export const RUNTIME_VERSION = 'ng-cpu-native-4';

export const C_PRELUDE = String.raw`/* ${RUNTIME_VERSION} */
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

typedef void (*ng_task)(void* ctx, int64_t start, int64_t end);
/* What the addon passes to ng_run: a thread pool that runs fn over [0, total) split in parts. */
typedef void (*ng_gemm_f32_fn)(const float* ap, const float* bp, float* c, int kc, int mcp, int ncp, int64_t ldc, int accumulate);
typedef void (*ng_gemm_f64_fn)(const double* ap, const double* bp, double* c, int kc, int mcp, int ncp, int64_t ldc, int accumulate, int mr, int nr);
typedef struct ng_rt {
  int threads;
  void (*par)(void* pool, int64_t total, int parts, ng_task fn, void* ctx);
  void* pool;
  ng_gemm_f32_fn gemm_f32[3]; /* portable, AVX2 + FMA, AVX-512 (null where the CPU lacks it) */
  ng_gemm_f64_fn gemm_f64;
} ng_rt;
/* The runtime of the current ng_run call (calls into one object never overlap). */
static const ng_rt* NG_RT;

/* Splits [0, total) into up to \`per_thread\` parts per thread (each at least ~50k work units),
   which the threads claim from a counter: on a shared machine the OS deschedules a thread now and
   then, and with one part per thread the others then waited (spinning) for its whole half of the
   kernel; with four per thread they take over its unclaimed parts. (Column reductions keep one
   part per thread: narrower column ranges read their rows in pieces too short to prefetch.) */
static void ng_parallel_parts(const ng_rt* rt, int64_t total, double work, ng_task fn, void* ctx, int per_thread) {
  if (total <= 0) return;
  if (rt->threads < 2 || total < 2 || total * work < 200000.0) {
    fn(ctx, 0, total);
    return;
  }
  int64_t parts = (int64_t)rt->threads * (per_thread > 1 ? per_thread : 1);
  if (parts > total) parts = total;
  while (parts > rt->threads && total * work < 50000.0 * (double)parts) parts--;
  rt->par(rt->pool, total, (int)parts, fn, ctx);
}
static void ng_parallel(const ng_rt* rt, int64_t total, double work, ng_task fn, void* ctx) { ng_parallel_parts(rt, total, work, fn, ctx, 4); }

/* Whether n bytes at a and b differ, compared in 64 KiB chunks across the threads: a GEMM's check
   that its cached packed B is still current (gemm_bcache_c.ts) reads the weight and its copy,
   12 MB per ConvNeXt atto inference, memory-bound (one thread: ~1 ms of an 11 ms batch-1 call). */
typedef struct ng_cmp_job {
  const char* a;
  const char* b;
  size_t n;
  int diff;
} ng_cmp_job;
static void ng_cmp_task(void* ctx, int64_t start, int64_t end) {
  ng_cmp_job* j = (ng_cmp_job*)ctx;
  const size_t lo = (size_t)start << 16, hi = (size_t)end << 16 < j->n ? (size_t)end << 16 : j->n;
  if (lo < hi && memcmp(j->a + lo, j->b + lo, hi - lo) != 0) __atomic_store_n(&j->diff, 1, __ATOMIC_RELAXED);
}
static int ng_differs(const ng_rt* rt, const void* a, const void* b, size_t n) {
  ng_cmp_job j = { (const char*)a, (const char*)b, n, 0 };
  ng_parallel(rt, (int64_t)((n + 65535) >> 16), 65536.0, ng_cmp_task, &j);
  return __atomic_load_n(&j.diff, __ATOMIC_RELAXED);
}

/* How a GEMM over units (of rows_per_unit rows) and n columns splits (gemm_cols_c.ts): returns
   its column parts, 1 to split rows (ng_parallel_parts). A row split has every thread read all of
   B for its rows, a column split all of A for its columns: with fewer rows than columns, columns
   (*whole = 1: each task all units, one column part each, one part per thread); else with few
   units (under 4 per thread: a batch-1 GEMM with reducing outputs has one, its image), each unit's
   columns in t / gcd(t, units) parts, so that the units x parts tasks are a multiple of the t
   threads. Parts are at least 32 columns wide. */
static int64_t ng_gemm_split(const ng_rt* rt, int64_t units, int64_t rows_per_unit, int64_t n, double work, int* whole) {
  const int64_t t = rt->threads, widest = n / 32;
  *whole = 0;
  if (t < 2 || units < 1 || widest < 2 || (double)units * work < 200000.0) return 1;
  if (units * rows_per_unit < n) {
    *whole = 1;
    return t < widest ? t : widest;
  }
  if (units >= 4 * t) return 1;
  int64_t g = t, u = units;
  while (u) {
    const int64_t r = g % u;
    g = u;
    u = r;
  }
  const int64_t cp = t / g;
  return cp < widest ? cp : widest;
}
/* The first column of part c of cp over n columns: near n c / cp, at a multiple of q (16 or 32)
   past skew, the element offset of the output row in its 64-byte line (0 for none): with q = 16
   and f32 two threads then never write one cache line (GRN's sums of squares are read and written
   on every row: a line shared by two parts moved between the cores on every row, and the split
   ran slower than one thread). */
static inline int64_t ng_column_start(int64_t c, int64_t cp, int64_t n, int64_t q, int64_t skew) {
  if (c <= 0) return 0;
  if (c >= cp) return n;
  const int64_t s = (n * c / cp + skew + q / 2) / q * q - skew;
  return s < 0 ? 0 : (s > n ? n : s);
}

/* Per-thread scratch (grow-only, 64-byte aligned): slot i of every kernel shares one block. */
static _Thread_local void* ng_scr[8];
static _Thread_local size_t ng_scr_n[8];
static void* ng_scratch(int slot, size_t bytes) {
  if (bytes > ng_scr_n[slot]) {
    free(ng_scr[slot]);
    size_t n = (bytes + 63) & ~(size_t)63;
    ng_scr[slot] = aligned_alloc(64, n);
    if (!ng_scr[slot]) abort();
    ng_scr_n[slot] = n;
  }
  return ng_scr[slot];
}

/* A copy of a constant number of bytes in 32-byte moves (a GEMM panel strip): gcc turns a
   memcpy of 128 bytes into \`rep movs\`, slow at this size, and inlines the 32-byte ones. */
static inline __attribute__((always_inline)) void ng_copy(void* __restrict d, const void* __restrict s, size_t n) {
  char* dd = (char*)d;
  const char* ss = (const char*)s;
  for (; n >= 32; n -= 32, dd += 32, ss += 32) memcpy(dd, ss, 32);
  if (n) memcpy(dd, ss, n);
}

/* ToInt32: truncate, wrap modulo 2^32; NaN and infinities give 0 (C's cast is undefined there). */
static inline int32_t ng_toi32(double x) {
  if (!isfinite(x)) return 0;
  double t = trunc(x);
  if (t >= -2147483648.0 && t <= 2147483647.0) return (int32_t)t;
  double m = fmod(t, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return (int32_t)(uint32_t)m;
}

/* The host's Math.pow: NaN exponents give NaN, and (+-1)^(+-inf) is NaN (C's pow says 1). */
static inline double ng_pow(double a, double b) {
  if (isnan(b)) return NAN;
  if (isinf(b) && fabs(a) == 1.0) return NAN;
  return pow(a, b);
}

/* exp(x) without a libm call, so that loops calling it vectorise: x = k ln2 + r with k the
   nearest integer to x / ln2 (the 1.5 * 2^52 trick: the sum's low mantissa bits hold k),
   r reduced in two parts of ln2 (Cody-Waite), e^r by its degree-13 Taylor polynomial
   (|r| <= ln2 / 2: truncation under 5e-18 relative), then 2^k applied as two exact powers of two
   (each in the normal range, so results that underflow round once). NaN propagates; inputs are
   clamped to [-746, 710], beyond which exp is 0 or infinity anyway. */
static inline double ng_exp(double x) {
  const double xc = x < -746.0 ? -746.0 : (x > 710.0 ? 710.0 : x);
  const double shift = 6755399441055744.0; /* 1.5 * 2^52 */
  const double t = xc * 1.4426950408889634 + shift;
  const double kd = t - shift;
  const double r = (xc - kd * 0.6931471805598903) - kd * 5.497923018708371e-14;
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  int64_t tb, sb;
  memcpy(&tb, &t, 8);
  memcpy(&sb, &shift, 8);
  const int64_t k = tb - sb;
  const int64_t k1 = ((k + 2048) >> 1) - 1024, k2 = k - k1;
  const int64_t b1 = (k1 + 1023) << 52, b2 = (k2 + 1023) << 52;
  double s1, s2;
  memcpy(&s1, &b1, 8);
  memcpy(&s2, &b2, 8);
  return p * s1 * s2;
}
static inline float ng_expf(float x) { return (float)ng_exp((double)x); }

/* f16 rounding, as the host computes it (round to nearest even on the value's own grid). */
static inline double ng_round_f16(double x) {
  if (!isfinite(x) || x == 0) return x;
  double a = fabs(x);
  if (a >= 65520.0) return x > 0 ? INFINITY : -INFINITY;
  double e = floor(log2(a));
  if (e < -14) e = -14;
  double ulp = ldexp(1.0, (int)e - 10);
  double q = a / ulp;
  double r = floor(q + 0.5);
  if (fabs(q - trunc(q) - 0.5) < 1e-12 && fmod(r, 2.0) == 1.0) r -= 1.0;
  return (x < 0 ? -1.0 : 1.0) * r * ulp;
}

/* bf16 rounding of the f32 value (the host rounds to f32 first). */
static inline double ng_round_bf16(double x) {
  float f = (float)x;
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return f;
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  memcpy(&f, &u, 4);
  return f;
}

/* The host's sort order: ascending (or descending) by value, NaN last, ties by index. */
static inline int ng_before(const double* v, int32_t a, int32_t b, int desc) {
  double x = v[a], y = v[b];
  if (isnan(x) || isnan(y)) return isnan(x) ? (isnan(y) ? a < b : 0) : 1;
  if (x == y) return a < b;
  return desc ? x > y : x < y;
}

/* Stable merge sort of idx[0..n) by v (tmp: n ints). */
static void ng_argsort(const double* v, int32_t n, int32_t* idx, int32_t* tmp, int desc) {
  for (int32_t i = 0; i < n; i++) idx[i] = i;
  for (int32_t w = 1; w < n; w *= 2) {
    for (int32_t lo = 0; lo < n; lo += 2 * w) {
      int32_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      int32_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) tmp[k++] = ng_before(v, idx[j], idx[i], desc) ? idx[j++] : idx[i++];
      while (i < mid) tmp[k++] = idx[i++];
      while (j < hi) tmp[k++] = idx[j++];
    }
    memcpy(idx, tmp, (size_t)n * 4);
  }
}

/*
 * The GEMM micro-kernels live in the addon (native/cpu/src/gemm.h, compiled once, one variant per
 * ISA): C tile (mcp x ncp, row stride ldc) = [C +] Ap * Bp over kc, Ap packed [mcp / NG_MR][kc][NG_MR],
 * Bp packed [ncp / NG_NR][kc][NG_NR]. This object picks the variant its own target allows.
 */
#if defined(__AVX512F__)
#define NG_ISA 2
#define NG_MR 8
#define NG_NR 32
#elif defined(__AVX2__) && defined(__FMA__)
#define NG_ISA 1
#define NG_MR 6
#define NG_NR 16
#else
#define NG_ISA 0
#define NG_MR 4
#define NG_NR 8
#endif
#define ng_gemm_f32(ap, bp, c, kc, mcp, ncp, ldc, acc) NG_RT->gemm_f32[NG_ISA](ap, bp, c, kc, mcp, ncp, ldc, acc)
#define ng_gemm_f64(ap, bp, c, kc, mcp, ncp, ldc, acc) NG_RT->gemm_f64(ap, bp, c, kc, mcp, ncp, ldc, acc, NG_MR, NG_NR)

int ng_abi_version(void) { return 2; }
${DEPTHWISE_RUNTIME_C}`;

/** The register tile the prelude picks for an ISA (the packing code uses the macros; this is for reports). */
export const GEMM_TILES: Readonly<Record<string, readonly [number, number]>> = { avx512: [8, 32], avx2: [6, 16], portable: [4, 8] };
