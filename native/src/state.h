// Per-environment state: the open device, handle tables and the host-callback channel.
//
// JS never sees driver handles: streams, events, modules, functions and graphs are small
// integer ids into these tables, so a stale or forged id is a named error, not a crash.
// Device pointers are BigInts, checked against the allocator's live blocks before any copy.
#pragma once
#include <cuda.h>
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "allocator.h"

namespace nexgrad {

struct AddonState;
struct HostWork;

// Runs HostWork on the JS thread after a stream callback (see streams.cc).
void CallHostWork(Napi::Env env, Napi::Function unused, AddonState* state, HostWork* work);
using HostCallbackChannel = Napi::TypedThreadSafeFunction<AddonState, HostWork, CallHostWork>;

struct KernelFunction {
  CUfunction handle = nullptr;
  std::string name;
  uint32_t module = 0;
  // Parameter byte sizes from cuFuncGetParamInfo; empty with `known` false on older drivers.
  bool known = false;
  std::vector<size_t> paramSizes;
};

struct AddonState {
  ~AddonState();

  bool open = false;
  int ordinal = -1;
  CUdevice device = 0;
  CUcontext context = nullptr;
  int ccMajor = 0;
  int ccMinor = 0;

  uint32_t nextId = 1;
  std::unordered_map<uint32_t, CUstream> streams;
  std::unordered_map<uint32_t, CUevent> events;
  std::unordered_map<uint32_t, CUmodule> modules;
  std::unordered_map<uint32_t, KernelFunction> functions;
  std::unordered_map<uint32_t, CUgraphExec> graphs;
  std::unordered_set<uint32_t> capturing;  // stream ids between beginCapture and endCapture

  DeviceAllocator allocator;
  PinnedPool pinned;

  HostCallbackChannel channel;
  bool channelLive = false;
  uint32_t pending = 0;  // promises waiting on stream callbacks; the channel holds the loop while > 0

  void AddPending(Napi::Env env);
  void DonePending(Napi::Env env);
};

AddonState& StateOf(Napi::Env env);
// The state of an opened device, else throws "<fn>: no CUDA device is open (call open() first)".
AddonState& OpenState(Napi::Env env, const char* fn);

// Argument readers: each throws a TypeError/RangeError naming the function and the argument.
CUdeviceptr PointerArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what);
size_t SizeArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what);
uint32_t IdArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what);
std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what);
// A stream id (0 or undefined: the legacy default stream) and its stream; unknown ids throw.
CUstream StreamArg(AddonState& state, const Napi::CallbackInfo& info, size_t index, const char* fn);
uint32_t StreamIdArg(AddonState& state, const Napi::CallbackInfo& info, size_t index, const char* fn);

// Bytes of an ArrayBuffer, TypedArray or DataView argument.
struct HostBytes {
  uint8_t* data;
  size_t length;
};
HostBytes HostBytesArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what);
HostBytes HostBytesOf(const Napi::Value& value);  // {nullptr, 0} when not a buffer (or detached)

// Runs `body` (which returns a promise); a throw becomes a rejected promise, so functions that
// return promises report every failure, bad arguments included, the same way.
template <typename Body>
Napi::Value PromiseOrReject(Napi::Env env, Body body) {
  try {
    return body();
  } catch (const Napi::Error& error) {
    Napi::Promise::Deferred rejected = Napi::Promise::Deferred::New(env);
    rejected.Reject(error.Value());
    return rejected.Promise();
  }
}

// "0x7f00..." for messages.
std::string HexPointer(CUdeviceptr ptr);

// Registers the functions of each area on `exports`.
void RegisterDevice(Napi::Env env, Napi::Object exports);
void RegisterMemory(Napi::Env env, Napi::Object exports);
void RegisterStreams(Napi::Env env, Napi::Object exports);
void RegisterKernels(Napi::Env env, Napi::Object exports);
void RegisterGraphs(Napi::Env env, Napi::Object exports);

}  // namespace nexgrad
