#include <gtest/gtest.h>

#include <cmath>

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

TEST(Sampler, ValidatesParams) {
  EXPECT_FALSE(validate_sampler_params({-1.0f, 1.0f, 0, 0}).ok());
  EXPECT_FALSE(validate_sampler_params({1.0f, 0.0f, 0, 0}).ok());
  EXPECT_FALSE(validate_sampler_params({1.0f, 1.5f, 0, 0}).ok());
  EXPECT_FALSE(validate_sampler_params({1.0f, 1.0f, -3, 0}).ok());
  EXPECT_TRUE(validate_sampler_params({0.7f, 0.9f, 40, 0}).ok());
}

}  // namespace
}  // namespace oss4
