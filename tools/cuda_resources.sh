#!/usr/bin/env bash
# The CUDA kernels' resource report: registers, shared memory, stack frame and spills per kernel (sm_90a), from
# nvcc --resource-usage (the target oss4_cuda_resources of a build configured with the CUDA kernels on). CI prints
# it; every build already fails on a spill or local-memory use (ptxas -warn-spills -warn-lmem-usage -Werror).
#   tools/cuda_resources.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
cmake --build "$build" --target oss4_cuda_resources 2>&1 | c++filt | awk '
  /Compiling entry function/ {
    name = $0; sub(/.*function ./, "", name); sub(/^void /, "", name); sub(/^oss4::cuda::/, "", name)
    sub(/^\(anonymous namespace\)::/, "", name)
    gsub(/\(oss4::cuda::Fp4Format\)0/, "nvfp4", name); gsub(/\(oss4::cuda::Fp4Format\)1/, "mxfp4", name)
    if (name ~ /</) sub(/>\(.*/, ">", name); else sub(/\(.*/, "", name)
    arch = $0; sub(/.* for ./, "", arch); sub(/.$/, "", arch)
  }
  /bytes stack frame/ { stack = $1; spill = $5 + $9 }
  /Used [0-9]+ registers/ {
    regs = $0; sub(/.*Used /, "", regs); sub(/ registers.*/, "", regs)
    smem = 0; if ($0 ~ /bytes smem/) { smem = $0; sub(/ bytes smem.*/, "", smem); sub(/.*, /, "", smem) }
    printf "%-7s %4s regs %6s B smem %4s B stack %4s B spill  %s\n", arch, regs, smem, stack, spill, name
  }'
