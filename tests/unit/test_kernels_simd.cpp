// The SIMD rung against the scalar reference rung, through the dispatching entry points of kernels.h: every weight
// layout, GEMV and GEMM token counts, and several thread counts.
//
// Tolerance: both rungs compute y = sum_i w_i x_i in f32, in different orders (and the SIMD rung may round the
// decoded weight lut * factor once more). Each result is within gamma_n * sum_i |w_i x_i| of the exact sum,
// gamma_n = n u / (1 - n u), u = 2^-24, n = n_in + 2; so the two differ by at most 2 gamma_n sum_i |w_i x_i|. The test
// computes sum_i |w_i x_i| in double from the reference-decoded weights and checks that bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/kernels.h"
#include "core/thread_pool.h"
#include "numeric/float_formats.h"
#include "numeric/nvfp4.h"
#include "test_weights.h"

namespace oss4 {
namespace {

class SimdRung : public ::testing::Test {
 protected:
  void SetUp() override {
    if (best_kernel_isa() == KernelIsa::kRef) GTEST_SKIP() << "no SIMD rung on this CPU";
  }
  void TearDown() override {
    ASSERT_TRUE(set_kernel_isa(best_kernel_isa()).ok());
    set_kernel_threads(0);
  }
};

void check_linear(const TestWeight& t, int64_t n_tok, bool with_bias, int threads) {
  const int64_t n_out = t.w.n_out, n_in = t.w.n_in;
  auto x = randn(static_cast<size_t>(n_tok * n_in), 7);
  auto bias = randn(static_cast<size_t>(n_out), 8);
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> want(static_cast<size_t>(n_tok * n_out)), got(want.size(), NAN);
  ASSERT_TRUE(set_kernel_isa(KernelIsa::kRef).ok());
  f32_linear(t.w, x.data(), n_tok, b, want.data());
  ASSERT_TRUE(set_kernel_isa(best_kernel_isa()).ok());
  set_kernel_threads(threads);
  f32_linear(t.w, x.data(), n_tok, b, got.data());
  const double u = std::ldexp(1.0, -24), n = static_cast<double>(n_in + 2);
  const double gamma = n * u / (1 - n * u);
  int64_t bad = 0;
  for (int64_t tk = 0; tk < n_tok; ++tk)
    for (int64_t o = 0; o < n_out; ++o) {
      double abs_sum = with_bias ? std::fabs(bias[static_cast<size_t>(o)]) : 0.0;
      for (int64_t i = 0; i < n_in; ++i)
        abs_sum += std::fabs(t.dense[static_cast<size_t>(o * n_in + i)] * x[static_cast<size_t>(tk * n_in + i)]);
      const double diff = std::fabs(static_cast<double>(got[static_cast<size_t>(tk * n_out + o)]) - want[static_cast<size_t>(tk * n_out + o)]);
      if (!(diff <= 2 * gamma * abs_sum) && bad++ < 5) {
        ADD_FAILURE() << t.w.name << " n_tok " << n_tok << " threads " << threads << " token " << tk << " out " << o << ": simd "
                      << got[static_cast<size_t>(tk * n_out + o)] << " ref " << want[static_cast<size_t>(tk * n_out + o)]
                      << " bound " << 2 * gamma * abs_sum;
      }
    }
  EXPECT_EQ(bad, 0) << t.w.name;
}

TEST_F(SimdRung, LinearEveryLayoutMatchesReference) {
  const int64_t n_in = 160;  // 5 MXFP4 blocks, 10 NVFP4 blocks: odd counts exercise the unrolled loops' tails
  struct Case {
    WeightType type;
    bool in_major;
    int64_t n_out;
  };
  // n_out 72 and 40: row tiles and 16-output in-major tiles with a remainder
  for (const Case& c : {Case{WeightType::kF32, false, 72}, Case{WeightType::kBF16, false, 72}, Case{WeightType::kBF16, true, 72},
                        Case{WeightType::kMxfp4, false, 72}, Case{WeightType::kNvfp4, false, 40}, Case{WeightType::kNvfp4, true, 40}}) {
    TestWeight t = make_weight(c.type, c.in_major, c.n_out, n_in, 11);
    for (int64_t n_tok : {1, 2, 3, 4, 5, 7, 13}) {
      for (int threads : {1, 2, 3}) check_linear(t, n_tok, /*with_bias=*/n_tok % 2 == 1, threads);
    }
  }
}

TEST_F(SimdRung, DenseOddInputCountUsesScalarTail) {
  for (bool in_major : {false, true}) {
    TestWeight t = make_weight(WeightType::kBF16, in_major, 33, 37, 5);
    for (int64_t n_tok : {1, 6}) check_linear(t, n_tok, true, 2);
  }
}

TEST_F(SimdRung, LargeShapesAcrossKBlocks) {
  // n_in past the GEMM k blocks (512 row-major, 256 in-major)
  TestWeight a = make_weight(WeightType::kNvfp4, false, 48, 1056, 3);
  TestWeight b = make_weight(WeightType::kNvfp4, true, 48, 1056, 4);
  TestWeight c = make_weight(WeightType::kMxfp4, false, 20, 1056, 5);
  for (const TestWeight* t : {&a, &b, &c})
    for (int64_t n_tok : {1, 9}) check_linear(*t, n_tok, true, 2);
}

TEST_F(SimdRung, Fp4GemvLaneOrderKernels) {
  // n_in a multiple of 64 (row-major) and n_out a multiple of 32 (in-major) select the lane-order GEMV of
  // gemv_fp4_avx2.cpp; 1 to 4 tokens cover its one- and two-token variants (and, from 3 in-major tokens, the GEMM
  // on its lane-order panels; 13 adds a partial 6-token tile), 3 threads split the outputs unevenly
  TestWeight a = make_weight(WeightType::kNvfp4, false, 37, 192, 21);
  TestWeight b = make_weight(WeightType::kMxfp4, false, 37, 192, 22);
  TestWeight c = make_weight(WeightType::kNvfp4, true, 96, 176, 23);
  TestWeight d = make_weight(WeightType::kNvfp4, true, 320, 64, 24);
  for (const TestWeight* t : {&a, &b, &c, &d})
    for (int64_t n_tok : {1, 2, 3, 4, 13})
      for (int threads : {1, 3}) check_linear(*t, n_tok, /*with_bias=*/n_tok != 2, threads);
}

TEST_F(SimdRung, ResultsDoNotDependOnTheThreadCount) {
  // docs/architecture.md promises it: a reply must not change with -t
  for (const TestWeight& t : {make_weight(WeightType::kNvfp4, true, 96, 2880, 31), make_weight(WeightType::kNvfp4, false, 40, 192, 32),
                              make_weight(WeightType::kMxfp4, false, 40, 192, 33), make_weight(WeightType::kBF16, false, 40, 96, 34)}) {
    for (int64_t n_tok : {1, 2, 4, 9}) {
      auto x = randn(static_cast<size_t>(n_tok * t.w.n_in), 9);
      std::vector<float> y1(static_cast<size_t>(n_tok * t.w.n_out)), yn(y1.size());
      set_kernel_threads(1);
      f32_linear(t.w, x.data(), n_tok, nullptr, y1.data());
      for (int threads : {2, 3, 7}) {
        set_kernel_threads(threads);
        f32_linear(t.w, x.data(), n_tok, nullptr, yn.data());
        EXPECT_EQ(std::memcmp(y1.data(), yn.data(), y1.size() * sizeof(float)), 0) << t.w.name << " n_tok " << n_tok << " threads " << threads;
      }
    }
  }
}

TEST_F(SimdRung, AttentionWithSinksAndWindowMatchesReference) {
  const int64_t n_heads = 6, n_kv = 2, n_ctx = 40;
  // 64 (gpt-oss) and 24: the register kernels (head_dim = 8V); 20: the general loop
  for (int64_t hd : {64, 24, 20})
  for (int64_t window : {int64_t{0}, int64_t{9}}) {
    for (bool ring : {false, true}) {
      const int64_t cap = ring ? 17 : n_ctx;
      auto k = randn(static_cast<size_t>(cap * n_kv * hd), 1), v = randn(static_cast<size_t>(cap * n_kv * hd), 2);
      auto sinks = randn(static_cast<size_t>(n_heads), 3);
      const int64_t n_tok = 5;
      auto q = randn(static_cast<size_t>(n_tok * n_heads * hd), 4);
      // the last n_tok positions; with a ring of 17 the window (9) plus the chunk fits
      std::vector<int64_t> pos(static_cast<size_t>(n_tok));
      for (int64_t t = 0; t < n_tok; ++t) pos[static_cast<size_t>(t)] = n_ctx - n_tok + t;
      if (ring && window == 0) continue;  // a ring only serves sliding layers
      KvLayerView kv{k.data(), v.data(), cap, ring};
      std::vector<float> want(q.size()), got(q.size(), NAN);
      f32_sdpa_sink_ref(q.data(), pos.data(), n_tok, n_heads, n_kv, hd, kv, window, sinks.data(), 0.2f, want.data());
      set_kernel_threads(2);
      f32_sdpa_sink(q.data(), pos.data(), n_tok, n_heads, n_kv, hd, kv, window, sinks.data(), 0.2f, got.data());
      // outputs are convex combinations of values; scores differ by a few ulps of |q||k|
      for (size_t i = 0; i < q.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5f) << "hd " << hd << " window " << window << " ring " << ring << " i " << i;
    }
  }
}

// exp256 (Cephes' expf polynomial) against std::exp within a few ulp, across the clamps, the gate's whole range (SwiGLU
// clamps only its top) and a row length with a scalar tail
TEST_F(SimdRung, SwigluMatchesReference) {
  const int64_t n_ff = 203, n_rows = 5;
  std::vector<float> gu(static_cast<size_t>(n_rows * 2 * n_ff));
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> wide(-70.0f, 20.0f), narrow(-3.0f, 3.0f);
  for (size_t i = 0; i < gu.size(); ++i) gu[i] = (i / 7) % 2 ? wide(rng) : narrow(rng);
  gu[6] = NAN;  // a NaN gate stays NaN in both rungs
  std::vector<float> want(static_cast<size_t>(n_rows * n_ff)), got(want.size());
  for (int64_t r = 0; r < n_rows; ++r) f32_swiglu_ref(gu.data() + r * 2 * n_ff, n_ff, 1.702f, 7.0f, want.data() + r * n_ff);
  set_kernel_threads(2);
  f32_swiglu(gu.data(), n_rows, n_ff, 1.702f, 7.0f, got.data());
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << i;
      continue;
    }
    EXPECT_NEAR(got[i], want[i], 1e-6f * std::max(1e-30f, std::fabs(want[i])) + 1e-30f) << "i " << i << " gate " << gu[2 * i % gu.size()];
  }
}

TEST(KernelDispatch, NamesAndForcing) {
  EXPECT_STREQ(kernel_isa_name(KernelIsa::kRef), "ref");
  EXPECT_TRUE(parse_kernel_isa("avx2").ok());
  EXPECT_FALSE(parse_kernel_isa("sse9").ok());
  EXPECT_TRUE(set_kernel_isa(KernelIsa::kRef).ok());
  EXPECT_EQ(kernel_isa(), KernelIsa::kRef);
  EXPECT_FALSE(set_kernel_isa(KernelIsa::kAvx512).ok());  // a slot with no kernels yet
  EXPECT_EQ(kernel_isa(), KernelIsa::kRef);
  EXPECT_TRUE(set_kernel_isa(best_kernel_isa()).ok());
}

TEST(ThreadPool, RegionsLargerThanOneStateWordRunInPieces) {
  ThreadPool pool(3);
  const int64_t n = (int64_t{1} << 20) + 3;  // past the 20-bit task index of one region
  std::vector<uint8_t> hits(static_cast<size_t>(n), 0);
  pool.run(n, [&](int64_t t) { hits[static_cast<size_t>(t)] += 1; });
  EXPECT_EQ(std::count(hits.begin(), hits.end(), uint8_t{1}), n);
}

TEST(ThreadPool, RunsEveryTaskOnceWithAnyThreadCount) {
  for (int n : {1, 2, 5}) {
    ThreadPool pool(n);
    for (int64_t n_tasks : {0, 1, 3, 100}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n_tasks));
      for (int rep = 0; rep < 20; ++rep) pool.run(n_tasks, [&](int64_t t) { hits[static_cast<size_t>(t)].fetch_add(1); });
      for (auto& h : hits) EXPECT_EQ(h.load(), 20);
    }
  }
}

}  // namespace
}  // namespace oss4
