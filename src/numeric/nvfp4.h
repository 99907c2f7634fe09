// NVFP4 codec, scalar reference: FP4 E2M1 elements, one FP8 E4M3FN scale per 16 elements along the input dim and
// one f32 tensor scale (weight_scale_2). Bit-exact with NVIDIA ModelOpt 0.47's export path
// (NVFP4QTensor.get_weights_scaling_factor_2 / get_weights_scaling_factor / quantize), proven by the fixtures in
// tests/data/nvfp4; every rule and its ModelOpt source is in docs/nvfp4.md.
#pragma once

#include <cstdint>
#include <string>

#include "oss4/status.h"

namespace oss4 {

inline constexpr int64_t kNvfp4Block = 16;    // elements per block scale, along the input dim
inline constexpr float kE2m1Max = 6.0f;
inline constexpr float kE4m3Max = 448.0f;
inline constexpr float kE4m3MinScale = 0x1p-9f;  // smallest E4M3 subnormal: ModelOpt's lower clamp of block scales

// f32 -> FP8 E4M3FN exactly as torch's .to(torch.float8_e4m3fn): round to nearest even (subnormals included),
// sign kept (-0 -> 0x80, tiny negatives -> 0x80); |x| > 464 (which rounds past 448), Inf and NaN all give NaN
// (0x7f, with the input's sign bit: 0xff for negatives). Torch does not saturate; ModelOpt clamps before casting.
uint8_t f32_to_e4m3_rne(float x);

// the value x takes after the cast above: e4m3_to_f32(f32_to_e4m3_rne(x)).
float e4m3_from_f32(float x);

// f32 -> FP4 E2M1 nibble exactly as ModelOpt's NVFP4QTensor._cast_fp4: round half to even on the magnitude
// (|x| <= 0.25 -> 0, < 0.75 -> 0.5, <= 1.25 -> 1, < 1.75 -> 1.5, <= 2.5 -> 2, < 3.5 -> 3, <= 5 -> 4, else 6; Inf
// and NaN -> 6), sign bit = (x < 0): a tiny negative gives 0x8 (-0), -0.0 and NaN give a clear sign bit.
// (inline and branchless: it runs once per weight; searchsorted's count of bounds below |x| with the ties at 0.75,
// 1.75 and 3.5 going up to the even code; NaN sorts last, code 7.)
inline uint8_t f32_to_e2m1_rne(float x) {
  const float a = x < 0.0f ? -x : x;
  // NaN -> 7 (every comparison is false, and its sign bit is never set by the x < 0 test); no branch, so loops over
  // this vectorize
  const int m = (a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.0f) + 7 * (a != a);
  return static_cast<uint8_t>((x < 0.0f ? 0x8 : 0x0) | m);
}

// weight_scale_2 = amax / (6 * 448), one f32 division (torch's CPU f32 division by the python scalar 2688.0).
float nvfp4_weight_scale_2(float amax);

// one block's E4M3 scale byte: s = block_amax / f32(6 * weight_scale_2) in f32; s == 0 -> 1.0; clamp to
// [2^-9, 448]; f32_to_e4m3_rne. block_amax = max |w| over the block.
uint8_t nvfp4_block_scale(float block_amax, float weight_scale_2);

// quantizes w [n_out, n_in] f32 (row-major, blocks of 16 along n_in) with the calibrated global amax (normally
// max |w|; a larger one is allowed, a smaller one saturates): packed [n_out, n_in/2] u8 (element 2j in the low
// nibble of byte j, 2j+1 in the high nibble), scales [n_out, n_in/16] E4M3 bytes, *weight_scale_2 f32.
// Errors name the tensor: n_in % 16 != 0, a NaN/Inf in w (with its index), an amax that is NaN, Inf, negative,
// or so small that weight_scale_2 is 0 (ModelOpt would write NaN block scales there; see docs/nvfp4.md).
Status nvfp4_quantize_ref(const float* w, int64_t n_out, int64_t n_in, float amax, uint8_t* packed, uint8_t* scales,
                          float* weight_scale_2, const std::string& tensor_name);

// one row decoded to f32 as ModelOpt's NVFP4QTensor.dequantize does it: out[i] = LUT[q_i] * f32(e4m3(s_b) * scale2),
// the block factor rounded once per block. packed [n_in/2] u8, scales [n_in/16] e4m3 -> out [n_in]; n_in % 16 == 0.
void nvfp4_decode_row_ref(const uint8_t* packed, const uint8_t* scales, float scale2, int64_t n_in, float* out);

}  // namespace oss4
