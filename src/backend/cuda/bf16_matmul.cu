// BF16-weight matmuls (router, BF16 lm_head, BF16 checkpoints): one warp per output row, 16-byte weight loads,
// up to kTok tokens per block sharing each weight load, f32 accumulation.
#include "backend/cuda/cuda_util.cuh"
#include "backend/cuda/kernels.h"

namespace oss4::cuda {
namespace {

constexpr int kTok = 4;        // tokens per block
constexpr int kRowsPerBlock = 8;  // warps per block, one output row each

__device__ __forceinline__ float load_act(const uint16_t* x, int64_t i) { return bf16_bits_to_f32(x[i]); }
__device__ __forceinline__ float load_act(const float* x, int64_t i) { return x[i]; }

// y [n_tok, n_out] = x [n_tok, n_in] W^T + bias, W [n_out, n_in] bf16; n_in % 8 == 0.
template <class Act>
__global__ void __launch_bounds__(kRowsPerBlock * 32) bf16w_matmul_kernel(const uint16_t* __restrict__ w, int64_t n_out,
                                                                           int64_t n_in, const Act* __restrict__ x,
                                                                           int64_t n_tok, const float* __restrict__ bias,
                                                                           float* __restrict__ y) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + warp;
  const int64_t tok0 = static_cast<int64_t>(blockIdx.y) * kTok;
  if (o >= n_out) return;
  float acc[kTok] = {};
  const uint16_t* wr = w + o * n_in;
  for (int64_t i = static_cast<int64_t>(lane) * 8; i < n_in; i += 32 * 8) {
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(wr + i));
    const uint32_t pk[4] = {v.x, v.y, v.z, v.w};
    float wf[8];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      wf[2 * e] = bf16_bits_to_f32(pk[e] & 0xffffu);
      wf[2 * e + 1] = bf16_bits_to_f32(pk[e] >> 16);
    }
#pragma unroll
    for (int t = 0; t < kTok; ++t) {
      if (tok0 + t >= n_tok) break;
      const Act* xr = x + (tok0 + t) * n_in + i;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[t] = fmaf(wf[e], load_act(xr, e), acc[t]);
    }
  }
#pragma unroll
  for (int t = 0; t < kTok; ++t) {
    const float s = warp_sum(acc[t]);
    if (lane == 0 && tok0 + t < n_tok) y[(tok0 + t) * n_out + o] = s + (bias ? bias[o] : 0.0f);
  }
}

template <class Act>
Status launch(const char* op, const uint16_t* w, int64_t n_out, int64_t n_in, const Act* x, int64_t n_tok, const float* bias,
              float* y, Stream s) {
  if (!w || !x || !y) return error(std::string(op) + ": null pointer");
  if (n_out <= 0 || n_in <= 0 || n_in % 8 != 0 || n_tok <= 0 || (n_tok + kTok - 1) / kTok > 65535)
    return error(std::string(op) + ": bad shape " + shape_str(n_out, n_in, n_tok) + " (n_in must be a multiple of 8)");
  const dim3 grid(static_cast<unsigned>((n_out + kRowsPerBlock - 1) / kRowsPerBlock),
                  static_cast<unsigned>((n_tok + kTok - 1) / kTok));
  bf16w_matmul_kernel<Act><<<grid, kRowsPerBlock * 32, 0, s>>>(w, n_out, n_in, x, n_tok, bias, y);
  return launch_status(op, shape_str(n_out, n_in, n_tok));
}

}  // namespace

Status bf16_bf16w_matmul(const uint16_t* w, int64_t n_out, int64_t n_in, const uint16_t* x, int64_t n_tok, const float* bias,
                         float* y, Stream s) {
  return launch("bf16_bf16w_matmul", w, n_out, n_in, x, n_tok, bias, y, s);
}

Status f32_bf16w_matmul(const uint16_t* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tok, const float* bias,
                        float* y, Stream s) {
  return launch("f32_bf16w_matmul", w, n_out, n_in, x, n_tok, bias, y, s);
}

}  // namespace oss4::cuda
