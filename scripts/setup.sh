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
# The WebGPU backend's tests run on SwiftShader, the CPU Vulkan driver inside Debian's chromium
# package (also the browser the end-to-end test drives); libvulkan1 is the Vulkan loader Dawn opens.
if ! dpkg -s chromium libvulkan1 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium libvulkan1 >/dev/null
  else
    echo "setup: chromium and libvulkan1 are not installed (needed by the WebGPU tests); run as root or install them" >&2
  fi
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
