// The serving engine without HTTP: the batched decode step against per-sequence eval, rolling a full-length cache
// back to a shared prefix (sliding-window layers included) against a cold prefill, and the scheduler (continuous
// batching, KV budget, queue, cancellation, prefix reuse). Model: the small golden checkpoint c2 (3 layers, two with
// a sliding window of 16, so prompts of 20-60 tokens cross the window).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backend/backend.h"
#include "serve/engine_names.h"

namespace oss4::serve {
namespace {

const std::string kModel = std::string(OSS4_TEST_DATA) + "/golden/c2/mxfp4";

const ModelWeights& weights() {
  static const ModelWeights* m = [] {
    auto r = load_model(kModel);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      std::abort();
    }
    return new ModelWeights(std::move(r).value());
  }();
  return *m;
}

// the model's backend (the default one), shared by the tests of this file
Forward& model() {
  static Forward* f = [] {
    auto r = make_forward(weights(), BackendOptions{});
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      std::abort();
    }
    return r->release();
  }();
  return *f;
}

std::unique_ptr<KvCache> new_cache(int64_t max_ctx, int64_t chunk, bool ring = true) {
  auto c = model().new_cache(max_ctx, chunk, ring);
  if (!c.ok()) std::abort();
  return std::move(c).value();
}

std::vector<int32_t> prompt(int64_t n, int32_t salt) {
  std::vector<int32_t> p(static_cast<size_t>(n));  // [n] token ids
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = static_cast<int32_t>((i * 37 + salt * 101 + 11) % 380);
  return p;
}

float max_abs_diff(const float* a, const float* b, int64_t n) {
  float d = 0;
  for (int64_t i = 0; i < n; ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

// a decode step of several sequences as one batch (one row each) against each sequence's own eval
TEST(BatchedRun, DecodeStepMatchesPerSequenceEval) {
  Forward& f = model();
  const int64_t V = f.config().n_vocab;
  const std::vector<int64_t> lens = {5, 20, 41};
  std::vector<std::unique_ptr<KvCache>> a, b;  // the same sequences: batched / one at a time
  std::vector<int32_t> next;  // [n_seq] the token each evaluates next
  std::vector<float> logits;  // [n_vocab]
  for (size_t s = 0; s < lens.size(); ++s) {
    a.push_back(new_cache(256, 16));  // ring caches on sliding layers
    b.push_back(new_cache(256, 16));
    const auto p = prompt(lens[s], static_cast<int32_t>(s));
    ASSERT_TRUE(eval(f, *a[s], p.data(), lens[s], LogitsMode::kLast, &logits).ok());
    ASSERT_TRUE(eval(f, *b[s], p.data(), lens[s], LogitsMode::kLast, nullptr).ok());
    next.push_back(argmax(logits.data(), V));
  }
  std::vector<float> batch_logits(lens.size() * static_cast<size_t>(V));  // [n_seq, n_vocab]
  float worst = 0, scale = 0;  // max |difference|, max |logit|
  for (int step = 0; step < 24; ++step) {
    std::vector<KvCache*> caches;
    Batch batch;
    for (size_t s = 0; s < a.size(); ++s) {
      caches.push_back(a[s].get());
      batch.add(next[s], a[s]->n_pos(), static_cast<int32_t>(s), true);
    }
    ASSERT_TRUE(f.run(batch, caches.data(), static_cast<int64_t>(caches.size()), batch_logits.data()).ok());
    for (size_t s = 0; s < lens.size(); ++s) {
      ASSERT_TRUE(eval(f, *b[s], &next[s], 1, LogitsMode::kLast, &logits).ok());
      const float* bl = batch_logits.data() + static_cast<int64_t>(s) * V;
      worst = std::max(worst, max_abs_diff(bl, logits.data(), V));
      for (int64_t i = 0; i < V; ++i) scale = std::max(scale, std::fabs(logits[static_cast<size_t>(i)]));
      EXPECT_EQ(a[s]->n_pos(), b[s]->n_pos());
      next[s] = argmax(bl, V);
    }
  }
  // the batch runs the matmuls as GEMMs, eval as GEMVs: f32 sums in another order, nothing more
  EXPECT_LE(worst, 1e-5f * scale) << "batched decode differs from per-sequence eval";
  std::printf("[ batched decode vs eval: max |logit difference| %.3g (max |logit| %.3g) over 24 steps x 3 sequences ]\n",
              static_cast<double>(worst), static_cast<double>(scale));
}

// one sequence's prefill chunk and two others' decode tokens in the same run, against each done alone
TEST(BatchedRun, MixedPrefillAndDecodeStepMatchesSeparateCalls) {
  Forward& f = model();
  const int64_t V = f.config().n_vocab;
  auto d1 = new_cache(256, 16), d2 = new_cache(256, 16), pf = new_cache(256, 16);
  auto e1 = new_cache(256, 16), e2 = new_cache(256, 16), ef = new_cache(256, 16);
  const auto p1 = prompt(23, 4), p2 = prompt(9, 5), p3 = prompt(30, 6);
  std::vector<float> scratch;
  for (auto [c, p] : {std::pair{d1.get(), &p1}, std::pair{e1.get(), &p1}, std::pair{d2.get(), &p2}, std::pair{e2.get(), &p2}})
    ASSERT_TRUE(eval(f, *c, p->data(), static_cast<int64_t>(p->size()), LogitsMode::kNone, nullptr).ok());
  // p3's first 16 tokens already in, its next chunk of 14 goes in the mixed step
  ASSERT_TRUE(eval(f, *pf, p3.data(), 16, LogitsMode::kNone, nullptr).ok());
  ASSERT_TRUE(eval(f, *ef, p3.data(), 16, LogitsMode::kNone, nullptr).ok());
  Batch b;
  b.add(7, d1->n_pos(), 0, true);
  b.add_run(p3.data() + 16, 14, pf->n_pos(), 2, /*last_logits=*/true);
  b.add(11, d2->n_pos(), 1, true);
  KvCache* caches[3] = {d1.get(), d2.get(), pf.get()};
  std::vector<float> mixed(3 * static_cast<size_t>(V));  // [3 rows asking, n_vocab]: d1, p3's last, d2
  ASSERT_TRUE(f.run(b, caches, 3, mixed.data()).ok());
  EXPECT_EQ(d1->n_pos(), 24);
  EXPECT_EQ(pf->n_pos(), 30);
  EXPECT_EQ(d2->n_pos(), 10);
  std::vector<float> want1, want2, want3;  // [n_vocab] each
  const int32_t t7 = 7, t11 = 11;
  ASSERT_TRUE(eval(f, *e1, &t7, 1, LogitsMode::kLast, &want1).ok());
  ASSERT_TRUE(eval(f, *ef, p3.data() + 16, 14, LogitsMode::kLast, &want3).ok());
  ASSERT_TRUE(eval(f, *e2, &t11, 1, LogitsMode::kLast, &want2).ok());
  float scale = 0;
  for (float v : want3) scale = std::max(scale, std::fabs(v));
  EXPECT_LE(max_abs_diff(mixed.data(), want1.data(), V), 1e-5f * scale);
  EXPECT_LE(max_abs_diff(mixed.data() + V, want3.data(), V), 1e-5f * scale);
  EXPECT_LE(max_abs_diff(mixed.data() + 2 * V, want2.data(), V), 1e-5f * scale);
  // and each sequence continues from the mixed step as from the separate calls
  std::vector<float> after_mixed, after_sep;
  const int32_t t9 = 9;
  ASSERT_TRUE(eval(f, *pf, &t9, 1, LogitsMode::kLast, &after_mixed).ok());
  ASSERT_TRUE(eval(f, *ef, &t9, 1, LogitsMode::kLast, &after_sep).ok());
  EXPECT_LE(max_abs_diff(after_mixed.data(), after_sep.data(), V), 1e-5f * scale);
}

TEST(BatchedRun, RejectsBadInput) {
  Forward& f = model();
  auto c = new_cache(8, 4);
  auto other = new_cache(8, 4);
  std::vector<float> logits(2 * static_cast<size_t>(f.config().n_vocab));  // [2, n_vocab]
  auto run = [&](const Batch& b, KvCache* c0, KvCache* c1, int64_t n) {
    KvCache* caches[2] = {c0, c1};
    return f.run(b, caches, n, logits.data());
  };
  Batch b;
  b.add(1, 0, 0, true);
  b.add(2, 0, 1, true);
  EXPECT_FALSE(run(b, c.get(), c.get(), 2).ok()) << "two sequences share a cache";
  b.clear();
  b.add(static_cast<int32_t>(f.config().n_vocab), 0, 0, true);
  EXPECT_FALSE(run(b, c.get(), nullptr, 1).ok()) << "id outside the vocabulary";
  EXPECT_FALSE(run(Batch{}, c.get(), nullptr, 1).ok()) << "an empty batch";
  b.clear();
  b.add(1, 3, 0, true);
  Status s = run(b, c.get(), nullptr, 1);
  EXPECT_FALSE(s.ok()) << "a position that does not follow the cache's";
  EXPECT_NE(s.message().find("position"), std::string::npos) << s.message();
  b.clear();
  b.add(1, 0, 0, true);
  b.add(2, 0, 1, true);
  b.add(3, 1, 0, true);
  EXPECT_FALSE(run(b, c.get(), other.get(), 2).ok()) << "a sequence's rows not contiguous";
  b.clear();
  b.add(1, 0, 5, true);
  EXPECT_FALSE(run(b, c.get(), nullptr, 1).ok()) << "a sequence without a cache";
  b.clear();
  b.add(1, 0, 0, true);
  KvCache* none[1] = {c.get()};
  EXPECT_FALSE(f.run(b, none, 1, nullptr).ok()) << "logits asked for, no buffer";
  EXPECT_EQ(c->n_pos(), 0) << "a refused batch evaluates nothing";
  std::vector<int32_t> p(8, 3);
  ASSERT_TRUE(eval(f, *c, p.data(), 8, LogitsMode::kNone, nullptr).ok());
  b.clear();
  b.add(1, 8, 0, true);
  EXPECT_FALSE(run(b, c.get(), nullptr, 1).ok()) << "context full";
}

// a cache that held P1 + more, rolled back to the prefix P1 and P2 shares, continues exactly as a cold prefill of P2.
TEST(PrefixReuse, TruncatedFullCacheEqualsColdPrefill) {
  Forward& f = model();
  const int64_t V = f.config().n_vocab;
  auto p1 = prompt(60, 1);  // 60 positions: well past the window of 16
  auto p2 = p1;
  p2.resize(37);
  for (int i = 0; i < 20; ++i) p2.push_back(static_cast<int32_t>((i * 13 + 5) % 380));
  auto warm = new_cache(128, 16, /*ring=*/false);
  ASSERT_FALSE(warm->has_ring());
  ASSERT_TRUE(eval(f, *warm, p1.data(), 60, LogitsMode::kNone, nullptr).ok());
  ASSERT_TRUE(warm->truncate(37).ok());
  std::vector<float> lw, lc;  // [20, n_vocab] logits of P2's new tokens: warm / cold
  ASSERT_TRUE(eval(f, *warm, p2.data() + 37, 20, LogitsMode::kAll, &lw).ok());
  auto cold = new_cache(128, 16, /*ring=*/false);
  std::vector<float> all;  // [57, n_vocab]
  ASSERT_TRUE(eval(f, *cold, p2.data(), 57, LogitsMode::kAll, &all).ok());
  lc.assign(all.begin() + 37 * V, all.end());
  EXPECT_LE(max_abs_diff(lw.data(), lc.data(), 20 * V), 1e-5f);
  // and the ring layout agrees with the full one
  auto ring = new_cache(128, 16);
  ASSERT_TRUE(ring->has_ring());
  std::vector<float> lr;  // [57, n_vocab]
  ASSERT_TRUE(eval(f, *ring, p2.data(), 57, LogitsMode::kAll, &lr).ok());
  EXPECT_LE(max_abs_diff(lr.data(), all.data(), 57 * V), 1e-5f);
}

TEST(PrefixReuse, RingRollsBackOnlyWithinItsSpareSlots) {
  Forward& f = model();
  auto ring = new_cache(128, 16);
  auto p = prompt(60, 2);
  ASSERT_TRUE(eval(f, *ring, p.data(), 60, LogitsMode::kNone, nullptr).ok());
  EXPECT_FALSE(ring->truncate(30).ok()) << "the ring has overwritten what position 30 needs";
  EXPECT_TRUE(ring->truncate(45).ok()) << "15 = max_chunk - 1 positions back is safe";
  EXPECT_FALSE(ring->truncate(50).ok()) << "cannot grow by truncation";
  EXPECT_FALSE(ring->set_max_ctx(200).ok());
}

EngineConfig small_config() {
  EngineConfig c;
  c.max_seqs = 8;
  c.ctx = 128;
  c.chunk = 16;
  c.kv_budget_bytes = int64_t{64} << 20;
  return c;
}

GenRequest greedy(std::vector<int32_t> p, int64_t max_tokens) {
  GenRequest r;
  r.prompt = std::move(p);
  r.sampling.temperature = 0;
  r.max_tokens = max_tokens;
  return r;
}

std::vector<int32_t> drain(Sequence& s) {
  std::vector<int32_t> out;
  s.wait(&out, std::chrono::milliseconds(0));
  return out;
}

void run_until_idle(Engine& e) {
  for (int i = 0; i < 10000 && e.step(); ++i) {
  }
}

TEST(Engine, BatchedGreedyEqualsOneAtATime) {
  const int n = 6;
  std::vector<std::vector<int32_t>> alone(n), together(n);
  for (int i = 0; i < n; ++i) {
    EngineConfig c = small_config();
    c.prefix_reuse = false;
    auto e = *Engine::create(model(), c);
    auto r = e->submit(greedy(prompt(8 + 7 * i, i), 12));
    ASSERT_EQ(r.err, SubmitError::kNone) << r.message;
    run_until_idle(*e);
    alone[static_cast<size_t>(i)] = drain(*r.seq);
    EXPECT_EQ(r.seq->finish_reason(), FinishReason::kLength);
  }
  auto e = *Engine::create(model(), small_config());
  std::vector<std::shared_ptr<Sequence>> seqs;
  for (int i = 0; i < n; ++i) {
    auto r = e->submit(greedy(prompt(8 + 7 * i, i), 12));
    ASSERT_EQ(r.err, SubmitError::kNone) << r.message;
    seqs.push_back(r.seq);
    if (i == 2) e->step();  // later requests join a running batch
  }
  run_until_idle(*e);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(drain(*seqs[static_cast<size_t>(i)]), alone[static_cast<size_t>(i)]) << "sequence " << i;
    EXPECT_EQ(seqs[static_cast<size_t>(i)]->n_generated(), 12);
  }
  EXPECT_GT(e->stats().n_steps, 0);
}

TEST(Engine, StopTokensEndASequence) {
  auto e = *Engine::create(model(), small_config());
  auto first = e->submit(greedy(prompt(10, 3), 5));
  run_until_idle(*e);
  const auto toks = drain(*first.seq);
  ASSERT_EQ(toks.size(), 5u);
  GenRequest r = greedy(prompt(10, 3), 5);
  r.stop_ids = {toks[2]};
  auto s = e->submit(r);
  run_until_idle(*e);
  const auto got = drain(*s.seq);
  const auto first_stop = std::find(toks.begin(), toks.end(), toks[2]);
  EXPECT_EQ(got, std::vector<int32_t>(toks.begin(), first_stop + 1)) << "ends with the stop token";
  EXPECT_EQ(s.seq->finish_reason(), FinishReason::kStopToken);
}

TEST(Engine, RefusesWhatCannotRun) {
  EngineConfig c = small_config();
  c.max_queue = 2;
  auto e = *Engine::create(model(), c);
  EXPECT_EQ(e->submit(greedy({}, 4)).err, SubmitError::kInvalid);
  EXPECT_EQ(e->submit(greedy({1, 2, 384}, 4)).err, SubmitError::kInvalid);
  EXPECT_EQ(e->submit(greedy({1, 2}, 0)).err, SubmitError::kInvalid);
  EXPECT_EQ(e->submit(greedy(prompt(100, 0), 29)).err, SubmitError::kTooLong) << "100 + 29 > ctx 128";
  GenRequest bad = greedy({1, 2}, 4);
  bad.sampling.top_p = 0;
  EXPECT_EQ(e->submit(bad).err, SubmitError::kInvalid);
  EXPECT_EQ(e->submit(greedy({1, 2}, 4)).err, SubmitError::kNone);
  EXPECT_EQ(e->submit(greedy({1, 2}, 4)).err, SubmitError::kNone);
  EXPECT_EQ(e->submit(greedy({1, 2}, 4)).err, SubmitError::kOverloaded) << "queue of 2 is full";
  EXPECT_GE(e->stats().n_rejected, 6);
  EXPECT_FALSE(Engine::create(model(), EngineConfig{0, 1, 128, 16, 1 << 20, true, 256}).ok());
  EngineConfig too_big = small_config();
  too_big.ctx = 5000;
  EXPECT_FALSE(Engine::create(model(), too_big).ok()) << "beyond the model's positions";
}

TEST(Engine, KvBudgetQueuesAndAdmitsWhenMemoryFrees) {
  EngineConfig c = small_config();
  auto probe = *Engine::create(model(), c);
  const int64_t plan = (20 + 10) * probe->bytes_per_position();
  c.kv_budget_bytes = 2 * plan;  // room for two sequences of 20 + 10
  c.prefix_reuse = false;
  auto e = *Engine::create(model(), c);
  std::vector<std::shared_ptr<Sequence>> seqs;
  for (int i = 0; i < 4; ++i) seqs.push_back(e->submit(greedy(prompt(20, i), 10)).seq);
  ASSERT_TRUE(e->step());
  EngineStats s = e->stats();
  EXPECT_EQ(s.n_running, 2);
  EXPECT_EQ(s.n_waiting, 2);
  EXPECT_LE(s.kv_bytes_reserved, c.kv_budget_bytes);
  run_until_idle(*e);
  for (auto& q : seqs) EXPECT_EQ(drain(*q).size(), 10u);
  s = e->stats();
  EXPECT_EQ(s.n_running + s.n_waiting, 0);
  EXPECT_EQ(s.kv_bytes_used, 0) << "nothing parked without prefix reuse";
  EXPECT_EQ(s.n_finished, 4);
}

TEST(Engine, CancelFreesTheSlotAndItsKv) {
  EngineConfig c = small_config();
  c.max_seqs = 1;
  auto e = *Engine::create(model(), c);
  auto a = e->submit(greedy(prompt(30, 1), 50)).seq;
  auto b = e->submit(greedy(prompt(30, 2), 5)).seq;
  ASSERT_TRUE(e->step());
  ASSERT_TRUE(e->step());
  EXPECT_GT(e->stats().kv_bytes_used, 0);
  EXPECT_EQ(e->stats().n_waiting, 1) << "b waits for the only slot";
  a->cancel();
  ASSERT_TRUE(e->step());  // a leaves and b is admitted in the same iteration... or the next
  run_until_idle(*e);
  EXPECT_EQ(a->finish_reason(), FinishReason::kCancelled);
  EXPECT_LT(a->n_generated(), 50);
  EXPECT_EQ(drain(*b).size(), 5u);
  EXPECT_EQ(e->stats().n_cancelled, 1);
  // a waiting request cancelled before it ran never starts
  auto c1 = e->submit(greedy(prompt(10, 1), 5)).seq;
  c1->cancel();
  run_until_idle(*e);
  EXPECT_EQ(c1->finish_reason(), FinishReason::kCancelled);
  EXPECT_EQ(c1->n_generated(), 0);
}

TEST(Engine, PrefixReuseSkipsTheSharedPrefixAndChangesNothing) {
  // turn 1: P1 and 10 generated tokens; turn 2 extends P1 with other tokens (as harmony drops the reply's analysis)
  auto p1 = prompt(40, 4);
  auto p2 = p1;
  for (int i = 0; i < 15; ++i) p2.push_back(static_cast<int32_t>((i * 29 + 3) % 380));
  std::vector<int32_t> cold_out, warm_out;
  {
    EngineConfig c = small_config();
    c.prefix_reuse = false;
    auto e = *Engine::create(model(), c);
    auto s = e->submit(greedy(p2, 8)).seq;
    run_until_idle(*e);
    cold_out = drain(*s);
    EXPECT_EQ(s->n_reused(), 0);
  }
  auto e = *Engine::create(model(), small_config());
  auto s1 = e->submit(greedy(p1, 10)).seq;
  run_until_idle(*e);
  EXPECT_EQ(e->stats().n_parked, 1);
  auto s2 = e->submit(greedy(p2, 8)).seq;
  run_until_idle(*e);
  warm_out = drain(*s2);
  EXPECT_EQ(s2->n_reused(), 40) << "all of P1 (past the sliding window) comes from the parked cache";
  EXPECT_EQ(warm_out, cold_out);
  // the same prompt again: everything but the last token is reused
  auto s3 = e->submit(greedy(p2, 8)).seq;
  run_until_idle(*e);
  EXPECT_EQ(s3->n_reused(), static_cast<int64_t>(p2.size()) - 1);
  EXPECT_EQ(drain(*s3), cold_out);
  EXPECT_EQ(e->stats().n_reused_tokens, 40 + static_cast<int64_t>(p2.size()) - 1);
}

// a long prompt prefills a budget of chunks per step, and the running sequence takes a decode step between them;
// the tokens of both are those of whole-prompt prefill and of each sequence alone.
TEST(Engine, ChunkedPrefillInterleavesWithDecode) {
  struct Run {
    std::vector<int32_t> a, b;
    int n_overlap = 0;  // steps in which a got a token while b's prompt was still prefilling
    int64_t n_prefill_calls = 0;
  };
  auto run = [](int64_t prefill_chunk, bool with_a) {
    EngineConfig c = small_config();  // chunk 16
    c.prefill_chunk = prefill_chunk;
    c.prefix_reuse = false;
    auto e = *Engine::create(model(), c);
    Run r;
    std::shared_ptr<Sequence> a;
    if (with_a) {
      a = e->submit(greedy(prompt(10, 5), 30)).seq;
      EXPECT_TRUE(e->step());
      auto got = drain(*a);
      r.a.insert(r.a.end(), got.begin(), got.end());
      EXPECT_EQ(r.a.size(), 2u) << "a is running: its prefill's token and one decode step";
    }
    auto b = e->submit(greedy(prompt(100, 6), 8)).seq;
    for (int i = 0; i < 1000 && e->step(); ++i) {
      const size_t before = r.a.size();
      if (a) {
        auto got = drain(*a);
        r.a.insert(r.a.end(), got.begin(), got.end());
      }
      if (b->n_generated() == 0 && r.a.size() > before) ++r.n_overlap;
    }
    r.b = drain(*b);
    r.n_prefill_calls = e->stats().n_prefill_calls;
    return r;
  };
  const Run whole = run(0, true), alone_b = run(0, false);
  EXPECT_EQ(whole.n_overlap, 0) << "whole-prompt prefill: b's prompt is done in the step that admits it";
  EXPECT_EQ(whole.n_prefill_calls, 2);
  EXPECT_EQ(whole.b, alone_b.b);
  ASSERT_EQ(whole.a.size(), 30u);
  ASSERT_EQ(whole.b.size(), 8u);
  // 16 tokens a step: 100 = 6 x 16 + 4, so a decodes in the 6 steps before the one that ends b's prompt
  const Run chunked = run(16, true);
  EXPECT_EQ(chunked.n_overlap, 6);
  EXPECT_EQ(chunked.n_prefill_calls, 1 + 7);
  EXPECT_EQ(chunked.a, whole.a);
  EXPECT_EQ(chunked.b, whole.b);
  // a budget that is not a multiple of the chunk rounds down to whole chunks (40 -> 32: 3 steps of b before the last)
  const Run odd = run(40, true);
  EXPECT_EQ(odd.n_overlap, 3);
  EXPECT_EQ(odd.a, whole.a);
  EXPECT_EQ(odd.b, whole.b);
}

// a running sequence's decode token and a new sequence's prefill chunk go into one forward call (a mixed step); the
// tokens of both are those of each request run alone
TEST(Engine, MixedStepServesDecodeAndPrefillInOneRun) {
  EngineConfig c = small_config();  // chunk 16
  c.prefill_chunk = 16;
  c.prefix_reuse = false;
  auto alone = [&](std::vector<int32_t> p, int64_t n) {
    auto e = *Engine::create(model(), c);
    auto s = e->submit(greedy(std::move(p), n)).seq;
    run_until_idle(*e);
    EXPECT_EQ(e->stats().n_mixed_steps, 0) << "nothing else ran";
    return drain(*s);
  };
  const auto pa = prompt(10, 7), pb = prompt(40, 8);
  const auto want_a = alone(pa, 12), want_b = alone(pb, 6);
  ASSERT_EQ(want_a.size(), 12u);
  ASSERT_EQ(want_b.size(), 6u);
  auto e = *Engine::create(model(), c);
  auto a = e->submit(greedy(pa, 12)).seq;
  ASSERT_TRUE(e->step());  // a: prefill, its first token and one decode step
  auto b = e->submit(greedy(pb, 6)).seq;
  const EngineStats before = e->stats();
  ASSERT_TRUE(e->step());  // a's decode token and b's first chunk of 16
  const EngineStats after = e->stats();
  EXPECT_EQ(after.n_runs - before.n_runs, 1) << "one forward call served both";
  EXPECT_EQ(after.n_mixed_steps - before.n_mixed_steps, 1);
  EXPECT_EQ(after.n_prefill_calls - before.n_prefill_calls, 1);
  EXPECT_EQ(a->n_generated(), 3);
  EXPECT_EQ(b->n_generated(), 0) << "b's prompt is still prefilling";
  run_until_idle(*e);
  EXPECT_EQ(drain(*a), want_a);
  EXPECT_EQ(drain(*b), want_b);
  EXPECT_EQ(e->stats().n_mixed_steps, 3) << "b's 40 tokens (16 + 16 + 8) went in three steps next to a's decode";
}

// a sequence cancelled while its prompt is still prefilling leaves at the next step with its K/V; a parked cache it
// started from is not kept either
TEST(Engine, CancelDuringChunkedPrefillFreesTheKv) {
  EngineConfig c = small_config();  // chunk 16
  c.prefill_chunk = 16;
  auto e = *Engine::create(model(), c);
  auto s = e->submit(greedy(prompt(100, 9), 8)).seq;
  ASSERT_TRUE(e->step());
  ASSERT_TRUE(e->step());
  EngineStats st = e->stats();
  EXPECT_EQ(st.n_running, 1);
  EXPECT_GT(st.kv_bytes_used, 0);
  EXPECT_EQ(st.n_prefill_calls, 2);
  EXPECT_EQ(s->n_generated(), 0) << "still prefilling";
  s->cancel();
  e->step();
  st = e->stats();
  EXPECT_EQ(st.n_running, 0);
  EXPECT_EQ(st.n_parked, 0) << "a half-prefilled cache is not parked";
  EXPECT_EQ(st.kv_bytes_used, 0);
  EXPECT_EQ(st.n_cancelled, 1);
  EXPECT_EQ(s->finish_reason(), FinishReason::kCancelled);
}

TEST(Engine, ScriptReplacesSampling) {
  auto e = *Engine::create(model(), small_config());
  GenRequest r = greedy(prompt(10, 0), 20);
  r.script = {5, 6, 7, 8};
  r.stop_ids = {7};
  auto s = e->submit(r).seq;
  run_until_idle(*e);
  EXPECT_EQ(drain(*s), (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(s->finish_reason(), FinishReason::kStopToken);
}

TEST(Engine, ThreadedLoopServesConcurrentClients) {
  auto e = *Engine::create(model(), small_config());
  e->start();
  std::vector<std::shared_ptr<Sequence>> seqs;
  for (int i = 0; i < 5; ++i) seqs.push_back(e->submit(greedy(prompt(12, i), 6)).seq);
  for (auto& s : seqs) {
    std::vector<int32_t> got;
    for (int i = 0; i < 2000 && !s->wait(&got, std::chrono::milliseconds(10));) ++i;
    EXPECT_EQ(got.size(), 6u);
    EXPECT_GE(s->ttft_seconds(), 0.0);
  }
  e->stop();
}

}  // namespace
}  // namespace oss4::serve

namespace oss4::serve {
namespace {

// log-softmax of logits [n_vocab] at id, in double (the reference for the engine's log-probabilities)
double ref_logprob(const float* logits, int64_t n_vocab, int32_t id) {
  double m = -INFINITY, s = 0;
  for (int64_t i = 0; i < n_vocab; ++i) m = std::max(m, static_cast<double>(logits[i]));
  for (int64_t i = 0; i < n_vocab; ++i) s += std::exp(static_cast<double>(logits[i]) - m);
  return static_cast<double>(logits[id]) - m - std::log(s);
}

// the prompt scored (echo) and the generated tokens' log-probabilities against one forward over prompt + output;
// a scored prompt is evaluated whole even when a parked cache shares its prefix; max_tokens 0 only scores
TEST(Engine, LogprobsOfPromptAndOutputMatchTheForwardPass) {
  Forward& m = model();
  const int64_t V = m.config().n_vocab;
  auto e = *Engine::create(m, small_config());
  const auto p = prompt(37, 9);  // prefilled in chunks of 16, crossing the sliding window
  auto warm = e->submit(greedy(p, 3));  // parks a cache sharing the whole prompt
  run_until_idle(*e);
  GenRequest r = greedy(p, 6);
  r.top_logprobs = 4;
  r.score_prompt = true;
  auto s = e->submit(r).seq;
  run_until_idle(*e);
  EXPECT_EQ(s->n_reused(), 0) << "a scored prompt needs every position's logits";
  const std::vector<int32_t> out = drain(*s);
  ASSERT_EQ(out.size(), 6u);
  std::vector<int32_t> all = p;
  all.insert(all.end(), out.begin(), out.end());
  auto cache = new_cache(128, 16);
  std::vector<float> logits;  // [n_all, n_vocab]
  ASSERT_TRUE(eval(m, *cache, all.data(), static_cast<int64_t>(all.size()), LogitsMode::kAll, &logits).ok());
  const std::vector<TokenLogprob> pl = s->prompt_logprobs(), gl = s->logprobs();
  ASSERT_EQ(pl.size(), p.size());
  ASSERT_EQ(gl.size(), out.size());
  EXPECT_TRUE(std::isnan(pl[0].logprob) && pl[0].top.empty());
  for (size_t i = 1; i < all.size(); ++i) {
    const TokenLogprob& t = i < p.size() ? pl[i] : gl[i - p.size()];
    const float* row = logits.data() + static_cast<int64_t>(i - 1) * V;
    EXPECT_EQ(t.id, all[i]);
    EXPECT_NEAR(t.logprob, ref_logprob(row, V, all[i]), 1e-4) << i;
    ASSERT_EQ(t.top.size(), 4u);
    EXPECT_EQ(t.top[0].id, argmax(row, V)) << i;
    for (size_t k = 1; k < 4; ++k) EXPECT_GE(t.top[k - 1].logprob, t.top[k].logprob);
    for (const TopLogprob& c : t.top) EXPECT_NEAR(c.logprob, ref_logprob(row, V, c.id), 1e-4);
    if (i >= p.size()) {
      EXPECT_EQ(t.logprob, t.top[0].logprob) << "greedy: the most likely token";
    }
  }
  // pure scoring: no token, the same prompt numbers
  GenRequest z = greedy(p, 0);
  z.score_prompt = true;
  auto sz = e->submit(z);
  ASSERT_EQ(sz.err, SubmitError::kNone) << sz.message;
  run_until_idle(*e);
  EXPECT_TRUE(drain(*sz.seq).empty());
  EXPECT_EQ(sz.seq->finish_reason(), FinishReason::kLength);
  const auto zl = sz.seq->prompt_logprobs();
  ASSERT_EQ(zl.size(), p.size());
  for (size_t i = 1; i < p.size(); ++i) EXPECT_EQ(zl[i].logprob, pl[i].logprob) << i;
  // without logprobs nothing is recorded
  auto plain = e->submit(greedy(p, 2)).seq;
  run_until_idle(*e);
  EXPECT_TRUE(plain->logprobs().empty() && plain->prompt_logprobs().empty());
}

}  // namespace
}  // namespace oss4::serve
