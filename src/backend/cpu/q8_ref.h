// Scalar reference of the opt-in 8-bit-activation path (ActPrecision::kQ8 in kernels.h): activations are quantized
// symmetrically to int8 per block of 16 inputs, as llama.cpp's Q8 activations are (per 32 there), and 4-bit weights
// multiply them in exact integer arithmetic. The default path (W4A16, f32 activations) is kernels_ref.h.
#pragma once

#include <cstdint>

#include "model/weights.h"

namespace oss4 {

// inputs per activation block: the NVFP4 weight block, so one integer sum meets one weight scale
constexpr int64_t kQ8Block = 16;

// x [n_tok, n_in] f32 -> q [n_tok, n_in] int8, d [n_tok, n_in / 16] f32 (n_in % 16 == 0). Per block: amax = max |x|,
// d = amax / 127, q = round-half-even(x * (127 / amax)) in [-127, 127]; an all-zero block gets d = 0 and q = 0.
// The AVX2 rung quantizes to the same bytes for finite x, so the rungs differ only in how they sum.
void q8_quantize_ref(const float* x, int64_t n_tok, int64_t n_in, int8_t* q, float* d);

// y = x W^T (+ bias) for an NVFP4 weight (either orientation) and x quantized by q8_quantize_ref: per input block k
// the exact integer sum s_k = sum_i q_i * (2 * e2m1_i) is scaled by g_k = f32(f32(e4m3 * scale2) / 2 * d_k), and
// y = sum_k s_k * g_k accumulates in f32 in block order. x [n_tok, n_in] f32, bias [n_out] or null, y [n_tok, n_out].
void f32_nvfp4w_q8a_linear_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y);

}  // namespace oss4
