#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "backend/cpu/kernels_ref.h"
#include "core/transpose.h"
#include "format/json_read.h"
#include "format/npy.h"
#include "numeric/float_formats.h"
#include "numeric/mxfp4.h"
#include "test_helpers.h"

namespace oss4 {
namespace {

TEST(FloatFormats, Bf16RoundTripAndRounding) {
  for (float f : {0.0f, -0.0f, 1.0f, -2.5f, 3.140625f, std::ldexp(1.0f, -100), 65536.0f}) EXPECT_EQ(bf16_to_f32(f32_to_bf16(f)), f);
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256.0f), f32_to_bf16(1.0f)) << "ties to even";
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3.0f / 256.0f)), 1.0f + 4.0f / 256.0f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(FloatFormats, F16) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
}

TEST(FloatFormats, E4m3) {
  EXPECT_EQ(e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_to_f32(0xb8), -1.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7f)));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0xff)));
  // every byte against the textbook definition: (-1)^s 2^(e-7) (1 + m/8), subnormal (-1)^s 2^-6 (m/8)
  for (int b = 0; b < 256; ++b) {
    const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7) continue;
    const double want = (s ? -1.0 : 1.0) * (e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7));
    EXPECT_EQ(static_cast<double>(e4m3_to_f32(static_cast<uint8_t>(b))), want) << "byte " << b;
    EXPECT_EQ(std::signbit(e4m3_to_f32(static_cast<uint8_t>(b))), s == 1) << "byte " << b;
  }
}

TEST(FloatFormats, E8m0EveryByte) {
  for (int b = 0; b < 255; ++b) EXPECT_EQ(e8m0_to_f32(static_cast<uint8_t>(b)), std::ldexp(1.0f, b - 127)) << "byte " << b;
  EXPECT_TRUE(std::isinf(e8m0_to_f32(255)));
}

// spec §5: byte 0x21 with scale byte 127 decodes to [+0.5, +1.0] (low nibble first).
TEST(Mxfp4, DecodeOrderAndScale) {
  uint8_t blocks[16] = {0x21};
  uint8_t scale = 127;
  float row[32];
  mxfp4_decode_row_ref(blocks, &scale, 32, row);
  EXPECT_EQ(row[0], 0.5f);
  EXPECT_EQ(row[1], 1.0f);
  EXPECT_EQ(row[2], 0.0f);
  blocks[1] = 0xf7;  // low 7 -> +6, high f -> -6
  scale = 125;       // 2^-2
  mxfp4_decode_row_ref(blocks, &scale, 32, row);
  EXPECT_EQ(row[2], 1.5f);
  EXPECT_EQ(row[3], -1.5f);
  for (int n = 0; n < 16; ++n) EXPECT_EQ(kE2m1Lut[n], (n & 8 ? -1.0f : 1.0f) * kE2m1Lut[n & 7]);
}

TEST(JsonRead, DepthCountsBracketsOutsideStrings) {
  EXPECT_EQ(json_depth("1"), 0u);
  EXPECT_EQ(json_depth(R"({"a": [1, {"b": []}]})"), 4u);
  EXPECT_EQ(json_depth(R"({"a": "[[[[{{{", "b": "\"[["})"), 1u);  // brackets inside strings, escaped quotes
  EXPECT_EQ(json_depth("]]]]["), 1u);                               // unbalanced text does not underflow
  EXPECT_TRUE(parse_json(std::string(64, '[') + std::string(64, ']')).ok());
  auto deep = parse_json(std::string(65, '[') + std::string(65, ']'));
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().message(), "JSON nests deeper than 64 levels");
  auto bad = parse_json("[1, 2,");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("not well-formed JSON: parse error at line 1, column 7", 0), 0u) << bad.status().message();
}

TEST(Npy, WritesWhatNumpyReads) {
  std::string dir = test::make_temp_dir();
  float v[6] = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(write_npy_f32(dir + "/a.npy", v, {2, 3}).ok());
  std::string bytes = test::read_bytes(dir + "/a.npy");
  EXPECT_EQ(bytes.substr(0, 6), "\x93NUMPY");
  EXPECT_EQ((bytes.size() - 24) % 4, 0u);
  EXPECT_EQ((10 + static_cast<uint8_t>(bytes[8])) % 64, 0u) << "header padded to 64 bytes";
  EXPECT_NE(bytes.find("'shape': (2,3)"), std::string::npos);
  auto r = read_npy_f32(dir + "/a.npy");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r->data[5], 6.0f);
}

}  // namespace
}  // namespace oss4

namespace oss4 {
namespace {
TEST(Transpose, BytesOfAnyShapeMatchTheNaiveLoop) {
  // whole 16 x 16 blocks (SIMD), partial tiles and edges (scalar), several 64-byte tiles
  for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 17}, {16, 16}, {37, 53}, {64, 32}, {130, 90}, {5760, 8}}) {
    std::vector<uint8_t> src(static_cast<size_t>(rows * cols)), got(src.size(), 0xAA), want(src.size());
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 131 + (i >> 8));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) want[static_cast<size_t>(c * rows + r)] = src[static_cast<size_t>(r * cols + c)];
    transpose_u8(src.data(), rows, cols, got.data());
    EXPECT_EQ(got, want) << rows << " x " << cols;
  }
}

TEST(Transpose, SubMatricesLandAtTheirOffsetWithinTheStrides) {
  // a [37, 21] block at (3, 5) of a [50, 30] source -> column block at (5, 3) of a [40, 60] destination, rest untouched
  const int64_t rows = 37, cols = 21, src_ld = 30, dst_ld = 60;
  std::vector<uint8_t> src(50 * 30), dst(40 * 60, 0xEE);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 7 + 1);
  transpose_u8(src.data() + 3 * src_ld + 5, rows, cols, src_ld, dst.data() + 5 * dst_ld + 3, dst_ld);
  for (int64_t c = 0; c < 40; ++c)
    for (int64_t r = 0; r < 60; ++r) {
      const bool inside = c >= 5 && c < 5 + cols && r >= 3 && r < 3 + rows;
      const uint8_t want = inside ? src[static_cast<size_t>(r * src_ld + c)] : 0xEE;
      ASSERT_EQ(dst[static_cast<size_t>(c * dst_ld + r)], want) << "dst row " << c << " col " << r;
    }
}
}  // namespace
}  // namespace oss4
