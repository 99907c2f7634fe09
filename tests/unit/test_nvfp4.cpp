// The NVFP4 codec against NVIDIA ModelOpt 0.47 (fixtures in tests/data/nvfp4, made by
// tools/reference/make_nvfp4_fixtures.py), exhaustive E4M3 / E2M1 rounding checks, input errors, and the reference
// matmul against a double-precision product of the decoded weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/nvfp4_ref.h"
#include "format/safetensors.h"
#include "numeric/float_formats.h"
#include "numeric/nvfp4.h"

namespace oss4 {
namespace {

const std::string kDir = std::string(OSS4_TEST_DATA) + "/nvfp4";
constexpr size_t kMatrixFixtures = 16;  // w_*.safetensors written by make_nvfp4_fixtures.py

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// a copy of one tensor's bytes, checked for dtype (shape returned); empty with a test failure when absent.
template <class T>
std::vector<T> read_tensor(const TensorStore& st, const std::string& name, DType dtype, std::vector<int64_t>* shape) {
  const TensorView* t = st.find(name);
  if (t == nullptr || t->dtype != dtype || t->nbytes % sizeof(T) != 0) {
    ADD_FAILURE() << st.dir() << ": no tensor '" << name << "' of dtype " << dtype_name(dtype);
    return {};
  }
  if (shape != nullptr) *shape = t->shape;
  std::vector<T> v(t->nbytes / sizeof(T));
  std::memcpy(v.data(), t->data, t->nbytes);
  return v;
}

float read_scalar(const TensorStore& st, const std::string& name) {
  std::vector<int64_t> shape;
  auto v = read_tensor<float>(st, name, DType::kF32, &shape);
  EXPECT_TRUE(shape.empty()) << name << " should be 0-d";
  return v.empty() ? NAN : v[0];
}

// number of differing bytes; the first difference goes to *first.
template <class T>
size_t count_diff(const std::vector<T>& a, const std::vector<T>& b, size_t* first) {
  size_t n = 0;
  *first = a.size();
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) {
      if (n == 0) *first = i;
      ++n;
    }
  }
  return n + (a.size() > b.size() ? a.size() - b.size() : b.size() - a.size());
}

std::vector<std::string> matrix_fixtures() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(kDir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("w_", 0) == 0 && e.path().extension() == ".safetensors") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Nvfp4, MatchesModelOptOnEveryFixture) {
  const auto files = matrix_fixtures();
  ASSERT_EQ(files.size(), kMatrixFixtures) << "fixtures in " << kDir;
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    auto st = TensorStore::open_file(path);
    ASSERT_TRUE(st.ok()) << st.status().message();
    std::vector<int64_t> shape;
    const auto w = read_tensor<float>(*st, "input", DType::kF32, &shape);
    ASSERT_EQ(shape.size(), 2u);
    const int64_t n_out = shape[0], n_in = shape[1];
    const float amax = read_scalar(*st, "amax");
    const float want_g = read_scalar(*st, "weight_scale_2");
    std::vector<int64_t> pshape, sshape;
    const auto want_packed = read_tensor<uint8_t>(*st, "packed", DType::kU8, &pshape);
    const auto want_scales = read_tensor<uint8_t>(*st, "scales", DType::kF8E4M3, &sshape);
    const auto want_deq = read_tensor<float>(*st, "dequant", DType::kF32, nullptr);
    ASSERT_EQ(pshape, (std::vector<int64_t>{n_out, n_in / 2}));
    ASSERT_EQ(sshape, (std::vector<int64_t>{n_out, n_in / 16}));

    std::vector<uint8_t> packed(want_packed.size()), scales(want_scales.size());
    float g = 0.0f;
    const Status s = nvfp4_quantize_ref(w.data(), n_out, n_in, amax, packed.data(), scales.data(), &g, path);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(bits_of(g), bits_of(want_g)) << g << " vs " << want_g;
    size_t first = 0;
    EXPECT_EQ(count_diff(scales, want_scales, &first), 0u) << "first block scale mismatch at " << first;
    EXPECT_EQ(count_diff(packed, want_packed, &first), 0u)
        << "first packed mismatch at byte " << first << ": " << int(packed[first]) << " vs " << int(want_packed[first])
        << " (inputs " << w[2 * first] << ", " << w[2 * first + 1] << ")";

    // decoding reproduces NVFP4QTensor.dequantize bit for bit
    std::vector<float> deq(w.size());
    for (int64_t r = 0; r < n_out; ++r) {
      nvfp4_decode_row_ref(packed.data() + r * n_in / 2, scales.data() + r * n_in / 16, g, n_in, deq.data() + r * n_in);
    }
    // ModelOpt's table maps code 0x8 to +0.0 where kE2m1Lut has -0.0: equal values, so zeros compare by value
    for (size_t i = 0; i < deq.size(); ++i)
      if (deq[i] == 0.0f && i < want_deq.size() && want_deq[i] == 0.0f) deq[i] = want_deq[i];
    EXPECT_EQ(count_diff(deq, want_deq, &first), 0u) << "first dequant mismatch at " << first;
  }
}

// the real export of a tiny gpt-oss: q/k/v/o Linear weights [out, in] and the experts' [E, in, out] tensors, which
// ModelOpt quantizes transposed (blocks along in) and writes back as [E, in/2, out] bytes + [E, in/16, out] scales.
TEST(Nvfp4, MatchesModelOptHfExportOfGptOss) {
  auto st = TensorStore::open_file(kDir + "/export_gptoss_tiny.safetensors");
  ASSERT_TRUE(st.ok()) << st.status().message();
  const std::string pre = "model.layers.0.";
  for (const char* p : {"q", "k", "v", "o"}) {
    const std::string name = pre + "self_attn." + p + "_proj.weight";
    SCOPED_TRACE(name);
    std::vector<int64_t> shape;
    const auto w = read_tensor<float>(*st, "source." + name, DType::kF32, &shape);
    ASSERT_EQ(shape.size(), 2u);
    const int64_t n_out = shape[0], n_in = shape[1];
    const auto want_packed = read_tensor<uint8_t>(*st, name, DType::kU8, nullptr);
    const auto want_scales = read_tensor<uint8_t>(*st, name + "_scale", DType::kF8E4M3, nullptr);
    const float want_g = read_scalar(*st, name + "_scale_2");
    std::vector<uint8_t> packed(static_cast<size_t>(n_out * n_in / 2)), scales(static_cast<size_t>(n_out * n_in / 16));
    float g = 0.0f;
    ASSERT_TRUE(nvfp4_quantize_ref(w.data(), n_out, n_in, read_scalar(*st, "amax." + name), packed.data(),
                                   scales.data(), &g, name)
                    .ok());
    size_t first = 0;
    EXPECT_EQ(bits_of(g), bits_of(want_g));
    EXPECT_EQ(count_diff(packed, want_packed, &first), 0u) << "first mismatch at " << first;
    EXPECT_EQ(count_diff(scales, want_scales, &first), 0u) << "first mismatch at " << first;
  }
  for (const char* p : {"gate_up_proj", "down_proj"}) {
    const std::string name = pre + "mlp.experts." + p;
    SCOPED_TRACE(name);
    std::vector<int64_t> shape, pshape, sshape;
    const auto w = read_tensor<float>(*st, "source." + name, DType::kF32, &shape);  // [E, in, out]
    ASSERT_EQ(shape.size(), 3u);
    const int64_t n_exp = shape[0], n_in = shape[1], n_out = shape[2];
    const auto want_packed = read_tensor<uint8_t>(*st, name, DType::kU8, &pshape);
    const auto want_scales = read_tensor<uint8_t>(*st, name + "_weight_scale", DType::kF8E4M3, &sshape);
    ASSERT_EQ(pshape, (std::vector<int64_t>{n_exp, n_in / 2, n_out}));
    ASSERT_EQ(sshape, (std::vector<int64_t>{n_exp, n_in / 16, n_out}));
    const float want_g = read_scalar(*st, name + "_weight_scale_2");
    const float amax = read_scalar(*st, "amax." + name);
    size_t n_bad = 0;
    for (int64_t e = 0; e < n_exp; ++e) {
      std::vector<float> wt(static_cast<size_t>(n_out * n_in));  // [out, in]
      for (int64_t i = 0; i < n_in; ++i)
        for (int64_t o = 0; o < n_out; ++o) wt[o * n_in + i] = w[(e * n_in + i) * n_out + o];
      std::vector<uint8_t> packed(static_cast<size_t>(n_out * n_in / 2));
      std::vector<uint8_t> scales(static_cast<size_t>(n_out * n_in / 16));
      float g = 0.0f;
      ASSERT_TRUE(nvfp4_quantize_ref(wt.data(), n_out, n_in, amax, packed.data(), scales.data(), &g, name).ok());
      EXPECT_EQ(bits_of(g), bits_of(want_g));
      for (int64_t o = 0; o < n_out; ++o) {
        for (int64_t j = 0; j < n_in / 2; ++j)
          n_bad += packed[o * n_in / 2 + j] != want_packed[(e * n_in / 2 + j) * n_out + o];
        for (int64_t b = 0; b < n_in / 16; ++b)
          n_bad += scales[o * n_in / 16 + b] != want_scales[(e * n_in / 16 + b) * n_out + o];
      }
    }
    EXPECT_EQ(n_bad, 0u);
  }
}

TEST(Nvfp4, ScalarCastsMatchTorchAndModelOpt) {
  auto st = TensorStore::open_file(kDir + "/codecs.safetensors");
  ASSERT_TRUE(st.ok()) << st.status().message();
  const auto x4 = read_tensor<float>(*st, "e4m3_input", DType::kF32, nullptr);
  const auto c4 = read_tensor<uint8_t>(*st, "e4m3_codes", DType::kU8, nullptr);
  ASSERT_EQ(x4.size(), c4.size());
  for (size_t i = 0; i < x4.size(); ++i) EXPECT_EQ(f32_to_e4m3_rne(x4[i]), c4[i]) << "torch e4m3 cast of " << x4[i];
  const auto x2 = read_tensor<float>(*st, "e2m1_input", DType::kF32, nullptr);
  const auto c2 = read_tensor<uint8_t>(*st, "e2m1_codes", DType::kU8, nullptr);
  ASSERT_EQ(x2.size(), c2.size());
  for (size_t i = 0; i < x2.size(); ++i) EXPECT_EQ(f32_to_e2m1_rne(x2[i]), c2[i]) << "_cast_fp4 of " << x2[i];
}

TEST(Nvfp4, E4m3EveryCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    const uint8_t code = static_cast<uint8_t>(c);
    const float v = e4m3_to_f32(code);
    if ((c & 0x7f) == 0x7f) {
      EXPECT_TRUE(std::isnan(v));
      EXPECT_EQ(f32_to_e4m3_rne(v), (c & 0x80) | 0x7f);
      continue;
    }
    EXPECT_EQ(f32_to_e4m3_rne(v), code) << "code " << c << " value " << v;
    EXPECT_EQ(bits_of(e4m3_from_f32(v)), bits_of(v));
  }
}

TEST(Nvfp4, E4m3MidpointsRoundToEven) {
  for (int c = 0; c < 0x7e; ++c) {
    for (const uint8_t sign : {uint8_t{0x00}, uint8_t{0x80}}) {
      const uint8_t lo = static_cast<uint8_t>(c) | sign, hi = static_cast<uint8_t>(c + 1) | sign;
      const float mid = (e4m3_to_f32(lo) + e4m3_to_f32(hi)) / 2.0f;  // exact: 5 significant bits at most
      const float toward_zero = std::nextafter(mid, 0.0f);
      const float away = std::nextafter(mid, sign ? -INFINITY : INFINITY);
      EXPECT_EQ(f32_to_e4m3_rne(mid), (c % 2 == 0) ? lo : hi) << "midpoint " << mid;
      EXPECT_EQ(f32_to_e4m3_rne(toward_zero), lo) << toward_zero;
      EXPECT_EQ(f32_to_e4m3_rne(away), hi) << away;
    }
  }
}

TEST(Nvfp4, E4m3OverflowIsNanLikeTorch) {
  EXPECT_EQ(f32_to_e4m3_rne(448.0f), 0x7e);
  EXPECT_EQ(f32_to_e4m3_rne(464.0f), 0x7e);  // tie between 448 and 480 goes to the even 448
  EXPECT_EQ(f32_to_e4m3_rne(std::nextafter(464.0f, INFINITY)), 0x7f);
  EXPECT_EQ(f32_to_e4m3_rne(-470.0f), 0xff);
  EXPECT_EQ(f32_to_e4m3_rne(1e30f), 0x7f);
  EXPECT_EQ(f32_to_e4m3_rne(INFINITY), 0x7f);
  EXPECT_EQ(f32_to_e4m3_rne(-INFINITY), 0xff);
  EXPECT_EQ(f32_to_e4m3_rne(std::numeric_limits<float>::quiet_NaN()), 0x7f);
  EXPECT_EQ(f32_to_e4m3_rne(-0.0f), 0x80);
  EXPECT_EQ(f32_to_e4m3_rne(0x1p-10f), 0x00);  // half the smallest subnormal: tie to even 0
  EXPECT_EQ(f32_to_e4m3_rne(std::nextafter(0x1p-10f, 1.0f)), 0x01);
  EXPECT_EQ(f32_to_e4m3_rne(-1e-30f), 0x80);
  EXPECT_EQ(f32_to_e4m3_rne(1e-45f), 0x00);
}

TEST(Nvfp4, E2m1Thresholds) {
  struct Case {
    float x;
    uint8_t code;
  };
  const Case cases[] = {
      {0.0f, 0x0},  {0.25f, 0x0}, {0.26f, 0x1}, {0.5f, 0x1},  {0.75f, 0x2}, {1.0f, 0x2},  {1.25f, 0x2},
      {1.26f, 0x3}, {1.5f, 0x3},  {1.75f, 0x4}, {2.0f, 0x4},  {2.5f, 0x4},  {2.51f, 0x5}, {3.0f, 0x5},
      {3.5f, 0x6},  {4.0f, 0x6},  {5.0f, 0x6},  {5.01f, 0x7}, {6.0f, 0x7},  {1e30f, 0x7},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(f32_to_e2m1_rne(c.x), c.code) << c.x;
    EXPECT_EQ(f32_to_e2m1_rne(-c.x), c.x == 0.0f ? 0x0 : (c.code | 0x8)) << -c.x;
  }
  for (const float t : {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f}) {
    EXPECT_EQ(f32_to_e2m1_rne(std::nextafter(t, 0.0f)), f32_to_e2m1_rne(t - 0.01f)) << t;
    EXPECT_EQ(f32_to_e2m1_rne(std::nextafter(t, 8.0f)), f32_to_e2m1_rne(t + 0.01f)) << t;
  }
  for (int q = 0; q < 16; ++q) {
    if (q == 8) continue;  // -0.0 encodes as +0 (ModelOpt's sign bit is x < 0)
    EXPECT_EQ(f32_to_e2m1_rne(kE2m1Lut[q]), q);
  }
  // ModelOpt keeps the sign of a negative that rounds to zero (code 0x8), but not of -0.0
  EXPECT_EQ(f32_to_e2m1_rne(-1e-30f), 0x8);
  EXPECT_EQ(f32_to_e2m1_rne(-0.25f), 0x8);
  EXPECT_EQ(f32_to_e2m1_rne(-0.0f), 0x0);
  EXPECT_EQ(f32_to_e2m1_rne(INFINITY), 0x7);
  EXPECT_EQ(f32_to_e2m1_rne(-INFINITY), 0xf);
  EXPECT_EQ(f32_to_e2m1_rne(std::numeric_limits<float>::quiet_NaN()), 0x7);
}

TEST(Nvfp4, BlockScaleRules) {
  const float g = nvfp4_weight_scale_2(2688.0f);
  EXPECT_EQ(g, 1.0f);
  EXPECT_EQ(nvfp4_block_scale(0.0f, g), 0x38);       // a zero block gets scale 1.0
  EXPECT_EQ(nvfp4_block_scale(6.0f, g), 0x38);
  EXPECT_EQ(nvfp4_block_scale(1e-6f, g), 0x01);      // clamped up to 2^-9
  EXPECT_EQ(nvfp4_block_scale(6.0f * 1000.0f, g), 0x7e);  // clamped down to 448 (no NaN)
  EXPECT_EQ(nvfp4_block_scale(1e-45f, 1e4f / 2688.0f), 0x38);  // the ratio underflows to 0 -> 1.0
}

TEST(Nvfp4, BadInputsAreErrorsNamingTheTensor) {
  std::vector<float> w(4 * 32, 0.5f);  // [4, 32]
  std::vector<uint8_t> packed(4 * 16), scales(4 * 2);
  float g = 0.0f;
  auto run = [&](int64_t n_out, int64_t n_in, float amax) {
    return nvfp4_quantize_ref(w.data(), n_out, n_in, amax, packed.data(), scales.data(), &g, "blk.3.ffn_up");
  };
  ASSERT_TRUE(run(4, 32, 0.5f).ok());

  w[1 * 32 + 3] = std::numeric_limits<float>::quiet_NaN();
  Status s = run(4, 32, 0.5f);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("blk.3.ffn_up"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[1, 3]"), std::string::npos) << s.message();
  w[1 * 32 + 3] = -INFINITY;
  s = run(4, 32, 0.5f);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("blk.3.ffn_up"), std::string::npos) << s.message();
  w[1 * 32 + 3] = 0.5f;

  s = run(4, 24, 0.5f);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("blk.3.ffn_up"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("multiple of 16"), std::string::npos) << s.message();
  for (const float amax : {0.0f, -1.0f, NAN, INFINITY, 1e-45f}) {
    s = run(4, 32, amax);
    EXPECT_FALSE(s.ok()) << amax;
    EXPECT_NE(s.message().find("blk.3.ffn_up"), std::string::npos) << s.message();
  }
}

TEST(Nvfp4, MatmulRefAgreesWithDecodedDouble) {
  const int64_t n_out = 24, n_in = 96, n_tok = 3;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(n_out * n_in));  // [n_out, n_in]
  std::vector<float> x(static_cast<size_t>(n_tok * n_in));  // [n_tok, n_in]
  std::vector<float> bias(static_cast<size_t>(n_out));
  for (auto& v : w) v = nd(rng) * 0.05f;
  for (auto& v : x) v = nd(rng);
  for (auto& v : bias) v = nd(rng);
  float amax = 0.0f;
  for (float v : w) amax = std::fmax(amax, std::fabs(v));
  std::vector<uint8_t> packed(static_cast<size_t>(n_out * n_in / 2)), scales(static_cast<size_t>(n_out * n_in / 16));
  float g = 0.0f;
  ASSERT_TRUE(nvfp4_quantize_ref(w.data(), n_out, n_in, amax, packed.data(), scales.data(), &g, "w").ok());

  std::vector<float> dec(w.size());  // [n_out, n_in]
  for (int64_t o = 0; o < n_out; ++o)
    nvfp4_decode_row_ref(packed.data() + o * n_in / 2, scales.data() + o * n_in / 16, g, n_in, dec.data() + o * n_in);
  // decoding is close to the input: within half an E2M1 step of the block (and exact where w is on the grid)
  for (int64_t o = 0; o < n_out; ++o)
    for (int64_t i = 0; i < n_in; ++i) {
      const double step = e4m3_to_f32(scales[static_cast<size_t>(o * n_in / 16 + i / 16)]) * static_cast<double>(g);
      EXPECT_LE(std::fabs(dec[o * n_in + i] - w[o * n_in + i]), step * 1.0 + 1e-12);
    }

  for (const float* b : {static_cast<const float*>(nullptr), static_cast<const float*>(bias.data())}) {
    std::vector<float> y(static_cast<size_t>(n_tok * n_out));
    f32_nvfp4w_matmul_ref(packed.data(), scales.data(), g, n_out, n_in, x.data(), n_tok, b, y.data());
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t o = 0; o < n_out; ++o) {
        double acc = b ? b[o] : 0.0, mag = b ? std::fabs(b[o]) : 0.0;
        for (int64_t i = 0; i < n_in; ++i) {
          acc += static_cast<double>(dec[o * n_in + i]) * x[t * n_in + i];
          mag += std::fabs(static_cast<double>(dec[o * n_in + i]) * x[t * n_in + i]);
        }
        EXPECT_NEAR(y[t * n_out + o], acc, 1e-5 * mag + 1e-30) << "t " << t << " o " << o;
      }
  }
}

}  // namespace
}  // namespace oss4
