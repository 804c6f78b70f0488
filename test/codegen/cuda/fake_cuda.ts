/**
 * Fake libcuda.so.1 and libnvrtc.so for testing the addon without a GPU. The C sources are
 * written to a temporary folder and built with gcc against the real cuda.h, so the fake
 * exports exactly the symbols (and _v2 ABI names) the header maps to.
 *
 * The full fake runs "device" memory in host memory and implements a few kernels on the host
 * (saxpy, iota_u32, fault and the smoke test's kernels), stream callbacks on their own threads, events with wall-clock
 * time and graph capture/replay of launches, so every path through the addon can be exercised.
 * Each call the tests look at is appended to $FAKE_CUDA_LOG.
 *
 * The emulating flavour (option `emulate` of both builders) runs any kernel: the fake NVRTC
 * compiles the CUDA source for the host with g++ and emulator/ngemu.h (cooperative threads per
 * block, barriers, mma.sync), and the fake driver dlopens the result and launches it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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
  {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS"}, {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED"},
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

#ifdef FAKE_EMULATE
#define FAKE_MAX_PARAMS 264
#define FAKE_MAX_NODES 4096
#else
#define FAKE_MAX_PARAMS 8
#define FAKE_MAX_NODES 64
#endif
struct fake_node { CUfunction fn; unsigned grid, block; unsigned gdim[3], bdim[3]; unsigned char params[FAKE_MAX_PARAMS][8]; int count; };
struct fake_graph { struct fake_node nodes[FAKE_MAX_NODES]; int count; };
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

#ifndef FAKE_EMULATE
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
  struct fake_node node = {f, gx * gy * gz, bx * by * bz, {gx, gy, gz}, {bx, by, bz}, {{0}}, fn->kernel->count};
  for (int i = 0; i < node.count; i++) memcpy(node.params[i], params[i], fn->kernel->sizes[i]);
  fake_log("cuLaunchKernel %s %u %u", fn->kernel->name, node.grid, node.block);
  struct fake_stream* stream = (struct fake_stream*)s;
  if (stream && stream->capturing) {
    if (stream->graph->count == FAKE_MAX_NODES) return CUDA_ERROR_INVALID_VALUE;
    stream->graph->nodes[stream->graph->count++] = node;
    return CUDA_SUCCESS;
  }
  run_node(&node);
  return CUDA_SUCCESS;
}
#else
/* Emulated kernels: the fake NVRTC builds a host shared object (test/codegen/cuda/emulator),
   the "cubin" is "FAKESO\n", its 8-byte size and its bytes; loading it dlopens a copy. */
#include <dlfcn.h>
#include <unistd.h>
typedef int (*emu_launch_fn)(unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void**, char*, size_t);
typedef int (*emu_params_fn)(size_t*, int);
struct fake_function { char name[128]; emu_launch_fn launch; int count; size_t sizes[FAKE_MAX_PARAMS]; int max_dynamic_shared; };
struct fake_module { void* handle; char path[256]; struct fake_function* functions[256]; int count; };
static int module_serial = 0;

static void set_log(unsigned n, CUjit_option* keys, void** values, const char* text) {
  char* buffer = 0; size_t size = 0;
  for (unsigned i = 0; i < n; i++) {
    if (keys[i] == CU_JIT_ERROR_LOG_BUFFER) buffer = values[i];
    if (keys[i] == CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES) size = (size_t)(unsigned long)values[i];
  }
  if (buffer && size) snprintf(buffer, size, "%s", text);
}
CUresult CUDAAPI cuModuleLoadDataEx(CUmodule* m, const void* image, unsigned n, CUjit_option* keys, void** values) {
  if (memcmp(image, "FAKESO\n", 7) != 0) {
    set_log(n, keys, values, "fake: not an emulated module (bad magic)");
    return CUDA_ERROR_INVALID_IMAGE;
  }
  unsigned long long size;
  memcpy(&size, (const char*)image + 7, 8);
  struct fake_module* mod = calloc(1, sizeof *mod);
  const char* tmp = getenv("TMPDIR");
  snprintf(mod->path, sizeof mod->path, "%s/ngemu_module_%d_%d.so", tmp && *tmp ? tmp : "/tmp", (int)getpid(), module_serial++);
  FILE* f = fopen(mod->path, "wb");
  if (!f || fwrite((const char*)image + 15, 1, size, f) != size) {
    if (f) fclose(f);
    free(mod);
    return CUDA_ERROR_INVALID_IMAGE;
  }
  fclose(f);
  mod->handle = dlopen(mod->path, RTLD_NOW | RTLD_LOCAL);
  if (!mod->handle) {
    set_log(n, keys, values, dlerror());
    unlink(mod->path);
    free(mod);
    return CUDA_ERROR_INVALID_IMAGE;
  }
  *m = (CUmodule)mod;
  fake_log("cuModuleLoadDataEx");
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuModuleUnload(CUmodule m) {
  struct fake_module* mod = (struct fake_module*)m;
  for (int i = 0; i < mod->count; i++) free(mod->functions[i]);
  dlclose(mod->handle);
  unlink(mod->path);
  free(mod);
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
  struct fake_module* mod = (struct fake_module*)m;
  char symbol[200];
  snprintf(symbol, sizeof symbol, "ng_emu_launch_%s", name);
  emu_launch_fn launch = (emu_launch_fn)dlsym(mod->handle, symbol);
  snprintf(symbol, sizeof symbol, "ng_emu_params_%s", name);
  emu_params_fn params = (emu_params_fn)dlsym(mod->handle, symbol);
  if (!launch || !params || mod->count == 256) return CUDA_ERROR_NOT_FOUND;
  struct fake_function* fn = calloc(1, sizeof *fn);
  snprintf(fn->name, sizeof fn->name, "%s", name);
  fn->launch = launch;
  fn->count = params(fn->sizes, FAKE_MAX_PARAMS);
  fn->max_dynamic_shared = 49152;
  if (fn->count > FAKE_MAX_PARAMS) { free(fn); return CUDA_ERROR_INVALID_VALUE; }
  mod->functions[mod->count++] = fn;
  *f = (CUfunction)fn;
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuFuncGetParamInfo(CUfunction f, size_t index, size_t* offset, size_t* size) {
  struct fake_function* fn = (struct fake_function*)f;
  if (index >= (size_t)fn->count) return CUDA_ERROR_INVALID_VALUE;
  *offset = 0;
  for (size_t i = 0; i < index; i++) *offset += fn->sizes[i];
  *size = fn->sizes[index];
  return CUDA_SUCCESS;
}
CUresult CUDAAPI cuFuncSetAttribute(CUfunction f, CUfunction_attribute a, int v) {
  if (a != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES || v > 232448) return CUDA_ERROR_INVALID_VALUE;
  ((struct fake_function*)f)->max_dynamic_shared = v;
  return CUDA_SUCCESS;
}
static void run_node(struct fake_node* node) {
  struct fake_function* fn = (struct fake_function*)node->fn;
  void* params[FAKE_MAX_PARAMS];
  char error[512];
  for (int i = 0; i < node->count; i++) params[i] = node->params[i];
  if (fn->launch(node->gdim[0], node->gdim[1], node->gdim[2], node->bdim[0], node->bdim[1], node->bdim[2], params, error, sizeof error)) {
    fake_log("emulated kernel %s failed: %s", fn->name, error);
    fprintf(stderr, "fake CUDA: emulated kernel %s failed: %s\n", fn->name, error);
    sticky = CUDA_ERROR_LAUNCH_FAILED;
  }
}
CUresult CUDAAPI cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                unsigned bz, unsigned shared, CUstream s, void** params, void** extra) {
  struct fake_function* fn = (struct fake_function*)f;
  if (sticky) return sticky;
  if ((unsigned long)bx * by * bz > 1024 || (int)shared > fn->max_dynamic_shared) return CUDA_ERROR_INVALID_VALUE;
  struct fake_node node = {f, gx * gy * gz, bx * by * bz, {gx, gy, gz}, {bx, by, bz}, {{0}}, fn->count};
  for (int i = 0; i < node.count; i++) memcpy(node.params[i], params[i], fn->sizes[i]);
  fake_log("cuLaunchKernel %s %u %u", fn->name, node.grid, node.block);
  struct fake_stream* stream = (struct fake_stream*)s;
  if (stream && stream->capturing) {
    if (stream->graph->count == FAKE_MAX_NODES) return CUDA_ERROR_INVALID_VALUE;
    stream->graph->nodes[stream->graph->count++] = node;
    return CUDA_SUCCESS;
  }
  run_node(&node);
  return CUDA_SUCCESS;
}
#endif

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
#ifdef FAKE_EMULATE
#include <unistd.h>
/* Appends NG_EMU_EXPORT(name) for every "__global__ void [__launch_bounds__(..)] name(". */
static void append_exports(FILE* f, const char* src) {
  for (const char* at = strstr(src, "__global__"); at; at = strstr(at + 10, "__global__")) {
    const char* c = at + 10;
    while (*c == ' ') c++;
    if (strncmp(c, "void", 4) != 0) continue;
    c += 4;
    while (*c == ' ') c++;
    if (strncmp(c, "__launch_bounds__(", 18) == 0) {
      c = strchr(c, ')');
      if (!c) continue;
      c++;
      while (*c == ' ') c++;
    }
    const char* end = c;
    while ((*end >= 'a' && *end <= 'z') || (*end >= 'A' && *end <= 'Z') || (*end >= '0' && *end <= '9') || *end == '_') end++;
    if (end > c && *end == '(') fprintf(f, "NG_EMU_EXPORT(%.*s)\n", (int)(end - c), c);
  }
}
/* Builds the source for the host with the emulation header; the "cubin" is "FAKESO\n", the
   shared object's size (8 bytes) and its bytes. g++'s messages are the log. */
int nvrtcCompileProgram(program* p, int n, const char* const* options) {
  const char* tmp = getenv("TMPDIR");
  char dir[256], cpp[300], so[300], cmd[1200];
  snprintf(dir, sizeof dir, "%s/ngemu_XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) return 1;
  snprintf(cpp, sizeof cpp, "%s/kernel.cpp", dir);
  snprintf(so, sizeof so, "%s/kernel.so", dir);
  FILE* f = fopen(cpp, "w");
  if (!f) return 1;
  fputs(p->source, f);
  fputs("\n", f);
  append_exports(f, p->source);
  fclose(f);
  snprintf(cmd, sizeof cmd, "g++ -std=c++17 -O1 -g0 -shared -fPIC -w -DNG_EMULATION -include '%s' -o '%s' '%s' 2>&1", FAKE_EMU_HEADER, so, cpp);
  FILE* out = popen(cmd, "r");
  size_t cap = 4096, len = 0;
  char* log = malloc(cap);
  int ch;
  while (out && (ch = fgetc(out)) != EOF) {
    if (len + 1 >= cap) log = realloc(log, cap *= 2);
    log[len++] = (char)ch;
  }
  log[len] = 0;
  int status = out ? pclose(out) : -1;
  p->log = log;
  int result = 0;
  FILE* lib = status == 0 ? fopen(so, "rb") : 0;
  if (!lib) {
    result = 6;
  } else {
    fseek(lib, 0, SEEK_END);
    unsigned long long size = (unsigned long long)ftell(lib);
    fseek(lib, 0, SEEK_SET);
    p->cubin_size = 15 + size;
    p->cubin = malloc(p->cubin_size);
    memcpy(p->cubin, "FAKESO\n", 7);
    memcpy(p->cubin + 7, &size, 8);
    if (fread(p->cubin + 15, 1, size, lib) != size) result = 6;
    fclose(lib);
  }
  unlink(cpp);
  unlink(so);
  rmdir(dir);
  return result;
}
#else
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
#endif
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
  /** Run any kernel: modules are host shared objects built by the emulating fake NVRTC (buildFakeNvrtc({emulate: true})). */
  readonly emulate?: boolean;
}

/**
 * The CUDA-on-the-host header the emulating fake NVRTC compiles kernels with: beside this file,
 * or (when this file runs compiled, from dist/) in the source tree.
 */
export const EMULATOR_HEADER = ((): string => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const beside = path.join(here, 'emulator', 'ngemu.h');
  if (existsSync(beside)) return beside;
  return path.join(here, '..', '..', '..', '..', 'test', 'codegen', 'cuda', 'emulator', 'ngemu.h');
})();

function gcc(dir: string, name: string, source: string, defines: string[], libs: string[] = []): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.c`);
  const lib = path.join(dir, `${name}.so`);
  writeFileSync(file, source);
  execFileSync('gcc', ['-shared', '-fPIC', '-O1', `-I${CUDA_INCLUDE}`, ...defines, '-o', lib, file, '-lpthread', '-lm', ...libs], {
    stdio: 'pipe',
  });
  return lib;
}

/** Builds a fake libcuda.so.1 into `dir`; returns its path. */
export function buildFakeDriver(dir: string, name: string, options: FakeDriverOptions = {}): string {
  const defines =
    options.initResult !== undefined
      ? [`-DFAKE_INIT_RESULT=${options.initResult}`]
      : [
          '-DFAKE_FULL',
          `-DFAKE_DEVICES=${options.devices ?? 1}`,
          `-DFAKE_MEMORY=${options.memory ?? 64 << 20}ul`,
          ...(options.sabotage ? ['-DFAKE_SABOTAGE'] : []),
          ...(options.emulate ? ['-DFAKE_EMULATE'] : []),
        ];
  return gcc(dir, name, DRIVER_C, defines, options.emulate ? ['-ldl'] : []);
}

/**
 * Builds a fake libnvrtc.so into `dir`; returns its path. With `emulate`, it compiles sources
 * for the host with g++ and the emulation header (for a driver built with `emulate`).
 */
export function buildFakeNvrtc(dir: string, options: { readonly emulate?: boolean } = {}): string {
  return options.emulate ? gcc(dir, 'fake_nvrtc_emulate', NVRTC_C, ['-DFAKE_EMULATE', `-DFAKE_EMU_HEADER="${EMULATOR_HEADER}"`]) : gcc(dir, 'fake_nvrtc', NVRTC_C, []);
}
