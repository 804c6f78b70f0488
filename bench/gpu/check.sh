#!/usr/bin/env bash
# The CUDA backend's GPU check. Two halves:
#
#   bash bench/gpu/check.sh prepare
#       Here (Node, npm, the CUDA headers): builds dist/ and the addon, compiles the test
#       suite's program generator into dist/test/helpers, copies the PyTorch reference vectors
#       (../shared/refs) to .gpu/refs, packs .gpu/ with ../shared/tools/gpu-bundle.sh (a Node
#       binary for the bare GPU host) and the headers needed to rebuild the addon there.
#       Then, with the device tool, run on the GPU host:
#
#   bash bench/gpu/check.sh [bench]
#       (carry: dist, native/build, .gpu, node_modules/fast-check, node_modules/pure-rand)
#       On the GPU host: rebuilds the addon there with g++ (falls back to the carried build),
#       runs the device smoke test (bench/gpu/smoke.ts) and the suites below, and writes
#       $OUT/cuda-check.json (or bench/results/gpu/ without $OUT) plus cuda-smoke.json and
#       cuda-suites.json. With `bench`, it then runs bench/gpu/train_bench.ts (ConvNeXt V2 atto
#       and tiny training and inference img/s, compile times, peak memory: cuda-bench.json);
#       BENCH_ARGS passes options to it (e.g. "--models atto --precisions bf16 --steps 20").
#
#   bash bench/gpu/check.sh emulate
#       Here, without a GPU: the suites on the host emulation of CUDA (see that branch below).
#
# Exit status: 0 all passed, 1 something failed, 2 CUDA unavailable (the reason is printed).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cuda_home=${CUDA_HOME:-/usr/local/cuda}

if [[ ${1:-} == prepare ]]; then
  set -e
  npm run build --silent
  npm run build:native --silent
  # What a g++ build of the addon needs besides the CUDA headers: Node-API's C headers and
  # node-addon-api's C++ wrapper (header-only).
  headers=.gpu/native-headers
  rm -rf "$headers" && mkdir -p "$headers"
  node_include=$(dirname "$(dirname "$(command -v node)")")/include/node
  cp "$node_include"/{node_api.h,node_api_types.h,js_native_api.h,js_native_api_types.h} "$headers"/
  cp node_modules/node-addon-api/{napi.h,napi-inl.h,napi-inl.deprecated.h} "$headers"/
  # the random-program generator is test code (type-checked by no build): transpile it only
  npx tsc --noCheck --skipLibCheck --module nodenext --moduleResolution nodenext --target es2022 \
    --rootDir . --outDir dist test/helpers/program_gen.ts
  rm -rf .gpu/refs && mkdir -p .gpu/refs && cp ../shared/refs/*.safetensors .gpu/refs/
  bash ../shared/tools/gpu-bundle.sh
  echo "prepared: carry dist, native/build, .gpu, node_modules/fast-check and node_modules/pure-rand;"
  echo "run: bash bench/gpu/check.sh [bench]"
  exit 0
fi
mode=${1:-check}

if [[ $mode == emulate ]]; then
  # No GPU: the same suites on the host emulation of CUDA (an emulating fake driver and NVRTC
  # that compile every kernel with g++; slow, minutes per suite; nothing is timed). With
  # EMULATE_VITEST=1 also the test suite's per-backend files (about half an hour cold).
  set -e
  npm run build --silent
  npx tsc --noCheck --skipLibCheck --module nodenext --moduleResolution nodenext --target es2022 \
    --rootDir . --outDir dist test/helpers/program_gen.ts
  eval "$(node dist/bench/gpu/emulate.js)"
  export NEXGRAD_CACHE_DIR=${NEXGRAD_CACHE_DIR:-${TMPDIR:-/tmp}/nexgrad-emulated-cache}
  out=${OUT:-$root/bench/results/gpu-emulated}
  mkdir -p "$out"
  set +e
  node dist/bench/gpu/suites.js --out "$out" --refs ../shared/refs --random "${EMULATE_RANDOM:-50}" ${EMULATE_ONLY:+--only "$EMULATE_ONLY"}
  status=$?
  if [[ ${EMULATE_VITEST:-0} == 1 ]]; then
    NEXGRAD_BACKENDS=cuda NEXGRAD_REQUIRE=cuda npx vitest run test/backends test/passes/parity.test.ts test/passes/random_programs.test.ts --testTimeout=4000000 || status=1
  fi
  exit "$status"
fi

out=${OUT:-$root/bench/results/gpu}
mkdir -p "$out"
run_node() {
  if [[ -x .gpu/env.sh ]]; then bash .gpu/env.sh node "$@"; else node "$@"; fi
}

# 1. The addon: built on this host when a compiler and the headers are here, else carried.
addon_origin=none
build_dir=$(mktemp -d "${TMPDIR:-/tmp}/nexgrad-addon-XXXXXX")
if command -v g++ >/dev/null && [[ -d .gpu/native-headers && -f $cuda_home/include/cuda.h ]]; then
  if g++ -std=c++17 -O2 -shared -fPIC -fexceptions -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS \
      -I.gpu/native-headers -I"$cuda_home/include" native/src/*.cc -o "$build_dir/nexgrad_cuda.node" \
      -ldl -lpthread 2>"$out/addon-build.log"; then
    export NEXGRAD_CUDA_ADDON=$build_dir/nexgrad_cuda.node
    addon_origin=built-on-host
  else
    echo "check: building the addon here failed (see $out/addon-build.log); trying the carried build"
  fi
fi
if [[ $addon_origin == none && -f native/build/Release/nexgrad_cuda.node ]]; then
  export NEXGRAD_CUDA_ADDON=$root/native/build/Release/nexgrad_cuda.node
  addon_origin=carried
fi
if [[ $addon_origin == none ]]; then
  echo "check: no CUDA addon (run 'bash bench/gpu/check.sh prepare' first and carry native/build)"
fi
echo "check: addon $addon_origin"

# NVRTC: the addon searches libnvrtc.so* on the loader path and under $CUDA_HOME/lib64; on a
# host whose NVRTC came with a Python wheel instead, point it at that copy.
if [[ -z ${NEXGRAD_CUDA_LIBNVRTC:-} ]] && ! ls "$cuda_home"/lib64/libnvrtc.so* >/dev/null 2>&1 &&
  ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
  found=$(find /usr/local /opt -name 'libnvrtc.so*' -not -name '*builtins*' 2>/dev/null | sort | head -1)
  if [[ -n $found ]]; then export NEXGRAD_CUDA_LIBNVRTC=$found; echo "check: NVRTC from $found"; fi
fi

# 2. The device smoke test: alloc, copies, NVRTC kernels vs JS, graph replay, event timing.
run_node dist/bench/gpu/smoke.js --out "$out/cuda-smoke.json"
smoke=$?

# 3. The suites on CUDA, each a command whose exit status counts: bench/gpu/suites.ts
#    (primitives, gradients and random programs against the float64 interpreter, the tiny
#    ConvNeXt V2 and FCMAE parity with PyTorch, the atto training step against the CPU
#    backend and in bf16), and, where vitest is installed on this host, the test suite's
#    per-backend files with NEXGRAD_BACKENDS=cuda NEXGRAD_REQUIRE=cuda.
suites=("dist/bench/gpu/suites.js --out $out --refs .gpu/refs")
suite_results=()
# without CUDA (the smoke test said why) there is nothing to run
[[ $smoke -eq 2 ]] && suites=()
for suite in "${suites[@]}"; do
  # shellcheck disable=SC2086 # the suite's words are its arguments
  run_node $suite
  suite_results+=("{\"command\": \"$suite\", \"status\": $?}")
done
if [[ $smoke -ne 2 && -x node_modules/.bin/vitest ]]; then
  for file in test/backends/primitives.test.ts test/backends/data_kernels.test.ts test/passes/random_programs.test.ts test/passes/parity.test.ts; do
    NEXGRAD_BACKENDS=cuda NEXGRAD_REQUIRE=cuda run_node node_modules/.bin/vitest run "$file" >"$out/vitest-$(basename "$file" .test.ts).log" 2>&1
    suite_results+=("{\"command\": \"vitest $file\", \"status\": $?}")
  done
fi

# 4. With `bench`: the ConvNeXt V2 throughput and compile-time measurements.
bench=-1
if [[ $smoke -ne 2 && $mode == bench ]]; then
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of options
  run_node dist/bench/gpu/train_bench.js --out "$out" ${BENCH_ARGS:-}
  bench=$?
fi

gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
{
  echo "{"
  echo "  \"when\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  echo "  \"gpu\": \"${gpu:-none}\","
  echo "  \"addon\": \"$addon_origin\","
  echo "  \"smokeStatus\": $smoke,"
  echo "  \"smoke\": \"cuda-smoke.json\","
  echo "  \"benchStatus\": $bench,"
  echo "  \"suites\": [$(IFS=,; echo "${suite_results[*]:-}")]"
  echo "}"
} >"$out/cuda-check.json.tmp" && mv "$out/cuda-check.json.tmp" "$out/cuda-check.json"
echo "check: results in $out/cuda-check.json"

failed=0
for r in "${suite_results[@]:-}"; do [[ -n $r && $r != *'"status": 0}' ]] && failed=1; done
if [[ $smoke -ne 0 ]]; then exit "$smoke"; fi
exit "$failed"
