// The scalar reference kernels against plain double-precision formulas written out here, and the spec's cross-checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backend/cpu/kernels_ref.h"
#include "numeric/float_formats.h"
#include "numeric/nvfp4.h"

namespace oss4 {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

TEST(KernelsRef, LinearAllLayoutsAgreeWithDouble) {
  const int64_t n_out = 48, n_in = 64, n_tok = 3;
  auto x = randn(static_cast<size_t>(n_tok * n_in), 1);
  auto bias = randn(static_cast<size_t>(n_out), 2);
  // an MXFP4 weight with random nibbles and scales; its decoded values define the dense copies
  std::mt19937 g(3);
  std::vector<uint8_t> blocks(static_cast<size_t>(n_out * n_in / 2)), scales(static_cast<size_t>(n_out * n_in / 32));
  for (auto& b : blocks) b = static_cast<uint8_t>(g());
  for (auto& s : scales) s = static_cast<uint8_t>(120 + g() % 8);
  std::vector<double> w(static_cast<size_t>(n_out * n_in));  // [n_out, n_in]
  for (int64_t o = 0; o < n_out; ++o)
    for (int64_t i = 0; i < n_in; ++i) {
      const uint8_t byte = blocks[static_cast<size_t>(o * n_in / 2 + i / 2)];
      const int nib = i % 2 == 0 ? byte & 15 : byte >> 4;
      w[static_cast<size_t>(o * n_in + i)] = kE2m1Lut[nib] * std::ldexp(1.0, scales[static_cast<size_t>(o * n_in / 32 + i / 32)] - 127);
    }
  std::vector<uint16_t> w_bf16(w.size()), w_bf16_t(w.size());
  std::vector<float> w_f32(w.size());
  for (int64_t o = 0; o < n_out; ++o)
    for (int64_t i = 0; i < n_in; ++i) {
      const float v = static_cast<float>(w[static_cast<size_t>(o * n_in + i)]);
      w_bf16[static_cast<size_t>(o * n_in + i)] = f32_to_bf16(v);
      w_bf16_t[static_cast<size_t>(i * n_out + o)] = f32_to_bf16(v);
      w_f32[static_cast<size_t>(o * n_in + i)] = v;
    }
  LinearWeight mx{{WeightType::kMxfp4, WeightLayout::kRowMajor, n_out, n_in, blocks.data(), scales.data()}, "mx"};
  LinearWeight bf{{WeightType::kBF16, WeightLayout::kRowMajor, n_out, n_in, reinterpret_cast<uint8_t*>(w_bf16.data()), nullptr}, "bf"};
  LinearWeight bft{{WeightType::kBF16, WeightLayout::kInMajor, n_out, n_in, reinterpret_cast<uint8_t*>(w_bf16_t.data()), nullptr}, "bft"};
  LinearWeight f32{{WeightType::kF32, WeightLayout::kRowMajor, n_out, n_in, reinterpret_cast<uint8_t*>(w_f32.data()), nullptr}, "f32"};
  for (const LinearWeight* lw : {&mx, &bf, &bft, &f32}) {
    std::vector<float> y(static_cast<size_t>(n_tok * n_out));
    f32_linear_ref(*lw, x.data(), n_tok, bias.data(), y.data());
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t o = 0; o < n_out; ++o) {
        double want = bias[static_cast<size_t>(o)];
        for (int64_t i = 0; i < n_in; ++i) want += w[static_cast<size_t>(o * n_in + i)] * x[static_cast<size_t>(t * n_in + i)];
        EXPECT_NEAR(y[static_cast<size_t>(t * n_out + o)], want, 1e-5 * (1 + std::fabs(want))) << lw->name;
      }
  }
  EXPECT_EQ(mx.nbytes(), static_cast<size_t>(n_out * n_in / 2 + n_out * n_in / 32));
}

// NVFP4 in both orientations against the codec's own row decode and a double matmul.
TEST(KernelsRef, Nvfp4LinearBothOrientations) {
  const int64_t n_out = 24, n_in = 48, n_tok = 2;
  auto w = randn(static_cast<size_t>(n_out * n_in), 11, 0.05f);
  auto x = randn(static_cast<size_t>(n_tok * n_in), 12);
  auto bias = randn(static_cast<size_t>(n_out), 13);
  float amax = 0;
  for (float v : w) amax = std::max(amax, std::fabs(v));
  std::vector<uint8_t> packed(static_cast<size_t>(n_out * n_in / 2)), scales(static_cast<size_t>(n_out * n_in / 16));
  float s2 = 0;
  ASSERT_TRUE(nvfp4_quantize_ref(w.data(), n_out, n_in, amax, packed.data(), scales.data(), &s2, "w").ok());
  std::vector<float> dq(w.size());  // [n_out, n_in] decoded
  for (int64_t o = 0; o < n_out; ++o)
    nvfp4_decode_row_ref(packed.data() + o * n_in / 2, scales.data() + o * n_in / 16, s2, n_in, dq.data() + o * n_in);
  // ModelOpt's exported expert orientation: bytes [n_in/2, n_out], scales [n_in/16, n_out]
  std::vector<uint8_t> packed_t(packed.size()), scales_t(scales.size());
  for (int64_t o = 0; o < n_out; ++o) {
    for (int64_t j = 0; j < n_in / 2; ++j) packed_t[static_cast<size_t>(j * n_out + o)] = packed[static_cast<size_t>(o * n_in / 2 + j)];
    for (int64_t b = 0; b < n_in / 16; ++b) scales_t[static_cast<size_t>(b * n_out + o)] = scales[static_cast<size_t>(o * n_in / 16 + b)];
  }
  LinearWeight rows{{WeightType::kNvfp4, WeightLayout::kRowMajor, n_out, n_in, packed.data(), scales.data(), s2}, "rows"};
  LinearWeight cols{{WeightType::kNvfp4, WeightLayout::kInMajor, n_out, n_in, packed_t.data(), scales_t.data(), s2}, "cols"};
  EXPECT_EQ(rows.nbytes(), static_cast<size_t>(n_out * n_in / 2 + n_out * n_in / 16));
  for (const LinearWeight* lw : {&rows, &cols}) {
    std::vector<float> y(static_cast<size_t>(n_tok * n_out));
    f32_linear_ref(*lw, x.data(), n_tok, bias.data(), y.data());
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t o = 0; o < n_out; ++o) {
        double want = bias[static_cast<size_t>(o)];
        for (int64_t i = 0; i < n_in; ++i) want += static_cast<double>(dq[static_cast<size_t>(o * n_in + i)]) * x[static_cast<size_t>(t * n_in + i)];
        EXPECT_NEAR(y[static_cast<size_t>(t * n_out + o)], want, 1e-5 * (1 + std::fabs(want))) << lw->name;
      }
  }
}

TEST(KernelsRef, RmsNorm) {
  const int64_t n = 37;
  auto x = randn(2 * n, 4, 3.0f), w = randn(n, 5);
  std::vector<float> y(2 * n);
  f32_rmsnorm_ref(x.data(), w.data(), 2, n, 1e-5f, y.data());
  for (int t = 0; t < 2; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[t * n + i]) * x[t * n + i];
    const double r = 1.0 / std::sqrt(ss / n + 1e-5);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[t * n + i], w[i] * x[t * n + i] * r, 1e-5);
  }
}

TEST(KernelsRef, RopeHalfSplitWithConcentration) {
  RopeTable rope;
  rope.head_dim = 8;
  rope.inv_freq = {1.0f, 0.1f, 0.01f, 0.001f};
  rope.concentration = 1.5f;
  auto x = randn(2 * 2 * 8, 6);
  auto orig = x;
  const int64_t pos[2] = {0, 37};
  f32_rope_ref(x.data(), pos, 2, 2, rope);
  for (int t = 0; t < 2; ++t)
    for (int h = 0; h < 2; ++h)
      for (int i = 0; i < 4; ++i) {
        const float* o = orig.data() + (t * 2 + h) * 8;
        const double th = static_cast<double>(pos[t]) * rope.inv_freq[i];
        const double c = std::cos(th) * 1.5, s = std::sin(th) * 1.5;
        EXPECT_NEAR(x[(t * 2 + h) * 8 + i], o[i] * c - o[i + 4] * s, 1e-5);
        EXPECT_NEAR(x[(t * 2 + h) * 8 + i + 4], o[i + 4] * c + o[i] * s, 1e-5);
      }
}

// spec §5: query 200 in a sliding layer (window 128) sees keys 73..200.
TEST(KernelsRef, SlidingWindowSpan) {
  const int64_t n_pos = 201, hd = 2;
  std::vector<float> k(static_cast<size_t>(n_pos * hd), 0.0f), v(static_cast<size_t>(n_pos * hd), 0.0f);
  for (int64_t j = 0; j < n_pos; ++j) v[static_cast<size_t>(j * hd)] = static_cast<float>(j);
  KvLayerView kv{k.data(), v.data(), n_pos, false};
  const float q[2] = {0, 0};
  const float sink = -1e30f;  // no sink mass: the output is the plain mean of the visible values
  const int64_t pos = 200;
  float out[2];
  f32_sdpa_sink_ref(q, &pos, 1, 1, 1, hd, kv, 128, &sink, 0.125f, out);
  EXPECT_NEAR(out[0], (73 + 200) / 2.0, 1e-3);
  f32_sdpa_sink_ref(q, &pos, 1, 1, 1, hd, kv, 0, &sink, 0.125f, out);
  EXPECT_NEAR(out[0], 100.0, 1e-3) << "full attention sees 0..200";
}

TEST(KernelsRef, AttentionWithSinksAndGqaAgainstDouble) {
  const int64_t n_heads = 4, n_kv = 2, hd = 8, n_pos = 20, window = 5;
  auto k = randn(static_cast<size_t>(n_pos * n_kv * hd), 7), v = randn(static_cast<size_t>(n_pos * n_kv * hd), 8);
  auto q = randn(static_cast<size_t>(2 * n_heads * hd), 9);
  auto sinks = randn(static_cast<size_t>(n_heads), 10);
  // a ring of capacity 12 holding positions 8..19 in slot p % 12
  const int64_t cap = 12;
  std::vector<float> kr(static_cast<size_t>(cap * n_kv * hd)), vr(kr.size());
  for (int64_t p = n_pos - cap; p < n_pos; ++p)
    for (int64_t i = 0; i < n_kv * hd; ++i) {
      kr[static_cast<size_t>((p % cap) * n_kv * hd + i)] = k[static_cast<size_t>(p * n_kv * hd + i)];
      vr[static_cast<size_t>((p % cap) * n_kv * hd + i)] = v[static_cast<size_t>(p * n_kv * hd + i)];
    }
  const int64_t pos[2] = {15, 19};
  for (bool ring : {false, true}) {
    KvLayerView kv = ring ? KvLayerView{kr.data(), vr.data(), cap, true} : KvLayerView{k.data(), v.data(), n_pos, false};
    std::vector<float> out(static_cast<size_t>(2 * n_heads * hd));
    f32_sdpa_sink_ref(q.data(), pos, 2, n_heads, n_kv, hd, kv, window, sinks.data(), 0.35f, out.data());
    for (int t = 0; t < 2; ++t)
      for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t g = h / (n_heads / n_kv);
        std::vector<double> s;
        for (int64_t j = pos[t] - window + 1; j <= pos[t]; ++j) {
          double d = 0;
          for (int64_t i = 0; i < hd; ++i) d += static_cast<double>(q[(t * n_heads + h) * hd + i]) * k[(j * n_kv + g) * hd + i];
          s.push_back(d * 0.35);
        }
        double denom = std::exp(static_cast<double>(sinks[static_cast<size_t>(h)]));
        for (double x : s) denom += std::exp(x);
        for (int64_t i = 0; i < hd; ++i) {
          double want = 0;
          for (size_t jj = 0; jj < s.size(); ++jj)
            want += std::exp(s[jj]) / denom * v[((pos[t] - window + 1 + static_cast<int64_t>(jj)) * n_kv + g) * hd + i];
          EXPECT_NEAR(out[(t * n_heads + h) * hd + i], want, 1e-5) << "ring " << ring;
        }
      }
  }
}

// spec §5: top-k of the raw logits, softmax over those k only.
TEST(KernelsRef, TopkThenSoftmax) {
  const float logits[5] = {1.0f, 5.0f, 3.0f, 4.0f, 4.0f};
  int32_t idx[3];
  float w[3];
  f32_topk_softmax_ref(logits, 5, 3, idx, w);
  EXPECT_EQ(idx[0], 1);
  EXPECT_EQ(idx[1], 3) << "ties go to the lower index";
  EXPECT_EQ(idx[2], 4);
  const double z = std::exp(5.0) + 2 * std::exp(4.0);
  EXPECT_NEAR(w[0], std::exp(5.0) / z, 1e-6);
  EXPECT_NEAR(w[1], std::exp(4.0) / z, 1e-6);
  EXPECT_NEAR(w[0] + w[1] + w[2], 1.0, 1e-6);
}

TEST(KernelsRef, ClampedSwiglu) {
  const float gu[8] = {1.0f, 2.0f, 9.0f, -9.0f, -3.0f, 8.0f, 0.5f, -0.25f};
  float out[4];
  f32_swiglu_ref(gu, 4, 1.702f, 7.0f, out);
  auto ref = [](double g, double u) {
    g = std::min(g, 7.0);
    u = std::clamp(u, -7.0, 7.0);
    return g / (1 + std::exp(-1.702 * g)) * (u + 1);
  };
  for (int j = 0; j < 4; ++j) EXPECT_NEAR(out[j], ref(gu[2 * j], gu[2 * j + 1]), 1e-5);
  EXPECT_NEAR(out[1], 7.0 / (1 + std::exp(-1.702 * 7)) * -6.0, 1e-4) << "gate clamped at 7, up at -7";
}

}  // namespace
}  // namespace oss4
