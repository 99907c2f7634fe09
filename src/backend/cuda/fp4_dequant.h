// Exact FP4 dequantization for the W4A16 kernels: pure arithmetic, compiled for the host (tested on the CPU against
// src/quant's codec, exhaustively) and for the device (the kernels include this header).
//
// NVFP4 (E2M1 element q, E4M3 block scale s per 16, f32 tensor scale scale2):
//   1. q is placed into BF16 by bit operations: sign to bit 15, the 3 magnitude bits to bits 8..6. The result is
//      q * 2^-126 exactly (0.5 lands on the BF16 subnormal 2^-127).
//   2. S = s * 2^118 held in BF16 (exact: s has at most 4 significant bits; range 2^109 .. 1.75 * 2^126). One BF16
//      multiply q * 2^-126 * S = q * s * 2^-8 lies in [2^-18, 10.5]: normal and exact for every E4M3 code, the
//      subnormal scales included (unlike Marlin's FP16-exponent trick, vllm #34694).
//   3. the kernels accumulate w' * x in f32 and multiply the sum once by nvfp4_epilogue_scale(scale2) = scale2 * 2^8
//      (a power of two times an f32: exact unless it overflows), so scale2 is never rounded to BF16.
// MXFP4 (E2M1 element q, E8M0 scale b per 32): the scale is 2^(b-127). A tensor gets one shift c (chosen at repack
// from its smallest and largest code) and S = 2^(b-c) in BF16; q * 2^-126 * S = q * 2^(b-c-126) is exact when
// b - c lies in [-5, 127]; the epilogue multiplies by 2^(c-1). A tensor whose codes span more than 132 values
// cannot be held this way and is refused at repack (real checkpoints span about 20).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define OSS4_HD __host__ __device__ __forceinline__
#else
#define OSS4_HD inline
#endif

namespace oss4::cuda {

// f32 <-> bits without <cstring> (memcpy is not a device function everywhere).
OSS4_HD float bits_to_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return __builtin_bit_cast(float, u);
#endif
}
OSS4_HD uint32_t f32_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  return __builtin_bit_cast(uint32_t, f);
#endif
}

// one E2M1 code (bit 3 sign, bits 2..0 magnitude) -> BF16 bits of q * 2^-126.
OSS4_HD uint16_t e2m1_to_bf16_scaled_bits(uint32_t code) {
  return static_cast<uint16_t>(((code & 0x8u) << 12) | ((code & 0x7u) << 6));
}

// two E2M1 codes at nibbles 0 and 4 of w (bits 3..0 and 19..16) -> bf16x2 of q * 2^-126 (low half = bits 3..0).
// The kernels shift a lane's word right by 4 * p to reach pair p (see tile_layout.h).
OSS4_HD uint32_t e2m1x2_to_bf16x2_scaled(uint32_t w) {
  return ((w & 0x00080008u) << 12) | ((w & 0x00070007u) << 6);
}

// E4M3 byte -> f32 of s * 2^118. The 7 low bits shifted to f32 bits 26..20 give s * 2^-120 for every code (normal
// codes keep their exponent field, subnormal codes land on f32 subnormals: m * 2^-129 = m * 2^-9 * 2^-120); two
// exact power-of-two multiplies lift it to s * 2^118. NaN codes (0x7f, 0xff) are refused at repack and never
// reach this function. Needs f32 subnormals kept (no -ftz / --use_fast_math on the device).
OSS4_HD float e4m3_to_f32_scaled(uint32_t b) {
  const float m = bits_to_f32((b & 0x7fu) << 20) * 0x1p119f * 0x1p119f;
  return (b & 0x80u) ? -m : m;
}

// E4M3 byte -> BF16 bits of S = s * 2^118 (exact: the f32 above has at most 4 significant bits, so truncation is the
// value).
OSS4_HD uint16_t e4m3_to_bf16_scale_bits(uint32_t b) {
  return static_cast<uint16_t>(f32_to_bits(e4m3_to_f32_scaled(b)) >> 16);
}

// the f32 factor applied to an NVFP4 matrix's f32 sums: scale2 * 2^8.
OSS4_HD float nvfp4_epilogue_scale(float scale2) { return scale2 * 256.0f; }

// MXFP4: an E8M0 code b and the tensor's shift c -> BF16 bits of 2^(b-c); needs b - c in [kMxfp4MinRel, 127].
inline constexpr int kMxfp4MinRel = -5;
inline constexpr int kMxfp4MaxRel = 127;
OSS4_HD uint16_t e8m0_to_bf16_scale_bits(uint32_t b, int c) {
  return static_cast<uint16_t>((static_cast<int>(b) - c + 127) << 7);
}
// the f32 factor applied to an MXFP4 matrix's f32 sums: 2^(c-1), c in [-148, 128] (2^-149 .. 2^127 are f32 values).
OSS4_HD float mxfp4_epilogue_scale(int c) {
  const int e = c - 1;
  return e >= -126 ? bits_to_f32(static_cast<uint32_t>(e + 127) << 23) : bits_to_f32(1u << (e + 149));
}
// the shift of a tensor whose E8M0 codes lie in [lo, hi]: the largest product q * 2^(hi-c-126) lands near 6 (the
// same range as NVFP4's), or c = lo + 5 when that would put the smallest code below the exact range. Returns false
// when no shift holds every code exactly (hi - lo > 132).
OSS4_HD bool mxfp4_tensor_shift(int lo, int hi, int* c) {
  if (hi - lo > kMxfp4MaxRel - kMxfp4MinRel) return false;
  int s = hi - 126;
  if (lo - s < kMxfp4MinRel) s = lo - kMxfp4MinRel;
  *c = s;
  return true;
}

// BF16 multiply, round to nearest even, BF16 subnormals kept: the host twin of mul.rn.bf16x2 for one half. The
// kernels only multiply exact products, so the rounding never acts; the host version rounds anyway so that a wrong
// input would show up as a wrong value, not as undefined behaviour.
inline uint16_t bf16_mul_host(uint16_t a, uint16_t b) {
  const float p = bits_to_f32(static_cast<uint32_t>(a) << 16) * bits_to_f32(static_cast<uint32_t>(b) << 16);
  uint32_t u = f32_to_bits(p);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

}  // namespace oss4::cuda
