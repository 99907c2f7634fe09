// AVX2 + FMA + F16C kernels of the CPU backend (the SIMD rung above kernels_ref.h). This header is plain C++ with
// no standard-library templates on purpose: the .cpp files behind it are the only ones compiled with -mavx2 -mfma
// -mf16c, and keeping std:: code out of them keeps AVX2 instructions out of shared inline functions, so the binary
// still runs on CPUs without AVX2 (kernels.cpp calls these only when the CPU has the features).
#pragma once

#include <cstdint>

#include "numeric/weight_view.h"

namespace oss4::avx2 {

// kinds of weights the AVX2 linear kernels take (see LinearWeight in model/weights.h).
enum class WKind : int {
  kF32 = 0,          // [n_out, n_in] f32
  kBF16 = 1,         // [n_out, n_in] bf16
  kBF16InMajor = 2,  // [n_in, n_out] bf16
  kMxfp4 = 3,        // [n_out, n_in/32, 16] u8 + [n_out, n_in/32] e8m0
  kNvfp4 = 4,        // [n_out, n_in/2] u8 + [n_out, n_in/16] e4m3, times scale2
  kNvfp4InMajor = 5, // [n_in/2, n_out] u8 + [n_in/16, n_out] e4m3, times scale2
  kNvfp4Tiles32 = 6, // 32-output tiles (numeric/nvfp4_tiles.h): the AVX-512 rung's kernels only, no AVX2 kernel takes it
};

struct LinearArgs {
  WeightView w;  // the weight as it is (numeric/weight_view.h)
  WKind kind = WKind::kF32;  // w's type and layout as one kernel family
  const float* e4m3_lut = nullptr;  // [256] f32 value of every E4M3 byte
  const float* e8m0_lut = nullptr;  // [256] f32 value of every E8M0 byte
  const float* x = nullptr;         // [n_tok, n_in] f32
  int64_t n_tok = 0;
  const float* bias = nullptr;      // [n_out] f32 or null
  float* y = nullptr;               // [n_tok, n_out] f32
};

// in-major weights: GEMM from this many tokens, GEMV below
constexpr int64_t kInMajorGemmMinTok = 3;

// floats of scratch one call of f32_linear_range needs.
int64_t linear_scratch_floats(int64_t n_in, int64_t n_out);

// outputs [o0, o1) of y = x W^T + bias for every token. o0 must be a multiple of 16 (in-major kinds) or of 4.
// scratch: linear_scratch_floats(n_in, n_out) floats, 32-byte aligned. n_in must be a multiple of 32 (MXFP4), 16 (NVFP4)
// or 2 (in-major NVFP4); dense kinds take any n_in.
void f32_linear_range(const LinearArgs& a, int64_t o0, int64_t o1, float* scratch);

// attention with sinks and a sliding window for one (query token, head): q [head_dim] (RoPE applied), keys and values of
// positions lo..hi at k + slot(p) * kv_stride (slot = ring ? p % capacity : p); out [head_dim]; s: scratch [hi - lo + 1].
struct SdpaHeadArgs {
  const float* q = nullptr;
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t kv_stride = 0;  // floats between consecutive slots
  int64_t capacity = 0;
  bool ring = false;
  int64_t head_dim = 0;
  int64_t lo = 0, hi = 0;
  float sink = 0.0f, scale = 1.0f;
};
void f32_sdpa_sink_head(const SdpaHeadArgs& a, float* s, float* out);

// f32_swiglu_ref with 8 lanes at a time (exp256 in place of expf: within a few ulp)
void f32_swiglu(const float* gu, int64_t n_ff, float alpha, float limit, float* out);

// whether f32_sdpa_sink_group takes this head_dim (8V with V <= 16)
bool sdpa_group_takes(int64_t head_dim);
// the n_group query heads that share one key/value head (grouped-query attention), one query token: a.q [n_group,
// head_dim] (consecutive heads), sinks [n_group], out [n_group, head_dim]; a.sink is not read. s: scratch
// [n_group * (hi - lo + 3)]. Keys and values are walked in tiles that stay in L1 while every head of the group uses
// them, so each row comes from memory once instead of n_group times. Per head the same operations as
// f32_sdpa_sink_head.
void f32_sdpa_sink_group(const SdpaHeadArgs& a, int64_t n_group, const float* sinks, float* s, float* out);

}  // namespace oss4::avx2
