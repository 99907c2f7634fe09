// Scalar reference kernel for NVFP4 weights (see src/quant/nvfp4.h and docs/nvfp4.md). Kept apart from
// kernels_ref.h until NVFP4 joins LinearWeight; the signature then folds into f32_linear_ref's dispatch.
#pragma once

#include <cstdint>

namespace oss4 {

// y = x W^T (+ bias) with W decoded as ModelOpt dequantizes it (LUT[q] * f32(e4m3(s) * scale2)), one row at a time:
// packed [n_out, n_in/2] u8 (low nibble first), scales [n_out, n_in/16] e4m3, scale2 = weight_scale_2 f32,
// x [n_tok, n_in] f32, bias [n_out] f32 or null, y [n_tok, n_out] f32. n_in % 16 == 0. Sums accumulate in f32.
void f32_nvfp4w_matmul_ref(const uint8_t* packed, const uint8_t* scales, float scale2, int64_t n_out, int64_t n_in,
                           const float* x, int64_t n_tok, const float* bias, float* y);

}  // namespace oss4
