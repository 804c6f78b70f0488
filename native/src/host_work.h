// Work that waits for a point in a stream: resolving a promise (synchronize), finishing a
// read (copy the pinned staging buffer into the JS destination), or returning an upload's
// staging buffer to its pool. The driver calls back on its own thread when the stream reaches
// the point; promise work then hops to the JS thread through the state's channel, so the
// event loop never blocks waiting for the device.
#pragma once
#include <cuda.h>
#include <napi.h>

#include <optional>

#include "state.h"

namespace nexgrad {

struct HostWork {
  enum class Kind { kResolve, kRead, kReleaseStaging };
  Kind kind = Kind::kResolve;
  AddonState* state = nullptr;
  CUresult status = CUDA_SUCCESS;
  const char* call = "";  // the operation named in a rejection
  std::optional<Napi::Promise::Deferred> deferred;
  Napi::Reference<Napi::Value> target;  // kRead: the destination buffer, kept alive
  size_t bytes = 0;
  void* staging = nullptr;
  size_t stagingBucket = 0;
};

// Adds a stream callback that completes `work` (taking ownership). On failure throws the
// driver's error (the staging buffer is not reused); promise work counts as pending until done.
void EnqueueHostWork(Napi::Env env, CUstream stream, HostWork* work);

}  // namespace nexgrad
