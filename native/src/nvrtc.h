// NVRTC, opened with dlopen at run time. The toolkit here ships no nvrtc.h, so the few types
// and entry points used are declared below (they match NVRTC's C ABI since CUDA 11).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace nexgrad {

using nvrtcResult = int;
using nvrtcProgram = struct NexgradNvrtcProgram*;
constexpr nvrtcResult kNvrtcSuccess = 0;

struct NvrtcApi {
  const char* (*nvrtcGetErrorString)(nvrtcResult) = nullptr;
  nvrtcResult (*nvrtcVersion)(int* major, int* minor) = nullptr;
  nvrtcResult (*nvrtcCreateProgram)(nvrtcProgram* prog, const char* src, const char* name,
                                    int numHeaders, const char* const* headers,
                                    const char* const* includeNames) = nullptr;
  nvrtcResult (*nvrtcDestroyProgram)(nvrtcProgram* prog) = nullptr;
  nvrtcResult (*nvrtcCompileProgram)(nvrtcProgram prog, int numOptions,
                                     const char* const* options) = nullptr;
  nvrtcResult (*nvrtcGetProgramLogSize)(nvrtcProgram prog, size_t* size) = nullptr;
  nvrtcResult (*nvrtcGetProgramLog)(nvrtcProgram prog, char* log) = nullptr;
  nvrtcResult (*nvrtcGetCUBINSize)(nvrtcProgram prog, size_t* size) = nullptr;
  nvrtcResult (*nvrtcGetCUBIN)(nvrtcProgram prog, char* cubin) = nullptr;
};

struct NvrtcStatus {
  bool ok = false;
  std::string reason;  // "NVRTC missing: ..." when not ok
  std::string path;    // the library opened
  int major = 0;
  int minor = 0;
};

// Opens NVRTC once per process: $NEXGRAD_CUDA_LIBNVRTC if set, else libnvrtc.so and its
// versioned names on the loader's path and under the CUDA toolkit's lib64.
const NvrtcStatus& LoadNvrtc();

struct CompileOutcome {
  bool ok = false;
  std::string failedCall;  // the NVRTC call that failed, when !ok
  std::string errorName;   // its nvrtcGetErrorString, when !ok
  std::string log;         // the compile log (warnings on success, errors on failure)
  std::vector<char> cubin;
};

// Compiles one CUDA C++ source to a CUBIN. Touches no JS state, so it runs on worker threads.
CompileOutcome CompileToCubin(const std::string& source, const std::string& name,
                              const std::vector<std::string>& options);

}  // namespace nexgrad
