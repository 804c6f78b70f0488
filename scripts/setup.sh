#!/usr/bin/env bash
# Installs what nexgrad needs on a fresh Debian 12 machine with Node 20 (npm packages from the
# lock file) and builds dist/. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "setup: Node.js 20 or later is required" >&2
    exit 1
  fi
fi
# Debian packages, only as root and only those missing: Fashion-MNIST's IDX files (found with
# `dpkg -L dataset-fashion-mnist`) and a font for chart text (data pipeline, pictures); chromium,
# whose package carries SwiftShader (the CPU Vulkan driver the WebGPU tests run on) and is the
# browser the end-to-end test drives, and libvulkan1, the Vulkan loader Dawn opens.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
  missing=""
  for pkg in dataset-fashion-mnist fonts-dejavu-core chromium libvulkan1; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq $missing >/dev/null; } ||
      echo "setup: could not install$missing with apt-get (Fashion-MNIST, chart text and the WebGPU tests need them)" >&2
  fi
elif ! dpkg -s chromium libvulkan1 >/dev/null 2>&1; then
  echo "setup: chromium and libvulkan1 are not installed (the WebGPU tests need them); run this as root or install them" >&2
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
# The CUDA addon, where the CUDA headers are. Its failure never fails setup: without it the
# CUDA backend reports itself unavailable and every other backend works.
cuda_home=${CUDA_HOME:-/usr/local/cuda}
addon=native/build/Release/nexgrad_cuda.node
if [ -f "$cuda_home/include/cuda.h" ]; then
  if [ ! -f "$addon" ] || [ -n "$(find native/src native/binding.gyp -newer "$addon" 2>/dev/null | head -1)" ]; then
    log=${TMPDIR:-/tmp}/nexgrad-build-native.log
    if ! npm run build:native --silent >"$log" 2>&1; then
      echo "setup: the CUDA addon did not build (see $log); the CUDA backend will report itself unavailable" >&2
    fi
  fi
fi
