// Linear tolerance (f32 activations): the backend and the reference compute y = sum_i w_i x_i in f32, in different
// orders (and the SIMD rung may round the decoded weight lut * factor once more). Each result is within
// gamma_n * sum_i |w_i x_i| of the exact sum, gamma_n = n u / (1 - n u), u = 2^-24, n = n_in + 2; so the two differ by
// at most 2 gamma_n sum_i |w_i x_i|. The check computes sum_i |w_i x_i| in double from the reference-decoded weights
// and checks that bound.
//
// Q8 tolerance: both form the same exact integer block sums s_k and the same f32 block factors g_k (the quantizer is
// shared bit for bit), and differ only in the order and fusion of y = sum_k s_k g_k; each is within
// gamma_n sum_k |s_k g_k| of the exact sum (n = blocks + 2), so they differ by at most 2 gamma_n sum_k |s_k g_k|.
#include "kernel_checks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backend/cpu/kernels_ref.h"
#include "backend/cpu/q8_ref.h"
#include "numeric/float_formats.h"

namespace oss4 {

namespace {

constexpr int kTwice[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// y = x W^T (+ bias) on the backend: x [n_tok, n_in], bias [n_out] or null -> y [n_tok, n_out], through upload and
// download; y starts as NaN so an output the backend never writes fails
std::vector<float> backend_linear(KernelBackend& be, const LinearWeight& w_dev, const std::vector<float>& x, int64_t n_tok, const float* bias) {
  auto x_dev = BackendBuffer::upload(be, x);                                                          // [n_tok, n_in]
  auto b_dev = BackendBuffer::upload(be, bias ? std::vector<float>(bias, bias + w_dev.n_out) : std::vector<float>());  // [n_out]
  auto y_dev = BackendBuffer::upload(be, std::vector<float>(static_cast<size_t>(n_tok * w_dev.n_out), NAN));  // [n_tok, n_out]
  const LinearJob job{&w_dev, x_dev->as<float>(), n_tok, bias ? b_dev->as<float>() : nullptr, y_dev->as<float>()};
  be.linear_jobs(&job, 1);
  return y_dev->download<float>(static_cast<size_t>(n_tok * w_dev.n_out));
}

// round_x: the backend rounds the activations to BF16 (ActPrecision::kBf16), so the reference takes them rounded
void linear_vs_ref(KernelBackend& be, const TestWeight& t, const LinearWeight& w_dev, int64_t n_tok, bool with_bias, bool round_x = false) {
  const int64_t n_out = t.w.n_out, n_in = t.w.n_in;
  auto x_in = randn(static_cast<size_t>(n_tok * n_in), 7);  // [n_tok, n_in] what the backend gets
  auto x = x_in;                                             // [n_tok, n_in] what the reference gets
  if (round_x)
    for (float& v : x) v = bf16_to_f32(f32_to_bf16(v));
  auto bias = randn(static_cast<size_t>(n_out), 8);      // [n_out]
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> want(static_cast<size_t>(n_tok * n_out));  // [n_tok, n_out]
  f32_linear_ref(t.w, x.data(), n_tok, b, want.data());
  const std::vector<float> got = backend_linear(be, w_dev, x_in, n_tok, b);  // [n_tok, n_out]
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
        ADD_FAILURE() << be.name << ": " << t.w.name << " n_tok " << n_tok << " token " << tk << " out " << o << ": backend "
                      << got[static_cast<size_t>(tk * n_out + o)] << " ref " << want[static_cast<size_t>(tk * n_out + o)]
                      << " bound " << 2 * gamma * abs_sum;
      }
    }
  EXPECT_EQ(bad, 0) << be.name << ": " << t.w.name;
}

void q8_linear_vs_ref(KernelBackend& be, const TestWeight& t, const LinearWeight& w_dev, int64_t n_tok, bool with_bias) {
  const int64_t n_out = t.w.n_out, n_in = t.w.n_in;
  auto x = q8_test_activations(n_tok, n_in, 31);     // [n_tok, n_in]
  auto bias = randn(static_cast<size_t>(n_out), 32);  // [n_out]
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> want(static_cast<size_t>(n_tok * n_out));  // [n_tok, n_out]
  f32_nvfp4w_q8a_linear_ref(t.w, x.data(), n_tok, b, want.data());
  const std::vector<float> got = backend_linear(be, w_dev, x, n_tok, b);  // [n_tok, n_out]
  std::vector<double> exact, abs_sum;  // [n_tok, n_out] each
  q8_double(t, x, n_tok, &exact, &abs_sum);
  const double u = std::ldexp(1.0, -24), n = static_cast<double>(n_in / 16 + 2), gamma = n * u / (1 - n * u);
  int64_t bad = 0;
  for (int64_t tk = 0; tk < n_tok; ++tk)
    for (int64_t o = 0; o < n_out; ++o) {
      const size_t k = static_cast<size_t>(tk * n_out + o);
      const double bound = 2 * gamma * (abs_sum[k] + (with_bias ? std::fabs(bias[static_cast<size_t>(o)]) : 0.0));
      if (!(std::fabs(static_cast<double>(got[k]) - want[k]) <= bound) && bad++ < 5)
        ADD_FAILURE() << be.name << ": " << t.w.name << " n_tok " << n_tok << " token " << tk << " out " << o << ": backend " << got[k]
                      << " ref " << want[k] << " bound " << bound;
    }
  EXPECT_EQ(bad, 0) << be.name << ": " << t.w.name;
}

}  // namespace

void check_linear(KernelBackend& be, const TestWeight& t, int64_t n_tok, bool with_bias) {
  linear_vs_ref(be, t, be.prepare_weight(t.w), n_tok, with_bias);
}

void check_linear_every_layout(KernelBackend& be) {
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
    const LinearWeight w = be.prepare_weight(t.w);
    for (int64_t n_tok : {1, 2, 3, 4, 5, 7, 13}) linear_vs_ref(be, t, w, n_tok, /*with_bias=*/n_tok % 2 == 1);
  }
}

void check_linear_dense_odd_input_count(KernelBackend& be) {
  // n_in 37: the dense kernels' scalar tail
  for (bool in_major : {false, true}) {
    TestWeight t = make_weight(WeightType::kBF16, in_major, 33, 37, 5);
    const LinearWeight w = be.prepare_weight(t.w);
    for (int64_t n_tok : {1, 6}) linear_vs_ref(be, t, w, n_tok, /*with_bias=*/true);
  }
}

void check_linear_large_shapes_across_k_blocks(KernelBackend& be) {
  // n_in past the GEMM k blocks (512 row-major, 256 in-major)
  TestWeight a = make_weight(WeightType::kNvfp4, false, 48, 1056, 3);
  TestWeight b = make_weight(WeightType::kNvfp4, true, 48, 1056, 4);
  TestWeight c = make_weight(WeightType::kMxfp4, false, 20, 1056, 5);
  for (const TestWeight* t : {&a, &b, &c}) {
    const LinearWeight w = be.prepare_weight(t->w);
    for (int64_t n_tok : {1, 9}) linear_vs_ref(be, *t, w, n_tok, /*with_bias=*/true);
  }
}

void check_linear_fp4_gemv_lane_order(KernelBackend& be) {
  // n_in a multiple of 64 (row-major) and n_out a multiple of 32 (in-major) select the lane-order GEMV of
  // gemv_fp4_avx2.cpp; 1 to 4 tokens cover its one- and two-token variants (and, from 3 in-major tokens, the GEMM
  // on its lane-order panels; 13 adds a partial 6-token tile); at 3 threads the outputs split unevenly
  TestWeight a = make_weight(WeightType::kNvfp4, false, 37, 192, 21);
  TestWeight b = make_weight(WeightType::kMxfp4, false, 37, 192, 22);
  TestWeight c = make_weight(WeightType::kNvfp4, true, 96, 176, 23);
  TestWeight d = make_weight(WeightType::kNvfp4, true, 320, 64, 24);
  // in-major with n_out a multiple of 64: the AVX-512 GEMV (kernels_avx512.h), across 16 parts and within one block
  TestWeight e = make_weight(WeightType::kNvfp4, true, 128, 2880, 25);
  TestWeight f = make_weight(WeightType::kNvfp4, true, 64, 16, 26);
  for (const TestWeight* t : {&a, &b, &c, &d, &e, &f}) {
    const LinearWeight w = be.prepare_weight(t->w);
    for (int64_t n_tok : {1, 2, 3, 4, 13}) linear_vs_ref(be, *t, w, n_tok, /*with_bias=*/n_tok != 2);
  }
}

void check_attention_with_sinks_and_window(KernelBackend& be) {
  const int64_t n_heads = 6, n_kv = 2, n_ctx = 40;
  // 64 (gpt-oss) and 24: the register kernels (head_dim = 8V); 20: the general loop
  for (int64_t hd : {64, 24, 20})
    for (int64_t window : {int64_t{0}, int64_t{9}}) {
      for (bool ring : {false, true}) {
        if (ring && window == 0) continue;  // a ring only serves sliding layers
        const int64_t cap = ring ? 17 : n_ctx;
        auto k = randn(static_cast<size_t>(cap * n_kv * hd), 1), v = randn(static_cast<size_t>(cap * n_kv * hd), 2);  // [cap, n_kv, hd]
        auto sinks = randn(static_cast<size_t>(n_heads), 3);                                                        // [n_heads]
        const int64_t n_tok = 5;
        auto q = randn(static_cast<size_t>(n_tok * n_heads * hd), 4);  // [n_tok, n_heads, hd]
        // the last n_tok positions; with a ring of 17 the window (9) plus the chunk fits
        std::vector<int64_t> pos(static_cast<size_t>(n_tok));  // [n_tok]
        for (int64_t t = 0; t < n_tok; ++t) pos[static_cast<size_t>(t)] = n_ctx - n_tok + t;
        std::vector<float> want(q.size());  // [n_tok, n_heads * hd]
        f32_sdpa_sink_ref(q.data(), pos.data(), n_tok, n_heads, n_kv, hd, KvLayerView{k.data(), v.data(), cap, ring}, window, sinks.data(), 0.2f,
                          want.data());
        auto q_dev = BackendBuffer::upload(be, q), pos_dev = BackendBuffer::upload(be, pos);
        auto k_dev = BackendBuffer::upload(be, k), v_dev = BackendBuffer::upload(be, v), sinks_dev = BackendBuffer::upload(be, sinks);
        auto out_dev = BackendBuffer::upload(be, std::vector<float>(q.size(), NAN));  // [n_tok, n_heads * hd]
        const KvLayerView kv_dev{k_dev->as<float>(), v_dev->as<float>(), cap, ring};
        be.sdpa_sink(q_dev->as<float>(), pos_dev->as<int64_t>(), n_tok, n_heads, n_kv, hd, kv_dev, window, sinks_dev->as<float>(), 0.2f,
                     out_dev->as<float>());
        const std::vector<float> got = out_dev->download<float>(q.size());
        // outputs are convex combinations of values; scores differ by a few ulps of |q||k|
        for (size_t i = 0; i < q.size(); ++i)
          EXPECT_NEAR(got[i], want[i], 1e-5f) << be.name << ": hd " << hd << " window " << window << " ring " << ring << " i " << i;
      }
    }
}

// exp256 (Cephes' expf polynomial) against std::exp within a few ulp, across the clamps, the gate's whole range (SwiGLU
// clamps only its top) and a row length with a scalar tail
void check_swiglu(KernelBackend& be) {
  const int64_t n_ff = 203, n_rows = 5;
  std::vector<float> gu(static_cast<size_t>(n_rows * 2 * n_ff));  // [n_rows, 2 n_ff]
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> wide(-70.0f, 20.0f), narrow(-3.0f, 3.0f);
  for (size_t i = 0; i < gu.size(); ++i) gu[i] = (i / 7) % 2 ? wide(rng) : narrow(rng);
  gu[6] = NAN;  // a NaN gate stays NaN in both rungs
  std::vector<float> want(static_cast<size_t>(n_rows * n_ff));  // [n_rows, n_ff]
  for (int64_t r = 0; r < n_rows; ++r) f32_swiglu_ref(gu.data() + r * 2 * n_ff, n_ff, 1.702f, 7.0f, want.data() + r * n_ff);
  auto gu_dev = BackendBuffer::upload(be, gu);
  auto out_dev = BackendBuffer::upload(be, std::vector<float>(want.size(), 0.0f));  // [n_rows, n_ff]
  be.swiglu(gu_dev->as<float>(), n_rows, n_ff, 1.702f, 7.0f, out_dev->as<float>());
  const std::vector<float> got = out_dev->download<float>(want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << be.name << ": i " << i;
      continue;
    }
    EXPECT_NEAR(got[i], want[i], 1e-6f * std::max(1e-30f, std::fabs(want[i])) + 1e-30f)
        << be.name << ": i " << i << " gate " << gu[2 * i % gu.size()];
  }
}

void check_bf16_gemv_and_gemm(KernelBackend& be) {
  // NVFP4 of both layouts: the tile GEMV (1-2 tokens) and the BF16 GEMM (8-token tiles, 4/2/1 tails) where the
  // weight fits 32-output tiles, the f32 kernels on rounded activations elsewhere (n_out 48); n_in 4128 is long
  // enough that an unrounded activation would show; BF16 weights keep f32 activations
  const TestWeight ws[] = {make_weight(WeightType::kNvfp4, true, 96, 176, 51), make_weight(WeightType::kNvfp4, false, 64, 4128, 52),
                           make_weight(WeightType::kNvfp4, true, 32, 16, 53), make_weight(WeightType::kNvfp4, false, 48, 64, 54)};
  for (const TestWeight& t : ws) {
    const LinearWeight w = be.prepare_weight(t.w);
    for (int64_t n_tok : {1, 2, 3, 7, 8, 9, 15, 17}) linear_vs_ref(be, t, w, n_tok, /*with_bias=*/n_tok != 2, /*round_x=*/true);
  }
  const TestWeight d = make_weight(WeightType::kBF16, false, 40, 96, 55);
  for (int64_t n_tok : {1, 9}) linear_vs_ref(be, d, be.prepare_weight(d.w), n_tok, true, /*round_x=*/false);
}

void check_q8_linear(KernelBackend& be, const TestWeight& t, int64_t n_tok, bool with_bias) {
  q8_linear_vs_ref(be, t, be.prepare_weight(t.w), n_tok, with_bias);
}

void check_q8_gemv_and_gemm(KernelBackend& be) {
  // 1-2 tokens: the GEMV split along the inputs; 3+: the GEMM with 4-token tiles and 1-3-token tails. n_in 4128 crosses
  // the GEMM's 256-input panels with a partial one; n_out 96 splits unevenly over 3 threads.
  TestWeight a = make_weight(WeightType::kNvfp4, true, 96, 176, 41);
  TestWeight b = make_weight(WeightType::kNvfp4, true, 64, 4128, 42);
  TestWeight c = make_weight(WeightType::kNvfp4, true, 32, 16, 43);
  // n_out a multiple of 64: the AVX-512 GEMV, with 16 parts and with one block
  TestWeight d = make_weight(WeightType::kNvfp4, true, 192, 2880, 44);
  TestWeight e = make_weight(WeightType::kNvfp4, true, 64, 16, 45);
  for (const TestWeight* t : {&a, &b, &c, &d, &e}) {
    const LinearWeight w = be.prepare_weight(t->w);
    for (int64_t n_tok : {1, 2, 3, 4, 5, 6, 7, 13}) q8_linear_vs_ref(be, *t, w, n_tok, /*with_bias=*/n_tok != 2);
  }
}

std::vector<float> q8_test_activations(int64_t n_tok, int64_t n_in, uint32_t seed) {
  auto x = randn(static_cast<size_t>(n_tok * n_in), seed);  // [n_tok, n_in]
  for (int64_t i = 0; i < n_in && i < 16; ++i) x[static_cast<size_t>(i)] = 0.0f;
  if (n_in >= 32) {
    for (int64_t i = 16; i < 32; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i - 24) + 0.5f;  // ties
    x[31] = 127.0f;                                                                                    // amax 127: inv 1
  }
  for (size_t i = 0; i < x.size(); i += 37) x[i] *= 50.0f;  // outliers, as activations have
  return x;
}

void q8_double(const TestWeight& t, const std::vector<float>& x, int64_t n_tok, std::vector<double>* y, std::vector<double>* abs_sum) {
  const int64_t n_in = t.w.n_in, n_out = t.w.n_out, n_blk = n_in / 16;
  std::vector<int8_t> q(x.size());                         // [n_tok, n_in]
  std::vector<float> d(static_cast<size_t>(n_tok * n_blk));  // [n_tok, n_blk]
  q8_quantize_ref(x.data(), n_tok, n_in, q.data(), d.data());
  y->assign(static_cast<size_t>(n_tok * n_out), 0.0);
  abs_sum->assign(y->size(), 0.0);
  for (int64_t tk = 0; tk < n_tok; ++tk)
    for (int64_t o = 0; o < n_out; ++o)
      for (int64_t k = 0; k < n_blk; ++k) {
        int64_t s = 0;
        for (int64_t i = 16 * k; i < 16 * k + 16; ++i) {
          const uint8_t b = t.w.in_major() ? t.data[static_cast<size_t>((i / 2) * n_out + o)] : t.data[static_cast<size_t>(o * n_in / 2 + i / 2)];
          s += q[static_cast<size_t>(tk * n_in + i)] * kTwice[i % 2 ? b >> 4 : b & 15];
        }
        const uint8_t sc = t.w.in_major() ? t.scales[static_cast<size_t>(k * n_out + o)] : t.scales[static_cast<size_t>(o * n_blk + k)];
        const float g = e4m3_to_f32(sc) * t.w.scale2 * 0.5f * d[static_cast<size_t>(tk * n_blk + k)];
        (*y)[static_cast<size_t>(tk * n_out + o)] += static_cast<double>(s) * g;
        (*abs_sum)[static_cast<size_t>(tk * n_out + o)] += std::fabs(static_cast<double>(s) * g);
      }
}

}  // namespace oss4
