// CUDA graphs: capture the launches queued on a stream, instantiate once, replay with one call.
#include <string>

#include "driver.h"
#include "errors.h"
#include "state.h"

namespace nexgrad {
namespace {

struct CaptureModeRule {
  const char* name;
  CUstreamCaptureMode mode;
};
// 'relaxed' (the default) lets a cache miss in the allocator call cuMemAlloc mid-capture;
// the stricter modes turn such calls into CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED.
constexpr CaptureModeRule kCaptureModes[] = {
    {"relaxed", CU_STREAM_CAPTURE_MODE_RELAXED},
    {"thread_local", CU_STREAM_CAPTURE_MODE_THREAD_LOCAL},
    {"global", CU_STREAM_CAPTURE_MODE_GLOBAL},
};

uint32_t CapturableStream(AddonState& state, const Napi::CallbackInfo& info, const char* fn) {
  const uint32_t id = StreamIdArg(state, info, 0, fn);
  if (id == 0) ThrowRangeError(info.Env(), std::string(fn) + ": the default stream cannot be captured; use createStream()");
  return id;
}

Napi::Value BeginCapture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "beginCapture");
  const uint32_t id = CapturableStream(state, info, "beginCapture");
  const std::string modeName = info[1].IsUndefined() ? "relaxed" : StringArg(info, 1, "beginCapture", "mode");
  const CaptureModeRule* rule = nullptr;
  for (const CaptureModeRule& candidate : kCaptureModes) {
    if (modeName == candidate.name) rule = &candidate;
  }
  if (rule == nullptr) ThrowRangeError(env, "beginCapture: mode must be 'relaxed', 'thread_local' or 'global', got '" + modeName + "'");
  if (state.capturing.count(id)) ThrowRangeError(env, "beginCapture: stream " + std::to_string(id) + " is already capturing");
  Check(env, Driver().cuStreamBeginCapture(state.streams.at(id), rule->mode), "cuStreamBeginCapture");
  state.capturing.insert(id);
  return env.Undefined();
}

// Ends the capture and instantiates it: {graph: id, nodes: count}.
Napi::Value EndCapture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "endCapture");
  const uint32_t id = CapturableStream(state, info, "endCapture");
  if (!state.capturing.count(id)) ThrowRangeError(env, "endCapture: stream " + std::to_string(id) + " is not capturing");
  state.capturing.erase(id);
  CUgraph graph = nullptr;
  Check(env, Driver().cuStreamEndCapture(state.streams.at(id), &graph), "cuStreamEndCapture");
  size_t nodes = 0;
  CUresult counted = Driver().cuGraphGetNodes(graph, nullptr, &nodes);
  CUgraphExec exec = nullptr;
  CUresult instantiated = counted == CUDA_SUCCESS ? Driver().cuGraphInstantiate(&exec, graph, 0) : counted;
  Driver().cuGraphDestroy(graph);  // the executable keeps its own copy
  Check(env, counted, "cuGraphGetNodes");
  Check(env, instantiated, "cuGraphInstantiate");
  const uint32_t graphId = state.nextId++;
  state.graphs[graphId] = exec;
  Napi::Object out = Napi::Object::New(env);
  out.Set("graph", Napi::Number::New(env, graphId));
  out.Set("nodes", Napi::Number::New(env, static_cast<double>(nodes)));
  return out;
}

CUgraphExec GraphArg(AddonState& state, const Napi::CallbackInfo& info, const char* fn) {
  const uint32_t id = IdArg(info, 0, fn, "graph");
  auto found = state.graphs.find(id);
  if (found == state.graphs.end()) ThrowRangeError(info.Env(), std::string(fn) + ": unknown graph " + std::to_string(id));
  return found->second;
}

Napi::Value LaunchGraph(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "launchGraph");
  CUgraphExec exec = GraphArg(state, info, "launchGraph");
  CUstream stream = StreamArg(state, info, 1, "launchGraph");
  Check(env, Driver().cuGraphLaunch(exec, stream), "cuGraphLaunch");
  return env.Undefined();
}

Napi::Value DestroyGraph(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  AddonState& state = OpenState(env, "destroyGraph");
  CUgraphExec exec = GraphArg(state, info, "destroyGraph");
  Check(env, Driver().cuGraphExecDestroy(exec), "cuGraphExecDestroy");
  state.graphs.erase(info[0].As<Napi::Number>().Uint32Value());
  return env.Undefined();
}

}  // namespace

void RegisterGraphs(Napi::Env env, Napi::Object exports) {
  exports.Set("beginCapture", Napi::Function::New(env, BeginCapture, "beginCapture"));
  exports.Set("endCapture", Napi::Function::New(env, EndCapture, "endCapture"));
  exports.Set("launchGraph", Napi::Function::New(env, LaunchGraph, "launchGraph"));
  exports.Set("destroyGraph", Napi::Function::New(env, DestroyGraph, "destroyGraph"));
}

}  // namespace nexgrad
