// Streams, events and the stream callbacks behind every promise the addon returns.
#include <cstring>
#include <memory>

#include "driver.h"
#include "errors.h"
#include "host_work.h"
#include "state.h"

namespace nexgrad {

namespace {

// Runs on a driver thread: no CUDA calls are allowed here, only hand-offs.
void CUDA_CB OnStreamPoint(CUstream, CUresult status, void* data) {
  HostWork* work = static_cast<HostWork*>(data);
  work->status = status;
  if (work->kind == HostWork::Kind::kReleaseStaging) {
    work->state->pinned.Release(work->staging, work->stagingBucket);
    delete work;
    return;
  }
  // An unbounded queue never answers napi_queue_full; napi_closing means the environment is
  // going away, and the work (with its JS references) is deliberately leaked.
  work->state->channel.NonBlockingCall(work);
}

}  // namespace

void CallHostWork(Napi::Env env, Napi::Function, AddonState* state, HostWork* raw) {
  std::unique_ptr<HostWork> work(raw);
  if (env == nullptr) {
    work->target.SuppressDestruct();
    return;
  }
  state->DonePending(env);
  if (work->status != CUDA_SUCCESS) {
    if (work->staging != nullptr) state->pinned.Release(work->staging, work->stagingBucket);
    work->deferred->Reject(CudaError(env, work->status, work->call).Value());
    return;
  }
  if (work->kind == HostWork::Kind::kRead) {
    HostBytes dst = HostBytesOf(work->target.Value());
    if (dst.data == nullptr || dst.length != work->bytes) {
      state->pinned.Release(work->staging, work->stagingBucket);
      work->deferred->Reject(
          Napi::Error::New(env, std::string(work->call) +
                                    ": the destination buffer was detached or resized before the copy finished")
              .Value());
      return;
    }
    std::memcpy(dst.data, work->staging, work->bytes);
    state->pinned.Release(work->staging, work->stagingBucket);
  }
  work->deferred->Resolve(env.Undefined());
}

void EnqueueHostWork(Napi::Env env, CUstream stream, HostWork* raw) {
  std::unique_ptr<HostWork> work(raw);
  const bool promised = work->kind != HostWork::Kind::kReleaseStaging;
  CUresult result = Driver().cuStreamAddCallback(stream, OnStreamPoint, work.get(), 0);
  if (result != CUDA_SUCCESS) {
    // A copy already queued may still use the staging buffer: leak it rather than hand it to
    // the next copy while the device might write it.
    throw CudaError(env, result, "cuStreamAddCallback");
  }
  if (promised) work->state->AddPending(env);
  work.release();  // owned by the callback now
}

namespace {

Napi::Value CreateStream(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "createStream");
  CUstream stream = nullptr;
  // Non-blocking: no implicit synchronisation with the legacy default stream.
  Check(info.Env(), Driver().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  const uint32_t id = state.nextId++;
  state.streams[id] = stream;
  return Napi::Number::New(info.Env(), id);
}

Napi::Value DestroyStream(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "destroyStream");
  const uint32_t id = StreamIdArg(state, info, 0, "destroyStream");
  if (id == 0) ThrowRangeError(info.Env(), "destroyStream: the default stream (0) cannot be destroyed");
  if (state.capturing.count(id)) ThrowRangeError(info.Env(), "destroyStream: stream " + std::to_string(id) + " is capturing a graph");
  Check(info.Env(), Driver().cuStreamDestroy(state.streams.at(id)), "cuStreamDestroy");
  state.streams.erase(id);
  return info.Env().Undefined();
}

// A promise resolved once all work queued on the stream so far has finished.
Napi::Value SynchronizeOrThrow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "synchronize");
  CUstream stream = StreamArg(state, info, 0, "synchronize");
  auto work = std::make_unique<HostWork>();
  work->kind = HostWork::Kind::kResolve;
  work->state = &state;
  work->call = "synchronize";
  work->deferred.emplace(Napi::Promise::Deferred::New(env));
  Napi::Promise promise = work->deferred->Promise();
  EnqueueHostWork(env, stream, work.release());
  return promise;
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  return PromiseOrReject(info.Env(), [&] { return SynchronizeOrThrow(info); });
}

// Blocks the calling thread: for short waits only (the promise form is the default).
Napi::Value SynchronizeSync(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "synchronizeSync");
  CUstream stream = StreamArg(state, info, 0, "synchronizeSync");
  Check(info.Env(), Driver().cuStreamSynchronize(stream), "cuStreamSynchronize");
  return info.Env().Undefined();
}

CUevent EventArg(AddonState& state, const Napi::CallbackInfo& info, size_t index, const char* fn) {
  const uint32_t id = IdArg(info, index, fn, "event");
  auto found = state.events.find(id);
  if (found == state.events.end()) ThrowRangeError(info.Env(), std::string(fn) + ": unknown event " + std::to_string(id));
  return found->second;
}

Napi::Value CreateEvent(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "createEvent");
  const bool timing = info[0].IsUndefined() || info[0].ToBoolean().Value();
  CUevent event = nullptr;
  Check(info.Env(), Driver().cuEventCreate(&event, timing ? CU_EVENT_DEFAULT : CU_EVENT_DISABLE_TIMING),
        "cuEventCreate");
  const uint32_t id = state.nextId++;
  state.events[id] = event;
  return Napi::Number::New(info.Env(), id);
}

Napi::Value DestroyEvent(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "destroyEvent");
  CUevent event = EventArg(state, info, 0, "destroyEvent");
  Check(info.Env(), Driver().cuEventDestroy(event), "cuEventDestroy");
  state.events.erase(info[0].As<Napi::Number>().Uint32Value());
  return info.Env().Undefined();
}

Napi::Value RecordEvent(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "recordEvent");
  CUevent event = EventArg(state, info, 0, "recordEvent");
  CUstream stream = StreamArg(state, info, 1, "recordEvent");
  Check(info.Env(), Driver().cuEventRecord(event, stream), "cuEventRecord");
  return info.Env().Undefined();
}

Napi::Value EventQuery(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "eventQuery");
  CUresult result = Driver().cuEventQuery(EventArg(state, info, 0, "eventQuery"));
  if (result == CUDA_ERROR_NOT_READY) return Napi::Boolean::New(info.Env(), false);
  Check(info.Env(), result, "cuEventQuery");
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value EventSynchronize(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "eventSynchronize");
  Check(info.Env(), Driver().cuEventSynchronize(EventArg(state, info, 0, "eventSynchronize")),
        "cuEventSynchronize");
  return info.Env().Undefined();
}

// Milliseconds between two recorded, completed timing events.
Napi::Value EventElapsedMs(const Napi::CallbackInfo& info) {
  AddonState& state = OpenState(info.Env(), "eventElapsedMs");
  CUevent start = EventArg(state, info, 0, "eventElapsedMs");
  CUevent end = EventArg(state, info, 1, "eventElapsedMs");
  float ms = 0;
  Check(info.Env(), Driver().cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime");
  return Napi::Number::New(info.Env(), ms);
}

}  // namespace

void RegisterStreams(Napi::Env env, Napi::Object exports) {
  exports.Set("createStream", Napi::Function::New(env, CreateStream, "createStream"));
  exports.Set("destroyStream", Napi::Function::New(env, DestroyStream, "destroyStream"));
  exports.Set("synchronize", Napi::Function::New(env, Synchronize, "synchronize"));
  exports.Set("synchronizeSync", Napi::Function::New(env, SynchronizeSync, "synchronizeSync"));
  exports.Set("createEvent", Napi::Function::New(env, CreateEvent, "createEvent"));
  exports.Set("destroyEvent", Napi::Function::New(env, DestroyEvent, "destroyEvent"));
  exports.Set("recordEvent", Napi::Function::New(env, RecordEvent, "recordEvent"));
  exports.Set("eventQuery", Napi::Function::New(env, EventQuery, "eventQuery"));
  exports.Set("eventSynchronize", Napi::Function::New(env, EventSynchronize, "eventSynchronize"));
  exports.Set("eventElapsedMs", Napi::Function::New(env, EventElapsedMs, "eventElapsedMs"));
}

}  // namespace nexgrad
