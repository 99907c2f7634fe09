// Golden tests: oss4's CPU forward pass against Hugging Face transformers' GptOssForCausalLM (float32, eager),
// on tiny random configs saved in both the MXFP4 and the BF16 layout (tools/reference/make_golden.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "forward_for_test.h"
#include "format/safetensors.h"
#include "golden_reference.h"
#include "logit_compare.h"

namespace oss4 {
namespace {

constexpr double kTol = 1e-4;  // max |logit diff| / max |logit|, per position

using test::kGolden;
using test::load_reference;
using test::Reference;

using test::worst_rel_err;

class Golden : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(Golden, FullForwardMatchesTransformers) {
  const auto& [cfg, layout] = GetParam();
  Reference ref = load_reference(cfg);
  ASSERT_NE(ref.logits, nullptr);
  auto m = load_model(kGolden + "/" + cfg + "/" + layout);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_STREQ(checkpoint_kind_name(m->checkpoint_kind), layout.c_str());
  ASSERT_EQ(m->cfg.n_vocab, ref.n_vocab);
  const auto T = static_cast<int64_t>(ref.ids.size());
  ASSERT_GE(T, 300);
  // prompt crosses the sliding window and YaRN's original context
  ASSERT_GT(T, 4 * m->cfg.sliding_window);
  ASSERT_GT(T, m->cfg.rope.original_max_position_embeddings);

  // one chunk for the whole prompt, and chunks smaller than the window (exercising the ring buffer)
  for (int64_t chunk : {T, int64_t{7}, m->cfg.sliding_window + 3}) {
    auto fwd = test::forward_for(*m);
    ASSERT_TRUE(fwd);
    auto cache = fwd->new_cache(T, chunk);
    ASSERT_TRUE(cache.ok());
    std::vector<float> logits;
    Status s = eval(*fwd, **cache, ref.ids.data(), T, LogitsMode::kAll, &logits);
    ASSERT_TRUE(s.ok()) << s.message();
    int64_t row = -1;
    double err = worst_rel_err(logits.data(), ref.logits, T, ref.n_vocab, &row);
    EXPECT_LE(err, kTol) << cfg << "/" << layout << " chunk " << chunk << ": worst position " << row;
    RecordProperty(cfg + "_" + layout + "_chunk" + std::to_string(chunk) + "_max_rel_err", std::to_string(err));
    std::printf("%s/%s chunk %lld: max rel logit err %.3g (position %lld)\n", cfg.c_str(), layout.c_str(), static_cast<long long>(chunk),
                err, static_cast<long long>(row));
  }
}

TEST_P(Golden, IncrementalDecodeMatchesFullForward) {
  const auto& [cfg, layout] = GetParam();
  Reference ref = load_reference(cfg);
  ASSERT_NE(ref.logits, nullptr);
  auto m = load_model(kGolden + "/" + cfg + "/" + layout);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const auto T = static_cast<int64_t>(ref.ids.size());
  // prefill a prefix, then one token at a time with the KV cache; each step's last logits vs the reference.
  const int64_t n_prefill = 5;
  auto fwd = test::forward_for(*m);
  ASSERT_TRUE(fwd);
  auto cache = fwd->new_cache(T, 64);
  ASSERT_TRUE(cache.ok());
  std::vector<float> got(static_cast<size_t>(T * ref.n_vocab)), step;
  ASSERT_TRUE(eval(*fwd, **cache, ref.ids.data(), n_prefill, LogitsMode::kAll, &step).ok());
  std::copy(step.begin(), step.end(), got.begin());
  for (int64_t t = n_prefill; t < T; ++t) {
    ASSERT_TRUE(eval(*fwd, **cache, &ref.ids[static_cast<size_t>(t)], 1, LogitsMode::kLast, &step).ok());
    std::copy(step.begin(), step.end(), got.begin() + t * ref.n_vocab);
  }
  EXPECT_EQ((*cache)->n_pos(), T);
  int64_t row = -1;
  double err = worst_rel_err(got.data(), ref.logits, T, ref.n_vocab, &row);
  EXPECT_LE(err, kTol) << cfg << "/" << layout << " worst position " << row;
  std::printf("%s/%s decode: max rel logit err %.3g\n", cfg.c_str(), layout.c_str(), err);
}

INSTANTIATE_TEST_SUITE_P(AllConfigs, Golden,
                         ::testing::Combine(::testing::Values("c1", "c2", "c3"), ::testing::Values("mxfp4", "bf16")),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

TEST(GoldenHidden, PerLayerHiddenStatesMatch) {
  Reference ref = load_reference("c1");
  ASSERT_NE(ref.logits, nullptr);
  auto m = load_model(kGolden + "/c1/mxfp4");
  ASSERT_TRUE(m.ok()) << m.status().message();
  const auto T = static_cast<int64_t>(ref.ids.size());
  const int64_t H = m->cfg.n_embd;
  std::map<std::string, std::vector<float>> got;  // name -> [T, H]
  auto fwd = test::forward_for(*m);
  ASSERT_TRUE(fwd);
  auto cache = fwd->new_cache(T, T);
  ASSERT_TRUE(cache.ok());
  Status s = eval(*fwd, **cache, ref.ids.data(), T, LogitsMode::kNone, nullptr,
                      [&](const char* name, int64_t layer, const float* data, int64_t n_tok, int64_t n) {
                        std::string key = std::string(name) == "layer_out" ? "layer_out." + std::to_string(layer) : name;
                        auto& v = got[key];
                        v.insert(v.end(), data, data + n_tok * n);
                      });
  ASSERT_TRUE(s.ok()) << s.message();
  int n_checked = 0;
  for (const std::string& name : ref.store.names()) {
    if (name != "embed" && name.rfind("layer_out.", 0) != 0) continue;
    const TensorView* t = ref.store.find(name);
    ASSERT_EQ(got[name].size(), static_cast<size_t>(T * H)) << name;
    int64_t row = -1;
    double err = worst_rel_err(got[name].data(), reinterpret_cast<const float*>(t->data), T, H, &row);
    EXPECT_LE(err, kTol) << name << " worst position " << row;
    ++n_checked;
  }
  EXPECT_EQ(n_checked, 1 + m->cfg.n_layers);
}

}  // namespace
}  // namespace oss4
