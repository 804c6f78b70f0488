#!/usr/bin/env bash
# Installs what nexgrad needs on a fresh Debian 12 machine with Node 20: npm packages, and the
# Debian packages for the WebGPU tests (Chromium's SwiftShader Vulkan driver) and the
# Fashion-MNIST data set. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
[ -f /usr/lib/chromium/vk_swiftshader_icd.json ] || need_apt+=(chromium)
[ -d /usr/share/fashion-mnist ] || [ -d /usr/share/dataset-fashion-mnist ] || need_apt+=(dataset-fashion-mnist)
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null || echo "setup: could not install ${need_apt[*]} (continuing)"
fi
if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || npm install --no-audit --no-fund
fi
npm run build --silent
