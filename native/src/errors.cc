#include "errors.h"

#include "driver.h"

namespace nexgrad {

std::string CudaErrorName(CUresult result) {
  const DriverApi* api = LoadedDriver();
  const char* name = nullptr;
  if (api != nullptr && api->cuGetErrorName != nullptr &&
      api->cuGetErrorName(result, &name) == CUDA_SUCCESS && name != nullptr) {
    return name;
  }
  return "CUresult " + std::to_string(static_cast<int>(result));
}

Napi::Error CallError(Napi::Env env, const std::string& call, const std::string& code,
                      const std::string& kernel, const std::string& log) {
  std::string message = call + " failed";
  if (!kernel.empty()) message += " for kernel '" + kernel + "'";
  message += ": " + code;
  if (!log.empty()) message += "\n" + log;
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("call", Napi::String::New(env, call));
  if (!kernel.empty()) error.Set("kernel", Napi::String::New(env, kernel));
  if (!log.empty()) error.Set("log", Napi::String::New(env, log));
  return error;
}

Napi::Error UnavailableError(Napi::Env env, const std::string& fn, const std::string& code,
                             const std::string& reason) {
  Napi::Error error = Napi::Error::New(env, fn + ": " + reason);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

void ThrowTypeError(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

void ThrowRangeError(Napi::Env env, const std::string& message) {
  throw Napi::RangeError::New(env, message);
}

}  // namespace nexgrad
