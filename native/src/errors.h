// JS errors for CUDA and NVRTC failures. Every message names the failing call and the error
// (as the driver or NVRTC names it) and, where a kernel is involved, the kernel.
#pragma once
#include <cuda.h>
#include <napi.h>

#include <string>

namespace nexgrad {

// "CUDA_ERROR_OUT_OF_MEMORY"; "CUresult 4711" when the driver cannot name it.
std::string CudaErrorName(CUresult result);

// An Error "<call> failed[ for kernel '<k>']: <name>[\n<detail>]" with .code (the error name),
// .call and, where given, .kernel and .log set, so callers can branch without parsing text.
Napi::Error CallError(Napi::Env env, const std::string& call, const std::string& code,
                      const std::string& kernel = "", const std::string& log = "");

inline Napi::Error CudaError(Napi::Env env, CUresult result, const std::string& call,
                             const std::string& kernel = "") {
  return CallError(env, call, CudaErrorName(result), kernel);
}

// Throws CudaError when result is not CUDA_SUCCESS.
inline void Check(Napi::Env env, CUresult result, const char* call, const std::string& kernel = "") {
  if (result != CUDA_SUCCESS) throw CudaError(env, result, call, kernel);
}

// "<fn>: <reason>" with .code set: the device or NVRTC cannot be used at all.
Napi::Error UnavailableError(Napi::Env env, const std::string& fn, const std::string& code,
                             const std::string& reason);

// Bad arguments from JS: a TypeError/RangeError that starts with the addon function's name.
[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message);

}  // namespace nexgrad
