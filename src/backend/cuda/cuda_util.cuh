// Small device helpers shared by the .cu files: the mma.sync wrapper, BF16 conversions, launch-status checks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "oss4/status.h"

namespace oss4::cuda {

// D = A B + D for one m16n8k16 step: a = the lane's 4 A registers (bf16x2), b0/b1 its 2 B registers, c its 4 f32
// accumulators (PTX ISA fragment layouts; tests/cuda_host/test_warp_emulator.cpp checks the tile layout against them).
__device__ __forceinline__ void mma_m16n8k16_bf16(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ float bf16_bits_to_f32(uint32_t h) { return __uint_as_float(h << 16); }
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float v) { return __bfloat16_as_ushort(__float2bfloat16_rn(v)); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// the launch's status, with the op and its shapes as context.
inline Status launch_status(const char* op, const std::string& shapes) {
  const cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return ok_status();
  return error(std::string(op) + " " + shapes + ": " + cudaGetErrorString(e));
}

inline std::string shape_str(int64_t a, int64_t b, int64_t c) {
  return "[n_out " + std::to_string(a) + ", n_in " + std::to_string(b) + ", n_tok " + std::to_string(c) + "]";
}

}  // namespace oss4::cuda
