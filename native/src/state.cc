#include "state.h"

#include <cmath>
#include <cstdio>

#include "errors.h"

namespace nexgrad {

AddonState::~AddonState() {
  // Device memory, modules and the context are left to the driver's process teardown; only
  // the callback channel must be closed for the environment to finish.
  if (channelLive) channel.Release();
}

void AddonState::AddPending(Napi::Env env) {
  if (pending++ == 0) channel.Ref(env);
}

void AddonState::DonePending(Napi::Env env) {
  if (pending > 0 && --pending == 0) channel.Unref(env);
}

AddonState& StateOf(Napi::Env env) {
  AddonState* state = env.GetInstanceData<AddonState>();
  if (state == nullptr) {
    state = new AddonState();
    env.SetInstanceData(state);
  }
  return *state;
}

AddonState& OpenState(Napi::Env env, const char* fn) {
  AddonState& state = StateOf(env);
  if (!state.open) {
    throw Napi::Error::New(env, std::string(fn) + ": no CUDA device is open (call open() first)");
  }
  return state;
}

CUdeviceptr PointerArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what) {
  if (!info[index].IsBigInt()) {
    ThrowTypeError(info.Env(), std::string(fn) + ": " + what + " must be a device pointer (bigint)");
  }
  bool lossless = false;
  uint64_t value = info[index].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) {
    ThrowRangeError(info.Env(), std::string(fn) + ": " + what + " is not a 64-bit device pointer");
  }
  return static_cast<CUdeviceptr>(value);
}

size_t SizeArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what) {
  const double limit = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER
  if (!info[index].IsNumber()) {
    ThrowTypeError(info.Env(), std::string(fn) + ": " + what + " must be a number");
  }
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= limit && std::floor(value) == value)) {
    ThrowRangeError(info.Env(), std::string(fn) + ": " + what +
                                    " must be a non-negative integer, got " + std::to_string(value));
  }
  return static_cast<size_t>(value);
}

uint32_t IdArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what) {
  size_t value = SizeArg(info, index, fn, what);
  if (value > UINT32_MAX) ThrowRangeError(info.Env(), std::string(fn) + ": " + what + " is out of range");
  return static_cast<uint32_t>(value);
}

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what) {
  if (!info[index].IsString()) {
    ThrowTypeError(info.Env(), std::string(fn) + ": " + what + " must be a string");
  }
  return info[index].As<Napi::String>().Utf8Value();
}

uint32_t StreamIdArg(AddonState& state, const Napi::CallbackInfo& info, size_t index, const char* fn) {
  if (info[index].IsUndefined()) return 0;
  uint32_t id = IdArg(info, index, fn, "stream");
  if (id != 0 && state.streams.count(id) == 0) {
    ThrowRangeError(info.Env(), std::string(fn) + ": unknown stream " + std::to_string(id));
  }
  return id;
}

CUstream StreamArg(AddonState& state, const Napi::CallbackInfo& info, size_t index, const char* fn) {
  uint32_t id = StreamIdArg(state, info, index, fn);
  return id == 0 ? nullptr : state.streams.at(id);
}

HostBytes HostBytesOf(const Napi::Value& value) {
  if (value.IsTypedArray()) {
    Napi::TypedArray array = value.As<Napi::TypedArray>();
    Napi::ArrayBuffer buffer = array.ArrayBuffer();
    if (buffer.Data() == nullptr) return {nullptr, 0};
    return {static_cast<uint8_t*>(buffer.Data()) + array.ByteOffset(), array.ByteLength()};
  }
  if (value.IsDataView()) {
    Napi::DataView view = value.As<Napi::DataView>();
    Napi::ArrayBuffer buffer = view.ArrayBuffer();
    if (buffer.Data() == nullptr) return {nullptr, 0};
    return {static_cast<uint8_t*>(buffer.Data()) + view.ByteOffset(), view.ByteLength()};
  }
  if (value.IsArrayBuffer()) {
    Napi::ArrayBuffer buffer = value.As<Napi::ArrayBuffer>();
    return {static_cast<uint8_t*>(buffer.Data()), buffer.ByteLength()};
  }
  return {nullptr, 0};
}

HostBytes HostBytesArg(const Napi::CallbackInfo& info, size_t index, const char* fn, const char* what) {
  const Napi::Value value = info[index];
  if (!value.IsTypedArray() && !value.IsDataView() && !value.IsArrayBuffer()) {
    ThrowTypeError(info.Env(), std::string(fn) + ": " + what +
                                   " must be an ArrayBuffer, TypedArray or DataView");
  }
  return HostBytesOf(value);
}

std::string HexPointer(CUdeviceptr ptr) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(ptr));
  return text;
}

}  // namespace nexgrad
