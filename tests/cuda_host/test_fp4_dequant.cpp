// The CUDA kernels' FP4 dequantization (src/backend/cuda/fp4_dequant.h) against src/quant's scalar codec, bit for
// bit, over every E2M1 code x every E4M3 code (and every E8M0 code with every shift a tensor can get). Runs on the
// CPU; tools/device/check.sh runs the same table on the GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "backend/cuda/fp4_dequant.h"
#include "backend/cuda/tile_layout.h"
#include "numeric/float_formats.h"

namespace oss4 {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(CudaFp4Dequant, E2m1PlacementIsCodeTimes2PowMinus126) {
  for (uint32_t q = 0; q < 16; ++q) {
    const float v = bf16_to_f32(cuda::e2m1_to_bf16_scaled_bits(q));
    EXPECT_EQ(bits(v), bits(std::ldexp(kE2m1Lut[q], -126))) << "code " << q;
  }
}

TEST(CudaFp4Dequant, E4m3ScaleIsExactlySTimes2Pow118) {
  int checked = 0;
  for (uint32_t s = 0; s < 256; ++s) {
    if ((s & 0x7f) == 0x7f) continue;  // NaN codes: refused at repack
    const float want = std::ldexp(e4m3_to_f32(static_cast<uint8_t>(s)), 118);
    EXPECT_EQ(bits(cuda::e4m3_to_f32_scaled(s)), bits(want)) << "e4m3 0x" << std::hex << s;
    EXPECT_EQ(bits(bf16_to_f32(cuda::e4m3_to_bf16_scale_bits(s))), bits(want)) << "e4m3 0x" << std::hex << s;
    ++checked;
  }
  EXPECT_EQ(checked, 254);
}

// the whole NVFP4 table: one BF16 multiply, then the epilogue's 2^8, equals LUT[q] * e4m3(s) of the codec bit for
// bit (signed zeros included); every nonzero product is a BF16 normal, so no rounding could have happened.
TEST(CudaFp4Dequant, Nvfp4ExhaustiveBitExact) {
  int checked = 0;
  for (uint32_t s = 0; s < 256; ++s) {
    if ((s & 0x7f) == 0x7f) continue;
    const uint16_t S = cuda::e4m3_to_bf16_scale_bits(s);
    for (uint32_t q = 0; q < 16; ++q) {
      const uint16_t w = cuda::bf16_mul_host(cuda::e2m1_to_bf16_scaled_bits(q), S);
      const float got = bf16_to_f32(w) * 256.0f;
      const float want = kE2m1Lut[q] * e4m3_to_f32(static_cast<uint8_t>(s));
      ASSERT_EQ(bits(got), bits(want)) << "q " << q << " e4m3 0x" << std::hex << s;
      if (want != 0.0f) {
        ASSERT_NE(w & 0x7f80, 0) << "product is a BF16 subnormal: q " << q << " e4m3 0x" << std::hex << s;
        ASSERT_LE(std::fabs(bf16_to_f32(w)), 10.5f);
        ASSERT_GE(std::fabs(bf16_to_f32(w)), 0x1p-18f);
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 16 * 254);
}

// the paired path the kernels use (two codes per word, bf16x2 multiply) equals the single-element path.
TEST(CudaFp4Dequant, PairedDecodeMatchesSingle) {
  for (uint32_t s = 0; s < 256; ++s) {
    if ((s & 0x7f) == 0x7f) continue;
    const uint32_t S = cuda::e4m3_to_bf16_scale_bits(s) * 0x10001u;
    for (uint32_t q0 = 0; q0 < 16; ++q0) {
      for (uint32_t q1 = 0; q1 < 16; ++q1) {
        const uint32_t w = q0 | (q1 << 16) | 0xfff0fff0u;  // junk in the other nibbles must not leak in
        const uint32_t p = cuda::bf16x2_mul(cuda::e2m1x2_to_bf16x2_scaled(w), S);
        const uint16_t S16 = static_cast<uint16_t>(S);
        ASSERT_EQ(p & 0xffffu, cuda::bf16_mul_host(cuda::e2m1_to_bf16_scaled_bits(q0), S16));
        ASSERT_EQ(p >> 16, cuda::bf16_mul_host(cuda::e2m1_to_bf16_scaled_bits(q1), S16));
      }
    }
  }
}

// MXFP4: every E8M0 code b (0xff is NaN, refused at repack) with every shift c that keeps b exact, times the
// epilogue's 2^(c-1), equals LUT[q] * e8m0(b) of the codec bit for bit (overflow to inf included).
TEST(CudaFp4Dequant, Mxfp4ExhaustiveBitExact) {
  int checked = 0;
  for (int b = 0; b < 255; ++b) {
    for (int c = b - cuda::kMxfp4MaxRel; c <= b - cuda::kMxfp4MinRel; ++c) {
      if (c - 1 < -149 || c - 1 > 127) continue;  // the epilogue factor must be an f32
      const float epi = cuda::mxfp4_epilogue_scale(c);
      ASSERT_EQ(bits(epi), bits(std::ldexp(1.0f, c - 1))) << "c " << c;
      const uint16_t S = cuda::e8m0_to_bf16_scale_bits(static_cast<uint32_t>(b), c);
      ASSERT_EQ(bits(bf16_to_f32(S)), bits(std::ldexp(1.0f, b - c))) << "b " << b << " c " << c;
      for (uint32_t q = 0; q < 16; ++q) {
        const uint16_t w = cuda::bf16_mul_host(cuda::e2m1_to_bf16_scaled_bits(q), S);
        ASSERT_EQ(bits(std::ldexp(bf16_to_f32(w), 126 - (b - c))), bits(kE2m1Lut[q])) << "inexact: b " << b << " c " << c << " q " << q;
        const float want = kE2m1Lut[q] * e8m0_to_f32(static_cast<uint8_t>(b));
        ASSERT_EQ(bits(bf16_to_f32(w) * epi), bits(want)) << "b " << b << " c " << c << " q " << q;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 255 * 16 * 90);  // about 99 shifts per code on average
}

// the shift a tensor gets holds each of its codes exactly, for every range of codes; spans over 132 are refused.
TEST(CudaFp4Dequant, Mxfp4TensorShiftCoversEveryRange) {
  for (int lo = 0; lo < 255; ++lo) {
    for (int hi = lo; hi < 255; ++hi) {
      int c = 0;
      const bool ok = cuda::mxfp4_tensor_shift(lo, hi, &c);
      ASSERT_EQ(ok, hi - lo <= 132) << lo << ".." << hi;
      if (!ok) continue;
      ASSERT_GE(lo - c, cuda::kMxfp4MinRel) << lo << ".." << hi;
      ASSERT_LE(hi - c, cuda::kMxfp4MaxRel) << lo << ".." << hi;
      ASSERT_GE(c - 1, -149);
      ASSERT_LE(c - 1, 127);
    }
  }
}

}  // namespace
}  // namespace oss4
