# The native CPU backend's addon: dlopen + run the kernel objects nexgrad compiles, and a thread pool.
{
  "targets": [
    {
      "target_name": "nexgrad_cpu",
      "sources": ["src/addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fexceptions"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
