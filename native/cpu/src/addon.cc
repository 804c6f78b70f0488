// nexgrad_cpu: loads the shared objects the native CPU backend compiles (one per kernel graph)
// and runs them over typed arrays, with a persistent thread pool the generated code splits its
// kernels across. It knows nothing of kernels: a graph's object exports
//   void ng_run(void** buffers, const ng_rt* rt, int64_t first, int64_t last)
// running kernels [first, last) over the buffers (indexed by buffer id), and ng_abi_version().
#include <napi.h>
#include <dlfcn.h>

#include "gemm.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define NG_PAUSE() _mm_pause()
#else
#define NG_PAUSE() std::this_thread::yield()
#endif

extern "C" {
typedef void (*ng_task)(void* ctx, int64_t start, int64_t end);
typedef void (*ng_gemm_f32_fn)(const float* ap, const float* bp, float* c, int kc, int mcp, int ncp, int64_t ldc, int accumulate);
typedef void (*ng_gemm_f64_fn)(const double* ap, const double* bp, double* c, int kc, int mcp, int ncp, int64_t ldc, int accumulate, int mr, int nr);
// The layout generated code sees (runtime_c.ts); ng_abi_version() names it.
typedef struct ng_rt {
  int threads;
  void (*par)(void* pool, int64_t total, int parts, ng_task fn, void* ctx);
  void* pool;
  ng_gemm_f32_fn gemm_f32[3];
  ng_gemm_f64_fn gemm_f64;
} ng_rt;
typedef void (*ng_run_fn)(void** buffers, const ng_rt* rt, int64_t first, int64_t last);
typedef int (*ng_abi_fn)(void);
}

namespace {

// A persistent pool: `par` splits [0, total) into `parts` chunks that the calling thread and the
// workers claim from an atomic counter (a descheduled worker never stalls a call: the caller
// takes its chunk), then waits until every claimed chunk has finished.
// Between jobs a worker spins for the next one while a call into a kernel object is running
// (BeginCall .. EndCall: the kernels of a graph come back to back, with one-thread kernels of
// 20-200 us between split ones): ~2000 pauses, then sched_yield in a loop (on a shared machine a
// pure spin took the core from the thread with the work: a busy neighbour process made batch-1
// inference 2x slower); after the call, ~2000 pauses, then it sleeps on the condition variable. A call wakes sleeping workers when it begins, so their wake-up latency overlaps the
// call's first kernels instead of delaying the first split one. (Before, a worker slept after
// ~2000 pauses even inside a call: every split kernel after a one-thread kernel waited for a
// futex wake-up, and the small kernels of the 14x14 and 7x7 stages ran slower on two threads.)
class Pool {
 public:
  explicit Pool(int workers) {
    for (int i = 0; i < workers; i++) threads_.emplace_back([this] { Loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      gen_++;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int size() const { return static_cast<int>(threads_.size()); }

  void BeginCall() {
    in_call_.store(true, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lk(mu_);
    wake_++;
    cv_.notify_all();
  }
  void EndCall() { in_call_.store(false, std::memory_order_relaxed); }

  void Run(int64_t total, int parts, ng_task fn, void* ctx) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = fn;
      ctx_ = ctx;
      total_ = total;
      parts_ = parts;
      next_.store(0);
      finished_.store(0);
      gen_++;
    }
    cv_.notify_all();
    Work();
    int spins = 0;
    while (finished_.load(std::memory_order_acquire) < parts) {
      if (++spins < 4096) NG_PAUSE();
      else std::this_thread::yield();
    }
    // close the job, then wait for every worker that joined it to leave Work(): a late worker
    // must never claim a part of the next job with this one's counters
    {
      std::lock_guard<std::mutex> lk(mu_);
      done_ = gen_.load();
    }
    while (active_.load(std::memory_order_acquire) > 0) std::this_thread::yield();
  }

 private:
  void Work() {
    for (;;) {
      int p = next_.fetch_add(1);
      if (p >= parts_) return;
      int64_t a = total_ * p / parts_, b = total_ * (p + 1) / parts_;
      if (b > a) fn_(ctx_, a, b);
      finished_.fetch_add(1, std::memory_order_release);
    }
  }
  void Loop() {
    uint64_t seen = 0, seen_wake = 0;
    for (;;) {
      // spin for the next job while a call runs, and briefly after; then sleep
      for (int i = 0; gen_.load(std::memory_order_acquire) == seen;) {
        if (i < 2000) {
          i++;
          NG_PAUSE();
        } else if (!in_call_.load(std::memory_order_relaxed)) break;
        else std::this_thread::yield();
      }
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return gen_.load() != seen || wake_ != seen_wake; });
        seen_wake = wake_;
        if (stop_) return;
        if (gen_.load() == seen) continue;  // woken by BeginCall: spin
        seen = gen_.load();
        if (done_ == seen) continue;  // finished without us
        active_.fetch_add(1);
      }
      Work();
      active_.fetch_sub(1, std::memory_order_release);
    }
  }
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  bool stop_ = false;
  ng_task fn_ = nullptr;
  void* ctx_ = nullptr;
  int64_t total_ = 0;
  int parts_ = 0;
  std::atomic<int> next_{0};
  std::atomic<int> finished_{0};
  std::atomic<int> active_{0};
  std::atomic<bool> in_call_{false};
  uint64_t done_ = 0;
  uint64_t wake_ = 0;
};

constexpr int kAbi = 2;
Pool* g_pool = nullptr;

void GemmPortableC(const float* a, const float* b, float* c, int kc, int mcp, int ncp, int64_t ldc, int acc) { ng::GemmPortable(a, b, c, kc, mcp, ncp, ldc, acc); }
void GemmF64C(const double* a, const double* b, double* c, int kc, int mcp, int ncp, int64_t ldc, int acc, int mr, int nr) { ng::GemmF64(a, b, c, kc, mcp, ncp, ldc, acc, mr, nr); }
#if defined(__x86_64__)
void GemmAvx2C(const float* a, const float* b, float* c, int kc, int mcp, int ncp, int64_t ldc, int acc) { ng::GemmAvx2(a, b, c, kc, mcp, ncp, ldc, acc); }
void GemmAvx512C(const float* a, const float* b, float* c, int kc, int mcp, int ncp, int64_t ldc, int acc) { ng::GemmAvx512(a, b, c, kc, mcp, ncp, ldc, acc); }
#endif

// The micro-kernels this CPU runs (a generated object compiled for an ISA it lacks would not run anyway).
ng_rt BaseRuntime() {
  ng_rt rt{};
  rt.gemm_f32[0] = GemmPortableC;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) rt.gemm_f32[1] = GemmAvx2C;
  if (__builtin_cpu_supports("avx512f")) rt.gemm_f32[2] = GemmAvx512C;
#endif
  rt.gemm_f64 = GemmF64C;
  return rt;
}
const ng_rt g_base = BaseRuntime();

void Par(void* pool, int64_t total, int parts, ng_task fn, void* ctx) { static_cast<Pool*>(pool)->Run(total, parts, fn, ctx); }

struct Loaded {
  void* handle;
  ng_run_fn run;
};
std::vector<Loaded> g_loaded;

// load(path) -> handle: dlopen the object and check its interface.
Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "load: expected the path of a shared object");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) throw Napi::Error::New(env, std::string("load: dlopen failed: ") + dlerror());
  auto abi = reinterpret_cast<ng_abi_fn>(dlsym(h, "ng_abi_version"));
  auto run = reinterpret_cast<ng_run_fn>(dlsym(h, "ng_run"));
  if (!abi || !run || abi() != kAbi) {
    dlclose(h);
    throw Napi::Error::New(env, "load: " + path + " is not a nexgrad kernel object (ng_abi_version/ng_run missing or of another version)");
  }
  g_loaded.push_back({h, run});
  return Napi::Number::New(env, static_cast<double>(g_loaded.size() - 1));
}

// run(handle, buffers, threads, first, last): buffers[i] is a TypedArray (or null) for buffer id i.
Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsArray() || !info[2].IsNumber() || !info[3].IsNumber() || !info[4].IsNumber())
    throw Napi::TypeError::New(env, "run: expected (handle, buffers[], threads, first, last)");
  int64_t h = info[0].As<Napi::Number>().Int64Value();
  if (h < 0 || h >= static_cast<int64_t>(g_loaded.size())) throw Napi::RangeError::New(env, "run: unknown handle");
  Napi::Array arr = info[1].As<Napi::Array>();
  uint32_t n = arr.Length();
  std::vector<void*> ptrs(n, nullptr);
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value v = arr.Get(i);
    if (v.IsNull() || v.IsUndefined()) continue;
    if (!v.IsTypedArray()) throw Napi::TypeError::New(env, "run: buffer " + std::to_string(i) + " is not a typed array");
    // the data pointer from napi_get_typedarray_info (already offset): TypedArray::ArrayBuffer()
    // rejects a typed array over a SharedArrayBuffer (a threaded WebAssembly-path result)
    napi_typedarray_type type;
    size_t length = 0, offset = 0;
    void* data = nullptr;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &length, &data, &ab, &offset) != napi_ok) throw Napi::TypeError::New(env, "run: buffer " + std::to_string(i) + " has no readable storage");
    ptrs[i] = data;
  }
  int threads = info[2].As<Napi::Number>().Int32Value();
  if (threads < 1) threads = 1;
  if (threads > 1 && (!g_pool || g_pool->size() != threads - 1)) {
    delete g_pool;
    g_pool = new Pool(threads - 1);
  }
  ng_rt rt = g_base;
  rt.threads = threads;
  rt.par = Par;
  rt.pool = threads > 1 ? g_pool : nullptr;
  if (threads > 1) g_pool->BeginCall();
  g_loaded[h].run(ptrs.data(), &rt, info[3].As<Napi::Number>().Int64Value(), info[4].As<Napi::Number>().Int64Value());
  if (threads > 1) g_pool->EndCall();
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("run", Napi::Function::New(env, Run));
  exports.Set("abi", Napi::Number::New(env, kAbi));
  return exports;
}

}  // namespace

NODE_API_MODULE(nexgrad_cpu, Init)
