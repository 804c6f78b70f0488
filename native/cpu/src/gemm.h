// GEMM micro-kernels for the native CPU backend's generated code, one per ISA, each compiled
// for its target with a function attribute (so the addon itself builds with generic flags):
//   C tile (mcp x ncp, row stride ldc) = [C +] Ap * Bp over kc
// with Ap packed [mcp / MR][kc][MR] and Bp packed [ncp / NR][kc][NR]; mcp, ncp are multiples of
// MR, NR (the generated packing zero-fills ragged strips). f32 products accumulate in f32 with
// FMA. Register tiles: AVX-512 8 x 32 (16 zmm accumulators, B in 2 zmm, A broadcast from
// memory), AVX2 + FMA 6 x 16 (12 ymm accumulators), portable 4 x 8.
#pragma once
#include <cmath>
#include <cstdint>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ng {

inline void GemmPortable(const float* Ap, const float* Bp, float* C, int kc, int mcp, int ncp, int64_t ldc, int accumulate) {
  constexpr int MR = 4, NR = 8;
  for (int jr = 0; jr < ncp; jr += NR) {
    for (int ir = 0; ir < mcp; ir += MR) {
      const float* pa = Ap + static_cast<int64_t>(ir) * kc;
      const float* pb = Bp + static_cast<int64_t>(jr) * kc;
      float c[MR][NR];
      for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i][j] = accumulate ? C[(ir + i) * ldc + jr + j] : 0.0f;
      for (int k = 0; k < kc; k++) {
        for (int i = 0; i < MR; i++)
          for (int j = 0; j < NR; j++) c[i][j] = std::fma(pa[i], pb[j], c[i][j]);
        pa += MR;
        pb += NR;
      }
      for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) C[(ir + i) * ldc + jr + j] = c[i][j];
    }
  }
}

inline void GemmF64(const double* Ap, const double* Bp, double* C, int kc, int mcp, int ncp, int64_t ldc, int accumulate, int MR, int NR) {
  double c[8 * 32];
  for (int jr = 0; jr < ncp; jr += NR) {
    for (int ir = 0; ir < mcp; ir += MR) {
      const double* pa = Ap + static_cast<int64_t>(ir) * kc;
      const double* pb = Bp + static_cast<int64_t>(jr) * kc;
      for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) c[i * NR + j] = accumulate ? C[(ir + i) * ldc + jr + j] : 0.0;
      for (int k = 0; k < kc; k++) {
        for (int i = 0; i < MR; i++)
          for (int j = 0; j < NR; j++) c[i * NR + j] += pa[i] * pb[j];
        pa += MR;
        pb += NR;
      }
      for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++) C[(ir + i) * ldc + jr + j] = c[i * NR + j];
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) inline void GemmAvx2(const float* Ap, const float* Bp, float* C, int kc, int mcp, int ncp, int64_t ldc, int accumulate) {
  constexpr int MR = 6, NR = 16;
  for (int jr = 0; jr < ncp; jr += NR) {
    for (int ir = 0; ir < mcp; ir += MR) {
      const float* pa = Ap + static_cast<int64_t>(ir) * kc;
      const float* pb = Bp + static_cast<int64_t>(jr) * kc;
      float* pc = C + ir * ldc + jr;
      __m256 c[MR][2];
      for (int i = 0; i < MR; i++) {
        c[i][0] = accumulate ? _mm256_loadu_ps(pc + i * ldc) : _mm256_setzero_ps();
        c[i][1] = accumulate ? _mm256_loadu_ps(pc + i * ldc + 8) : _mm256_setzero_ps();
      }
      for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(pb), b1 = _mm256_loadu_ps(pb + 8);
        for (int i = 0; i < MR; i++) {
          const __m256 a = _mm256_broadcast_ss(pa + i);
          c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
          c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
        }
        pa += MR;
        pb += NR;
      }
      for (int i = 0; i < MR; i++) {
        _mm256_storeu_ps(pc + i * ldc, c[i][0]);
        _mm256_storeu_ps(pc + i * ldc + 8, c[i][1]);
      }
    }
  }
}

__attribute__((target("avx512f,fma"))) inline void GemmAvx512(const float* Ap, const float* Bp, float* C, int kc, int mcp, int ncp, int64_t ldc, int accumulate) {
  constexpr int MR = 8, NR = 32;
  for (int jr = 0; jr < ncp; jr += NR) {
    for (int ir = 0; ir < mcp; ir += MR) {
      const float* pa = Ap + static_cast<int64_t>(ir) * kc;
      const float* pb = Bp + static_cast<int64_t>(jr) * kc;
      float* pc = C + ir * ldc + jr;
      __m512 c0[MR], c1[MR];
      for (int i = 0; i < MR; i++) {
        c0[i] = accumulate ? _mm512_loadu_ps(pc + i * ldc) : _mm512_setzero_ps();
        c1[i] = accumulate ? _mm512_loadu_ps(pc + i * ldc + 16) : _mm512_setzero_ps();
      }
      for (int k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 16);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
          const __m512 a = _mm512_set1_ps(pa[i]);
          c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
          c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
        }
        pa += MR;
        pb += NR;
      }
      for (int i = 0; i < MR; i++) {
        _mm512_storeu_ps(pc + i * ldc, c0[i]);
        _mm512_storeu_ps(pc + i * ldc + 16, c1[i]);
      }
    }
  }
}
#endif

}  // namespace ng
