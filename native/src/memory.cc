// Device memory from JS: the caching allocator, copies in every direction and memset.
#include <cstring>
#include <memory>

#include "driver.h"
#include "errors.h"
#include "host_work.h"
#include "state.h"

namespace nexgrad {
namespace {

// Device ranges must lie in one live allocation: a wrong pointer is a named error here
// rather than a fault in the driver or, worse, a silent write into another tensor.
void RequireRange(Napi::Env env, AddonState& state, CUdeviceptr ptr, size_t bytes, const char* fn, const char* what) {
  if (!state.allocator.Contains(ptr, bytes)) {
    ThrowRangeError(env, std::string(fn) + ": " + what + " " + HexPointer(ptr) + " + " + std::to_string(bytes) +
                             " bytes is not inside a live allocation");
  }
}

void RequireNotCapturing(Napi::Env env, AddonState& state, uint32_t stream, const char* fn) {
  if (state.capturing.count(stream)) {
    ThrowRangeError(env, std::string(fn) + ": stream " + std::to_string(stream) +
                             " is capturing a graph; copies to or from JS buffers cannot be captured");
  }
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "alloc");
  const size_t bytes = SizeArg(info, 0, "alloc", "size");
  CUstream stream = StreamArg(state, info, 1, "alloc");
  CUdeviceptr ptr = 0;
  CUresult result = state.allocator.Allocate(bytes, stream, &ptr);
  if (result != CUDA_SUCCESS) {
    Napi::Error error = CudaError(env, result, "cuMemAlloc");
    error.Set("message", Napi::String::New(env, error.Message() + " (allocating " + std::to_string(bytes) +
                                                    " bytes; " + std::to_string(state.allocator.Stats().bytesInUse) +
                                                    " in use)"));
    throw error;
  }
  return Napi::BigInt::New(env, static_cast<uint64_t>(ptr));
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "free");
  CUdeviceptr ptr = PointerArg(info, 0, "free", "pointer");
  CUstream stream = StreamArg(state, info, 1, "free");
  if (!state.allocator.Release(ptr, stream)) {
    ThrowRangeError(info.Env(), "free: " + HexPointer(ptr) + " is not a live allocation (freed twice, or not from alloc)");
  }
  return info.Env().Undefined();
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "memoryStats");
  const AllocatorStats& stats = state.allocator.Stats();
  Napi::Object out = Napi::Object::New(info.Env());
  auto set = [&](const char* name, double value) { out.Set(name, Napi::Number::New(info.Env(), value)); };
  set("bytesInUse", static_cast<double>(stats.bytesInUse));
  set("bytesCached", static_cast<double>(stats.bytesCached));
  set("peakBytesInUse", static_cast<double>(stats.peakBytesInUse));
  set("driverAllocations", static_cast<double>(stats.driverAllocations));
  set("cacheHits", static_cast<double>(stats.cacheHits));
  set("cacheMisses", static_cast<double>(stats.cacheMisses));
  set("pinnedBytesCached", static_cast<double>(state.pinned.CachedBytes()));
  return out;
}

// Gives every cached device block and pinned staging buffer back to the driver.
Napi::Value Trim(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "trim");
  const size_t freed = state.allocator.Trim() + state.pinned.Trim();
  return Napi::Number::New(info.Env(), static_cast<double>(freed));
}

Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
  OpenState(info.Env(), "resetPeak").allocator.ResetPeak();
  return info.Env().Undefined();
}

void* AcquireStaging(Napi::Env env, AddonState& state, size_t bytes, size_t* bucket) {
  void* staging = nullptr;
  Check(env, state.pinned.Acquire(bytes, &staging, bucket), "cuMemHostAlloc");
  return staging;
}

// copyHostToDevice(dst, src, stream?): the bytes are copied into a pinned staging buffer at
// once (so `src` may be reused on return), then moved to the device in stream order.
Napi::Value CopyHostToDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "copyHostToDevice");
  CUdeviceptr dst = PointerArg(info, 0, "copyHostToDevice", "destination");
  HostBytes src = HostBytesArg(info, 1, "copyHostToDevice", "source");
  const uint32_t streamId = StreamIdArg(state, info, 2, "copyHostToDevice");
  CUstream stream = StreamArg(state, info, 2, "copyHostToDevice");
  RequireNotCapturing(env, state, streamId, "copyHostToDevice");
  RequireRange(env, state, dst, src.length, "copyHostToDevice", "destination");
  if (src.length == 0) return env.Undefined();
  auto work = std::make_unique<HostWork>();
  work->kind = HostWork::Kind::kReleaseStaging;
  work->state = &state;
  work->staging = AcquireStaging(env, state, src.length, &work->stagingBucket);
  std::memcpy(work->staging, src.data, src.length);
  CUresult result = Driver().cuMemcpyHtoDAsync(dst, work->staging, src.length, stream);
  if (result != CUDA_SUCCESS) {
    state.pinned.Release(work->staging, work->stagingBucket);
    throw CudaError(env, result, "cuMemcpyHtoDAsync");
  }
  EnqueueHostWork(env, stream, work.release());
  return env.Undefined();
}

// copyDeviceToHost(src, dst, stream?) -> Promise<void>: fills `dst` (its whole byte length)
// once the stream reaches the copy.
Napi::Value CopyDeviceToHostOrThrow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "copyDeviceToHost");
  CUdeviceptr src = PointerArg(info, 0, "copyDeviceToHost", "source");
  HostBytes dst = HostBytesArg(info, 1, "copyDeviceToHost", "destination");
  const uint32_t streamId = StreamIdArg(state, info, 2, "copyDeviceToHost");
  CUstream stream = StreamArg(state, info, 2, "copyDeviceToHost");
  RequireNotCapturing(env, state, streamId, "copyDeviceToHost");
  RequireRange(env, state, src, dst.length, "copyDeviceToHost", "source");
  auto work = std::make_unique<HostWork>();
  work->kind = HostWork::Kind::kRead;
  work->state = &state;
  work->call = "copyDeviceToHost";
  work->bytes = dst.length;
  work->target = Napi::Persistent(info[1]);
  work->deferred.emplace(Napi::Promise::Deferred::New(env));
  Napi::Promise promise = work->deferred->Promise();
  if (dst.length > 0) {
    work->staging = AcquireStaging(env, state, dst.length, &work->stagingBucket);
    CUresult result = Driver().cuMemcpyDtoHAsync(work->staging, src, dst.length, stream);
    if (result != CUDA_SUCCESS) {
      state.pinned.Release(work->staging, work->stagingBucket);
      throw CudaError(env, result, "cuMemcpyDtoHAsync");
    }
  } else {
    work->kind = HostWork::Kind::kResolve;
  }
  EnqueueHostWork(env, stream, work.release());
  return promise;
}

Napi::Value CopyDeviceToHost(const Napi::CallbackInfo& info) {
  return PromiseOrReject(info.Env(), [&] { return CopyDeviceToHostOrThrow(info); });
}

// copyDeviceToHostSync(src, dst, stream?): fills `dst` now, blocking the thread until the
// stream has run everything queued before the copy (for synchronous reads, t.dataSync()).
Napi::Value CopyDeviceToHostSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "copyDeviceToHostSync");
  CUdeviceptr src = PointerArg(info, 0, "copyDeviceToHostSync", "source");
  HostBytes dst = HostBytesArg(info, 1, "copyDeviceToHostSync", "destination");
  const uint32_t streamId = StreamIdArg(state, info, 2, "copyDeviceToHostSync");
  CUstream stream = StreamArg(state, info, 2, "copyDeviceToHostSync");
  RequireNotCapturing(env, state, streamId, "copyDeviceToHostSync");
  RequireRange(env, state, src, dst.length, "copyDeviceToHostSync", "source");
  if (dst.length == 0) return env.Undefined();
  size_t bucket = 0;
  void* staging = AcquireStaging(env, state, dst.length, &bucket);
  CUresult result = Driver().cuMemcpyDtoHAsync(staging, src, dst.length, stream);
  if (result == CUDA_SUCCESS) result = Driver().cuStreamSynchronize(stream);
  if (result == CUDA_SUCCESS) std::memcpy(dst.data, staging, dst.length);
  state.pinned.Release(staging, bucket);
  if (result != CUDA_SUCCESS) throw CudaError(env, result, "copyDeviceToHostSync");
  return env.Undefined();
}

Napi::Value CopyDeviceToDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "copyDeviceToDevice");
  CUdeviceptr dst = PointerArg(info, 0, "copyDeviceToDevice", "destination");
  CUdeviceptr src = PointerArg(info, 1, "copyDeviceToDevice", "source");
  const size_t bytes = SizeArg(info, 2, "copyDeviceToDevice", "byte count");
  CUstream stream = StreamArg(state, info, 3, "copyDeviceToDevice");
  RequireRange(env, state, dst, bytes, "copyDeviceToDevice", "destination");
  RequireRange(env, state, src, bytes, "copyDeviceToDevice", "source");
  if (bytes > 0) Check(env, Driver().cuMemcpyDtoDAsync(dst, src, bytes, stream), "cuMemcpyDtoDAsync");
  return env.Undefined();
}

// memset(dst, byte, bytes, stream?) sets bytes; memset32(dst, word, count, stream?) sets
// 32-bit words (a float fill passes the float's bits).
Napi::Value Memset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "memset");
  CUdeviceptr dst = PointerArg(info, 0, "memset", "destination");
  const size_t value = SizeArg(info, 1, "memset", "byte value");
  if (value > 255) ThrowRangeError(env, "memset: byte value must be 0..255, got " + std::to_string(value));
  const size_t bytes = SizeArg(info, 2, "memset", "byte count");
  CUstream stream = StreamArg(state, info, 3, "memset");
  RequireRange(env, state, dst, bytes, "memset", "destination");
  if (bytes > 0) {
    Check(env, Driver().cuMemsetD8Async(dst, static_cast<unsigned char>(value), bytes, stream), "cuMemsetD8Async");
  }
  return env.Undefined();
}

Napi::Value Memset32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "memset32");
  CUdeviceptr dst = PointerArg(info, 0, "memset32", "destination");
  const size_t value = SizeArg(info, 1, "memset32", "word value");
  if (value > UINT32_MAX) ThrowRangeError(env, "memset32: word value must be 0..2^32-1");
  const size_t count = SizeArg(info, 2, "memset32", "word count");
  CUstream stream = StreamArg(state, info, 3, "memset32");
  if (dst % 4 != 0) ThrowRangeError(env, "memset32: destination " + HexPointer(dst) + " is not 4-byte aligned");
  RequireRange(env, state, dst, count * 4, "memset32", "destination");
  if (count > 0) {
    Check(env, Driver().cuMemsetD32Async(dst, static_cast<unsigned int>(value), count, stream), "cuMemsetD32Async");
  }
  return env.Undefined();
}

}  // namespace

void RegisterMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("alloc", Napi::Function::New(env, Alloc, "alloc"));
  exports.Set("free", Napi::Function::New(env, Free, "free"));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats, "memoryStats"));
  exports.Set("trim", Napi::Function::New(env, Trim, "trim"));
  exports.Set("resetPeak", Napi::Function::New(env, ResetPeak, "resetPeak"));
  exports.Set("copyHostToDevice", Napi::Function::New(env, CopyHostToDevice, "copyHostToDevice"));
  exports.Set("copyDeviceToHost", Napi::Function::New(env, CopyDeviceToHost, "copyDeviceToHost"));
  exports.Set("copyDeviceToHostSync", Napi::Function::New(env, CopyDeviceToHostSync, "copyDeviceToHostSync"));
  exports.Set("copyDeviceToDevice", Napi::Function::New(env, CopyDeviceToDevice, "copyDeviceToDevice"));
  exports.Set("memset", Napi::Function::New(env, Memset, "memset"));
  exports.Set("memset32", Napi::Function::New(env, Memset32, "memset32"));
}

}  // namespace nexgrad
