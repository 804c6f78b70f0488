// A CUDA-on-the-host emulation for nexgrad's generated kernels, so that the CUDA backend's
// kernels compute real numbers on machines without a GPU (the tests' fake NVRTC compiles a
// kernel source with g++ -DNG_EMULATION -include ngemu.h; the fake driver loads the shared
// object and launches through the exports NG_EMU_EXPORT adds).
//
// Execution model: blocks run one after another; the threads of a block are cooperative
// contexts (ucontext) run round-robin, each until it reaches a barrier (__syncthreads) or a
// warp-collective operation (mma.sync), where the scheduler switches to the next thread. A
// block barrier opens when every live thread of the block waits at it (threads that have
// returned count as arrived); a warp collective runs when all 32 lanes of the warp wait at
// it, computing the lanes' results from their operands as the PTX ISA lays them out. Between
// those points threads do not interleave, so atomics are atomic by construction and a
// kernel whose result depends on unsynchronised ordering shows it here only by chance.
//
// __shared__ becomes `static`: all threads of a block see one array, and blocks run in turn.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <type_traits>
#include <ucontext.h>
#include <utility>
#include <vector>

struct ng_emu_uint3 {
  unsigned x, y, z;
};

namespace ng_emu {

enum class Wait { none, block, warp, done };

struct Thread {
  ucontext_t ctx;
  char* stack = nullptr;
  ng_emu_uint3 idx{0, 0, 0};
  unsigned linear = 0;
  Wait wait = Wait::none;
  // a warp collective's operands and where its results go
  int op = 0;
  unsigned a[4] = {0, 0, 0, 0};
  unsigned b[2] = {0, 0};
  float* c = nullptr;
  // a shuffle's value (bits), its lane argument, and the value it receives
  unsigned value = 0, arg = 0, result = 0;
};

struct Grid {
  ng_emu_uint3 grid{1, 1, 1}, block{1, 1, 1}, blockIdx{0, 0, 0};
  std::vector<Thread> threads;
  ucontext_t scheduler;
  Thread* current = nullptr;
  std::function<void()> body;
  const char* failure = nullptr;
};

inline Grid*& grid() {
  static Grid* g = nullptr;
  return g;
}

constexpr size_t kStack = 256 * 1024;

inline void trampoline() {
  Grid* g = grid();
  g->body();
  g->current->wait = Wait::done;
  swapcontext(&g->current->ctx, &g->scheduler);
}

inline void yield(Wait why) {
  Grid* g = grid();
  g->current->wait = why;
  swapcontext(&g->current->ctx, &g->scheduler);
}

// m16n8k16 (bf16/f16: 2 elements a register) and m16n8k8 (tf32): fragments per the PTX ISA,
// g = lane / 4, q = lane % 4. A register r: row g (+8 for r = 1, 3), k word q (+4 for r = 2, 3);
// B register r: column g, k word q (+4 for r = 1); C: rows g / g + 8, columns 2q, 2q + 1.
enum Op { kMmaBf16 = 1, kMmaF16 = 2, kMmaTf32 = 3, kShflDown = 10, kShflUp = 11, kShflXor = 12, kShflIdx = 13 };

// Every lane receives the value of its source lane (its own where the source is outside the warp).
inline void shuffle(Thread* lanes) {
  const int op = lanes[0].op;
  for (int lane = 0; lane < 32; lane++) {
    if (lanes[lane].op != op || lanes[lane].arg != lanes[0].arg) {
      grid()->failure = "lanes of one warp run different shuffles";
      return;
    }
  }
  for (int lane = 0; lane < 32; lane++) {
    const int arg = (int)lanes[lane].arg;
    int src = lane;
    if (op == kShflDown) src = lane + arg < 32 ? lane + arg : lane;
    if (op == kShflUp) src = lane - arg >= 0 ? lane - arg : lane;
    if (op == kShflXor) src = (lane ^ arg) & 31;
    if (op == kShflIdx) src = arg & 31;
    lanes[lane].result = lanes[src].value;
  }
}

inline float bf16(unsigned short h) {
  unsigned u = (unsigned)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float f16(unsigned short h) { _Float16 x; std::memcpy(&x, &h, 2); return (float)x; }
inline float tf32(unsigned w) {
  w &= 0xffffe000u;  // the tensor core reads 19 bits
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}

inline void mma(Thread* lanes) {
  const int op = lanes[0].op;
  const int K = op == kMmaTf32 ? 8 : 16;
  double A[16][16] = {}, B[16][8] = {};
  for (int lane = 0; lane < 32; lane++) {
    const Thread& t = lanes[lane];
    if (t.op != op) {
      grid()->failure = "lanes of one warp run different mma kinds";
      return;
    }
    const int g = lane / 4, q = lane % 4;
    for (int r = 0; r < 4; r++) {
      const int row = g + ((r & 1) ? 8 : 0);
      const int word = q + ((r & 2) ? 4 : 0);
      if (op == kMmaTf32) {
        A[row][word] = tf32(t.a[r]);
      } else {
        const unsigned short lo = t.a[r] & 0xffff, hi = t.a[r] >> 16;
        A[row][2 * word] = op == kMmaBf16 ? bf16(lo) : f16(lo);
        A[row][2 * word + 1] = op == kMmaBf16 ? bf16(hi) : f16(hi);
      }
    }
    for (int r = 0; r < 2; r++) {
      const int word = q + (r ? 4 : 0);
      if (op == kMmaTf32) {
        B[word][g] = tf32(t.b[r]);
      } else {
        const unsigned short lo = t.b[r] & 0xffff, hi = t.b[r] >> 16;
        B[2 * word][g] = op == kMmaBf16 ? bf16(lo) : f16(lo);
        B[2 * word + 1][g] = op == kMmaBf16 ? bf16(hi) : f16(hi);
      }
    }
  }
  float D[16][8];
  for (int lane = 0; lane < 32; lane++) {
    const int g = lane / 4, q = lane % 4;
    const float* c = lanes[lane].c;
    D[g][2 * q] = c[0];
    D[g][2 * q + 1] = c[1];
    D[g + 8][2 * q] = c[2];
    D[g + 8][2 * q + 1] = c[3];
  }
  for (int i = 0; i < 16; i++) {
    for (int j = 0; j < 8; j++) {
      double s = D[i][j];
      for (int k = 0; k < K; k++) s += A[i][k] * B[k][j];
      D[i][j] = (float)s;
    }
  }
  for (int lane = 0; lane < 32; lane++) {
    const int g = lane / 4, q = lane % 4;
    float* c = lanes[lane].c;
    c[0] = D[g][2 * q];
    c[1] = D[g][2 * q + 1];
    c[2] = D[g + 8][2 * q];
    c[3] = D[g + 8][2 * q + 1];
  }
}

// Runs every thread of the current block to completion. Returns false on a deadlock.
inline bool runBlock(Grid* g) {
  const unsigned n = g->block.x * g->block.y * g->block.z;
  if (g->threads.size() < n) g->threads.resize(n);
  for (unsigned i = 0; i < n; i++) {
    Thread& t = g->threads[i];
    if (!t.stack) t.stack = static_cast<char*>(std::malloc(kStack));
    t.linear = i;
    t.idx = {i % g->block.x, (i / g->block.x) % g->block.y, i / (g->block.x * g->block.y)};
    t.wait = Wait::none;
    t.op = 0;
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = t.stack;
    t.ctx.uc_stack.ss_size = kStack;
    t.ctx.uc_link = nullptr;
    makecontext(&t.ctx, trampoline, 0);
  }
  for (;;) {
    bool ran = false;
    for (unsigned i = 0; i < n; i++) {
      Thread& t = g->threads[i];
      if (t.wait != Wait::none) continue;
      g->current = &t;
      swapcontext(&g->scheduler, &t.ctx);
      ran = true;
      if (g->failure) return false;
    }
    unsigned done = 0, atBlock = 0;
    for (unsigned i = 0; i < n; i++) {
      done += g->threads[i].wait == Wait::done;
      atBlock += g->threads[i].wait == Wait::block;
    }
    if (done == n) return true;
    bool released = false;
    if (atBlock > 0 && atBlock + done == n) {
      for (unsigned i = 0; i < n; i++) if (g->threads[i].wait == Wait::block) g->threads[i].wait = Wait::none;
      released = true;
    }
    for (unsigned w = 0; w * 32 < n; w++) {
      Thread* lanes = &g->threads[w * 32];
      const unsigned count = n - w * 32 < 32 ? n - w * 32 : 32;
      unsigned waiting = 0;
      for (unsigned l = 0; l < count; l++) waiting += lanes[l].wait == Wait::warp;
      if (waiting == 0) continue;
      if (count != 32) {
        g->failure = "a warp collective in a partial warp";
        return false;
      }
      if (waiting < 32) continue;
      if (lanes[0].op >= kShflDown) shuffle(lanes);
      else mma(lanes);
      if (g->failure) return false;
      for (unsigned l = 0; l < 32; l++) lanes[l].wait = Wait::none;
      released = true;
    }
    if (!ran && !released) {
      g->failure = "deadlock: threads wait at different barriers (a __syncthreads or warp collective not reached by all)";
      return false;
    }
  }
}

template <class... A, std::size_t... I>
void call(void (*k)(A...), void** params, std::index_sequence<I...>) {
  k(*static_cast<std::remove_reference_t<A>*>(params[I])...);
}

template <class... A>
int launch(void (*k)(A...), unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, void** params, char* error, size_t errorSize) {
  static Grid g;
  g.grid = {gx, gy, gz};
  g.block = {bx, by, bz};
  g.failure = nullptr;
  g.body = [&]() { call(k, params, std::index_sequence_for<A...>{}); };
  grid() = &g;
  for (unsigned z = 0; z < gz; z++) {
    for (unsigned y = 0; y < gy; y++) {
      for (unsigned x = 0; x < gx; x++) {
        g.blockIdx = {x, y, z};
        if (!runBlock(&g)) {
          std::snprintf(error, errorSize, "block (%u, %u, %u): %s", x, y, z, g.failure);
          return 1;
        }
      }
    }
  }
  return 0;
}

template <class... A>
int paramSizes(void (*)(A...), size_t* out, int capacity) {
  const size_t sizes[] = {sizeof(A)..., 0};
  const int n = sizeof...(A);
  for (int i = 0; i < n && i < capacity; i++) out[i] = sizes[i];
  return n;
}

}  // namespace ng_emu

#define NG_EMU_EXPORT(name)                                                                                         \
  extern "C" int ng_emu_launch_##name(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, \
                                      void** params, char* error, size_t errorSize) {                               \
    return ng_emu::launch(name, gx, gy, gz, bx, by, bz, params, error, errorSize);                                  \
  }                                                                                                                 \
  extern "C" int ng_emu_params_##name(size_t* out, int capacity) { return ng_emu::paramSizes(name, out, capacity); }

// ---- the CUDA surface the generated kernels use ----
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define threadIdx (ng_emu::grid()->current->idx)
#define blockIdx (ng_emu::grid()->blockIdx)
#define blockDim (ng_emu::grid()->block)
#define gridDim (ng_emu::grid()->grid)

inline void __syncthreads() { ng_emu::yield(ng_emu::Wait::block); }

inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline float __uint_as_float(unsigned x) { float f; std::memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float f) { int x; std::memcpy(&x, &f, 4); return x; }
inline unsigned __float_as_uint(float f) { unsigned x; std::memcpy(&x, &f, 4); return x; }
inline double __longlong_as_double(long long x) { double d; std::memcpy(&d, &x, 8); return d; }
inline long long __double_as_longlong(double d) { long long x; std::memcpy(&x, &d, 8); return x; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
using std::erf;
using std::exp;
using std::fabs;
using std::fma;
using std::fmod;
using std::log;
using std::pow;
using std::sqrt;
using std::trunc;

inline float atomicAdd(float* p, float v) { float o = *p; *p = o + v; return o; }
inline double atomicAdd(double* p, double v) { double o = *p; *p = o + v; return o; }
inline int atomicAdd(int* p, int v) { int o = *p; *p = (int)((unsigned)o + (unsigned)v); return o; }
inline unsigned atomicAdd(unsigned* p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
inline unsigned atomicCAS(unsigned* p, unsigned cmp, unsigned v) { unsigned o = *p; if (o == cmp) *p = v; return o; }
inline int atomicCAS(int* p, int cmp, int v) { int o = *p; if (o == cmp) *p = v; return o; }
inline unsigned atomicExch(unsigned* p, unsigned v) { unsigned o = *p; *p = v; return o; }
inline int atomicMax(int* p, int v) { int o = *p; if (v > o) *p = v; return o; }
inline int atomicMin(int* p, int v) { int o = *p; if (v < o) *p = v; return o; }
inline unsigned atomicMax(unsigned* p, unsigned v) { unsigned o = *p; if (v > o) *p = v; return o; }
inline unsigned atomicMin(unsigned* p, unsigned v) { unsigned o = *p; if (v < o) *p = v; return o; }

// the prelude's PTX helpers
static inline float ng_h2f(unsigned short h) { return ng_emu::f16(h); }
static inline unsigned short ng_f2h(float f) { _Float16 x = (_Float16)f; unsigned short h; std::memcpy(&h, &x, 2); return h; }
static inline unsigned short ng_d2h(double d) { _Float16 x = (_Float16)d; unsigned short h; std::memcpy(&h, &x, 2); return h; }
static inline unsigned ng_f2tf32(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7f800000u) == 0x7f800000u) return u;
  return (u + 0x1000u) & 0xffffe000u;  // to nearest, ties away from zero (cvt.rna)
}

// warp shuffles (full mask; width 32)
template <class T>
inline T ng_emu_shfl(int op, T v, unsigned arg) {
  static_assert(sizeof(T) == 4, "32-bit shuffles only");
  ng_emu::Thread* t = ng_emu::grid()->current;
  t->op = op;
  std::memcpy(&t->value, &v, 4);
  t->arg = arg;
  ng_emu::yield(ng_emu::Wait::warp);
  T r;
  std::memcpy(&r, &t->result, 4);
  return r;
}
template <class T> inline T __shfl_down_sync(unsigned, T v, unsigned d) { return ng_emu_shfl(ng_emu::kShflDown, v, d); }
template <class T> inline T __shfl_up_sync(unsigned, T v, unsigned d) { return ng_emu_shfl(ng_emu::kShflUp, v, d); }
template <class T> inline T __shfl_xor_sync(unsigned, T v, int m) { return ng_emu_shfl(ng_emu::kShflXor, v, (unsigned)m); }
template <class T> inline T __shfl_sync(unsigned, T v, int src) { return ng_emu_shfl(ng_emu::kShflIdx, v, (unsigned)src); }

static inline void ng_emu_mma(int op, float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  ng_emu::Thread* t = ng_emu::grid()->current;
  t->op = op;
  t->a[0] = a0; t->a[1] = a1; t->a[2] = a2; t->a[3] = a3;
  t->b[0] = b0; t->b[1] = b1;
  t->c = c;
  ng_emu::yield(ng_emu::Wait::warp);
}
static inline void ng_mma_bf16(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) { ng_emu_mma(ng_emu::kMmaBf16, c, a0, a1, a2, a3, b0, b1); }
static inline void ng_mma_f16(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) { ng_emu_mma(ng_emu::kMmaF16, c, a0, a1, a2, a3, b0, b1); }
static inline void ng_mma_tf32(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) { ng_emu_mma(ng_emu::kMmaTf32, c, a0, a1, a2, a3, b0, b1); }
