#include "driver.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace nexgrad {
namespace {

#define NEXGRAD_STR2(x) #x
#define NEXGRAD_STR(x) NEXGRAD_STR2(x)

DriverApi api;
DriverStatus status;
bool apiResolved = false;  // cuGetErrorName usable
std::once_flag once;

// "not found" for a missing file; the loader's own words for anything else (wrong ELF class...).
std::string OpenFailure(const std::string& what, const std::string& path) {
  const char* err = dlerror();
  std::string detail = err != nullptr ? err : "unknown dlopen error";
  if (detail.find("No such file") != std::string::npos) {
    return what + ": " + path + " not found";
  }
  return what + ": " + path + " could not be loaded (" + detail + ")";
}

template <typename Fn>
bool Resolve(void* handle, const char* symbol, Fn* out) {
  *out = reinterpret_cast<Fn>(dlsym(handle, symbol));
  return *out != nullptr;
}

std::string ErrorName(CUresult result) {
  const char* name = nullptr;
  if (api.cuGetErrorName != nullptr && api.cuGetErrorName(result, &name) == CUDA_SUCCESS &&
      name != nullptr) {
    return name;
  }
  return "CUresult " + std::to_string(static_cast<int>(result));
}

void Load() {
  const char* override_path = std::getenv("NEXGRAD_CUDA_LIBCUDA");
  status.path = override_path != nullptr && *override_path != '\0' ? override_path : "libcuda.so.1";
  void* handle = dlopen(status.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    status.reason = OpenFailure("no CUDA driver", status.path);
    return;
  }
  // cuInit and cuGetErrorName first: a driver without a device may export little else, and its
  // failure must still be reported by name.
  if (!Resolve(handle, NEXGRAD_STR(cuInit), &api.cuInit)) {
    status.reason = "no CUDA driver: " + status.path + " lacks cuInit";
    return;
  }
  Resolve(handle, NEXGRAD_STR(cuGetErrorName), &api.cuGetErrorName);
  apiResolved = true;
  CUresult init = api.cuInit(0);
  if (init != CUDA_SUCCESS) {
    status.reason = "cuInit failed: " + ErrorName(init);
    return;
  }
#define NEXGRAD_LOAD_REQUIRED(name)                                                      \
  if (!Resolve(handle, NEXGRAD_STR(name), &api.name)) {                                   \
    status.reason = "CUDA driver too old: " + status.path + " lacks " NEXGRAD_STR(name); \
    return;                                                                               \
  }
  NEXGRAD_DRIVER_REQUIRED(NEXGRAD_LOAD_REQUIRED)
#undef NEXGRAD_LOAD_REQUIRED
#define NEXGRAD_LOAD_OPTIONAL(name) Resolve(handle, NEXGRAD_STR(name), &api.name);
  NEXGRAD_DRIVER_OPTIONAL(NEXGRAD_LOAD_OPTIONAL)
#undef NEXGRAD_LOAD_OPTIONAL
  CUresult version = api.cuDriverGetVersion(&status.driverVersion);
  if (version != CUDA_SUCCESS) {
    status.reason = "cuDriverGetVersion failed: " + ErrorName(version);
    return;
  }
  CUresult count = api.cuDeviceGetCount(&status.deviceCount);
  if (count != CUDA_SUCCESS) {
    status.reason = "cuDeviceGetCount failed: " + ErrorName(count);
    return;
  }
  if (status.deviceCount <= 0) {
    status.reason = "no CUDA device: cuDeviceGetCount reports 0 devices";
    return;
  }
  status.ok = true;
}

}  // namespace

const DriverStatus& LoadDriver() {
  std::call_once(once, Load);
  return status;
}

const DriverApi* LoadedDriver() {
  LoadDriver();
  return apiResolved ? &api : nullptr;
}

const DriverApi& Driver() { return api; }

}  // namespace nexgrad
