#include <gtest/gtest.h>

#include "model/config.h"
#include "runtime/kv_cache.h"

namespace oss4 {
namespace {

TEST(KvCache, SlidingLayersRingFullLayersGrow) {
  auto cfg = builtin_model_config("tiny");
  ASSERT_TRUE(cfg.ok());
  auto c = HostKvCache::create(*cfg, 1000, 16);
  ASSERT_TRUE(c.ok());
  // layer 0 slides (window 32): a ring of 32 + 16 - 1 slots
  EXPECT_TRUE((*c)->view(0).ring);
  EXPECT_EQ((*c)->view(0).capacity, cfg->sliding_window + 16 - 1);
  EXPECT_FALSE((*c)->view(1).ring);
  ASSERT_TRUE((*c)->reserve(16).ok());
  (*c)->advance(16);
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE((*c)->reserve(16).ok());
    (*c)->advance(16);
  }
  EXPECT_EQ((*c)->n_pos(), 976);
  EXPECT_GE((*c)->view(1).capacity, 976);
  EXPECT_EQ((*c)->view(0).capacity, cfg->sliding_window + 15) << "the ring never grows";
  EXPECT_EQ((*c)->k_row(0, 47), (*c)->k_row(0, 0)) << "position 47 reuses slot 0";
  Status s = (*c)->reserve(30);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("context overflow"), std::string::npos);
  EXPECT_FALSE((*c)->reserve(17).ok()) << "chunk larger than max_chunk";
}

TEST(KvCache, RejectsBadSizes) {
  auto cfg = builtin_model_config("tiny");
  EXPECT_FALSE(HostKvCache::create(*cfg, 0, 16).ok());
  EXPECT_FALSE(HostKvCache::create(*cfg, 16, 0).ok());
}

}  // namespace
}  // namespace oss4
