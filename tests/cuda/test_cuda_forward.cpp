// The CUDA backend on the GPU: the attention op over paged BF16 K/V against the scalar reference, with and without
// sinks (libraries have shipped kernels that ignored them, vLLM PR #52148), decode and prefill rows, full and sliding
// layers; the whole forward against the CPU backend on the golden checkpoints; decode steps and a cloned cache
// against one prefill. Without a CUDA device every test skips with a one-line reason.
//
// Bounds of the forward (BF16 activations on the GPU against the CPU's f32): the GPU rounds every matmul input to
// BF16 (relative 2^-9) — the projections', the router's, and in a prefill chunk the attention's Q and P — K and V
// to BF16, and sums in other orders. The CPU's own --activations bf16 path rounds the
// NVFP4/MXFP4 matmul inputs alone; the GPU adds the roundings of the attention and router inputs and of K/V, a few
// more perturbations of the same size. KL grows with the square of a logit perturbation, so a perturbation a small
// multiple k of the CPU's BF16 path (k about 2) gives about k^2 = 4 times its KL: the bound is 4 x KL(cpu bf16) +
// 1e-4 (the 1e-4 for the f32 summation orders, which alone give KL ~1e-9 on these models), and top-1 agreement at
// least the CPU BF16 path's minus 5 points, both measured in the same test on the same tokens.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/kernels_ref.h"
#include "backend/cuda/cuda_forward.h"
#include "backend/cuda/cuda_kv.h"
#include "backend/cuda/device_plan.h"
#include "backend/cuda/ops.h"
#include "eval/compare.h"
#include "model/weights.h"
#include "numeric/float_formats.h"
#include "runtime/forward.h"
#include "../model/golden_reference.h"

#include "dev_buffer.h"

namespace oss4 {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device here"

using test::Dev;

TEST(CudaAttention, PagedWithAndWithoutSinksMatchesReference) {
  SKIP_WITHOUT_GPU();
  ModelConfig cfg;
  cfg.n_layers = 2;
  cfg.n_heads = 8, cfg.n_kv_heads = 2, cfg.head_dim = 64, cfg.sliding_window = 128;
  cfg.layer_types = {LayerKind::kFull, LayerKind::kSliding};
  const int64_t hd = cfg.head_dim, kvd = cfg.kv_dim(), qd = cfg.q_dim(), n1 = 500, n2 = 400, N = n1 + n2;
  auto pool = std::make_shared<cuda::PagePool>(cuda::KvLayout::of(cfg));
  auto cache_r = cuda::CudaKvCache::create(pool, 1024, 500, true);
  ASSERT_TRUE(cache_r.ok()) << cache_r.status().message();
  cuda::CudaKvCache& cache = **cache_r;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  // K, V of every position (BF16 values, as f32 for the reference); RoPE the identity (cos 1, sin 0)
  std::vector<float> kf(static_cast<size_t>(N * kvd)), vf(kf.size()), q(static_cast<size_t>((n2 + 1) * qd));
  for (auto* v : {&kf, &vf})
    for (auto& x : *v) x = bf16_to_f32(f32_to_bf16(nd(rng)));
  for (auto& x : q) x = nd(rng);
  std::vector<float> cs(static_cast<size_t>(1024 * hd), 0.0f);  // [1024, hd]
  for (int64_t p = 0; p < 1024; ++p)
    for (int64_t i = 0; i < hd / 2; ++i) cs[static_cast<size_t>(p * hd + i)] = 1.0f;
  Dev<float> d_cs(cs);
  std::vector<float> sinks(8);
  for (auto& s : sinks) s = nd(rng) * 2.0f;
  Dev<float> d_sinks(sinks);
  const KvLayerView view{kf.data(), vf.data(), N + 1, false};
  const cuda::KvLayout& lay = pool->layout();

  // stores positions [p0, p0 + n) on both layers, then (when asked) attends rows q_rows of them
  auto store = [&](int64_t p0, int64_t n) {
    ASSERT_TRUE(cache.reserve(n).ok());
    std::vector<int32_t> pos(static_cast<size_t>(n)), seq(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(p0 + i);
    Dev<int32_t> d_pos(pos), d_seq(seq);
    std::vector<cuda::PageTable> tabs = {cache.table(0), cache.table(1)};
    Dev<cuda::PageTable> d_tab(tabs);
    std::vector<float> kk(kf.begin() + p0 * kvd, kf.begin() + (p0 + n) * kvd), vv(vf.begin() + p0 * kvd, vf.begin() + (p0 + n) * kvd);
    std::vector<float> qq(static_cast<size_t>(n * qd), 0.0f);
    Dev<float> d_k(kk), d_v(vv), d_q(qq);
    const cuda::RowsView rows{d_pos.p, d_seq.p, d_tab.p, n};
    for (int64_t l = 0; l < 2; ++l) {
      const cuda::LayerKv lk{lay.group[static_cast<size_t>(l)], lay.gl[static_cast<size_t>(l)], lay.geom[lay.group[static_cast<size_t>(l)]]};
      ASSERT_TRUE(cuda::rope_store_kv(rows, lk, d_q.p, d_k.p, d_v.p, 8, 2, hd, d_cs.p, nullptr).ok());
    }
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    cache.advance(n);
  };
  auto check = [&](int64_t p0, int64_t n, const char* what) {
    std::vector<int32_t> pos(static_cast<size_t>(n)), seq(static_cast<size_t>(n), 0);
    std::vector<int64_t> pos64(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(pos64[static_cast<size_t>(i)] = p0 + i);
    Dev<int32_t> d_pos(pos), d_seq(seq);
    std::vector<cuda::PageTable> tabs = {cache.table(0), cache.table(1)};
    Dev<cuda::PageTable> d_tab(tabs);
    std::vector<float> qq(q.begin(), q.begin() + n * qd);
    Dev<float> d_q(qq), d_out(static_cast<size_t>(n * qd));
    const cuda::RowsView rows{d_pos.p, d_seq.p, d_tab.p, n};
    for (int64_t l = 0; l < 2; ++l) {
      const int g = lay.group[static_cast<size_t>(l)];
      const cuda::LayerKv lk{g, lay.gl[static_cast<size_t>(l)], lay.geom[g]};
      const int64_t window = g == 1 ? 128 : 0;
      const int64_t max_keys = std::min<int64_t>(window > 0 ? window : p0 + n, p0 + n);
      Dev<uint8_t> scratch(cuda::attention_scratch_bytes(n, 8, hd, max_keys));
      for (bool with_sinks : {true, false}) {
        ASSERT_TRUE(cuda::attention(rows, lk, d_q.p, 8, 2, hd, window, with_sinks ? d_sinks.p : nullptr, 0.125f, max_keys, scratch.p,
                                    d_out.p, nullptr, nullptr).ok());
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::vector<float> got = d_out.get();
        std::vector<float> want(got.size()), other(got.size()), minf(8, -INFINITY);
        f32_sdpa_sink_ref(qq.data(), pos64.data(), n, 8, 2, hd, view, window, with_sinks ? sinks.data() : minf.data(), 0.125f, want.data());
        f32_sdpa_sink_ref(qq.data(), pos64.data(), n, 8, 2, hd, view, window, with_sinks ? minf.data() : sinks.data(), 0.125f, other.data());
        double worst = 0, gap = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          worst = std::max(worst, double(std::fabs(got[i] - want[i])));
          gap = std::max(gap, double(std::fabs(other[i] - want[i])));
        }
        EXPECT_LT(worst, 1e-4) << what << " layer " << l << (with_sinks ? " with" : " without") << " sinks";
        EXPECT_GT(gap, 1e-2) << "sinks make no difference here: the case does not test them";
        if (n < 16) continue;
        // the tensor-core prefill kernel on the same rows: q and P rounded to BF16, so against the reference on the
        // BF16-rounded q, within 2^-8 max|v| (tests/cuda_host/test_attention_math.cpp derives it)
        cuda::FlashArgs fa;
        fa.q = d_q.p;
        fa.n_rows = n;
        fa.p0 = p0;
        fa.table = tabs[static_cast<size_t>(g)];
        fa.geom = lk.geom;
        fa.gl = lk.gl;
        fa.n_heads = 8;
        fa.n_kv_heads = 2;
        fa.window = window;
        fa.sinks = with_sinks ? d_sinks.p : nullptr;
        fa.scale = 0.125f;
        fa.out = d_out.p;
        d_out.poison();
        ASSERT_TRUE(cuda::attention_prefill(fa, hd, nullptr).ok());
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const std::vector<float> flash = d_out.get();
        std::vector<float> q16(qq.size()), want16(got.size());
        for (size_t i = 0; i < qq.size(); ++i) q16[i] = bf16_to_f32(f32_to_bf16(qq[i]));
        f32_sdpa_sink_ref(q16.data(), pos64.data(), n, 8, 2, hd, view, window, with_sinks ? sinks.data() : minf.data(), 0.125f, want16.data());
        float vmax = 0.0f;
        for (float x : vf) vmax = std::max(vmax, std::fabs(x));
        double fworst = 0;
        for (size_t i = 0; i < flash.size(); ++i) fworst = std::max(fworst, double(std::fabs(flash[i] - want16[i])));
        EXPECT_LT(fworst, std::ldexp(1.0, -8) * vmax + 1e-4) << what << " (tensor-core prefill) layer " << l;
      }
    }
  };
  store(0, n1);
  store(n1, n2);
  check(n1, n2, "prefill rows");
  // decode: the last position once more as a single row
  check(N - 1, 1, "decode row");
}

// logits of every position of ids on a fresh cache of max_chunk
std::vector<float> all_logits(Forward& f, const std::vector<int32_t>& ids, int64_t max_chunk) {
  auto cache = f.new_cache(static_cast<int64_t>(ids.size()) + 8, max_chunk);
  EXPECT_TRUE(cache.ok());
  std::vector<float> logits;
  const Status st = eval(f, **cache, ids.data(), static_cast<int64_t>(ids.size()), LogitsMode::kAll, &logits);
  EXPECT_TRUE(st.ok()) << st.message();
  return logits;
}

std::unique_ptr<Forward> make(const ModelWeights& m, const char* device, const char* act) {
  BackendOptions o;
  o.device = device;
  if (act) {
    o.activations = *parse_act_precision(act);
    o.activations_given = true;
  }
  auto f = make_forward(m, o);
  EXPECT_TRUE(f.ok()) << f.status().message();
  return f.ok() ? std::move(f).value() : nullptr;
}

TEST(CudaForward, GoldensAgainstTheCpu) {
  SKIP_WITHOUT_GPU();
  for (const char* cfg : {"c1", "c2", "c3"}) {
    const test::Reference ref = test::load_reference(cfg);
    auto m = load_model(test::kGolden + "/" + cfg + "/mxfp4");
    ASSERT_TRUE(m.ok()) << m.status().message();
    auto cpu = make(*m, "cpu", "f32"), cpu16 = make(*m, "cpu", "bf16"), gpu = make(*m, "cuda", nullptr);
    ASSERT_TRUE(cpu && cpu16 && gpu);
    EXPECT_EQ(gpu->info().activations, "bf16");
    // the device memory plan (device_plan.h, what oss4 info --device cuda prints) counts the weights' bytes exactly
    auto planned = cuda::device_weight_bytes(*m, LmHeadType::kStored);
    ASSERT_TRUE(planned.ok());
    EXPECT_EQ(gpu->info().device_weight_bytes, *planned) << cfg;
    const int64_t T = static_cast<int64_t>(ref.ids.size()), V = m->cfg.n_vocab;
    const std::vector<float> a = all_logits(*cpu, ref.ids, 64), b = all_logits(*cpu16, ref.ids, 64), g = all_logits(*gpu, ref.ids, 64);
    const CompareSummary cb = compare_logits(a.data(), b.data(), T, V), cg = compare_logits(a.data(), g.data(), T, V);
    std::printf("%s: GPU vs CPU f32: mean KL %.3g, top-1 %.4f; CPU bf16 vs CPU f32: mean KL %.3g, top-1 %.4f\n", cfg, cg.mean_kl,
                cg.top1_agreement, cb.mean_kl, cb.top1_agreement);
    EXPECT_LE(cg.mean_kl, 4.0 * cb.mean_kl + 1e-4) << cfg;
    EXPECT_GE(cg.top1_agreement, cb.top1_agreement - 0.05) << cfg;
    for (float x : g) ASSERT_TRUE(std::isfinite(x)) << cfg;
  }
}

TEST(CudaForward, Nvfp4ExportAgainstTheCpu) {
  SKIP_WITHOUT_GPU();
  auto m = load_model(test::test_data_dir() + "/nvfp4_forms/a");
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto cpu = make(*m, "cpu", "f32"), cpu16 = make(*m, "cpu", "bf16"), gpu = make(*m, "cuda", nullptr);
  ASSERT_TRUE(cpu && cpu16 && gpu);
  std::vector<int32_t> ids(100);
  std::mt19937 rng(5);
  for (auto& i : ids) i = static_cast<int32_t>(rng() % static_cast<uint32_t>(m->cfg.n_vocab));
  const int64_t T = 100, V = m->cfg.n_vocab;
  const std::vector<float> a = all_logits(*cpu, ids, 32), b = all_logits(*cpu16, ids, 32), g = all_logits(*gpu, ids, 32);
  const CompareSummary cb = compare_logits(a.data(), b.data(), T, V), cg = compare_logits(a.data(), g.data(), T, V);
  std::printf("nvfp4 export: GPU vs CPU f32: mean KL %.3g, top-1 %.4f; CPU bf16: %.3g, %.4f\n", cg.mean_kl, cg.top1_agreement,
              cb.mean_kl, cb.top1_agreement);
  EXPECT_LE(cg.mean_kl, 4.0 * cb.mean_kl + 1e-4);
  EXPECT_GE(cg.top1_agreement, cb.top1_agreement - 0.05);
}

TEST(CudaForward, DecodeStepsAndACloneMatchOnePrefill) {
  SKIP_WITHOUT_GPU();
  const test::Reference ref = test::load_reference("c2");
  auto m = load_model(test::kGolden + "/c2/mxfp4");
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto gpu = make(*m, "cuda", nullptr);
  ASSERT_TRUE(gpu);
  const int64_t T = static_cast<int64_t>(ref.ids.size()), V = m->cfg.n_vocab, half = T / 2;
  const std::vector<float> whole = all_logits(*gpu, ref.ids, T);
  auto cache = gpu->new_cache(T + 8, 64);
  ASSERT_TRUE(cache.ok());
  std::vector<float> last;
  ASSERT_TRUE(eval(*gpu, **cache, ref.ids.data(), half, LogitsMode::kLast, &last).ok());
  std::unique_ptr<KvCache> copy = (*cache)->clone();
  ASSERT_TRUE(copy);
  for (KvCache* c : {cache->get(), copy.get()}) {
    double worst = 0, scale = 0;
    for (int64_t t = half; t < T; ++t) {
      ASSERT_TRUE(eval(*gpu, *c, &ref.ids[static_cast<size_t>(t)], 1, LogitsMode::kLast, &last).ok());
      for (int64_t i = 0; i < V; ++i) {
        worst = std::max(worst, double(std::fabs(last[static_cast<size_t>(i)] - whole[static_cast<size_t>(t * V + i)])));
        scale = std::max(scale, double(std::fabs(whole[static_cast<size_t>(t * V + i)])));
      }
    }
    EXPECT_LE(worst, 1e-4 * scale) << "decode steps against the prefill's logits";
  }
}

// decode steps of 1 and 3 sequences run as CUDA graphs (recorded once per shape, replayed after) give the same bits
// as the same steps run eagerly (OSS4_CUDA_GRAPHS=0), over enough steps that the recorded graphs are replayed and a
// key range crosses a split boundary
TEST(CudaForward, GraphReplayEqualsEagerBitForBit) {
  SKIP_WITHOUT_GPU();
  const test::Reference ref = test::load_reference("c1");
  auto m = load_model(test::kGolden + "/c1/mxfp4");
  ASSERT_TRUE(m.ok()) << m.status().message();
  setenv("OSS4_CUDA_GRAPHS", "0", 1);
  auto eager = make(*m, "cuda", nullptr);
  unsetenv("OSS4_CUDA_GRAPHS");
  auto graph = make(*m, "cuda", nullptr);
  ASSERT_TRUE(eager && graph);
  const int64_t V = m->cfg.n_vocab, n_seq = 3, prompt = 250, steps = 20;
  std::vector<std::vector<float>> out[2];
  for (int which = 0; which < 2; ++which) {
    Forward& f = which == 0 ? *eager : *graph;
    std::vector<std::unique_ptr<KvCache>> caches;
    std::vector<KvCache*> ptrs;
    for (int64_t s = 0; s < n_seq; ++s) {
      auto c = f.new_cache(prompt + steps * 2 + 4, 64);
      ASSERT_TRUE(c.ok());
      ASSERT_TRUE(eval(f, **c, ref.ids.data() + s, prompt, LogitsMode::kNone, nullptr).ok());
      caches.push_back(std::move(*c));
      ptrs.push_back(caches.back().get());
    }
    std::vector<float> logits(static_cast<size_t>(n_seq * V));  // [n_seq, V]
    for (int64_t t = 0; t < steps; ++t) {
      Batch b;  // all three sequences, then the first alone: two graph shapes
      const int64_t ns = t % 2 == 0 ? n_seq : 1;
      for (int64_t s = 0; s < ns; ++s)
        b.add(ref.ids[static_cast<size_t>(prompt + t + s)], ptrs[static_cast<size_t>(s)]->n_pos(), static_cast<int32_t>(s), true);
      const Status st = f.run(b, ptrs.data(), n_seq, logits.data());
      ASSERT_TRUE(st.ok()) << st.message();
      out[which].emplace_back(logits.begin(), logits.begin() + ns * V);
    }
  }
  ASSERT_EQ(out[0].size(), out[1].size());
  for (size_t t = 0; t < out[0].size(); ++t)
    ASSERT_EQ(std::memcmp(out[0][t].data(), out[1][t].data(), out[0][t].size() * sizeof(float)), 0) << "step " << t;
}

TEST(CudaForward, OptionsAndInfo) {
  SKIP_WITHOUT_GPU();
  BackendOptions o;
  o.device = "cuda";
  o.activations = ActPrecision::kQ8;
  o.activations_given = true;
  EXPECT_FALSE(check_backend_options(o).ok());
  o.activations = ActPrecision::kBf16;
  EXPECT_TRUE(check_backend_options(o).ok());
  auto s = cuda_device_summary();
  ASSERT_TRUE(s.ok());
  std::printf("device: %s\n", s->c_str());
}

}  // namespace
}  // namespace oss4
