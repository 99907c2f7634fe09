#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/rope.h"
#include "test_helpers.h"

namespace oss4 {
namespace {

const char* k20bConfig = R"({
  "architectures": ["GptOssForCausalLM"], "attention_bias": true, "attention_dropout": 0.0, "eos_token_id": 200002,
  "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880, "initial_context_length": 4096,
  "initializer_range": 0.02, "intermediate_size": 2880,
  "layer_types": ["sliding_attention","full_attention","sliding_attention","full_attention","sliding_attention","full_attention",
    "sliding_attention","full_attention","sliding_attention","full_attention","sliding_attention","full_attention",
    "sliding_attention","full_attention","sliding_attention","full_attention","sliding_attention","full_attention",
    "sliding_attention","full_attention","sliding_attention","full_attention","sliding_attention","full_attention"],
  "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64, "num_experts_per_tok": 4,
  "num_hidden_layers": 24, "num_key_value_heads": 8, "num_local_experts": 32, "output_router_logits": false,
  "pad_token_id": 199999,
  "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn","model.layers.*.mlp.router","model.embed_tokens","lm_head"],
                          "quant_method": "mxfp4"},
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096,
                   "rope_type": "yarn", "truncate": false},
  "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0,
  "tie_word_embeddings": false, "transformers_version": "4.55.0.dev0", "use_cache": true, "vocab_size": 201088})";

TEST(Config, Parses20b) {
  auto c = parse_model_config(k20bConfig, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->n_layers, 24);
  EXPECT_EQ(c->q_dim(), 4096);
  EXPECT_EQ(c->kv_dim(), 512);
  EXPECT_EQ(c->n_experts, 32);
  EXPECT_EQ(c->n_experts_used, 4);
  EXPECT_EQ(c->quant, CheckpointQuant::kMxfp4);
  EXPECT_EQ(c->layer_types[0], LayerKind::kSliding);
  EXPECT_EQ(c->layer_types[1], LayerKind::kFull);
  EXPECT_TRUE(c->rope.yarn);
  EXPECT_FALSE(c->rope.truncate);
  EXPECT_EQ(c->rope.original_max_position_embeddings, 4096);
  EXPECT_EQ(c->sliding_window, 128);
  EXPECT_DOUBLE_EQ(c->swiglu_limit, 7.0);
}

TEST(Config, BuiltinsRoundTripThroughJson) {
  for (const auto& name : builtin_model_config_names()) {
    auto c = builtin_model_config(name);
    ASSERT_TRUE(c.ok());
    auto back = parse_model_config(model_config_to_json(*c, true), name);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back->n_layers, c->n_layers);
    EXPECT_EQ(back->n_experts, c->n_experts);
    EXPECT_EQ(back->layer_types, c->layer_types);
    EXPECT_EQ(back->rope.truncate, c->rope.truncate);
    EXPECT_DOUBLE_EQ(back->rope.beta_fast, c->rope.beta_fast);
  }
  EXPECT_FALSE(builtin_model_config("gpt-oss-7b").ok());
}

TEST(Config, TransformersV5RopeParameters) {
  auto j = nlohmann::json::parse(k20bConfig);
  j["rope_parameters"] = j["rope_scaling"];
  j["rope_parameters"]["rope_theta"] = 150000.0;
  j.erase("rope_scaling");
  j.erase("rope_theta");
  auto c = parse_model_config(j.dump(), "v5");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->rope.yarn);
  EXPECT_DOUBLE_EQ(c->rope.theta, 150000.0);
}

TEST(Config, RejectsImpossibleValues) {
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* expect;
  } cases[] = {
      {"num_hidden_layers", 0, "num_hidden_layers"},
      {"num_hidden_layers", 3, "layer_types"},
      {"num_key_value_heads", 7, "multiple of num_key_value_heads"},
      {"num_experts_per_tok", 33, "exceeds num_local_experts"},
      {"head_dim", 63, "even"},
      {"hidden_size", "2880", "must be an integer"},
      {"hidden_size", -5, ">= 1"},
      {"rms_norm_eps", -1.0, "rms_norm_eps"},
      {"sliding_window", 0, "sliding_window"},
      {"layer_types", nlohmann::json::array({"dense"}), "layer_types"},
      {"model_type", "llama", "gpt_oss"},
      {"intermediate_size", 2881, "divisible by 32"},
      {"eos_token_id", 999999999, "outside the vocabulary"},
      {"quantization_config", {{"quant_method", "gptq"}}, "not supported"},
      // found by fuzzing: a non-string quant_method threw out of nlohmann's value(); a huge head count overflowed q_dim.
      {"quantization_config", {{"quant_method", 5}}, "'quant_method' must be a string"},
      {"quantization_config", {{"quant_method", "modelopt"}, {"quant_algo", nlohmann::json::array()}}, "'quant_algo' must be a string"},
      {"num_attention_heads", int64_t{1} << 62, "implausibly large"},
      {"rope_theta", 1e39, "rope_theta"},
      {"hidden_size", nlohmann::json::parse(std::string(100, '[') + std::string(100, ']')), "nests deeper than 64"},
  };
  for (const auto& c : cases) {
    auto j = nlohmann::json::parse(k20bConfig);
    j[c.key] = c.value;
    auto r = parse_model_config(j.dump(), "config.json");
    ASSERT_FALSE(r.ok()) << c.key << " = " << c.value.dump();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
    EXPECT_EQ(r.status().message().rfind("config.json: ", 0), 0u) << "names the file: " << r.status().message();
  }
  EXPECT_FALSE(parse_model_config("{\"hidden_size\": ", "x").ok());
  // a 10^6-deep value: refused before anything recurses over it (printing it in the error overflowed the stack).
  auto deep = parse_model_config("{\"hidden_size\": " + std::string(1000000, '[') + std::string(1000000, ']') + "}", "config.json");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nests deeper than 64 levels"), std::string::npos) << deep.status().message();
  // the parser's reason, without the raw bytes it had read.
  auto bad = parse_model_config("{\"hidden_size\": tru\xff}", "config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("config.json: not well-formed JSON: parse error at line 1, column", 0), 0u) << bad.status().message();
  EXPECT_EQ(bad.status().message().find('\xff'), std::string::npos) << bad.status().message();
  auto j = nlohmann::json::parse(k20bConfig);
  j.erase("num_attention_heads");
  auto r = parse_model_config(j.dump(), "config.json");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("missing 'num_attention_heads'"), std::string::npos);
}

TEST(Config, GenerationConfigOptional) {
  std::string dir = test::make_temp_dir();
  test::write_bytes(dir + "/config.json", k20bConfig);
  auto c = load_model_config(dir);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{200002}));
  test::write_bytes(dir + "/generation_config.json", R"({"bos_token_id":199998,"eos_token_id":[200002,199999,200012]})");
  c = load_model_config(dir);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{200002, 199999, 200012}));
  test::write_bytes(dir + "/generation_config.json", "{oops");
  EXPECT_FALSE(load_model_config(dir).ok());
  EXPECT_FALSE(load_model_config(dir + "/nonexistent").ok());
}

// spec §1.4 and §5: the YaRN numbers of the real config.
TEST(Rope, YarnMatchesSpecFor20b) {
  auto c = builtin_model_config("gpt-oss-20b");
  ASSERT_TRUE(c.ok());
  RopeTable t = rope_table_init(*c);
  EXPECT_NEAR(t.yarn_low, 8.092779115512402, 1e-9);
  EXPECT_NEAR(t.yarn_high, 17.39802450158856, 1e-9);
  EXPECT_NEAR(t.concentration, 1.3465735902799727, 1e-6);
  ASSERT_EQ(t.inv_freq.size(), 32u);
  EXPECT_FLOAT_EQ(t.inv_freq[0], 1.0f);
  EXPECT_NEAR(t.inv_freq[31], 3.0235e-7, 1e-10);
  // i <= 8 unscaled, i >= 18 divided by the factor
  EXPECT_FLOAT_EQ(t.inv_freq[8], 1.0f / std::pow(150000.0f, 16.0f / 64.0f));
  EXPECT_NEAR(t.inv_freq[20], 1.0 / (32.0 * std::pow(150000.0, 40.0 / 64.0)), 1e-12);
}

TEST(Rope, PlainRopeWithoutScaling) {
  auto j = nlohmann::json::parse(k20bConfig);
  j["rope_scaling"] = nullptr;
  auto c = parse_model_config(j.dump(), "x");
  ASSERT_TRUE(c.ok());
  RopeTable t = rope_table_init(*c);
  EXPECT_FLOAT_EQ(t.concentration, 1.0f);
  EXPECT_NEAR(t.inv_freq[31], 1.0 / std::pow(150000.0, 62.0 / 64.0), 1e-10);
}

}  // namespace
}  // namespace oss4
