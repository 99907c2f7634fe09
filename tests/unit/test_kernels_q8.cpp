// The opt-in 8-bit-activation path (ActPrecision::kQ8): the quantizer's contract, the scalar reference against
// double-precision sums and against the f32 path it approximates, and the AVX2 rung against the reference.
//
// SIMD tolerance: both rungs form the same exact integer block sums s_k and the same f32 block factors g_k (the
// quantizer is shared bit for bit), and differ only in the order and fusion of y = sum_k s_k g_k; each is within
// gamma_n sum_k |s_k g_k| of the exact sum (n = blocks + 2), so they differ by at most 2 gamma_n sum_k |s_k g_k|.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/q8_ref.h"
#include "core/thread_pool.h"
#include "test_weights.h"

#if defined(__x86_64__)
#include "backend/cpu/x86/q8_avx2.h"
#endif

namespace oss4 {
namespace {

constexpr int kTwice[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// activations with a zero block, a block of ties (x * 127 / amax = k + 1/2 exactly) and mixed magnitudes
std::vector<float> test_activations(int64_t n_tok, int64_t n_in, uint32_t seed) {
  auto x = randn(static_cast<size_t>(n_tok * n_in), seed);
  for (int64_t i = 0; i < n_in && i < 16; ++i) x[static_cast<size_t>(i)] = 0.0f;
  if (n_in >= 32) {
    for (int64_t i = 16; i < 32; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i - 24) + 0.5f;  // ties
    x[31] = 127.0f;                                                                                    // amax 127: inv 1
  }
  for (size_t i = 0; i < x.size(); i += 37) x[i] *= 50.0f;  // outliers, as activations have
  return x;
}

// y[t, o] in double from the reference quantizer's bytes, and sum_k |s_k g_k| (the summation bound's scale)
void q8_double(const TestWeight& t, const std::vector<float>& x, int64_t n_tok, std::vector<double>* y, std::vector<double>* abs_sum) {
  const int64_t n_in = t.w.n_in, n_out = t.w.n_out, n_blk = n_in / 16;
  std::vector<int8_t> q(x.size());
  std::vector<float> d(static_cast<size_t>(n_tok * n_blk));
  q8_quantize_ref(x.data(), n_tok, n_in, q.data(), d.data());
  y->assign(static_cast<size_t>(n_tok * n_out), 0.0);
  abs_sum->assign(y->size(), 0.0);
  for (int64_t tk = 0; tk < n_tok; ++tk)
    for (int64_t o = 0; o < n_out; ++o)
      for (int64_t k = 0; k < n_blk; ++k) {
        int64_t s = 0;
        for (int64_t i = 16 * k; i < 16 * k + 16; ++i) {
          const uint8_t b = t.w.in_major ? t.data[static_cast<size_t>((i / 2) * n_out + o)] : t.data[static_cast<size_t>(o * n_in / 2 + i / 2)];
          s += q[static_cast<size_t>(tk * n_in + i)] * kTwice[i % 2 ? b >> 4 : b & 15];
        }
        const uint8_t sc = t.w.in_major ? t.scales[static_cast<size_t>(k * n_out + o)] : t.scales[static_cast<size_t>(o * n_blk + k)];
        const float g = e4m3_to_f32(sc) * t.w.scale2 * 0.5f * d[static_cast<size_t>(tk * n_blk + k)];
        (*y)[static_cast<size_t>(tk * n_out + o)] += static_cast<double>(s) * g;
        (*abs_sum)[static_cast<size_t>(tk * n_out + o)] += std::fabs(static_cast<double>(s) * g);
      }
}

TEST(Q8Ref, QuantizerRoundsToTheNearestStepWithinTheBlockRange) {
  const int64_t n_tok = 3, n_in = 96;
  auto x = test_activations(n_tok, n_in, 1);
  std::vector<int8_t> q(x.size());
  std::vector<float> d(static_cast<size_t>(n_tok * n_in / 16));
  q8_quantize_ref(x.data(), n_tok, n_in, q.data(), d.data());
  EXPECT_EQ(d[0], 0.0f);  // the zero block
  for (int64_t i = 0; i < 16; ++i) EXPECT_EQ(q[static_cast<size_t>(i)], 0);
  // the tie block: amax 127 -> d 1, q = x rounded half to even
  EXPECT_EQ(d[1], 1.0f);
  for (int64_t i = 16; i < 31; ++i) EXPECT_EQ(q[static_cast<size_t>(i)], static_cast<int8_t>(std::nearbyint(x[static_cast<size_t>(i)])));
  EXPECT_EQ(q[16], -8);  // -7.5 -> -8
  EXPECT_EQ(q[19], -4);  // -4.5 -> -4
  for (size_t b = 0; b < d.size(); ++b) {
    double amax = 0;
    int qmax = 0;
    for (size_t i = 16 * b; i < 16 * b + 16; ++i) {
      amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
      qmax = std::max(qmax, std::abs(static_cast<int>(q[i])));
      EXPECT_LE(std::abs(static_cast<int>(q[i])), 127);
      // within half a step of x (plus the f32 rounding of x * 127 / amax)
      EXPECT_LE(std::fabs(x[i] - static_cast<double>(q[i]) * d[b]), 0.5 * d[b] * (1 + 1e-5) + 1e-30) << "block " << b << " elem " << i;
    }
    EXPECT_NEAR(d[b], amax / 127.0, amax * 1e-7);
    if (amax > 0) {
      EXPECT_EQ(qmax, 127) << "block " << b;
    }
  }
}

TEST(Q8Ref, LinearIsTheScaledIntegerBlockSumsInBothOrientations) {
  const int64_t n_out = 40, n_in = 160, n_tok = 3;
  for (bool in_major : {false, true}) {
    TestWeight t = make_weight(WeightType::kNvfp4, in_major, n_out, n_in, 5);
    auto x = test_activations(n_tok, n_in, 6);
    std::vector<float> y(static_cast<size_t>(n_tok * n_out));
    f32_nvfp4w_q8a_linear_ref(t.w, x.data(), n_tok, nullptr, y.data());
    std::vector<double> want, abs_sum;
    q8_double(t, x, n_tok, &want, &abs_sum);
    const double u = std::ldexp(1.0, -24), n = n_in / 16 + 2, gamma = n * u / (1 - n * u);
    for (size_t i = 0; i < y.size(); ++i) EXPECT_LE(std::fabs(y[i] - want[i]), gamma * abs_sum[i] + 1e-30) << "in_major " << in_major << " i " << i;
  }
}

TEST(Q8Ref, StaysWithinTheQuantizationErrorOfTheF32Path) {
  // |y_q8 - y_f32| <= sum_i |w_i| |x_i - q_i d_k| <= sum_i |w_i| d_k / 2, plus f32 rounding of both sums
  const int64_t n_out = 32, n_in = 256, n_tok = 2;
  TestWeight t = make_weight(WeightType::kNvfp4, true, n_out, n_in, 7);
  auto x = test_activations(n_tok, n_in, 8);
  std::vector<float> yq(static_cast<size_t>(n_tok * n_out)), yf(yq.size());
  f32_nvfp4w_q8a_linear_ref(t.w, x.data(), n_tok, nullptr, yq.data());
  f32_linear_ref(t.w, x.data(), n_tok, nullptr, yf.data());
  for (int64_t tk = 0; tk < n_tok; ++tk)
    for (int64_t o = 0; o < n_out; ++o) {
      double bound = 0, mag = 0;
      for (int64_t i = 0; i < n_in; ++i) {
        double amax = 0;
        for (int64_t j = i / 16 * 16; j < i / 16 * 16 + 16; ++j) amax = std::max(amax, std::fabs(static_cast<double>(x[static_cast<size_t>(tk * n_in + j)])));
        const double w = std::fabs(t.dense[static_cast<size_t>(o * n_in + i)]);
        bound += w * amax / 127.0 / 2.0 * (1 + 1e-5);
        mag += w * std::fabs(x[static_cast<size_t>(tk * n_in + i)]);
      }
      const size_t k = static_cast<size_t>(tk * n_out + o);
      EXPECT_LE(std::fabs(static_cast<double>(yq[k]) - yf[k]), bound + 1e-5 * mag) << "token " << tk << " out " << o;
    }
}

TEST(Q8Dispatch, OnlyInMajorNvfp4TakesTheQ8Path) {
  struct Restore {
    ~Restore() {
      set_act_precision(ActPrecision::kF32);
      (void)set_kernel_isa(best_kernel_isa());
    }
  } restore;
  ASSERT_TRUE(set_kernel_isa(KernelIsa::kRef).ok());
  EXPECT_EQ(act_precision(), ActPrecision::kF32);
  EXPECT_FALSE(parse_act_precision("int8").ok());
  ASSERT_TRUE(parse_act_precision("q8").ok());
  EXPECT_EQ(*parse_act_precision("q8"), ActPrecision::kQ8);
  const int64_t n_tok = 2;
  for (const TestWeight& t : {make_weight(WeightType::kNvfp4, true, 32, 64, 9), make_weight(WeightType::kNvfp4, false, 32, 64, 10),
                              make_weight(WeightType::kMxfp4, false, 32, 64, 11), make_weight(WeightType::kBF16, false, 32, 64, 12)}) {
    auto x = test_activations(n_tok, 64, 13);
    std::vector<float> f32(static_cast<size_t>(n_tok * 32)), q8(f32.size()), q8ref(f32.size());
    set_act_precision(ActPrecision::kF32);
    f32_linear(t.w, x.data(), n_tok, nullptr, f32.data());
    set_act_precision(ActPrecision::kQ8);
    f32_linear(t.w, x.data(), n_tok, nullptr, q8.data());
    const bool takes = t.w.type == WeightType::kNvfp4 && t.w.in_major;
    if (takes) {
      f32_nvfp4w_q8a_linear_ref(t.w, x.data(), n_tok, nullptr, q8ref.data());
      EXPECT_EQ(std::memcmp(q8.data(), q8ref.data(), q8.size() * 4), 0) << t.w.name;
      EXPECT_NE(std::memcmp(q8.data(), f32.data(), q8.size() * 4), 0) << t.w.name;
    } else {
      EXPECT_EQ(std::memcmp(q8.data(), f32.data(), q8.size() * 4), 0) << t.w.name;
    }
  }
}

#if defined(__x86_64__)
class SimdQ8 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (best_kernel_isa() != KernelIsa::kAvx2) GTEST_SKIP() << "no AVX2 rung on this CPU or in this build";
    set_act_precision(ActPrecision::kQ8);
  }
  void TearDown() override {
    set_act_precision(ActPrecision::kF32);
    ASSERT_TRUE(set_kernel_isa(best_kernel_isa()).ok());
    set_kernel_threads(0);
  }
};

TEST_F(SimdQ8, QuantizerMatchesTheReferenceBitForBit) {
  const int64_t n_tok = 5, n_in = 2880;
  auto x = test_activations(n_tok, n_in, 21);
  std::vector<int8_t> qa(x.size()), qr(x.size());
  std::vector<float> da(static_cast<size_t>(n_tok * n_in / 16)), dr(da.size());
  q8_quantize_ref(x.data(), n_tok, n_in, qr.data(), dr.data());
  avx2::q8_quantize(x.data(), n_tok, n_in, qa.data(), da.data());
  EXPECT_EQ(std::memcmp(qa.data(), qr.data(), qa.size()), 0);
  EXPECT_EQ(std::memcmp(da.data(), dr.data(), da.size() * 4), 0);
}

void check_q8(const TestWeight& t, int64_t n_tok, bool with_bias, int threads) {
  const int64_t n_out = t.w.n_out, n_in = t.w.n_in;
  auto x = test_activations(n_tok, n_in, 31);
  auto bias = randn(static_cast<size_t>(n_out), 32);
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> want(static_cast<size_t>(n_tok * n_out)), got(want.size(), NAN);
  ASSERT_TRUE(set_kernel_isa(KernelIsa::kRef).ok());
  f32_linear(t.w, x.data(), n_tok, b, want.data());
  ASSERT_TRUE(set_kernel_isa(KernelIsa::kAvx2).ok());
  set_kernel_threads(threads);
  f32_linear(t.w, x.data(), n_tok, b, got.data());
  std::vector<double> exact, abs_sum;
  q8_double(t, x, n_tok, &exact, &abs_sum);
  const double u = std::ldexp(1.0, -24), n = static_cast<double>(n_in / 16 + 2), gamma = n * u / (1 - n * u);
  int64_t bad = 0;
  for (int64_t tk = 0; tk < n_tok; ++tk)
    for (int64_t o = 0; o < n_out; ++o) {
      const size_t k = static_cast<size_t>(tk * n_out + o);
      const double bound = 2 * gamma * (abs_sum[k] + (with_bias ? std::fabs(bias[static_cast<size_t>(o)]) : 0.0));
      if (!(std::fabs(static_cast<double>(got[k]) - want[k]) <= bound) && bad++ < 5)
        ADD_FAILURE() << t.w.name << " n_tok " << n_tok << " threads " << threads << " token " << tk << " out " << o << ": simd " << got[k]
                      << " ref " << want[k] << " bound " << bound;
    }
  EXPECT_EQ(bad, 0);
}

TEST_F(SimdQ8, GemvAndGemmMatchTheReference) {
  // 1-2 tokens: the GEMV split along the inputs; 3+: the GEMM with 4-token tiles and 1-3-token tails. n_in 4128 crosses
  // the GEMM's 256-input panels with a partial one; n_out 96 splits unevenly over 3 threads.
  TestWeight a = make_weight(WeightType::kNvfp4, true, 96, 176, 41);
  TestWeight b = make_weight(WeightType::kNvfp4, true, 64, 4128, 42);
  TestWeight c = make_weight(WeightType::kNvfp4, true, 32, 16, 43);
  for (const TestWeight* t : {&a, &b, &c})
    for (int64_t n_tok : {1, 2, 3, 4, 5, 6, 7, 13})
      for (int threads : {1, 3}) check_q8(*t, n_tok, /*with_bias=*/n_tok != 2, threads);
}

TEST_F(SimdQ8, ResultsDoNotDependOnTheThreadCount) {
  TestWeight t = make_weight(WeightType::kNvfp4, true, 96, 2880, 51);
  for (int64_t n_tok : {1, 2, 9}) {
    auto x = test_activations(n_tok, t.w.n_in, 52);
    std::vector<float> y1(static_cast<size_t>(n_tok * t.w.n_out)), yn(y1.size());
    set_kernel_threads(1);
    f32_linear(t.w, x.data(), n_tok, nullptr, y1.data());
    for (int threads : {2, 3, 7}) {
      set_kernel_threads(threads);
      f32_linear(t.w, x.data(), n_tok, nullptr, yn.data());
      EXPECT_EQ(std::memcmp(y1.data(), yn.data(), y1.size() * sizeof(float)), 0) << "n_tok " << n_tok << " threads " << threads;
    }
  }
}
#endif

}  // namespace
}  // namespace oss4
