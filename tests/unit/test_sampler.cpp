#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "runtime/sampler.h"

namespace oss4 {
namespace {

TEST(Sampler, GreedyIsArgmax) {
  const float l[5] = {0.1f, 2.0f, NAN, 2.0f, -1.0f};
  EXPECT_EQ(argmax(l, 5), 1);
  Sampler s({0.0f, 1.0f, 0, 1});
  EXPECT_EQ(s.sample(l, 5), 1);
}

TEST(Sampler, SeededAndDeterministic) {
  std::vector<float> l(100);
  for (int i = 0; i < 100; ++i) l[i] = std::sin(static_cast<float>(i));
  Sampler a({1.0f, 1.0f, 0, 42}), b({1.0f, 1.0f, 0, 42}), c({1.0f, 1.0f, 0, 43});
  int same_c = 0;
  for (int i = 0; i < 50; ++i) {
    int32_t x = a.sample(l.data(), 100);
    EXPECT_EQ(x, b.sample(l.data(), 100));
    same_c += x == c.sample(l.data(), 100);
  }
  EXPECT_LT(same_c, 50);
}

TEST(Sampler, FollowsSoftmaxAndTruncates) {
  const float l[4] = {0.0f, std::log(2.0f), std::log(4.0f), -50.0f};
  Sampler s({1.0f, 1.0f, 0, 7});
  int counts[4] = {0, 0, 0, 0};
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(l, 4)];
  EXPECT_NEAR(counts[0] / static_cast<double>(n), 1.0 / 7, 0.015);
  EXPECT_NEAR(counts[1] / static_cast<double>(n), 2.0 / 7, 0.015);
  EXPECT_NEAR(counts[2] / static_cast<double>(n), 4.0 / 7, 0.015);
  Sampler k1({1.0f, 1.0f, 1, 7});
  Sampler p({1.0f, 0.5f, 0, 7});  // the top token alone holds 4/7 > 0.5
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(k1.sample(l, 4), 2);
    EXPECT_EQ(p.sample(l, 4), 2);
  }
  Sampler k2({1.0f, 1.0f, 2, 9});
  for (int i = 0; i < 200; ++i) EXPECT_NE(k2.sample(l, 4), 0);
}

// sample() selects the kept candidates without sorting the vocabulary; it must draw exactly the tokens of the
// full-sort reference, for every temperature, top-p, top-k and seed, on peaked, flat and tied logits.
TEST(Sampler, PartialSelectionEqualsFullSortReference) {
  std::mt19937 gen(1234);
  const float temps[] = {0.3f, 0.7f, 1.0f, 1.6f};
  const float top_ps[] = {1.0f, 0.99f, 0.95f, 0.9f, 0.5f, 0.1f, 1e-6f};
  const int64_t top_ks[] = {0, 1, 5, 50, 3000};
  int64_t n_draws = 0, n_distinct_tokens = 0;
  for (int shape = 0; shape < 4; ++shape) {
    const int64_t n_vocab = shape == 3 ? 201088 : 5000;
    std::vector<float> l(static_cast<size_t>(n_vocab));
    std::normal_distribution<float> nd(0.0f, shape == 0 ? 4.0f : 1.0f);
    for (auto& x : l) x = nd(gen);
    if (shape == 1) {
      for (auto& x : l) x = std::round(x * 4.0f) / 4.0f;  // many ties
      l[17] = NAN;
      l[4000] = -INFINITY;
    }
    if (shape == 2) l[123] = 12.0f;  // one dominant token
    for (float t : temps) {
      for (float tp : top_ps) {
        for (int64_t tk : top_ks) {
          // the full vocabulary: fewer cases (the reference sorts 201k candidates per draw)
          if (shape == 3 && (tk == 3000 || tp == 0.99f || t == 0.3f || t == 1.6f)) continue;
          for (uint64_t seed : {1ull, 99ull, 123456789ull}) {
            if (shape == 3 && seed != 1) continue;
            Sampler a({t, tp, tk, seed}), b({t, tp, tk, seed});
            std::vector<int32_t> seen;
            for (int i = 0; i < (shape == 3 ? 2 : 6); ++i) {
              const int32_t x = a.sample(l.data(), n_vocab), y = b.sample_ref(l.data(), n_vocab);
              ASSERT_EQ(x, y) << "shape " << shape << " T " << t << " top_p " << tp << " top_k " << tk << " seed " << seed << " draw " << i;
              ASSERT_FALSE(std::isnan(l[static_cast<size_t>(x)]));
              ++n_draws;
              if (std::find(seen.begin(), seen.end(), x) == seen.end()) seen.push_back(x);
            }
            n_distinct_tokens += static_cast<int64_t>(seen.size());
          }
        }
      }
    }
  }
  // the comparison saw real sampling, not one token over and over
  EXPECT_GT(n_distinct_tokens, n_draws / 3);
}

TEST(Sampler, ValidatesParams) {
  EXPECT_FALSE(validate_sampler_params({-1.0f, 1.0f, 0, 0}).ok());
  EXPECT_FALSE(validate_sampler_params({1.0f, 0.0f, 0, 0}).ok());
  EXPECT_FALSE(validate_sampler_params({1.0f, 1.5f, 0, 0}).ok());
  EXPECT_FALSE(validate_sampler_params({1.0f, 1.0f, -3, 0}).ok());
  EXPECT_TRUE(validate_sampler_params({0.7f, 0.9f, 40, 0}).ok());
}

}  // namespace
}  // namespace oss4
