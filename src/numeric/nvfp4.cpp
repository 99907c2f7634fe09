#include "numeric/nvfp4.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "numeric/float_formats.h"

namespace oss4 {

namespace {

// v >> shift rounded to nearest, ties to even (shift in 1..31).
uint32_t shift_right_rne(uint32_t v, int shift) {
  const uint32_t q = v >> shift;
  const uint32_t rem = v & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  return (rem > half || (rem == half && (q & 1u))) ? q + 1u : q;
}

std::string index_str(int64_t n_in, int64_t k) {
  std::string s = "[";  // appended piecewise: gcc 12 warns (-Wrestrict) on "literal" + std::string&&
  s += std::to_string(k / n_in);
  s += ", ";
  s += std::to_string(k % n_in);
  s += "]";
  return s;
}

}  // namespace

uint8_t f32_to_e4m3_rne(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80u);
  const uint32_t abs_bits = bits & 0x7fffffffu;
  const float a = std::fabs(x);
  // 464 is the midpoint between 448 and the NaN pattern's 480: above it torch's rounding carries into 0x7f.
  if (!(a <= 464.0f)) return sign | 0x7fu;
  const uint32_t exp = abs_bits >> 23;
  if (exp >= 127 - 6) {
    // normal E4M3 (|x| >= 2^-6): keep 3 mantissa bits (RNE; a carry moves into the exponent), rebias 127 -> 7.
    return sign | static_cast<uint8_t>(shift_right_rne(abs_bits, 20) - ((127u - 7u) << 3));
  }
  // subnormal E4M3 (|x| < 2^-6): the grid is 2^-9, code = RNE(|x| * 2^9) in 0..8 (8 is 2^-6, the first normal).
  // |x| = mant * 2^(exp - 150) with the implicit bit, so |x| * 2^9 = mant >> (141 - exp).
  if (exp == 0) return sign;  // f32 subnormals and zero are far below 2^-10
  const uint32_t mant = (abs_bits & 0x7fffffu) | 0x800000u;
  const int shift = 141 - static_cast<int>(exp);  // >= 21
  if (shift > 24) return sign;                     // |x| < 2^-10: below half of the smallest subnormal
  return sign | static_cast<uint8_t>(shift_right_rne(mant, shift));
}

float e4m3_from_f32(float x) { return e4m3_to_f32(f32_to_e4m3_rne(x)); }

float nvfp4_weight_scale_2(float amax) { return amax / (kE2m1Max * kE4m3Max); }

uint8_t nvfp4_block_scale(float block_amax, float weight_scale_2) {
  const float denom = kE2m1Max * weight_scale_2;  // rounded to f32 first, as torch computes E2M1_MAX * wsf2
  float s = block_amax / denom;
  if (s == 0.0f) s = 1.0f;  // ModelOpt: per_block_scale[per_block_scale == 0] = 1.0
  // torch.clamp(min=2^-9, max=448); comparisons keep a NaN as NaN, like torch.
  if (s < kE4m3MinScale) s = kE4m3MinScale;
  if (s > kE4m3Max) s = kE4m3Max;
  return f32_to_e4m3_rne(s);
}

Status nvfp4_quantize_ref(const float* w, int64_t n_out, int64_t n_in, float amax, uint8_t* packed, uint8_t* scales,
                          float* weight_scale_2, const std::string& tensor_name) {
  const std::string ctx = "NVFP4 quantize of tensor '" + tensor_name + "' [" + std::to_string(n_out) + ", " +
                          std::to_string(n_in) + "]";
  if (n_out < 0 || n_in <= 0 || n_in % kNvfp4Block != 0) {
    return error(ctx + ": the input dim must be a positive multiple of " + std::to_string(kNvfp4Block));
  }
  if (!std::isfinite(amax) || amax < 0.0f) {
    return error(ctx + ": amax " + std::to_string(amax) + " is not a finite non-negative number");
  }
  const float g = nvfp4_weight_scale_2(amax);
  if (!(g > 0.0f)) {
    // ModelOpt 0.47 divides 0 by 0 here and writes NaN block scales whose sign bit depends on the CPU.
    return error(ctx + ": amax " + std::to_string(amax) +
                 " gives weight_scale_2 = 0 (an all-zero tensor?); ModelOpt would write NaN block scales");
  }
  const int64_t n = n_out * n_in;
  constexpr int64_t kChunk = 4096;  // a branch-free pass per chunk (vectorized); the index only on a bad chunk
  for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
    const int64_t c1 = std::min(n, c0 + kChunk);
    int bad = 0;
    for (int64_t k = c0; k < c1; ++k) bad |= !(std::fabs(w[k]) <= std::numeric_limits<float>::max());
    if (!bad) continue;
    for (int64_t k = c0; k < c1; ++k)
      if (!std::isfinite(w[k])) return error(ctx + ": non-finite value " + std::to_string(w[k]) + " at " + index_str(n_in, k));
  }
  *weight_scale_2 = g;
  const int64_t n_blocks = n_in / kNvfp4Block;
  for (int64_t r = 0; r < n_out; ++r) {
    for (int64_t b = 0; b < n_blocks; ++b) {
      const float* src = w + r * n_in + b * kNvfp4Block;  // [16] f32
      float block_amax = 0.0f;
      for (int64_t i = 0; i < kNvfp4Block; ++i) block_amax = std::max(block_amax, std::fabs(src[i]));  // finite (checked above): maxss, not fmaxf
      const uint8_t s = nvfp4_block_scale(block_amax, g);
      scales[r * n_blocks + b] = s;
      const float denom = e4m3_to_f32(s) * g;  // torch: weights_scaling_factor.to(f32) * wsf2, then divide
      // plain loops over the 16 values (one division each, as torch) that the compiler turns into SIMD
      uint8_t code[kNvfp4Block];
      for (int64_t i = 0; i < kNvfp4Block; ++i) code[i] = f32_to_e2m1_rne(src[i] / denom);
      uint8_t* dst = packed + r * (n_in / 2) + b * (kNvfp4Block / 2);
      for (int64_t j = 0; j < kNvfp4Block / 2; ++j) dst[j] = static_cast<uint8_t>(code[2 * j] | (code[2 * j + 1] << 4));
    }
  }
  return ok_status();
}

void nvfp4_decode_row_ref(const uint8_t* packed, const uint8_t* scales, float scale2, int64_t n_in, float* out) {
  const int64_t n_blocks = n_in / kNvfp4Block;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const float s = e4m3_to_f32(scales[b]) * scale2;
    const uint8_t* src = packed + b * (kNvfp4Block / 2);
    float* dst = out + b * kNvfp4Block;
    for (int64_t j = 0; j < kNvfp4Block / 2; ++j) {
      dst[2 * j] = kE2m1Lut[src[j] & 0x0f] * s;
      dst[2 * j + 1] = kE2m1Lut[src[j] >> 4] * s;
    }
  }
}

}  // namespace oss4
