// The CUDA driver API, opened with dlopen at run time. cuda.h supplies the prototypes; its
// macros map names to their current ABI (cuMemAlloc -> cuMemAlloc_v2), and the same macros
// give the symbol to look up, so a member, its type and its symbol always agree.
#pragma once
#include <cuda.h>

#include <string>

namespace nexgrad {

// Entry points every feature needs; a driver lacking one is reported as unusable.
#define NEXGRAD_DRIVER_REQUIRED(X)                                                          \
  X(cuDriverGetVersion) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetName)                \
  X(cuDeviceGetAttribute) X(cuDeviceTotalMem) X(cuDevicePrimaryCtxRetain)                    \
  X(cuCtxSetCurrent) X(cuCtxSynchronize) X(cuMemAlloc) X(cuMemFree) X(cuMemHostAlloc)        \
  X(cuMemFreeHost) X(cuMemcpyHtoDAsync) X(cuMemcpyDtoHAsync) X(cuMemcpyDtoDAsync)            \
  X(cuMemsetD8Async) X(cuMemsetD32Async) X(cuStreamCreate) X(cuStreamDestroy)                \
  X(cuStreamSynchronize) X(cuStreamAddCallback) X(cuEventCreate) X(cuEventDestroy)          \
  X(cuEventRecord) X(cuEventSynchronize) X(cuEventQuery) X(cuEventElapsedTime)               \
  X(cuModuleLoadDataEx) X(cuModuleUnload) X(cuModuleGetFunction) X(cuFuncSetAttribute)       \
  X(cuLaunchKernel) X(cuStreamBeginCapture) X(cuStreamEndCapture) X(cuGraphGetNodes)         \
  X(cuGraphInstantiate) X(cuGraphLaunch) X(cuGraphDestroy) X(cuGraphExecDestroy)

// Entry points used when present (newer drivers): their absence only loses a check.
#define NEXGRAD_DRIVER_OPTIONAL(X) X(cuFuncGetParamInfo) X(cuMemGetInfo)

#define NEXGRAD_DRIVER_MEMBER(name) decltype(&::name) name = nullptr;

struct DriverApi {
  decltype(&::cuInit) cuInit = nullptr;
  decltype(&::cuGetErrorName) cuGetErrorName = nullptr;
  NEXGRAD_DRIVER_REQUIRED(NEXGRAD_DRIVER_MEMBER)
  NEXGRAD_DRIVER_OPTIONAL(NEXGRAD_DRIVER_MEMBER)
};

struct DriverStatus {
  bool ok = false;
  std::string reason;  // why not ok, e.g. "cuInit failed: CUDA_ERROR_NO_DEVICE"
  std::string path;    // the library that was opened (or tried)
  int driverVersion = 0;
  int deviceCount = 0;
};

// Opens the driver once per process ($NEXGRAD_CUDA_LIBCUDA, else libcuda.so.1), calls cuInit
// and counts devices. Thread-safe; later calls return the same result.
const DriverStatus& LoadDriver();

// The entry points once cuInit succeeded (cuGetErrorName is usable earlier), else nullptr.
const DriverApi* LoadedDriver();

// The entry points; only valid when LoadDriver().ok.
const DriverApi& Driver();

}  // namespace nexgrad
