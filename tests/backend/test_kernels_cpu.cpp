// The CPU's kernels: the SIMD rung (f32 activations at 1, 2 and 3 threads; the opt-in 8-bit-activation path at 1 and
// 3) through the backend-parametric checks of kernel_checks.h, against the scalar reference rung; then what only the
// CPU has: results that do not depend on the thread count, the rungs this CPU runs, the Q8 reference against
// double-precision sums and against the f32 path it approximates, which weights take the Q8 path, the AVX2 quantizer,
// and the thread pool.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <ostream>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/q8_ref.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "kernel_backend.h"
#include "kernel_checks.h"

#if defined(__x86_64__)
#include "backend/cpu/x86/q8_avx2.h"
#endif

namespace oss4 {
namespace {

// one CPU instance under test: a SIMD rung at an activation precision and a thread count (skipped, with the reason,
// where this CPU or build does not run the rung)
struct CpuInstance {
  const char* name;
  KernelIsa isa;
  ActPrecision act;
  int threads;
};
void PrintTo(const CpuInstance& c, std::ostream* os) { *os << c.name; }
std::string instance_name(const ::testing::TestParamInfo<CpuInstance>& info) { return info.param.name; }

class CpuKernelTest : public ::testing::TestWithParam<CpuInstance> {
 protected:
  void SetUp() override {
    if (Status st = check_kernel_isa(GetParam().isa); !st.ok()) GTEST_SKIP() << st.message();
    be_ = std::make_unique<KernelBackend>(cpu_backend(GetParam().isa, GetParam().act, GetParam().threads));
  }
  KernelBackend& be() { return *be_; }

 private:
  std::unique_ptr<KernelBackend> be_;
};

// f32 activations
class SimdRung : public CpuKernelTest {};

TEST_P(SimdRung, LinearEveryLayoutMatchesReference) { check_linear_every_layout(be()); }
TEST_P(SimdRung, DenseOddInputCountUsesScalarTail) { check_linear_dense_odd_input_count(be()); }
TEST_P(SimdRung, LargeShapesAcrossKBlocks) { check_linear_large_shapes_across_k_blocks(be()); }
TEST_P(SimdRung, Fp4GemvLaneOrderKernels) { check_linear_fp4_gemv_lane_order(be()); }
TEST_P(SimdRung, AttentionWithSinksAndWindowMatchesReference) { check_attention_with_sinks_and_window(be()); }
TEST_P(SimdRung, SwigluMatchesReference) { check_swiglu(be()); }

INSTANTIATE_TEST_SUITE_P(Cpu, SimdRung,
                         ::testing::Values(CpuInstance{"avx2_1t", KernelIsa::kAvx2, ActPrecision::kF32, 1},
                                           CpuInstance{"avx2_2t", KernelIsa::kAvx2, ActPrecision::kF32, 2},
                                           CpuInstance{"avx2_3t", KernelIsa::kAvx2, ActPrecision::kF32, 3},
                                           CpuInstance{"avx512_1t", KernelIsa::kAvx512, ActPrecision::kF32, 1},
                                           CpuInstance{"avx512_2t", KernelIsa::kAvx512, ActPrecision::kF32, 2},
                                           CpuInstance{"avx512_3t", KernelIsa::kAvx512, ActPrecision::kF32, 3}),
                         instance_name);

// 8-bit activations
class SimdQ8 : public CpuKernelTest {};

TEST_P(SimdQ8, GemvAndGemmMatchTheReference) { check_q8_gemv_and_gemm(be()); }

INSTANTIATE_TEST_SUITE_P(Cpu, SimdQ8,
                         ::testing::Values(CpuInstance{"avx2_q8_1t", KernelIsa::kAvx2, ActPrecision::kQ8, 1},
                                           CpuInstance{"avx2_q8_3t", KernelIsa::kAvx2, ActPrecision::kQ8, 3},
                                           CpuInstance{"avx512_q8_1t", KernelIsa::kAvx512, ActPrecision::kQ8, 1},
                                           CpuInstance{"avx512_q8_3t", KernelIsa::kAvx512, ActPrecision::kQ8, 3}),
                         instance_name);

// BF16 activations
class SimdBf16 : public CpuKernelTest {};

TEST_P(SimdBf16, GemvAndGemmMatchTheReferenceOnRoundedActivations) { check_bf16_gemv_and_gemm(be()); }

INSTANTIATE_TEST_SUITE_P(Cpu, SimdBf16,
                         ::testing::Values(CpuInstance{"avx2_bf16_2t", KernelIsa::kAvx2, ActPrecision::kBf16, 2},
                                           CpuInstance{"avx512_bf16_1t", KernelIsa::kAvx512, ActPrecision::kBf16, 1},
                                           CpuInstance{"avx512_bf16_3t", KernelIsa::kAvx512, ActPrecision::kBf16, 3}),
                         instance_name);

// the SIMD rungs this CPU and build run
std::vector<KernelIsa> simd_rungs() {
  std::vector<KernelIsa> r;
  for (KernelIsa isa : {KernelIsa::kAvx2, KernelIsa::kAvx512})
    if (check_kernel_isa(isa).ok()) r.push_back(isa);
  return r;
}

// y [n_tok, n_out] of every SIMD rung at act on each pool (the weight as the rung's backend prepares it: tiles on the
// AVX-512 rung), which must all be bitwise equal per rung
void expect_same_on_every_pool(const TestWeight& t, ActPrecision act, const std::vector<float>& x, int64_t n_tok) {
  for (KernelIsa isa : simd_rungs()) {
    KernelBackend be = cpu_backend(isa, act, 1);
    const LinearWeight w = be.prepare_weight(t.w);
    std::vector<float> y1(static_cast<size_t>(n_tok * t.w.n_out)), yn(y1.size());  // [n_tok, n_out] each
    ThreadPool one(1);
    f32_linear(CpuExec{isa, act, &one}, w, x.data(), n_tok, nullptr, y1.data());
    for (int threads : {2, 3, 7}) {
      ThreadPool pool(threads);
      f32_linear(CpuExec{isa, act, &pool}, w, x.data(), n_tok, nullptr, yn.data());
      EXPECT_EQ(std::memcmp(y1.data(), yn.data(), y1.size() * sizeof(float)), 0)
          << kernel_isa_name(isa) << " " << t.w.name << " n_tok " << n_tok << " threads " << threads;
    }
  }
}

TEST(SimdRungCpu, ResultsDoNotDependOnTheThreadCount) {
  if (best_kernel_isa() == KernelIsa::kRef) GTEST_SKIP() << "no SIMD rung on this CPU or in this build";
  // docs/architecture.md promises it: a reply must not change with -t
  // NVFP4 in tiles on the AVX-512 rung (96, 128 outputs), the AVX2 kernels elsewhere
  for (const TestWeight& t : {make_weight(WeightType::kNvfp4, true, 96, 2880, 31), make_weight(WeightType::kNvfp4, true, 128, 2880, 35),
                              make_weight(WeightType::kNvfp4, false, 40, 192, 32),
                              make_weight(WeightType::kMxfp4, false, 40, 192, 33), make_weight(WeightType::kBF16, false, 40, 96, 34)}) {
    for (int64_t n_tok : {1, 2, 4, 9}) expect_same_on_every_pool(t, ActPrecision::kF32, randn(static_cast<size_t>(n_tok * t.w.n_in), 9), n_tok);
  }
}

TEST(SimdQ8Cpu, ResultsDoNotDependOnTheThreadCount) {
  if (best_kernel_isa() == KernelIsa::kRef) GTEST_SKIP() << "no SIMD rung on this CPU or in this build";
  for (int64_t n_out : {96, 128}) {
    TestWeight t = make_weight(WeightType::kNvfp4, true, n_out, 2880, 51);
    for (int64_t n_tok : {1, 2, 9}) expect_same_on_every_pool(t, ActPrecision::kQ8, q8_test_activations(n_tok, t.w.n_in, 52), n_tok);
  }
}

TEST(SimdBf16Cpu, ResultsDoNotDependOnTheThreadCount) {
  if (best_kernel_isa() == KernelIsa::kRef) GTEST_SKIP() << "no SIMD rung on this CPU or in this build";
  for (bool in_major : {true, false}) {
    TestWeight t = make_weight(WeightType::kNvfp4, in_major, 96, 2880, 61);
    for (int64_t n_tok : {1, 2, 9}) expect_same_on_every_pool(t, ActPrecision::kBf16, randn(static_cast<size_t>(n_tok * t.w.n_in), 62), n_tok);
  }
}

#if defined(__x86_64__)
TEST(SimdQ8Cpu, QuantizerMatchesTheReferenceBitForBit) {
  if (Status st = check_kernel_isa(KernelIsa::kAvx2); !st.ok()) GTEST_SKIP() << st.message();
  const int64_t n_tok = 5, n_in = 2880;
  auto x = q8_test_activations(n_tok, n_in, 21);                                // [n_tok, n_in]
  std::vector<int8_t> qa(x.size()), qr(x.size());                               // [n_tok, n_in] each
  std::vector<float> da(static_cast<size_t>(n_tok * n_in / 16)), dr(da.size());  // [n_tok, n_in / 16] each
  q8_quantize_ref(x.data(), n_tok, n_in, qr.data(), dr.data());
  avx2::q8_quantize(x.data(), n_tok, n_in, qa.data(), da.data());
  EXPECT_EQ(std::memcmp(qa.data(), qr.data(), qa.size()), 0);
  EXPECT_EQ(std::memcmp(da.data(), dr.data(), da.size() * 4), 0);
}
#endif

TEST(KernelDispatch, NamesAndForcing) {
  EXPECT_STREQ(kernel_isa_name(KernelIsa::kRef), "ref");
  EXPECT_TRUE(parse_kernel_isa("avx2").ok());
  EXPECT_FALSE(parse_kernel_isa("sse9").ok());
  EXPECT_TRUE(check_kernel_isa(KernelIsa::kRef).ok());
  EXPECT_TRUE(check_kernel_isa(best_kernel_isa()).ok());
  EXPECT_TRUE(parse_kernel_isa("avx512").ok());
  // a rung is available exactly where the CPU has its features (and the build has its kernels)
  const CpuFeatures& f = cpu_features();
#if defined(__x86_64__)
  EXPECT_EQ(check_kernel_isa(KernelIsa::kAvx2).ok(), f.avx2 && f.fma && f.f16c);
  EXPECT_EQ(check_kernel_isa(KernelIsa::kAvx512).ok(),
            f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.avx512vbmi);
  EXPECT_EQ(resolve_kernel_isa("avx512").ok(), check_kernel_isa(KernelIsa::kAvx512).ok());
#endif
  EXPECT_FALSE(check_kernel_isa(KernelIsa::kNeon).ok());  // a slot with no kernels yet
  auto ref = resolve_kernel_isa("ref");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(*ref, KernelIsa::kRef);
  EXPECT_FALSE(resolve_kernel_isa("sse9").ok());
  EXPECT_TRUE(resolve_kernel_isa("auto").ok());
}

TEST(Q8Ref, QuantizerRoundsToTheNearestStepWithinTheBlockRange) {
  const int64_t n_tok = 3, n_in = 96;
  auto x = q8_test_activations(n_tok, n_in, 1);               // [n_tok, n_in]
  std::vector<int8_t> q(x.size());                             // [n_tok, n_in]
  std::vector<float> d(static_cast<size_t>(n_tok * n_in / 16));  // [n_tok, n_in / 16]
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
    auto x = q8_test_activations(n_tok, n_in, 6);       // [n_tok, n_in]
    std::vector<float> y(static_cast<size_t>(n_tok * n_out));  // [n_tok, n_out]
    f32_nvfp4w_q8a_linear_ref(t.w, x.data(), n_tok, nullptr, y.data());
    std::vector<double> want, abs_sum;  // [n_tok, n_out] each
    q8_double(t, x, n_tok, &want, &abs_sum);
    // the reference against the exact sum of its own terms: within gamma_n sum_k |s_k g_k|, n = blocks + 2
    const double u = std::ldexp(1.0, -24), n = n_in / 16 + 2, gamma = n * u / (1 - n * u);
    for (size_t i = 0; i < y.size(); ++i) EXPECT_LE(std::fabs(y[i] - want[i]), gamma * abs_sum[i] + 1e-30) << "in_major " << in_major << " i " << i;
  }
}

TEST(Q8Ref, StaysWithinTheQuantizationErrorOfTheF32Path) {
  // |y_q8 - y_f32| <= sum_i |w_i| |x_i - q_i d_k| <= sum_i |w_i| d_k / 2, plus f32 rounding of both sums
  const int64_t n_out = 32, n_in = 256, n_tok = 2;
  TestWeight t = make_weight(WeightType::kNvfp4, true, n_out, n_in, 7);
  auto x = q8_test_activations(n_tok, n_in, 8);                                  // [n_tok, n_in]
  std::vector<float> yq(static_cast<size_t>(n_tok * n_out)), yf(yq.size());  // [n_tok, n_out] each
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
  EXPECT_EQ(CpuExec{}.act, ActPrecision::kF32);  // f32 activations unless asked
  EXPECT_FALSE(parse_act_precision("int8").ok());
  ASSERT_TRUE(parse_act_precision("q8").ok());
  EXPECT_EQ(*parse_act_precision("q8"), ActPrecision::kQ8);
  const CpuExec f32_ex{KernelIsa::kRef, ActPrecision::kF32, nullptr}, q8_ex{KernelIsa::kRef, ActPrecision::kQ8, nullptr};
  const int64_t n_tok = 2;
  for (const TestWeight& t : {make_weight(WeightType::kNvfp4, true, 32, 64, 9), make_weight(WeightType::kNvfp4, false, 32, 64, 10),
                              make_weight(WeightType::kMxfp4, false, 32, 64, 11), make_weight(WeightType::kBF16, false, 32, 64, 12)}) {
    auto x = q8_test_activations(n_tok, 64, 13);                                                // [n_tok, 64]
    std::vector<float> f32(static_cast<size_t>(n_tok * 32)), q8(f32.size()), q8ref(f32.size());  // [n_tok, 32] each
    f32_linear(f32_ex, t.w, x.data(), n_tok, nullptr, f32.data());
    f32_linear(q8_ex, t.w, x.data(), n_tok, nullptr, q8.data());
    const bool takes = t.w.type == WeightType::kNvfp4 && t.w.in_major();
    if (takes) {
      f32_nvfp4w_q8a_linear_ref(t.w, x.data(), n_tok, nullptr, q8ref.data());
      EXPECT_EQ(std::memcmp(q8.data(), q8ref.data(), q8.size() * 4), 0) << t.w.name;
      EXPECT_NE(std::memcmp(q8.data(), f32.data(), q8.size() * 4), 0) << t.w.name;
    } else {
      EXPECT_EQ(std::memcmp(q8.data(), f32.data(), q8.size() * 4), 0) << t.w.name;
    }
  }
}

TEST(ThreadPool, RegionsLargerThanOneStateWordRunInPieces) {
  ThreadPool pool(3);
  const int64_t n = (int64_t{1} << 20) + 3;  // past the 20-bit task index of one region
  std::vector<uint8_t> hits(static_cast<size_t>(n), 0);  // [n]
  pool.run(n, [&](int64_t t) { hits[static_cast<size_t>(t)] += 1; });
  EXPECT_EQ(std::count(hits.begin(), hits.end(), uint8_t{1}), n);
}

TEST(ThreadPool, RunsEveryTaskOnceWithAnyThreadCount) {
  for (int n : {1, 2, 5}) {
    ThreadPool pool(n);
    for (int64_t n_tasks : {0, 1, 3, 100}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n_tasks));  // [n_tasks]
      for (int rep = 0; rep < 20; ++rep) pool.run(n_tasks, [&](int64_t t) { hits[static_cast<size_t>(t)].fetch_add(1); });
      for (auto& h : hits) EXPECT_EQ(h.load(), 20);
    }
  }
}

}  // namespace
}  // namespace oss4
