/**
 * Fake libcuda.so.1 and libnvrtc.so for testing the addon without a GPU. The C sources are
 * written to a temporary folder and built with gcc against the real cuda.h, so the fake
 * exports exactly the symbols (and _v2 ABI names) the header maps to.
 *
 * The full fake runs "device" memory in host memory and implements a few kernels on the host
 * (saxpy, iota_u32, fault and the smoke test's kernels), stream callbacks on their own threads, events with wall-clock
 * time and graph capture/replay of launches, so every path through the addon can be exercised.
 * Each call the tests look at is appended to $FAKE_CUDA_LOG.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const CUDA_INCLUDE = '/usr/local/cuda/include';

const DRIVER_C = String.raw`
#include <cuda.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef FAKE_INIT_RESULT
#define FAKE_INIT_RESULT CUDA_SUCCESS
#endif
#ifndef FAKE_DEVICES
#define FAKE_DEVICES 1
#endif
#ifndef FAKE_MEMORY
#define FAKE_MEMORY (64u << 20)
#endif

static void fake_log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static void fake_log(const char* fmt, ...) {
  const char* path = getenv("FAKE_CUDA_LOG");
  if (!path) return;
  FILE* f = fopen(path, "a");
  if (!f) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(f, fmt, ap);
  va_end(ap);
  fputc('\n', f);
  fclose(f);
}

struct name_entry { CUresult code; const char* name; };
static const struct name_entry names[] = {
  {CUDA_SUCCESS, "CUDA_SUCCESS"}, {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE"},
  {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY"}, {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE"},
  {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE"}, {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE"},
  {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND"}, {CUDA_ERROR_NOT_READY, "CUDA_ERROR_NOT_READY"},
  {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS"},
  {CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"},
  {CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"},
};

CUresult CUDAAPI cuGetErrorName(CUresult error, const char** out) {
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (names[i].code == error) { *out = names[i].name; return CUDA_SUCCESS; }
  }
  *out = 0;
  return CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuInit(unsigned int flags) { fake_log("cuInit"); return FAKE_INIT_RESULT; }

#ifdef FAKE_FULL
static CUresult sticky = CUDA_SUCCESS;  /* an asynchronous fault poisons the context */
static size_t allocated = 0;

CUresult CUDAAPI cuDriverGetVersion(int* v) { *v = 13000; return CUDA_SUCCESS; }
CUresult CUDAAPI cuDeviceGetCount(int* n) { *n = FAKE_DEVICES; return CUDA_SUCCESS; }
CUresult CUDAAPI cuDeviceGet(CUdevice* d, int ordinal) {
  if (ordinal < 0 || ordinal >= FAKE_DEVICES) return CUDA_ERROR_INVALID_VALUE;
  *d = ordinal; return CUDA_SUCCESS;
}
CUresult CUDAAPI cuDeviceGetName(char* name, int len, CUdevice d) {
  snprintf(name, len, "nexgrad fake GPU %d", d); return CUDA_SUCCESS;
}
CUresult CUDAAPI cuDeviceGetAttribute(int* v, CUdevice_attribute a, CUdevice d) {
  switch (a) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 132; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *v = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *v = 49152; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *v = 232448; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR: *v = 233472; break;
    case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: *v = 65536; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *v = 32; break;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: *v = 50331648; break;
    case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: *v = 2147483647; break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuDeviceTotalMem(size_t* bytes, CUdevice d) { *bytes = FAKE_MEMORY; return CUDA_SUCCESS; }
static int the_context;
CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice d) { *c = (CUcontext)&the_context; return CUDA_SUCCESS; }
CUresult CUDAAPI cuCtxSetCurrent(CUcontext c) { return CUDA_SUCCESS; }
CUresult CUDAAPI cuCtxSynchronize(void) { fake_log("cuCtxSynchronize"); return sticky; }

/* Device memory: host blocks with their size in a 16-byte header. */
CUresult CUDAAPI cuMemAlloc(CUdeviceptr* p, size_t bytes) {
  if (allocated + bytes > FAKE_MEMORY) { fake_log("cuMemAlloc %zu OOM", bytes); return CUDA_ERROR_OUT_OF_MEMORY; }
  unsigned char* block = malloc(bytes + 16);
  if (!block) return CUDA_ERROR_OUT_OF_MEMORY;
  memcpy(block, &bytes, sizeof bytes);
  memset(block + 16, 0xcd, bytes);  /* fresh device memory is garbage */
  allocated += bytes;
  *p = (CUdeviceptr)(block + 16);
  fake_log("cuMemAlloc %zu", bytes);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemFree(CUdeviceptr p) {
  unsigned char* block = (unsigned char*)p - 16;
  size_t bytes;
  memcpy(&bytes, block, sizeof bytes);
  allocated -= bytes;
  free(block);
  fake_log("cuMemFree %zu", bytes);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemHostAlloc(void** p, size_t bytes, unsigned int flags) {
  *p = malloc(bytes); fake_log("cuMemHostAlloc %zu", bytes); return *p ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}
CUresult CUDAAPI cuMemFreeHost(void* p) { free(p); fake_log("cuMemFreeHost"); return CUDA_SUCCESS; }

struct fake_node { CUfunction fn; unsigned grid, block; unsigned char params[8][8]; int count; };
struct fake_graph { struct fake_node nodes[64]; int count; };
struct fake_stream { int capturing; struct fake_graph* graph; };

static CUresult not_capturing(CUstream s) {
  if (s && ((struct fake_stream*)s)->capturing) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  return sticky;
}
CUresult CUDAAPI cuMemcpyHtoDAsync(CUdeviceptr d, const void* h, size_t n, CUstream s) {
  CUresult r = not_capturing(s); if (r) return r; memcpy((void*)d, h, n); return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemcpyDtoHAsync(void* h, CUdeviceptr d, size_t n, CUstream s) {
  CUresult r = not_capturing(s); if (r) return r; memcpy(h, (void*)d, n); return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemcpyDtoDAsync(CUdeviceptr d, CUdeviceptr src, size_t n, CUstream s) {
  CUresult r = not_capturing(s); if (r) return r; memmove((void*)d, (void*)src, n); return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream s) {
  CUresult r = not_capturing(s); if (r) return r; memset((void*)d, v, n); return CUDA_SUCCESS;
}
CUresult CUDAAPI cuMemsetD32Async(CUdeviceptr d, unsigned int v, size_t n, CUstream s) {
  CUresult r = not_capturing(s); if (r) return r;
  for (size_t i = 0; i < n; i++) memcpy((unsigned char*)d + 4 * i, &v, 4);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamCreate(CUstream* s, unsigned int flags) { *s = calloc(1, sizeof(struct fake_stream)); return CUDA_SUCCESS; }
CUresult CUDAAPI cuStreamDestroy(CUstream s) { free(s); return CUDA_SUCCESS; }
CUresult CUDAAPI cuStreamSynchronize(CUstream s) { return sticky; }

struct callback_job { CUstream stream; CUresult status; CUstreamCallback fn; void* user; };
static void* run_callback(void* arg) {
  struct callback_job* job = arg;
  job->fn(job->stream, job->status, job->user);
  free(job);
  return 0;
}
/* Like the driver: the callback runs on another thread, with the stream's status. */
CUresult CUDAAPI cuStreamAddCallback(CUstream s, CUstreamCallback fn, void* user, unsigned int flags) {
  if (s && ((struct fake_stream*)s)->capturing) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  struct callback_job* job = malloc(sizeof *job);
  job->stream = s; job->status = sticky; job->fn = fn; job->user = user;
  pthread_t thread;
  pthread_create(&thread, 0, run_callback, job);
  pthread_detach(thread);
  return CUDA_SUCCESS;
}

struct fake_event { double seconds; int recorded; };
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
CUresult CUDAAPI cuEventCreate(CUevent* e, unsigned int flags) { *e = calloc(1, sizeof(struct fake_event)); return CUDA_SUCCESS; }
CUresult CUDAAPI cuEventDestroy(CUevent e) { free(e); return CUDA_SUCCESS; }
CUresult CUDAAPI cuEventRecord(CUevent e, CUstream s) {
  struct fake_event* ev = (struct fake_event*)e; ev->seconds = now(); ev->recorded = 1; return CUDA_SUCCESS;
}
CUresult CUDAAPI cuEventSynchronize(CUevent e) { return sticky; }
CUresult CUDAAPI cuEventQuery(CUevent e) { return ((struct fake_event*)e)->recorded ? CUDA_SUCCESS : CUDA_ERROR_NOT_READY; }
CUresult CUDAAPI cuEventElapsedTime(float* ms, CUevent a, CUevent b) {
  struct fake_event* x = (struct fake_event*)a; struct fake_event* y = (struct fake_event*)b;
  if (!x->recorded || !y->recorded) return CUDA_ERROR_INVALID_HANDLE;
  *ms = (float)((y->seconds - x->seconds) * 1000.0); return CUDA_SUCCESS;
}

/* Kernels, run on the host: the thread count is grid * block, as on the device. */
typedef void (*kernel_impl)(unsigned grid, unsigned block, void** params);
static void k_saxpy(unsigned grid, unsigned block, void** p) {  /* (float* y, const float* x, float a, int n) */
  float* y = *(float**)p[0]; const float* x = *(const float**)p[1]; float a = *(float*)p[2]; int n = *(int*)p[3];
  for (unsigned t = 0; t < grid * block; t++) if ((int)t < n) y[t] = a * x[t] + y[t];
}
static void k_iota(unsigned grid, unsigned block, void** p) {  /* (unsigned* out, unsigned base, int n) */
  unsigned* out = *(unsigned**)p[0]; unsigned base = *(unsigned*)p[1]; int n = *(int*)p[2];
  for (unsigned t = 0; t < grid * block; t++) if ((int)t < n) out[t] = base + t;
}
static void k_fault(unsigned grid, unsigned block, void** p) { sticky = CUDA_ERROR_ILLEGAL_ADDRESS; }
/* The smoke test's kernels (bench/gpu/kernels.ts), so its checks run here end to end. */
static void k_gelu(unsigned grid, unsigned block, void** p) {  /* (a, b, float c, out, int n) */
  const float* a = *(float**)p[0]; const float* b = *(float**)p[1]; float c = *(float*)p[2];
  float* out = *(float**)p[3]; int n = *(int*)p[4];
  for (unsigned t = 0; t < grid * block; t++) {
    if ((int)t >= n) continue;
    float x = a[t] * b[t] + c;
    out[t] = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
  }
}
static void k_row_sum(unsigned grid, unsigned block, void** p) {  /* (in, out, int n): one row per block */
  const float* in = *(float**)p[0]; float* out = *(float**)p[1]; int n = *(int*)p[2];
  for (unsigned r = 0; r < grid; r++) {
    float s = 0; for (int i = 0; i < n; i++) s += in[(size_t)r * n + i];
#ifdef FAKE_SABOTAGE
    s += 0.01f;  /* a wrong kernel, to show the smoke test notices */
#endif
    out[r] = s;
  }
}
static float bf16(unsigned short bits) { unsigned u = (unsigned)bits << 16; float f; memcpy(&f, &u, 4); return f; }
static void k_mma(unsigned grid, unsigned block, void** p) {  /* (a 16x16 row, b 16x8 col, c, d) */
  const unsigned short* a = *(unsigned short**)p[0]; const unsigned short* b = *(unsigned short**)p[1];
  const float* c = *(float**)p[2]; float* d = *(float**)p[3];
  for (int m = 0; m < 16; m++) for (int n = 0; n < 8; n++) {
    float s = c[m * 8 + n];
    for (int k = 0; k < 16; k++) s += bf16(a[m * 16 + k]) * bf16(b[n * 16 + k]);
    d[m * 8 + n] = s;
  }
}
struct fake_kernel { const char* name; int count; size_t sizes[8]; kernel_impl impl; };
#define FAKE_KERNELS 8
static const struct fake_kernel kernels[FAKE_KERNELS] = {
  {"saxpy", 4, {8, 8, 4, 4}, k_saxpy},
  {"axpy", 4, {8, 8, 4, 4}, k_saxpy},
  {"iota_u32", 3, {8, 4, 4}, k_iota},
  {"fault", 1, {8}, k_fault},
  {"mul_add_gelu", 5, {8, 8, 4, 8, 4}, k_gelu},
  {"row_sum", 3, {8, 8, 4}, k_row_sum},
  {"mma_bf16_16x8x16", 4, {8, 8, 8, 8}, k_mma},
};
struct fake_function { const struct fake_kernel* kernel; int max_dynamic_shared; };
struct fake_module { char* text; struct fake_function functions[FAKE_KERNELS]; };

static void set_log(unsigned n, CUjit_option* keys, void** values, const char* text) {
  char* buffer = 0; size_t size = 0;
  for (unsigned i = 0; i < n; i++) {
    if (keys[i] == CU_JIT_ERROR_LOG_BUFFER) buffer = values[i];
    if (keys[i] == CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES) size = (size_t)(unsigned long)values[i];
  }
  if (buffer && size) snprintf(buffer, size, "%s", text);
}
CUresult CUDAAPI cuModuleLoadDataEx(CUmodule* m, const void* image, unsigned n, CUjit_option* keys, void** values) {
  if (strncmp(image, "FAKECUBIN\n", 10) != 0) {
    set_log(n, keys, values, "fake: not a cubin (bad magic)");
    return CUDA_ERROR_INVALID_IMAGE;
  }
  struct fake_module* mod = calloc(1, sizeof *mod);
  mod->text = strdup(image);
  *m = (CUmodule)mod;
  fake_log("cuModuleLoadDataEx");
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuModuleUnload(CUmodule m) { struct fake_module* mod = (struct fake_module*)m; free(mod->text); free(mod); return CUDA_SUCCESS; }
CUresult CUDAAPI cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
  struct fake_module* mod = (struct fake_module*)m;
  char pattern[256];
  snprintf(pattern, sizeof pattern, " %s(", name);
  if (!strstr(mod->text, pattern)) return CUDA_ERROR_NOT_FOUND;
  for (int i = 0; i < FAKE_KERNELS && kernels[i].name; i++) {
    if (strcmp(kernels[i].name, name) == 0) {
      mod->functions[i].kernel = &kernels[i];
      mod->functions[i].max_dynamic_shared = 49152;
      *f = (CUfunction)&mod->functions[i];
      return CUDA_SUCCESS;
    }
  }
  return CUDA_ERROR_NOT_FOUND;
}
CUresult CUDAAPI cuFuncGetParamInfo(CUfunction f, size_t index, size_t* offset, size_t* size) {
  const struct fake_kernel* k = ((struct fake_function*)f)->kernel;
  if (index >= (size_t)k->count) return CUDA_ERROR_INVALID_VALUE;
  *offset = 0;
  for (size_t i = 0; i < index; i++) *offset += k->sizes[i];
  *size = k->sizes[index];
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuFuncSetAttribute(CUfunction f, CUfunction_attribute a, int v) {
  if (a != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES || v > 232448) return CUDA_ERROR_INVALID_VALUE;
  ((struct fake_function*)f)->max_dynamic_shared = v;
  return CUDA_SUCCESS;
}
static void run_node(struct fake_node* node) {
  void* params[8];
  for (int i = 0; i < node->count; i++) params[i] = node->params[i];
  ((struct fake_function*)node->fn)->kernel->impl(node->grid, node->block, params);
}
CUresult CUDAAPI cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                unsigned bz, unsigned shared, CUstream s, void** params, void** extra) {
  struct fake_function* fn = (struct fake_function*)f;
  if (sticky) return sticky;
  if ((unsigned long)bx * by * bz > 1024 || (int)shared > fn->max_dynamic_shared) return CUDA_ERROR_INVALID_VALUE;
  struct fake_node node = {f, gx * gy * gz, bx * by * bz, {{0}}, fn->kernel->count};
  for (int i = 0; i < node.count; i++) memcpy(node.params[i], params[i], fn->kernel->sizes[i]);
  fake_log("cuLaunchKernel %s %u %u", fn->kernel->name, node.grid, node.block);
  struct fake_stream* stream = (struct fake_stream*)s;
  if (stream && stream->capturing) {
    if (stream->graph->count == 64) return CUDA_ERROR_INVALID_VALUE;
    stream->graph->nodes[stream->graph->count++] = node;
    return CUDA_SUCCESS;
  }
  run_node(&node);
  return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamBeginCapture(CUstream s, CUstreamCaptureMode mode) {
  struct fake_stream* stream = (struct fake_stream*)s;
  if (!stream) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  stream->capturing = 1;
  stream->graph = calloc(1, sizeof(struct fake_graph));
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuStreamEndCapture(CUstream s, CUgraph* g) {
  struct fake_stream* stream = (struct fake_stream*)s;
  stream->capturing = 0;
  *g = (CUgraph)stream->graph;
  stream->graph = 0;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuGraphGetNodes(CUgraph g, CUgraphNode* nodes, size_t* n) { *n = ((struct fake_graph*)g)->count; return CUDA_SUCCESS; }
CUresult CUDAAPI cuGraphInstantiate(CUgraphExec* e, CUgraph g, unsigned long long flags) {
  struct fake_graph* copy = malloc(sizeof *copy);
  memcpy(copy, g, sizeof *copy);
  *e = (CUgraphExec)copy;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuGraphLaunch(CUgraphExec e, CUstream s) {
  struct fake_graph* graph = (struct fake_graph*)e;
  if (sticky) return sticky;
  fake_log("cuGraphLaunch %d", graph->count);
  for (int i = 0; i < graph->count; i++) run_node(&graph->nodes[i]);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuGraphDestroy(CUgraph g) { free(g); return CUDA_SUCCESS; }
CUresult CUDAAPI cuGraphExecDestroy(CUgraphExec e) { free(e); return CUDA_SUCCESS; }
#endif
`;

const NVRTC_C = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct program { char* source; char* name; char* log; char* cubin; size_t cubin_size; } program;
static const char* errors[] = {"NVRTC_SUCCESS", "NVRTC_ERROR_OUT_OF_MEMORY", "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
  "NVRTC_ERROR_INVALID_INPUT", "NVRTC_ERROR_INVALID_PROGRAM", "NVRTC_ERROR_INVALID_OPTION", "NVRTC_ERROR_COMPILATION"};

const char* nvrtcGetErrorString(int r) { return r >= 0 && r <= 6 ? errors[r] : "NVRTC_ERROR_UNKNOWN"; }
int nvrtcVersion(int* major, int* minor) { *major = 12; *minor = 8; return 0; }
int nvrtcCreateProgram(program** p, const char* src, const char* name, int nh, const char* const* h, const char* const* hn) {
  if (!src) return 3;
  *p = calloc(1, sizeof(program));
  (*p)->source = strdup(src);
  (*p)->name = strdup(name ? name : "default_program");
  return 0;
}
int nvrtcDestroyProgram(program** p) {
  free((*p)->source); free((*p)->name); free((*p)->log); free((*p)->cubin); free(*p); *p = 0; return 0;
}
/* A "#error text" line fails like nvcc: "<name>(<line>): error: text". Otherwise the cubin
   is "FAKECUBIN\n", the options, a newline and the source, which the fake driver loads. */
int nvrtcCompileProgram(program* p, int n, const char* const* options) {
  const char* hit = strstr(p->source, "#error");
  if (hit) {
    int line = 1;
    for (const char* c = p->source; c < hit; c++) line += *c == '\n';
    const char* end = strchr(hit, '\n');
    int len = end ? (int)(end - hit - 7) : (int)strlen(hit + 7);
    size_t size = strlen(p->name) + len + 64;
    p->log = malloc(size);
    snprintf(p->log, size, "%s(%d): error: %.*s\n\n1 error detected in the compilation of \"%s\".\n",
             p->name, line, len, hit + 7, p->name);
    return 6;
  }
  size_t size = strlen(p->source) + 16;
  for (int i = 0; i < n; i++) size += strlen(options[i]) + 1;
  p->cubin = malloc(size);
  strcpy(p->cubin, "FAKECUBIN\n");
  for (int i = 0; i < n; i++) { strcat(p->cubin, options[i]); strcat(p->cubin, " "); }
  strcat(p->cubin, "\n");
  strcat(p->cubin, p->source);
  p->cubin_size = strlen(p->cubin) + 1;
  p->log = strdup("");
  return 0;
}
int nvrtcGetProgramLogSize(program* p, size_t* size) { *size = p->log ? strlen(p->log) + 1 : 1; return 0; }
int nvrtcGetProgramLog(program* p, char* out) { strcpy(out, p->log ? p->log : ""); return 0; }
int nvrtcGetCUBINSize(program* p, size_t* size) { *size = p->cubin_size; return 0; }
int nvrtcGetCUBIN(program* p, char* out) { memcpy(out, p->cubin, p->cubin_size); return 0; }
`;

export interface FakeDriverOptions {
  /** The CUresult cuInit returns (its enum name); the driver then exports only cuInit and cuGetErrorName. */
  readonly initResult?: string;
  /** Device count of the full fake (default 1). */
  readonly devices?: number;
  /** Device memory of the full fake in bytes (default 64 MiB). */
  readonly memory?: number;
  /** Make row_sum wrong by 0.01 per row. */
  readonly sabotage?: boolean;
}

function gcc(dir: string, name: string, source: string, defines: string[]): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.c`);
  const lib = path.join(dir, `${name}.so`);
  writeFileSync(file, source);
  execFileSync('gcc', ['-shared', '-fPIC', '-O1', `-I${CUDA_INCLUDE}`, ...defines, '-o', lib, file, '-lpthread', '-lm'], {
    stdio: 'pipe',
  });
  return lib;
}

/** Builds a fake libcuda.so.1 into `dir`; returns its path. */
export function buildFakeDriver(dir: string, name: string, options: FakeDriverOptions = {}): string {
  const defines =
    options.initResult !== undefined
      ? [`-DFAKE_INIT_RESULT=${options.initResult}`]
      : ['-DFAKE_FULL', `-DFAKE_DEVICES=${options.devices ?? 1}`, `-DFAKE_MEMORY=${options.memory ?? 64 << 20}ul`, ...(options.sabotage ? ['-DFAKE_SABOTAGE'] : [])];
  return gcc(dir, name, DRIVER_C, defines);
}

/** Builds a fake libnvrtc.so into `dir`; returns its path. */
export function buildFakeNvrtc(dir: string): string {
  return gcc(dir, 'fake_nvrtc', NVRTC_C, []);
}
