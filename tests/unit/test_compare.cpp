#include <gtest/gtest.h>

#include <cmath>

#include "eval/compare.h"

namespace oss4 {
namespace {

TEST(Compare, KlTop1AndDiffsAgainstHandValues) {
  // position 0: identical; position 1: p = softmax([0, ln 3]) = [1/4, 3/4], q = uniform [1/2, 1/2]
  const float a[4] = {1.0f, 2.0f, 0.0f, std::log(3.0f)};
  const float b[4] = {1.0f, 2.0f, 5.0f, 5.0f};
  CompareSummary s = compare_logits(a, b, 2, 2);
  ASSERT_EQ(s.positions.size(), 2u);
  EXPECT_NEAR(s.positions[0].kl, 0.0, 1e-12);
  EXPECT_TRUE(s.positions[0].top1_agree);
  const double want = 0.25 * std::log(0.25 / 0.5) + 0.75 * std::log(0.75 / 0.5);
  EXPECT_NEAR(s.positions[1].kl, want, 1e-7);
  EXPECT_FALSE(s.positions[1].top1_agree) << "argmax 1 vs 0 (tie -> lowest index)";
  EXPECT_NEAR(s.positions[1].max_abs_diff, 5.0, 1e-6);
  EXPECT_NEAR(s.mean_kl, want / 2, 1e-7);
  EXPECT_NEAR(s.top1_agreement, 0.5, 1e-12);
  EXPECT_NEAR(s.max_rel_diff, 5.0 / std::log(3.0), 1e-5);
}

TEST(Compare, ShiftInvariant) {
  const float a[3] = {0.5f, -1.0f, 2.0f};
  const float b[3] = {10.5f, 9.0f, 12.0f};
  CompareSummary s = compare_logits(a, b, 1, 3);
  EXPECT_NEAR(s.mean_kl, 0.0, 1e-7) << "a constant offset leaves the distribution alone";
  EXPECT_EQ(s.top1_agreement, 1.0);
}

}  // namespace
}  // namespace oss4
