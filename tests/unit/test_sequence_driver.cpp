// The sequence driver (runtime/sequence_driver.h): prefix reuse against the tokens a cache holds, the end of a
// sequence (stop ids, EOS and ignore_eos, max_tokens, a full context, a script running out), and drive() over one
// sequence giving what the serving engine gives for the same greedy request. Model: the small golden checkpoint c2.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "runtime/engine.h"
#include "runtime/sequence_driver.h"

namespace oss4 {
namespace {

Forward& c2() {
  static Forward* f = [] {
    static auto w = load_model(std::string(OSS4_TEST_DATA) + "/golden/c2/mxfp4");
    if (!w.ok()) std::abort();
    auto r = make_forward(*w, BackendOptions{});
    if (!r.ok()) std::abort();
    return r->release();
  }();
  return *f;
}

std::vector<int32_t> ids(int64_t n, int32_t salt) {
  std::vector<int32_t> p(static_cast<size_t>(n));  // [n] token ids
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = static_cast<int32_t>((i * 31 + salt * 17 + 3) % 380);
  return p;
}

TEST(SequenceDriver, ReusablePrefixStopsShortOfThePromptsLastToken) {
  EXPECT_EQ(reusable_prefix({}, {1, 2, 3}), 0);
  EXPECT_EQ(reusable_prefix({1, 2, 9}, {1, 2, 3}), 2);
  EXPECT_EQ(reusable_prefix({1, 2, 3}, {1, 2, 3}), 2) << "the last token is evaluated again";
  EXPECT_EQ(reusable_prefix({1, 2, 3, 4, 5}, {1, 2, 3}), 2);
  EXPECT_EQ(reusable_prefix({1, 2}, {1, 2, 3, 4}), 2);
  EXPECT_EQ(reusable_prefix({7}, {1, 2}), 0);
}

TEST(SequenceDriver, ReusePrefixTruncatesOrStartsOver) {
  Forward& f = c2();
  const auto p = ids(60, 1);
  for (bool ring : {false, true}) {
    auto c = f.new_cache(128, 16, ring);
    ASSERT_TRUE(c.ok());
    KvCache& cache = **c;
    std::vector<int32_t> held;
    ASSERT_TRUE(eval(f, cache, p.data(), 60, LogitsMode::kNone, nullptr).ok());
    held = p;
    auto q = p;
    q.resize(30);
    q.push_back(5);
    auto kept = reuse_prefix(cache, &held, q);
    ASSERT_TRUE(kept.ok()) << kept.status().message();
    // a ring of the window (16) + chunk - 1 cannot go back from 60 to 30: the cache starts over
    EXPECT_EQ(*kept, ring ? 0 : 30) << "ring " << ring;
    EXPECT_EQ(cache.n_pos(), *kept);
    EXPECT_EQ(static_cast<int64_t>(held.size()), *kept);
  }
  auto c = f.new_cache(16, 4);
  std::vector<int32_t> wrong = {1, 2};
  EXPECT_FALSE(reuse_prefix(**c, &wrong, {1, 2, 3}).ok()) << "held tokens that are not the cache's";
}

TEST(SequenceDriver, EndsAtStopsEosLengthAndFullContext) {
  const int64_t V = 8;
  std::vector<float> logits(V, 0.0f);  // [V] greedy picks id 3
  logits[3] = 1.0f;
  DriverParams p;
  p.sampling.temperature = 0;
  p.max_tokens = 3;
  {
    SequenceDriver d(p, V);
    EXPECT_EQ(d.next(logits.data(), 5, 100).end, StopReason::kNone);
    EXPECT_EQ(d.next(logits.data(), 6, 100).end, StopReason::kNone);
    const NextToken t = d.next(logits.data(), 7, 100);
    EXPECT_EQ(t.id, 3);
    EXPECT_EQ(t.end, StopReason::kLength);
    EXPECT_EQ(d.n_generated(), 3);
  }
  {
    SequenceDriver d(p, V);
    EXPECT_EQ(d.next(logits.data(), 100, 100).end, StopReason::kLength) << "no room for the token";
  }
  for (bool ignore : {false, true}) {
    DriverParams e = p;
    e.eos_ids = {3};
    e.ignore_eos = ignore;
    SequenceDriver d(e, V);
    EXPECT_EQ(d.next(logits.data(), 5, 100).end, ignore ? StopReason::kNone : StopReason::kStopToken);
  }
  {
    DriverParams s = p;
    s.stop_ids = {3};
    s.ignore_eos = true;  // stop ids stop all the same
    SequenceDriver d(s, V);
    EXPECT_EQ(d.next(logits.data(), 5, 100).end, StopReason::kStopToken);
  }
  {
    DriverParams s = p;
    s.script = {6};
    SequenceDriver d(s, V);
    EXPECT_EQ(d.next(logits.data(), 5, 100).id, 6);
    const NextToken t = d.next(logits.data(), 6, 100);
    EXPECT_EQ(t.id, -1) << "the script ran out: no token";
    EXPECT_EQ(t.end, StopReason::kStopToken);
  }
  {
    DriverParams s = p;
    s.prefixes = {{5, 1}, {5, 2}};
    logits[1] = 0.5f;
    SequenceDriver d(s, V);
    EXPECT_EQ(d.next(logits.data(), 5, 100).id, 5) << "the only token the prefixes allow";
    EXPECT_EQ(d.next(logits.data(), 6, 100).id, 1) << "the likelier of the allowed";
  }
}

// one sequence through drive() and the same greedy request through the engine: the same tokens; a second prompt
// extending the first reuses the cache
TEST(SequenceDriver, DriveGivesWhatTheEngineGives) {
  Forward& f = c2();
  const auto p = ids(37, 2);
  EngineConfig ec;
  ec.ctx = 128;
  ec.chunk = 16;
  ec.kv_budget_bytes = int64_t{64} << 20;
  auto e = *Engine::create(f, ec);
  GenRequest r;
  r.prompt = p;
  r.sampling.temperature = 0;
  r.max_tokens = 9;
  auto s = e->submit(r).seq;
  for (int i = 0; i < 1000 && e->step(); ++i) {
  }
  std::vector<int32_t> want;
  s->wait(&want, std::chrono::milliseconds(0));
  ASSERT_EQ(want.size(), 9u);
  auto c = f.new_cache(128, 16, /*sliding_ring=*/false);
  std::vector<int32_t> held;
  DriverParams dp;
  dp.sampling.temperature = 0;
  dp.max_tokens = 9;
  int n_last = 0;
  auto got = drive(f, **c, &held, p, dp, [&](int32_t, bool last) { n_last += last; return true; });
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(got->tokens, want);
  EXPECT_EQ(got->reason, StopReason::kLength);
  EXPECT_EQ(n_last, 1);
  EXPECT_EQ(got->n_reused, 0);
  EXPECT_EQ(static_cast<int64_t>(held.size()), 37 + 8) << "the prompt and every generated token but the last";
  EXPECT_EQ((*c)->n_pos(), 37 + 8);
  auto again = drive(f, **c, &held, p, dp);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->n_reused, 36);
  EXPECT_EQ(again->tokens, want);
  auto cancelled = drive(f, **c, &held, p, dp, [](int32_t, bool) { return false; });
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->reason, StopReason::kCancelled);
  EXPECT_EQ(cancelled->tokens.size(), 1u);
}

}  // namespace
}  // namespace oss4
