// nexgrad's CUDA addon: module entry. Loading it opens nothing; status() and open() do.
#include <napi.h>

#include "state.h"

namespace nexgrad {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  StateOf(env);  // the environment owns the state and tears it down with itself
  RegisterDevice(env, exports);
  RegisterMemory(env, exports);
  RegisterStreams(env, exports);
  RegisterKernels(env, exports);
  RegisterGraphs(env, exports);
  return exports;
}

NODE_API_MODULE(nexgrad_cuda, Init)

}  // namespace nexgrad
