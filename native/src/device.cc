// Availability, device enumeration and opening a device (its primary context).
#include <string>

#include "allocator.h"
#include "driver.h"
#include "errors.h"
#include "nvrtc.h"
#include "state.h"

namespace nexgrad {
namespace {

// The properties deviceProperties() reports, as (JS name, driver attribute).
struct AttributeRule {
  const char* name;
  CUdevice_attribute attribute;
};
constexpr AttributeRule kAttributes[] = {
    {"multiprocessorCount", CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT},
    {"maxThreadsPerBlock", CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK},
    {"maxSharedMemoryPerBlock", CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK},
    {"maxSharedMemoryPerBlockOptin", CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN},
    {"maxSharedMemoryPerMultiprocessor", CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR},
    {"maxRegistersPerBlock", CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK},
    {"warpSize", CU_DEVICE_ATTRIBUTE_WARP_SIZE},
    {"l2CacheSize", CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE},
    {"maxGridDimX", CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X},
};

const char* UnavailableReason() {
  const DriverStatus& driver = LoadDriver();
  if (!driver.ok) return driver.reason.c_str();
  const NvrtcStatus& nvrtc = LoadNvrtc();
  if (!nvrtc.ok) return nvrtc.reason.c_str();
  return "";
}

void RequireDriver(Napi::Env env, const char* fn) {
  const DriverStatus& driver = LoadDriver();
  if (!driver.ok) throw UnavailableError(env, fn, "CUDA_UNAVAILABLE", driver.reason);
}

Napi::Value Status(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const DriverStatus& driver = LoadDriver();
  const NvrtcStatus& nvrtc = LoadNvrtc();
  Napi::Object out = Napi::Object::New(env);
  const std::string reason = UnavailableReason();
  out.Set("available", Napi::Boolean::New(env, reason.empty()));
  out.Set("reason", Napi::String::New(env, reason));
  out.Set("driverOk", Napi::Boolean::New(env, driver.ok));
  out.Set("driverReason", Napi::String::New(env, driver.reason));
  out.Set("driverVersion", Napi::Number::New(env, driver.driverVersion));
  out.Set("deviceCount", Napi::Number::New(env, driver.deviceCount));
  out.Set("libcuda", Napi::String::New(env, driver.path));
  out.Set("nvrtcOk", Napi::Boolean::New(env, nvrtc.ok));
  out.Set("nvrtcReason", Napi::String::New(env, nvrtc.reason));
  out.Set("nvrtcVersion", nvrtc.ok ? Napi::String::New(env, std::to_string(nvrtc.major) + "." +
                                                              std::to_string(nvrtc.minor))
                                   : Napi::String::New(env, ""));
  out.Set("libnvrtc", Napi::String::New(env, nvrtc.path));
  return out;
}

int OrdinalArg(const Napi::CallbackInfo& info, size_t index, const char* fn) {
  if (info[index].IsUndefined()) return 0;
  size_t ordinal = SizeArg(info, index, fn, "device ordinal");
  int count = LoadDriver().deviceCount;
  if (ordinal >= static_cast<size_t>(count)) {
    ThrowRangeError(info.Env(), std::string(fn) + ": device " + std::to_string(ordinal) +
                                    " does not exist (" + std::to_string(count) + " present)");
  }
  return static_cast<int>(ordinal);
}

Napi::Object Properties(Napi::Env env, int ordinal) {
  const DriverApi& api = Driver();
  CUdevice device;
  Check(env, api.cuDeviceGet(&device, ordinal), "cuDeviceGet");
  char name[256] = {0};
  Check(env, api.cuDeviceGetName(name, sizeof name - 1, device), "cuDeviceGetName");
  int major = 0, minor = 0;
  Check(env, api.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device),
        "cuDeviceGetAttribute");
  Check(env, api.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device),
        "cuDeviceGetAttribute");
  size_t total = 0;
  Check(env, api.cuDeviceTotalMem(&total, device), "cuDeviceTotalMem");
  Napi::Object out = Napi::Object::New(env);
  out.Set("ordinal", Napi::Number::New(env, ordinal));
  out.Set("name", Napi::String::New(env, name));
  Napi::Array cc = Napi::Array::New(env, 2);
  cc.Set(0u, Napi::Number::New(env, major));
  cc.Set(1u, Napi::Number::New(env, minor));
  out.Set("computeCapability", cc);
  out.Set("arch", Napi::String::New(env, "sm_" + std::to_string(major) + std::to_string(minor)));
  out.Set("totalMemory", Napi::Number::New(env, static_cast<double>(total)));
  for (const AttributeRule& rule : kAttributes) {
    int value = 0;
    Check(env, api.cuDeviceGetAttribute(&value, rule.attribute, device), "cuDeviceGetAttribute");
    out.Set(rule.name, Napi::Number::New(env, value));
  }
  return out;
}

Napi::Value DeviceCount(const Napi::CallbackInfo& info) {
  RequireDriver(info.Env(), "deviceCount");
  return Napi::Number::New(info.Env(), LoadDriver().deviceCount);
}

Napi::Value DeviceProperties(const Napi::CallbackInfo& info) {
  RequireDriver(info.Env(), "deviceProperties");
  return Properties(info.Env(), OrdinalArg(info, 0, "deviceProperties"));
}

// Retains the device's primary context (the one the CUDA runtime and other libraries share)
// and makes it current on the JS thread, the only thread that calls the driver.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireDriver(env, "open");
  const int ordinal = OrdinalArg(info, 0, "open");
  AddonState& state = StateOf(env);
  if (state.open) {
    if (state.ordinal != ordinal) {
      throw Napi::Error::New(env, "open: device " + std::to_string(state.ordinal) +
                                      " is already open; one device per process");
    }
    return Properties(env, ordinal);
  }
  const DriverApi& api = Driver();
  Check(env, api.cuDeviceGet(&state.device, ordinal), "cuDeviceGet");
  Check(env, api.cuDevicePrimaryCtxRetain(&state.context, state.device), "cuDevicePrimaryCtxRetain");
  Check(env, api.cuCtxSetCurrent(state.context), "cuCtxSetCurrent");
  Check(env, api.cuDeviceGetAttribute(&state.ccMajor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, state.device),
        "cuDeviceGetAttribute");
  Check(env, api.cuDeviceGetAttribute(&state.ccMinor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, state.device),
        "cuDeviceGetAttribute");
  state.channel = HostCallbackChannel::New(env, "nexgrad-cuda-callbacks", 0, 1, &state);
  state.channelLive = true;
  state.channel.Unref(env);  // held only while promises are pending (AddPending)
  state.ordinal = ordinal;
  state.open = true;
  return Properties(env, ordinal);
}

Napi::Value BucketSizeJs(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(BucketSize(SizeArg(info, 0, "bucketSize", "bytes"))));
}

}  // namespace

void RegisterDevice(Napi::Env env, Napi::Object exports) {
  exports.Set("status", Napi::Function::New(env, Status, "status"));
  exports.Set("deviceCount", Napi::Function::New(env, DeviceCount, "deviceCount"));
  exports.Set("deviceProperties", Napi::Function::New(env, DeviceProperties, "deviceProperties"));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("bucketSize", Napi::Function::New(env, BucketSizeJs, "bucketSize"));
}

}  // namespace nexgrad
