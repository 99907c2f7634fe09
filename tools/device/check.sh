#!/usr/bin/env bash
# The prepared GPU check of the CUDA backend (issue 14), for a machine with one NVIDIA GPU; under 5 minutes.
#   tools/device/check.sh OUT_DIR [BUILD_DIR]
# Runs binaries built on the development machine (static cudart: only the driver is needed here), carried in
# BUILD_DIR (default build/): tests/cuda_host_tests, tests/cuda/cuda_tests, tests/cuda/cuda_bench. No weights travel:
# the tests make theirs from fixed seeds, the benchmark makes its weights on the GPU.
# Order: the device, the CPU-side proofs once more, the bit-exact dequant table on the GPU, every kernel against the
# CPU reference rung, compute-sanitizer memcheck and racecheck on the smallest shapes (when the tool is on PATH),
# then the benchmark (bandwidth probe first). Logs and JSON go to OUT_DIR; a short table is printed last.
set -uo pipefail
out=${1:?usage: tools/device/check.sh OUT_DIR [BUILD_DIR]}
bin=${2:-build}
mkdir -p "$out"
t0=$(date +%s)
status=0
step() { echo "== $* ($(( $(date +%s) - t0 )) s)"; }

step device
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$out/gpu.csv"

step "CPU-side proofs (dequant table, repack, warp emulator)"
# (the consumed-tensor tests read tests/data at the path compiled in, which need not exist on the GPU machine)
"$bin/tests/cuda_host_tests" --gtest_brief=1 --gtest_filter='CudaFp4Dequant.*:CudaRepack.*:CudaWarpEmulator.*' \
  --gtest_output=json:"$out/cuda_host_tests.json" > "$out/cuda_host_tests.log" 2>&1 \
  || { status=1; tail -n 20 "$out/cuda_host_tests.log"; }

step "GPU tests against the CPU reference"
timeout 240 "$bin/tests/cuda/cuda_tests" --gtest_output=json:"$out/cuda_tests.json" > "$out/cuda_tests.log" 2>&1 \
  || status=1
grep -E "^\[ +(OK|FAILED|SKIPPED) +\]" "$out/cuda_tests.log" | sort | uniq -c | head -n 20
grep -E "Failure" -A 3 "$out/cuda_tests.log" | head -n 40
# on a GPU machine a skipped test is a failure (no device seen, a driver older than the static cudart)
if grep -q "SKIPPED \]" "$out/cuda_tests.log"; then
  status=1
  grep -m 1 "no CUDA device here" "$out/cuda_tests.log"
fi

if command -v compute-sanitizer > /dev/null 2>&1; then
  for tool in memcheck racecheck; do
    step "compute-sanitizer $tool (smallest shapes)"
    OSS4_CUDA_TEST_SMALL=1 timeout 90 compute-sanitizer --tool "$tool" --error-exitcode 9 \
      "$bin/tests/cuda/cuda_tests" --gtest_brief=1 > "$out/sanitizer_$tool.log" 2>&1 || { status=1; tail -n 20 "$out/sanitizer_$tool.log"; }
    tail -n 2 "$out/sanitizer_$tool.log"
  done
else
  echo "compute-sanitizer not on PATH: memcheck and racecheck not run" | tee "$out/sanitizer_missing.txt"
fi

step "benchmark"
timeout 120 "$bin/tests/cuda/cuda_bench" "$out" --seed 1 2>&1 | tee "$out/cuda_bench.txt" || status=1

step "done, status $status"
echo "{\"status\": $status, \"seconds\": $(( $(date +%s) - t0 ))}" > "$out/check.json"
exit $status
