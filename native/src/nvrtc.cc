#include "nvrtc.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace nexgrad {
namespace {

NvrtcApi api;
NvrtcStatus status;
std::once_flag once;

std::vector<std::string> Candidates() {
  const char* override_path = std::getenv("NEXGRAD_CUDA_LIBNVRTC");
  if (override_path != nullptr && *override_path != '\0') return {override_path};
  // Unversioned first (a toolkit's dev symlink), then the runtimes NVRTC ships as.
  const std::vector<std::string> names = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12",
                                          "libnvrtc.so.11.2"};
  std::vector<std::string> dirs = {""};
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"}) {
    const char* value = std::getenv(var);
    if (value != nullptr && *value != '\0') dirs.push_back(std::string(value) + "/lib64/");
  }
  dirs.push_back("/usr/local/cuda/lib64/");
  dirs.push_back("/usr/local/cuda/targets/x86_64-linux/lib/");
  std::vector<std::string> out;
  for (const std::string& dir : dirs) {
    for (const std::string& name : names) out.push_back(dir + name);
  }
  return out;
}

template <typename Fn>
bool Resolve(void* handle, const char* symbol, Fn* out) {
  *out = reinterpret_cast<Fn>(dlsym(handle, symbol));
  return *out != nullptr;
}

void Load() {
  const std::vector<std::string> candidates = Candidates();
  void* handle = nullptr;
  std::string lastError;
  for (const std::string& path : candidates) {
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      status.path = path;
      break;
    }
    const char* err = dlerror();
    // A file that exists but fails to load is worth naming; "no such file" is the usual miss.
    if (err != nullptr && std::string(err).find("No such file") == std::string::npos) lastError = err;
  }
  if (handle == nullptr) {
    std::string tried;
    for (size_t i = 0; i < candidates.size(); i++) tried += (i ? ", " : "") + candidates[i];
    status.reason = "NVRTC missing: " + candidates.front() + " not found (tried " + tried + ")";
    if (!lastError.empty()) status.reason += "; " + lastError;
    return;
  }
#define NEXGRAD_NVRTC_LOAD(name)                                            \
  if (!Resolve(handle, #name, &api.name)) {                                 \
    status.reason = "NVRTC missing: " + status.path + " lacks " #name;      \
    return;                                                                 \
  }
  NEXGRAD_NVRTC_LOAD(nvrtcGetErrorString)
  NEXGRAD_NVRTC_LOAD(nvrtcVersion)
  NEXGRAD_NVRTC_LOAD(nvrtcCreateProgram)
  NEXGRAD_NVRTC_LOAD(nvrtcDestroyProgram)
  NEXGRAD_NVRTC_LOAD(nvrtcCompileProgram)
  NEXGRAD_NVRTC_LOAD(nvrtcGetProgramLogSize)
  NEXGRAD_NVRTC_LOAD(nvrtcGetProgramLog)
  NEXGRAD_NVRTC_LOAD(nvrtcGetCUBINSize)
  NEXGRAD_NVRTC_LOAD(nvrtcGetCUBIN)
#undef NEXGRAD_NVRTC_LOAD
  nvrtcResult version = api.nvrtcVersion(&status.major, &status.minor);
  if (version != kNvrtcSuccess) {
    status.reason = std::string("nvrtcVersion failed: ") + api.nvrtcGetErrorString(version);
    return;
  }
  status.ok = true;
}

std::string ErrorString(nvrtcResult result) {
  const char* text = api.nvrtcGetErrorString(result);
  return text != nullptr ? text : "nvrtcResult " + std::to_string(result);
}

// Reads the program log; an empty string when NVRTC cannot give one.
std::string ProgramLog(nvrtcProgram program) {
  size_t size = 0;
  if (api.nvrtcGetProgramLogSize(program, &size) != kNvrtcSuccess || size <= 1) return "";
  std::string log(size, '\0');
  if (api.nvrtcGetProgramLog(program, log.data()) != kNvrtcSuccess) return "";
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  return log;
}

}  // namespace

const NvrtcStatus& LoadNvrtc() {
  std::call_once(once, Load);
  return status;
}

CompileOutcome CompileToCubin(const std::string& source, const std::string& name,
                              const std::vector<std::string>& options) {
  CompileOutcome out;
  nvrtcProgram program = nullptr;
  auto fail = [&](const char* call, nvrtcResult result) {
    out.failedCall = call;
    out.errorName = ErrorString(result);
    return out;
  };
  nvrtcResult created =
      api.nvrtcCreateProgram(&program, source.c_str(), name.c_str(), 0, nullptr, nullptr);
  if (created != kNvrtcSuccess) return fail("nvrtcCreateProgram", created);
  std::vector<const char*> argv;
  for (const std::string& option : options) argv.push_back(option.c_str());
  nvrtcResult compiled =
      api.nvrtcCompileProgram(program, static_cast<int>(argv.size()), argv.data());
  out.log = ProgramLog(program);
  if (compiled != kNvrtcSuccess) {
    api.nvrtcDestroyProgram(&program);
    return fail("nvrtcCompileProgram", compiled);
  }
  size_t size = 0;
  nvrtcResult sized = api.nvrtcGetCUBINSize(program, &size);
  if (sized != kNvrtcSuccess || size == 0) {
    api.nvrtcDestroyProgram(&program);
    // A zero size means the options asked for PTX only (a compute_XX target), not a cubin.
    return fail("nvrtcGetCUBINSize", sized != kNvrtcSuccess ? sized : 3 /* INVALID_INPUT */);
  }
  out.cubin.resize(size);
  nvrtcResult copied = api.nvrtcGetCUBIN(program, out.cubin.data());
  api.nvrtcDestroyProgram(&program);
  if (copied != kNvrtcSuccess) return fail("nvrtcGetCUBIN", copied);
  out.ok = true;
  return out;
}

}  // namespace nexgrad
