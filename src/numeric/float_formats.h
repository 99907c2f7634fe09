// Scalar codecs of the small float formats gpt-oss checkpoints use: BF16, F16, FP8 E4M3FN, E8M0, FP4 E2M1.
// These are the reference rung: SIMD and CUDA decoders are tested against them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace oss4 {

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// round to nearest even, as torch's .to(bfloat16); NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  uint32_t lsb = (u >> 16) & 1u;
  u += 0x7fffu + lsb;
  return static_cast<uint16_t>(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (h >> 15) & 1u, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? NAN : INFINITY;
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

// FP8 E4M3FN: bias 7, no infinities, 0x7f/0xff are NaN, max 448. Built from bits (no ldexp: the loaders and
// quantizers call this per block scale).
inline float e4m3_to_f32(uint8_t b) {
  const uint32_t exp = (b >> 3) & 0xfu, mant = b & 0x7u;
  float v;
  if (exp == 15 && mant == 7) {
    v = NAN;
  } else if (exp == 0) {
    v = static_cast<float>(mant) * 0x1p-9f;  // subnormal: mant * 2^-9, exact
  } else {
    const uint32_t bits = ((exp + 120u) << 23) | (mant << 20);  // rebias 7 -> 127
    std::memcpy(&v, &bits, 4);
  }
  return (b & 0x80) ? -v : v;
}

// E8M0 (MX block scale): 2^(b-127), built from bits; 0 is the f32 subnormal 2^-127, and 255 (NaN in OCP MX, rejected
// by loaders) comes out as infinity.
inline float e8m0_to_f32(uint8_t b) {
  const uint32_t bits = b == 0 ? 0x00400000u : static_cast<uint32_t>(b) << 23;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

// FP4 E2M1 by nibble: bit 3 sign, bits 2..0 magnitude index.
inline constexpr float kE2m1Lut[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                       -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

}  // namespace oss4
