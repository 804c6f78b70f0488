# The CUDA addon. It includes cuda.h for types and prototypes only: libcuda and NVRTC are
# opened with dlopen at run time, so nothing here links against them.
{
  "variables": {
    "cuda_include%": "<!(node -p \"(process.env.CUDA_HOME || process.env.CUDA_PATH || '/usr/local/cuda') + '/include'\")"
  },
  "targets": [
    {
      "target_name": "nexgrad_cuda",
      "sources": [
        "src/addon.cc",
        "src/allocator.cc",
        "src/device.cc",
        "src/driver.cc",
        "src/errors.cc",
        "src/graphs.cc",
        "src/kernels.cc",
        "src/memory.cc",
        "src/nvrtc.cc",
        "src/state.cc",
        "src/streams.cc"
      ],
      "include_dirs": ["<(cuda_include)"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
