// The AVX-512 rung's NVFP4 tile layout (numeric/nvfp4_tiles.h) against the checkpoint layouts it is made from: every
// code and scale of every output and input lands where the layout says, from row-major and from input-major sources;
// a group put back in the input-major layout is the source's bytes; the reference matmul reads tiles as it reads the
// source. An independent index formula (written from the header's description, not from the code) locates each code.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "backend/cpu/kernels_ref.h"
#include "numeric/nvfp4_tiles.h"
#include "test_weights.h"

namespace oss4 {
namespace {

struct Tiled {
  LinearWeight w;
  std::vector<uint8_t> codes, scales;
};

Tiled tile(const LinearWeight& src) {
  Tiled t;
  t.codes.assign(static_cast<size_t>(src.n_out * src.n_in / 2), 0xAA);  // a fill the repack must overwrite
  t.scales.assign(static_cast<size_t>(src.n_out * src.n_in / 16), 0xAA);
  // two calls over halves of the groups: ranges are independent
  const int64_t n_g = src.n_out / 32;
  nvfp4_to_tiles(src, 0, n_g / 2, t.codes.data(), t.scales.data());
  nvfp4_to_tiles(src, n_g / 2, n_g, t.codes.data(), t.scales.data());
  t.w = src;
  t.w.layout = WeightLayout::kTiles32;
  t.w.data = t.codes.data();
  t.w.scales = t.scales.data();
  return t;
}

// code of (o, i) in tiles by the header's words: group o / 32, block i / 16, chunk (o % 32) / 16 + 2 ((i % 16) / 8),
// dword o % 16, byte i % 4, high nibble when i % 8 >= 4
uint8_t tile_code_by_description(const Tiled& t, int64_t o, int64_t i) {
  const int64_t n_blk = t.w.n_in / 16;
  const int64_t chunk = (o % 32) / 16 + 2 * ((i % 16) / 8);
  const size_t at = static_cast<size_t>(((o / 32) * n_blk + i / 16) * 256 + chunk * 64 + (o % 16) * 4 + i % 4);
  return (i % 8) >= 4 ? t.codes[at] >> 4 : t.codes[at] & 15;
}

// the source's own code of (o, i), read from its bytes directly
uint8_t source_code(const LinearWeight& w, int64_t o, int64_t i) {
  const uint8_t b = w.in_major() ? w.data[(i / 2) * w.n_out + o] : w.data[o * (w.n_in / 2) + i / 2];
  return i % 2 ? b >> 4 : b & 15;
}
uint8_t source_scale(const LinearWeight& w, int64_t o, int64_t b) {
  return w.in_major() ? w.scales[b * w.n_out + o] : w.scales[o * (w.n_in / 16) + b];
}

TEST(Nvfp4Tiles, EveryCodeAndScaleLandsWhereTheLayoutSaysFromBothSourceLayouts) {
  for (bool in_major : {false, true})
    for (auto [n_out, n_in] : {std::pair<int64_t, int64_t>{32, 16}, {64, 48}, {96, 2880 / 10}, {160, 64}}) {
      SCOPED_TRACE(std::string(in_major ? "in-major " : "row-major ") + std::to_string(n_out) + "x" + std::to_string(n_in));
      const TestWeight src = make_weight(WeightType::kNvfp4, in_major, n_out, n_in, 7);
      const Tiled t = tile(src.w);
      for (int64_t o = 0; o < n_out; ++o)
        for (int64_t i = 0; i < n_in; ++i) {
          ASSERT_EQ(tile_code_by_description(t, o, i), source_code(src.w, o, i)) << "o " << o << " i " << i;
          ASSERT_EQ(nvfp4_code_at(t.w, o, i), source_code(src.w, o, i));
          ASSERT_EQ(nvfp4_code_at(src.w, o, i), source_code(src.w, o, i));
        }
      for (int64_t o = 0; o < n_out; ++o)
        for (int64_t b = 0; b < n_in / 16; ++b) {
          ASSERT_EQ(t.scales[static_cast<size_t>(((o / 32) * (n_in / 16) + b) * 32 + o % 32)], source_scale(src.w, o, b));
          ASSERT_EQ(nvfp4_scale_at(t.w, o, b), source_scale(src.w, o, b));
        }
    }
}

TEST(Nvfp4Tiles, AGroupBackInTheInputMajorLayoutIsTheSourcesBytes) {
  const int64_t n_out = 96, n_in = 80;
  const TestWeight src = make_weight(WeightType::kNvfp4, /*in_major=*/true, n_out, n_in, 3);
  const Tiled t = tile(src.w);
  std::vector<uint8_t> codes(static_cast<size_t>(n_in / 2 * 32)), scales(static_cast<size_t>(n_in / 16 * 32));  // [n_in/2, 32], [n_in/16, 32]
  for (int64_t g = 0; g < n_out / 32; ++g) {
    nvfp4_tiles_group_to_in_major(t.w, g, codes.data(), scales.data());
    for (int64_t r = 0; r < n_in / 2; ++r)
      for (int64_t o = 0; o < 32; ++o) ASSERT_EQ(codes[static_cast<size_t>(r * 32 + o)], src.data[static_cast<size_t>(r * n_out + 32 * g + o)]);
    for (int64_t b = 0; b < n_in / 16; ++b)
      for (int64_t o = 0; o < 32; ++o) ASSERT_EQ(scales[static_cast<size_t>(b * 32 + o)], src.scales[static_cast<size_t>(b * n_out + 32 * g + o)]);
  }
}

TEST(Nvfp4Tiles, OnlyShapesOf32OutputsAnd16InputsFit) {
  EXPECT_TRUE(nvfp4_tiles_fit(2880, 2880));
  EXPECT_TRUE(nvfp4_tiles_fit(512, 2880));
  EXPECT_TRUE(nvfp4_tiles_fit(201088, 2880));
  EXPECT_FALSE(nvfp4_tiles_fit(48, 2880));
  EXPECT_FALSE(nvfp4_tiles_fit(64, 40));
}

TEST(Nvfp4Tiles, TheReferenceMatmulReadsTilesAsTheSource) {
  const int64_t n_out = 64, n_in = 96, n_tok = 3;
  const TestWeight src = make_weight(WeightType::kNvfp4, /*in_major=*/false, n_out, n_in, 9);
  const Tiled t = tile(src.w);
  const auto x = randn(static_cast<size_t>(n_tok * n_in), 4);  // [n_tok, n_in]
  std::vector<float> a(static_cast<size_t>(n_tok * n_out)), b(a.size());
  f32_linear_ref(src.w, x.data(), n_tok, nullptr, a.data());
  f32_linear_ref(t.w, x.data(), n_tok, nullptr, b.data());
  // both decode each row with one rounded factor per block and sum in input order: the same bits
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace oss4
