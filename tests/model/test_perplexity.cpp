// oss4 perplexity's library (src/eval/perplexity.h) on the golden models: per-token negative log-likelihoods against
// the cross entropy of transformers' float32 logits, llama-perplexity's chunking, and KL divergence against saved
// distributions (against itself: exactly 0; with the whole vocabulary kept: compare_logits' KL of the same logits).
#include <gtest/gtest.h>

#include <cmath>

#include "forward_for_test.h"
#include "../unit/test_helpers.h"
#include "golden_reference.h"
#include "eval/compare.h"
#include "eval/perplexity.h"
#include "eval/saved_logits.h"
#include "format/safetensors.h"
#include "model/lm_head.h"

namespace oss4 {
namespace {


using test::kGolden;
using test::load_reference;
using test::Reference;

// transformers' cross entropy of position t predicting ids[t + 1], from its float32 logits, in double
double reference_nll(const Reference& r, int64_t t) {
  const float* row = r.logits + t * r.n_vocab;
  double m = -INFINITY;
  for (int64_t i = 0; i < r.n_vocab; ++i) m = std::max(m, static_cast<double>(row[i]));
  double s = 0;
  for (int64_t i = 0; i < r.n_vocab; ++i) s += std::exp(static_cast<double>(row[i]) - m);
  return m + std::log(s) - row[r.ids[static_cast<size_t>(t + 1)]];
}

class PerplexityGolden : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(PerplexityGolden, PerTokenNllEqualsTransformersCrossEntropy) {
  const auto& [cfg, layout] = GetParam();
  Reference ref = load_reference(cfg);
  ASSERT_NE(ref.logits, nullptr);
  auto m = load_model(kGolden + "/" + cfg + "/" + layout);
  ASSERT_TRUE(m.ok()) << m.status().message();
  auto fwd_p = test::forward_for(*m);
  ASSERT_TRUE(fwd_p);
  Forward& fwd = *fwd_p;
  const auto T = static_cast<int64_t>(ref.ids.size());
  // the whole prompt as one chunk, and the first chunk of 64 (later chunks start from an empty cache, which the
  // reference's single forward does not)
  for (int64_t ctx : {T, int64_t{64}}) {
    PerplexityConfig pc;
    pc.ctx = ctx;
    pc.max_chunks = 1;
    pc.eval_chunk = 48;
    auto r = run_perplexity(fwd, ref.ids, pc, nullptr);
    ASSERT_TRUE(r.ok()) << r.status().message();
    ASSERT_EQ(static_cast<int64_t>(r->nll.size()), scored_per_chunk(ctx));
    double worst = 0, sum_ref = 0;
    for (size_t j = 0; j < r->nll.size(); ++j) {
      const double want = reference_nll(ref, ctx / 2 + static_cast<int64_t>(j));
      sum_ref += want;
      worst = std::max(worst, std::fabs(r->nll[j] - want) / std::fabs(want));
    }
    EXPECT_LE(worst, 1e-5) << cfg << "/" << layout << " ctx " << ctx;
    const double ppl_ref = std::exp(sum_ref / static_cast<double>(r->nll.size()));
    EXPECT_NEAR(r->ppl / ppl_ref, 1.0, 1e-5);
    EXPECT_GT(r->ppl_stderr, 0);
    std::printf("%s/%s ctx %lld: ppl %.6f (transformers %.6f), worst nll rel err %.2e\n", cfg.c_str(), layout.c_str(),
                static_cast<long long>(ctx), r->ppl, ppl_ref, worst);
  }
}

INSTANTIATE_TEST_SUITE_P(AllConfigs, PerplexityGolden,
                         ::testing::Combine(::testing::Values("c1", "c2", "c3"), ::testing::Values("mxfp4", "bf16")),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

TEST(Perplexity, ChunksAreIndependentAndWholeOnly) {
  Reference ref = load_reference("c1");
  auto m = load_model(kGolden + "/c1/bf16");
  ASSERT_TRUE(m.ok());
  auto fwd_p = test::forward_for(*m);
  ASSERT_TRUE(fwd_p);
  Forward& fwd = *fwd_p;
  PerplexityConfig pc;
  pc.ctx = 64;
  auto all = run_perplexity(fwd, ref.ids, pc, nullptr);
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(all->n_chunks, 5);  // 320 / 64, the rest of the text (none here) is not scored
  EXPECT_EQ(static_cast<int64_t>(all->nll.size()), 5 * 31);
  // chunk 2 is scored as if the text began there
  std::vector<int32_t> tail(ref.ids.begin() + 128, ref.ids.end());
  pc.max_chunks = 1;
  auto one = run_perplexity(fwd, tail, pc, nullptr);
  ASSERT_TRUE(one.ok());
  for (size_t j = 0; j < one->nll.size(); ++j) EXPECT_EQ(one->nll[j], all->nll[2 * 31 + j]) << j;
  // mean and standard error as llama-perplexity reports them
  double s = 0, s2 = 0;
  for (double x : all->nll) s += x, s2 += x * x;
  const double n = static_cast<double>(all->nll.size()), mean = s / n;
  EXPECT_NEAR(all->ppl, std::exp(mean), 1e-9 * all->ppl);
  EXPECT_NEAR(all->ppl_stderr, std::exp(mean) * std::sqrt((s2 / n - mean * mean) / (n - 1)), 1e-9 * all->ppl);
}

TEST(Perplexity, KlAgainstItsOwnSavedLogitsIsZero) {
  Reference ref = load_reference("c2");
  auto m = load_model(kGolden + "/c2/mxfp4");
  ASSERT_TRUE(m.ok());
  auto fwd_p = test::forward_for(*m);
  ASSERT_TRUE(fwd_p);
  Forward& fwd = *fwd_p;
  PerplexityConfig pc;
  pc.ctx = 100;
  pc.save_top_k = 8;
  auto base = run_perplexity(fwd, ref.ids, pc, nullptr);
  ASSERT_TRUE(base.ok()) << base.status().message();
  ASSERT_EQ(base->saved.n_scored(), 3 * scored_per_chunk(100));
  // through the file, as --save-logits and --kl-base pass it
  const std::string path = test::make_temp_dir() + "/sub/base.safetensors";
  ASSERT_TRUE(write_saved_logits(path, base->saved).ok());
  auto back = read_saved_logits(path);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->top_ids, base->saved.top_ids);
  EXPECT_EQ(back->top_logprobs, base->saved.top_logprobs);
  pc.save_top_k = 0;
  auto r = run_perplexity(fwd, ref.ids, pc, &*back);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->kl.size(), r->nll.size());
  for (double kl : r->kl) EXPECT_EQ(kl, 0.0);
  EXPECT_EQ(r->kl_summary.kl.mean, 0.0);
  EXPECT_EQ(r->kl_summary.max, 0.0);
  EXPECT_EQ(r->kl_summary.top1_same.mean, 1.0);
  EXPECT_EQ(r->kl_summary.delta_ppl, 0.0);
  EXPECT_EQ(r->kl_summary.ln_ppl_ratio.mean, 0.0);
  EXPECT_NEAR(r->kl_summary.ppl_base / r->ppl, 1.0, 1e-6);  // the base's from f32 log-probabilities
}

// B: the same model with its lm_head quantized to NVFP4 at load, so the two differ a little
TEST(Perplexity, KlOverTheWholeVocabularyEqualsCompareLogits) {
  Reference ref = load_reference("c1");
  auto a = load_model(kGolden + "/c1/bf16");
  auto b = load_model(kGolden + "/c1/bf16");
  ASSERT_TRUE(a.ok() && b.ok());
  const int64_t V = a->cfg.n_vocab, ctx = 160, first = ctx / 2, n = scored_per_chunk(ctx);
  BackendOptions ob;
  ob.lm_head = LmHeadType::kNvfp4;
  auto fa_p = test::forward_for(*a), fb_p = test::forward_for(*b, ob);
  ASSERT_TRUE(fa_p && fb_p);
  Forward &fa = *fa_p, &fb = *fb_p;
  PerplexityConfig pc;
  pc.ctx = ctx;
  pc.max_chunks = 1;
  pc.save_top_k = V;
  auto base = run_perplexity(fa, ref.ids, pc, nullptr);
  ASSERT_TRUE(base.ok());
  pc.save_top_k = 0;
  auto r = run_perplexity(fb, ref.ids, pc, &base->saved);
  ASSERT_TRUE(r.ok()) << r.status().message();
  // the independent path: both models' logits of the whole chunk, compared by oss4 compare's code
  std::vector<float> la, lb;  // [ctx, V]
  for (auto [fwd, out] : {std::pair{&fa, &la}, std::pair{&fb, &lb}}) {
    auto cache = fwd->new_cache(ctx, 128);
    ASSERT_TRUE(cache.ok());
    ASSERT_TRUE(eval(*fwd, **cache, ref.ids.data(), ctx, LogitsMode::kAll, out).ok());
  }
  CompareSummary want = compare_logits(la.data() + first * V, lb.data() + first * V, n, V);
  double max_kl = 0;
  for (int64_t j = 0; j < n; ++j) {
    const auto& p = want.positions[static_cast<size_t>(j)];
    EXPECT_NEAR(r->kl[static_cast<size_t>(j)], p.kl, 2e-6 + 1e-4 * p.kl) << j;
    EXPECT_EQ(r->top1_same[static_cast<size_t>(j)] != 0, p.top1_agree) << j;
    max_kl = std::max(max_kl, p.kl);
  }
  EXPECT_GT(max_kl, 1e-4);  // the two models do differ
  EXPECT_NEAR(r->kl_summary.kl.mean, want.mean_kl, 2e-6 + 1e-4 * want.mean_kl);
  // keeping fewer tokens merges the others into one bucket: a lower bound of the full KL
  pc.save_top_k = 4;
  auto small = run_perplexity(fa, ref.ids, pc, nullptr);
  ASSERT_TRUE(small.ok());
  pc.save_top_k = 0;
  auto rs = run_perplexity(fb, ref.ids, pc, &small->saved);
  ASSERT_TRUE(rs.ok());
  for (int64_t j = 0; j < n; ++j) EXPECT_LE(rs->kl[static_cast<size_t>(j)], r->kl[static_cast<size_t>(j)] + 2e-6) << j;
}

TEST(Perplexity, RefusesWhatItCannotScore) {
  Reference ref = load_reference("c1");
  auto m = load_model(kGolden + "/c1/bf16");
  ASSERT_TRUE(m.ok());
  auto fwd_p = test::forward_for(*m);
  ASSERT_TRUE(fwd_p);
  Forward& fwd = *fwd_p;
  PerplexityConfig pc;
  pc.ctx = 400;  // longer than the text
  auto r = run_perplexity(fwd, ref.ids, pc, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("fewer than one chunk"), std::string::npos) << r.status().message();
  pc.ctx = 8192;  // beyond max_position_embeddings
  EXPECT_FALSE(run_perplexity(fwd, ref.ids, pc, nullptr).ok());
  pc.ctx = 64;
  std::vector<int32_t> bad = ref.ids;
  bad[3] = 512;  // outside the vocabulary
  r = run_perplexity(fwd, bad, pc, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("outside"), std::string::npos);
  // a base of another ctx, other tokens, fewer chunks
  pc.save_top_k = 4;
  pc.max_chunks = 2;
  auto base = run_perplexity(fwd, ref.ids, pc, nullptr);
  ASSERT_TRUE(base.ok());
  pc.save_top_k = 0;
  pc.max_chunks = -1;
  r = run_perplexity(fwd, ref.ids, pc, &base->saved);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("holds 2 chunks"), std::string::npos) << r.status().message();
  pc.max_chunks = 2;
  pc.ctx = 32;
  EXPECT_FALSE(run_perplexity(fwd, ref.ids, pc, &base->saved).ok());
  pc.ctx = 64;
  std::vector<int32_t> other = ref.ids;
  other[100] = (other[100] + 1) % 512;
  r = run_perplexity(fwd, other, pc, &base->saved);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("other tokens"), std::string::npos);
  // a file that is not a saved-logits file
  auto nf = read_saved_logits(kGolden + "/c1/reference.safetensors");
  ASSERT_FALSE(nf.ok());
  EXPECT_NE(nf.status().message().find("not a saved-logits file"), std::string::npos);
  EXPECT_FALSE(read_saved_logits(kGolden + "/c1/missing.safetensors").ok());
}

}  // namespace
}  // namespace oss4
