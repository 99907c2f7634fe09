// The public API (include/oss4/model.h): generate against the forward pass evaluated another way (one prefill over
// the whole sequence), prefix reuse, stops, cancellation and bad input.
#include <gtest/gtest.h>

#include <algorithm>

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "model/weights.h"
#include "oss4/model.h"
#include "runtime/kv_cache.h"
#include "text/tokenizer.h"

namespace oss4 {
namespace {

const std::string kModel = std::string(OSS4_TEST_DATA) + "/golden/c2/mxfp4";

std::unique_ptr<Model> load(ModelOptions o = {}) {
  o.tokenizer = kBuiltinVocab;
  auto m = Model::load(kModel, o);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : nullptr;
}

std::vector<int32_t> greedy(Model& m, const std::vector<int32_t>& prompt, int64_t n) {
  auto ctx = m.new_context({.n_ctx = 256});
  EXPECT_TRUE(ctx.ok());
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = n;
  p.ignore_eos = true;
  auto r = generate(**ctx, prompt, p);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? r->token_ids : std::vector<int32_t>{};
}

// greedy decoding one token at a time picks, at every step, the argmax of the logits a single prefill over the
// whole sequence gives (an independent path through the forward pass: chunked prefill, no decode steps)
TEST(Api, GreedyGenerateIsTheArgmaxOfOnePrefill) {
  auto m = load();
  ASSERT_TRUE(m);
  const std::vector<int32_t> prompt = {5, 17, 99, 3, 250, 7};
  const std::vector<int32_t> out = greedy(*m, prompt, 10);
  ASSERT_EQ(out.size(), 10u);

  auto w = load_model(kModel);
  ASSERT_TRUE(w.ok());
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), out.begin(), out.end() - 1);
  auto fwd = make_forward(*w, BackendOptions{});
  ASSERT_TRUE(fwd.ok()) << fwd.status().message();
  auto cache = (*fwd)->new_cache(64, 128);
  ASSERT_TRUE(cache.ok());
  std::vector<float> logits;  // [all.size(), n_vocab]
  ASSERT_TRUE(eval(**fwd, **cache, all.data(), static_cast<int64_t>(all.size()), LogitsMode::kAll, &logits).ok());
  const int64_t V = w->cfg.n_vocab;
  for (size_t k = 0; k < out.size(); ++k) {
    const float* row = logits.data() + (prompt.size() - 1 + k) * V;
    const auto best = static_cast<int32_t>(std::max_element(row, row + V) - row);
    EXPECT_EQ(out[k], best) << "step " << k;
  }
}

TEST(Api, PrefixReuseGivesWhatAFreshContextGives) {
  auto m = load();
  ASSERT_TRUE(m);
  const std::vector<int32_t> turn1 = {5, 17, 99, 3};
  auto ctx = m->new_context({.n_ctx = 256});
  ASSERT_TRUE(ctx.ok());
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 5;
  p.ignore_eos = true;
  auto r1 = generate(**ctx, turn1, p);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(r1->n_reused, 0);
  // the context holds the prompt and every generated token but the last
  EXPECT_EQ((*ctx)->tokens().size(), turn1.size() + 4);

  std::vector<int32_t> turn2 = turn1;
  turn2.insert(turn2.end(), r1->token_ids.begin(), r1->token_ids.end());
  turn2.insert(turn2.end(), {42, 43});
  auto r2 = generate(**ctx, turn2, p);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->n_reused, static_cast<int64_t>(turn1.size() + 4));
  EXPECT_EQ(r2->token_ids, greedy(*m, turn2, 5));

  // a prompt that diverges early truncates the context and still gives the fresh result
  const std::vector<int32_t> other = {5, 17, 1, 2, 3};
  auto r3 = generate(**ctx, other, p);
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->n_reused, 2);
  EXPECT_EQ(r3->token_ids, greedy(*m, other, 5));
}

TEST(Api, StopsCancelsAndSeeds) {
  auto m = load();
  ASSERT_TRUE(m);
  const std::vector<int32_t> prompt = {5, 17, 99, 3};
  const std::vector<int32_t> ref = greedy(*m, prompt, 8);
  ASSERT_EQ(ref.size(), 8u);
  auto ctx = m->new_context();
  ASSERT_TRUE(ctx.ok());
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = 8;
  p.ignore_eos = true;
  p.stop_token_ids = {ref[2]};
  auto r = generate(**ctx, prompt, p);
  ASSERT_TRUE(r.ok());
  const size_t first_stop = static_cast<size_t>(std::find(ref.begin(), ref.end(), ref[2]) - ref.begin());
  EXPECT_EQ(r->token_ids, std::vector<int32_t>(ref.begin(), ref.begin() + first_stop + 1));
  EXPECT_EQ(r->finish_reason, FinishReason::kStop);

  p.stop_token_ids.clear();
  int calls = 0;
  r = generate(**ctx, prompt, p, [&](int32_t, std::string_view) { return ++calls < 3; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(r->token_ids.size(), 3u);
  EXPECT_STREQ(finish_reason_name(r->finish_reason), "cancelled");

  // the text streamed piece by piece is the text of the ids
  std::string streamed;
  r = generate(**ctx, prompt, p, [&](int32_t, std::string_view t) { streamed += t; return true; });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish_reason, FinishReason::kLength);
  EXPECT_EQ(streamed, r->text);
  EXPECT_EQ(r->text, *m->decode(r->token_ids));

  // sampling: the same seed draws the same tokens, another seed (almost surely) others
  p.temperature = 1;
  p.seed = 11;
  auto a = generate(**ctx, prompt, p), b = generate(**ctx, prompt, p);
  p.seed = 12;
  auto c = generate(**ctx, prompt, p);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->token_ids, b->token_ids);
  EXPECT_NE(a->token_ids, c->token_ids);
}

// nothing about how a model runs is process-wide: two models of one process, one on the reference rung and one on
// the SIMD rung, each give (bit for bit) what it gives alone, used in turns, and the two differ (f32 summation order)
TEST(Api, TwoModelsKeepTheirOwnOptions) {
  if (best_kernel_isa() == KernelIsa::kRef) GTEST_SKIP() << "no SIMD rung on this CPU: nothing to tell apart";
  const std::string simd = kernel_isa_name(best_kernel_isa());
  const std::vector<int32_t> prompt = {5, 17, 99, 3, 250, 7, 31, 64, 2, 11};
  auto opts = [](const std::string& kernels, int threads) {
    ModelOptions o;
    o.kernels = kernels;
    o.threads = threads;
    return o;
  };
  auto last_logits = [&](Model& m) {
    auto ctx = m.new_context({.n_ctx = 64});
    EXPECT_TRUE(ctx.ok());
    std::vector<float> logits;  // [n_vocab]
    EXPECT_TRUE((*ctx)->append(prompt, &logits).ok());
    return logits;
  };
  std::vector<float> alone_ref, alone_simd;
  {
    auto r = load(opts("ref", 0));
    ASSERT_TRUE(r);
    alone_ref = last_logits(*r);
  }
  {
    auto s = load(opts(simd, 2));
    ASSERT_TRUE(s);
    alone_simd = last_logits(*s);
  }
  auto a = load(opts("ref", 0));
  auto b = load(opts(simd, 2));
  ASSERT_TRUE(a && b);
  for (int turn = 0; turn < 2; ++turn) {
    EXPECT_EQ(last_logits(*a), alone_ref) << "turn " << turn;
    EXPECT_EQ(last_logits(*b), alone_simd) << "turn " << turn;
  }
  EXPECT_NE(alone_ref, alone_simd) << "the rungs sum in different orders; equal logits would mean one setting for both";
}

TEST(Api, BadInputIsAnError) {
  ModelOptions o;
  o.device = "tpu";
  EXPECT_FALSE(Model::load(kModel, o).ok());
  o.device = "auto";
  o.threads = -1;
  EXPECT_FALSE(Model::load(kModel, o).ok());
  o.threads = 0;
  o.activations = "int3";
  EXPECT_FALSE(Model::load(kModel, o).ok());
  auto missing = Model::load(kModel + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);

  auto m = load();
  ASSERT_TRUE(m);
  auto ctx = m->new_context({.n_ctx = 16});
  ASSERT_TRUE(ctx.ok());
  SamplingParams p;
  p.max_tokens = 0;
  EXPECT_FALSE(generate(**ctx, {1, 2}, p).ok());
  p.max_tokens = 4;
  EXPECT_FALSE(generate(**ctx, {}, p).ok());
  EXPECT_FALSE(generate(**ctx, {1, static_cast<int32_t>(m->n_vocab())}, p).ok());
  auto too_long = generate(**ctx, std::vector<int32_t>(14, 1), p);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.status().message().find("exceeds the context size 16"), std::string::npos);
  p.top_p = 0;
  EXPECT_FALSE(generate(**ctx, {1, 2}, p).ok());
  EXPECT_FALSE((*ctx)->truncate(1).ok());  // holds nothing yet
  EXPECT_FALSE(m->new_context({.n_ctx = 1}).ok());
  EXPECT_EQ(m->new_context({.n_ctx = 1 << 20}).value()->n_ctx(), m->max_context());
}

}  // namespace
}  // namespace oss4
