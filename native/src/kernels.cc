// NVRTC compilation, modules, functions and kernel launch.
//
// Launch arguments travel as a signature string and one 8-byte slot per parameter:
//   'p' a device pointer (u64), 'i' an int32, 'u' a uint32, 'f' a float32 (4-byte values sit
//   in the slot's low bytes, little-endian). The TS side packs them (packKernelArgs).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "driver.h"
#include "errors.h"
#include "nvrtc.h"
#include "state.h"

namespace nexgrad {
namespace {

const NvrtcStatus& RequireNvrtc(Napi::Env env, const char* fn) {
  const NvrtcStatus& nvrtc = LoadNvrtc();
  if (!nvrtc.ok) throw UnavailableError(env, fn, "NVRTC_UNAVAILABLE", nvrtc.reason);
  return nvrtc;
}

struct CompileRequest {
  std::string source;
  std::string name;
  std::vector<std::string> options;
};

bool NamesArch(const std::vector<std::string>& options) {
  for (const std::string& option : options) {
    if (option.rfind("-arch", 0) == 0 || option.rfind("--gpu-architecture", 0) == 0) return true;
  }
  return false;
}

// NVRTC options from JS (an array of strings, or undefined); without an -arch option the open
// device's sm_XX is added (a cubin is machine code for exactly one architecture).
std::vector<std::string> ReadOptions(Napi::Env env, Napi::Value value, const char* fn) {
  std::vector<std::string> out;
  if (!value.IsUndefined()) {
    if (!value.IsArray()) ThrowTypeError(env, std::string(fn) + ": options must be an array of strings");
    Napi::Array options = value.As<Napi::Array>();
    for (uint32_t i = 0; i < options.Length(); i++) {
      Napi::Value option = options.Get(i);
      if (!option.IsString()) ThrowTypeError(env, std::string(fn) + ": options[" + std::to_string(i) + "] must be a string");
      out.push_back(option.As<Napi::String>().Utf8Value());
    }
  }
  if (!NamesArch(out)) {
    AddonState& state = StateOf(env);
    if (!state.open) {
      ThrowRangeError(env, std::string(fn) + ": no -arch option and no open device to take it from");
    }
    out.push_back("-arch=sm_" + std::to_string(state.ccMajor) + std::to_string(state.ccMinor));
  }
  return out;
}

// compile(source, name, options?): options pass through to NVRTC.
CompileRequest ReadCompileRequest(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  RequireNvrtc(env, fn);
  CompileRequest request{StringArg(info, 0, fn, "source"), StringArg(info, 1, fn, "name"), {}};
  request.options = ReadOptions(env, info[2], fn);
  return request;
}

Napi::Value CompileResult(Napi::Env env, const CompileRequest& request, const CompileOutcome& outcome) {
  if (!outcome.ok) {
    return CallError(env, outcome.failedCall, outcome.errorName, request.name, outcome.log).Value();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("cubin", Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(outcome.cubin.data()),
                                               outcome.cubin.size()));
  out.Set("log", Napi::String::New(env, outcome.log));
  return out;
}

class CompileWorker : public Napi::AsyncWorker {
 public:
  CompileWorker(Napi::Env env, CompileRequest request)
      : Napi::AsyncWorker(env, "nexgrad-nvrtc"), deferred_(Napi::Promise::Deferred::New(env)),
        request_(std::move(request)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { outcome_ = CompileToCubin(request_.source, request_.name, request_.options); }
  void OnOK() override {
    Napi::Value result = CompileResult(Env(), request_, outcome_);
    if (outcome_.ok) deferred_.Resolve(result); else deferred_.Reject(result);
  }

 private:
  Napi::Promise::Deferred deferred_;
  CompileRequest request_;
  CompileOutcome outcome_;
};

// Runs on the libuv pool, so several kernels compile in parallel and the event loop stays free.
// Every failure, bad arguments included, arrives as a rejection.
Napi::Value Compile(const Napi::CallbackInfo& info) {
  return PromiseOrReject(info.Env(), [&]() -> Napi::Value {
    auto* worker = new CompileWorker(info.Env(), ReadCompileRequest(info, "compile"));
    Napi::Promise promise = worker->Promise();
    worker->Queue();  // the worker deletes itself after OnOK
    return promise;
  });
}

Napi::Value CompileSync(const Napi::CallbackInfo& info) {
  CompileRequest request = ReadCompileRequest(info, "compileSync");
  CompileOutcome outcome = CompileToCubin(request.source, request.name, request.options);
  Napi::Value result = CompileResult(info.Env(), request, outcome);
  if (!outcome.ok) throw Napi::Error(info.Env(), result);
  return result;
}

// compileManySync([{source, name}...], options?, threads?) -> [{cubin, log} | {error}]:
// compiles every source on up to `threads` threads (default 4; NVRTC is thread-safe across
// programs) and returns when all are done: a jit compile is synchronous, and this is how its
// kernels still compile in parallel. A failed entry holds the Error a compile() rejection
// would carry (message, .code, .call, .kernel, .log) under `error`.
Napi::Value CompileManySync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* fn = "compileManySync";
  RequireNvrtc(env, fn);
  if (!info[0].IsArray()) ThrowTypeError(env, std::string(fn) + ": the first argument must be an array of {source, name}");
  const std::vector<std::string> options = ReadOptions(env, info[1], fn);
  size_t threads = 4;
  if (!info[2].IsUndefined()) {
    threads = SizeArg(info, 2, fn, "thread count");
    if (threads < 1 || threads > 64) ThrowRangeError(env, std::string(fn) + ": thread count must be 1..64");
  }
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<CompileRequest> requests;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value item = list.Get(i);
    Napi::Value source = item.IsObject() ? item.As<Napi::Object>().Get("source") : env.Undefined();
    Napi::Value name = item.IsObject() ? item.As<Napi::Object>().Get("name") : env.Undefined();
    if (!source.IsString() || !name.IsString()) {
      ThrowTypeError(env, std::string(fn) + ": entry " + std::to_string(i) + " must be {source: string, name: string}");
    }
    requests.push_back({source.As<Napi::String>().Utf8Value(), name.As<Napi::String>().Utf8Value(), options});
  }
  std::vector<CompileOutcome> outcomes(requests.size());
  std::atomic<size_t> next{0};
  auto work = [&]() {
    for (size_t i = next++; i < requests.size(); i = next++) {
      outcomes[i] = CompileToCubin(requests[i].source, requests[i].name, requests[i].options);
    }
  };
  std::vector<std::thread> pool;
  const size_t count = std::min(threads, requests.size());
  for (size_t t = 1; t < count; t++) pool.emplace_back(work);
  work();  // this thread takes a share too
  for (std::thread& t : pool) t.join();
  Napi::Array out = Napi::Array::New(env, requests.size());
  for (size_t i = 0; i < requests.size(); i++) {
    Napi::Value result = CompileResult(env, requests[i], outcomes[i]);
    if (outcomes[i].ok) {
      out.Set(static_cast<uint32_t>(i), result);
    } else {
      Napi::Object failed = Napi::Object::New(env);
      failed.Set("error", result);
      out.Set(static_cast<uint32_t>(i), failed);
    }
  }
  return out;
}

Napi::Value LoadModule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "loadModule");
  HostBytes image = HostBytesArg(info, 0, "loadModule", "cubin");
  const std::string label = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  if (image.length == 0) ThrowRangeError(env, "loadModule: the cubin is empty");
  // A private, aligned copy: the driver parses the ELF in place.
  std::vector<uint64_t> copy((image.length + 7) / 8 + 1, 0);
  std::memcpy(copy.data(), image.data, image.length);
  char log[8192] = {0};
  CUjit_option keys[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void* values[] = {log, reinterpret_cast<void*>(static_cast<uintptr_t>(sizeof log - 1))};
  CUmodule module = nullptr;
  CUresult result = Driver().cuModuleLoadDataEx(&module, copy.data(), 2, keys, values);
  if (result != CUDA_SUCCESS) throw CallError(env, "cuModuleLoadDataEx", CudaErrorName(result), label, log);
  const uint32_t id = state.nextId++;
  state.modules[id] = module;
  return Napi::Number::New(env, id);
}

Napi::Value UnloadModule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "unloadModule");
  const uint32_t id = IdArg(info, 0, "unloadModule", "module");
  auto found = state.modules.find(id);
  if (found == state.modules.end()) ThrowRangeError(env, "unloadModule: unknown module " + std::to_string(id));
  Check(env, Driver().cuModuleUnload(found->second), "cuModuleUnload");
  state.modules.erase(found);
  for (auto it = state.functions.begin(); it != state.functions.end();) {
    it = it->second.module == id ? state.functions.erase(it) : std::next(it);
  }
  return env.Undefined();
}

KernelFunction& FunctionArg(AddonState& state, const Napi::CallbackInfo& info, size_t index, const char* fn) {
  const uint32_t id = IdArg(info, index, fn, "function");
  auto found = state.functions.find(id);
  if (found == state.functions.end()) ThrowRangeError(info.Env(), std::string(fn) + ": unknown function " + std::to_string(id));
  return found->second;
}

Napi::Value GetFunction(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "getFunction");
  const uint32_t moduleId = IdArg(info, 0, "getFunction", "module");
  const std::string name = StringArg(info, 1, "getFunction", "name");
  auto module = state.modules.find(moduleId);
  if (module == state.modules.end()) ThrowRangeError(env, "getFunction: unknown module " + std::to_string(moduleId));
  KernelFunction function;
  function.name = name;
  function.module = moduleId;
  Check(env, Driver().cuModuleGetFunction(&function.handle, module->second, name.c_str()), "cuModuleGetFunction", name);
  if (Driver().cuFuncGetParamInfo != nullptr) {
    // Indexes past the last parameter answer CUDA_ERROR_INVALID_VALUE; a kernel has < 4096.
    for (size_t index = 0; index < 4096; index++) {
      size_t offset = 0, size = 0;
      if (Driver().cuFuncGetParamInfo(function.handle, index, &offset, &size) != CUDA_SUCCESS) break;
      function.paramSizes.push_back(size);
    }
    function.known = true;
  }
  const uint32_t id = state.nextId++;
  state.functions[id] = std::move(function);
  return Napi::Number::New(env, id);
}

Napi::Value FunctionInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  KernelFunction& function = FunctionArg(OpenState(env, "functionInfo"), info, 0, "functionInfo");
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", Napi::String::New(env, function.name));
  if (function.known) {
    Napi::Array sizes = Napi::Array::New(env, function.paramSizes.size());
    for (size_t i = 0; i < function.paramSizes.size(); i++) sizes.Set(i, Napi::Number::New(env, function.paramSizes[i]));
    out.Set("paramSizes", sizes);
  } else {
    out.Set("paramSizes", env.Null());
  }
  return out;
}

// Kernels using more than 48 KiB of dynamic shared memory must opt in first.
Napi::Value SetMaxDynamicSharedMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  KernelFunction& function = FunctionArg(OpenState(env, "setMaxDynamicSharedMemory"), info, 0, "setMaxDynamicSharedMemory");
  const size_t bytes = SizeArg(info, 1, "setMaxDynamicSharedMemory", "bytes");
  if (bytes > INT32_MAX) ThrowRangeError(env, "setMaxDynamicSharedMemory: bytes must be below 2^31");
  Check(env, Driver().cuFuncSetAttribute(function.handle, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                         static_cast<int>(bytes)),
        "cuFuncSetAttribute", function.name);
  return env.Undefined();
}

void ReadDims(const Napi::CallbackInfo& info, size_t index, const char* what, unsigned int dims[3]) {
  if (!info[index].IsArray()) ThrowTypeError(info.Env(), std::string("launch: ") + what + " must be an array of 1 to 3 integers");
  Napi::Array array = info[index].As<Napi::Array>();
  if (array.Length() < 1 || array.Length() > 3) ThrowRangeError(info.Env(), std::string("launch: ") + what + " must have 1 to 3 entries");
  for (uint32_t i = 0; i < 3; i++) {
    double value = i < array.Length() ? array.Get(i).ToNumber().DoubleValue() : 1;
    if (!(value >= 1 && value <= 4294967295.0 && value == static_cast<double>(static_cast<uint64_t>(value)))) {
      ThrowRangeError(info.Env(), std::string("launch: ") + what + "[" + std::to_string(i) + "] must be a positive integer");
    }
    dims[i] = static_cast<unsigned int>(value);
  }
}

size_t SlotSize(char code) { return code == 'p' ? 8 : 4; }

// Checks the packed arguments against the signature, the kernel's parameters (where the
// driver reports them) and, for pointers, the live allocations.
void CheckArguments(Napi::Env env, AddonState& state, const KernelFunction& function, const std::string& signature,
                    const std::vector<uint64_t>& slots) {
  const std::string where = "launch: kernel '" + function.name + "'";
  for (size_t i = 0; i < signature.size(); i++) {
    const char code = signature[i];
    if (code != 'p' && code != 'i' && code != 'u' && code != 'f') {
      ThrowRangeError(env, where + ": signature character '" + std::string(1, code) + "' at " + std::to_string(i) +
                               " is not one of p (pointer), i (int32), u (uint32), f (float32)");
    }
  }
  if (function.known) {
    if (function.paramSizes.size() != signature.size()) {
      ThrowRangeError(env, where + " takes " + std::to_string(function.paramSizes.size()) + " parameters, got " +
                               std::to_string(signature.size()) + " (signature '" + signature + "')");
    }
    for (size_t i = 0; i < signature.size(); i++) {
      if (function.paramSizes[i] != SlotSize(signature[i])) {
        ThrowRangeError(env, where + ": parameter " + std::to_string(i) + " is " + std::to_string(function.paramSizes[i]) +
                                 " bytes but signature '" + std::string(1, signature[i]) + "' passes " +
                                 std::to_string(SlotSize(signature[i])));
      }
    }
  }
  for (size_t i = 0; i < signature.size(); i++) {
    if (signature[i] == 'p' && slots[i] != 0 && !state.allocator.Contains(slots[i], 0)) {
      ThrowRangeError(env, where + ": argument " + std::to_string(i) + " (" + HexPointer(slots[i]) +
                               ") is not inside a live allocation");
    }
  }
}

// launch(fn, grid, block, sharedBytes, stream, signature, args)
Napi::Value Launch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "launch");
  KernelFunction& function = FunctionArg(state, info, 0, "launch");
  unsigned int grid[3], block[3];
  ReadDims(info, 1, "grid", grid);
  ReadDims(info, 2, "block", block);
  const size_t shared = SizeArg(info, 3, "launch", "shared memory bytes");
  if (shared > UINT32_MAX) ThrowRangeError(env, "launch: shared memory bytes must be below 2^32");
  CUstream stream = StreamArg(state, info, 4, "launch");
  const std::string signature = StringArg(info, 5, "launch", "signature");
  HostBytes packed = HostBytesArg(info, 6, "launch", "packed arguments");
  if (packed.length != signature.size() * 8) {
    ThrowRangeError(env, "launch: kernel '" + function.name + "': packed arguments are " + std::to_string(packed.length) +
                             " bytes, signature '" + signature + "' needs " + std::to_string(signature.size() * 8));
  }
  std::vector<uint64_t> slots(signature.size());
  if (!slots.empty()) std::memcpy(slots.data(), packed.data, packed.length);
  CheckArguments(env, state, function, signature, slots);
  std::vector<void*> params(slots.size());
  for (size_t i = 0; i < slots.size(); i++) params[i] = &slots[i];
  Check(env,
        Driver().cuLaunchKernel(function.handle, grid[0], grid[1], grid[2], block[0], block[1], block[2],
                                static_cast<unsigned int>(shared), stream, params.empty() ? nullptr : params.data(), nullptr),
        "cuLaunchKernel", function.name);
  return env.Undefined();
}

}  // namespace

void RegisterKernels(Napi::Env env, Napi::Object exports) {
  exports.Set("compile", Napi::Function::New(env, Compile, "compile"));
  exports.Set("compileSync", Napi::Function::New(env, CompileSync, "compileSync"));
  exports.Set("compileManySync", Napi::Function::New(env, CompileManySync, "compileManySync"));
  exports.Set("loadModule", Napi::Function::New(env, LoadModule, "loadModule"));
  exports.Set("unloadModule", Napi::Function::New(env, UnloadModule, "unloadModule"));
  exports.Set("getFunction", Napi::Function::New(env, GetFunction, "getFunction"));
  exports.Set("functionInfo", Napi::Function::New(env, FunctionInfo, "functionInfo"));
  exports.Set("setMaxDynamicSharedMemory", Napi::Function::New(env, SetMaxDynamicSharedMemory, "setMaxDynamicSharedMemory"));
  exports.Set("launch", Napi::Function::New(env, Launch, "launch"));
}

}  // namespace nexgrad
