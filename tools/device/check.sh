#!/usr/bin/env bash
# The prepared GPU check of the CUDA backend (issues 14 and 15), for a machine with one NVIDIA GPU; under 5 minutes.
#   tools/device/check.sh OUT_DIR [BUILD_DIR] [all|kernels|e2e]
# all (default) runs everything; kernels stops before the end-to-end part (issue 15's checks), e2e runs only that part
# (two calls, each well under 5 minutes, when the synthesis of the 20b is slow on the machine).
# Runs binaries built on the development machine (static cudart: only the driver is needed here), carried in
# BUILD_DIR (default build/): tests/cuda_host_tests, tests/cuda/cuda_tests, tests/cuda/cuda_bench and oss4. No weights
# travel: the tests make theirs from fixed seeds or read the committed goldens (tests/data), the kernel benchmark makes
# its weights on the GPU, and the end-to-end steps synthesize their checkpoints here (oss4 synth, oss4 quantize).
# Order: the device, the CPU-side proofs once more, the bit-exact dequant table on the GPU, every kernel against the
# CPU reference rung, compute-sanitizer memcheck and racecheck on the smallest shapes (when the tool is on PATH),
# then the benchmark (bandwidth probe first). Logs and JSON go to OUT_DIR; a short table is printed last.
set -uo pipefail
out=${1:?usage: tools/device/check.sh OUT_DIR [BUILD_DIR] [all|kernels|e2e]}
bin=${2:-build}
mode=${3:-all}
case "$mode" in all|kernels|e2e) ;; *) echo "mode: all, kernels or e2e, not $mode" >&2; exit 2 ;; esac
export OSS4_TEST_DATA="$PWD/tests/data"  # the goldens the forward tests read (the path compiled in is the build machine's)
mkdir -p "$out"
t0=$(date +%s)
status=0
step() { echo "== $* ($(( $(date +%s) - t0 )) s)"; }

step device
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$out/gpu.csv"

if [ "$mode" != e2e ]; then
step "CPU-side proofs (dequant table, repack, warp emulator, attention walk, top-k, device plan)"
# (the consumed-tensor tests read tests/data at the path compiled in, which need not exist on the GPU machine)
"$bin/tests/cuda_host_tests" --gtest_brief=1 --gtest_filter='CudaFp4Dequant.*:CudaRepack.*:CudaWarpEmulator.*:CudaAttentionMath.*:CudaTopk.*:CudaDevicePlan.*' \
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

fi

if [ "$mode" != kernels ]; then
  work=${OSS4_CHECK_WORK:-/tmp/oss4-check}
  rm -rf "$work" && mkdir -p "$work"
  step "end to end: the GPU against the CPU on a 2-layer cut of the 20b shape (NVFP4)"
  "$bin/oss4" synth --config gpt-oss-20b --layers 2 --seed 7 --out "$work/cut" > "$out/cut_synth.log" 2>&1 \
    && "$bin/oss4" quantize --method transcode -m "$work/cut" -o "$work/cut_nvfp4" > "$out/cut_quantize.log" 2>&1 \
    && timeout 120 "$bin/oss4" compare -m "$work/cut_nvfp4" -m "$work/cut_nvfp4" --device-b cuda --json -q \
      > "$out/compare_cut.json" 2> "$out/compare_cut.log" || { status=1; tail -n 5 "$out"/cut_*.log "$out/compare_cut.log"; }
  cat "$out/compare_cut.json" 2> /dev/null | head -n 20
  rm -rf "$work/cut"

  step "benchmark: full-size synthetic 20b, NVFP4, made here"
  "$bin/oss4" synth --config gpt-oss-20b --seed 1 --out "$work/s20b" > "$out/s20b_synth.log" 2>&1 \
    && "$bin/oss4" quantize --method transcode -m "$work/s20b" -o "$work/s20b_nvfp4" > "$out/s20b_quantize.log" 2>&1 \
    || { status=1; tail -n 5 "$out"/s20b_*.log; }
  rm -rf "$work/s20b"
  "$bin/oss4" info -m "$work/s20b_nvfp4" --device cuda --ctx 8192 > "$out/info_cuda.txt" 2>&1; tail -n 14 "$out/info_cuda.txt"
  timeout 150 "$bin/oss4" bench -m "$work/s20b_nvfp4" --device cuda --json -q -p 1024 -n 64 -r 3 --depth 1024,8192 --seqs 16,64 \
    > "$out/bench_20b.json" 2> "$out/bench_20b.log" || { status=1; tail -n 5 "$out/bench_20b.log"; }
  timeout 60 "$bin/oss4" bench -m "$work/s20b_nvfp4" --device cuda --json -q -p 8192 -n 0 -r 2 --chunk 512 \
    > "$out/bench_20b_ttft8k.json" 2> "$out/bench_20b_ttft8k.log" || { status=1; tail -n 5 "$out/bench_20b_ttft8k.log"; }
  head -c 3000 "$out/bench_20b.json"; echo
  grep -E '"ttft_s"|"prefill_tok_s"' "$out/bench_20b_ttft8k.json"
fi

step "done, status $status"
echo "{\"status\": $status, \"seconds\": $(( $(date +%s) - t0 ))}" > "$out/check.json"
exit $status
