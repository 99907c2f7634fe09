// End-to-end: `oss4 bench --json` on the tiny synthetic model: the keys reviewers read are there and the values are
// consistent with each other and with the run (not a check of speed).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace oss4 {
namespace {

TEST(Bench, JsonHasEveryKeyWithSaneValues) {
  const std::string dir = test::make_temp_dir();
  ASSERT_EQ(test::run_oss4("synth --config tiny --seed 3 --out " + dir + "/m").code, 0);
  test::CmdResult r = test::run_oss4("bench -m " + dir + "/m -p 16 -n 8 -r 2 -t 2 --depth 0,8 --probe-mib 64 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"prefill_tok_s", "prefill_tok_s_stddev", "decode_tok_s", "decode_tok_s_stddev", "ttft_s", "weight_bytes_per_token",
                          "decode_gb_s", "read_bw_gb_s", "bw_ratio", "peak_rss_bytes", "threads"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    ASSERT_TRUE(j[key].is_number()) << key;
  }
  EXPECT_EQ(j["threads"].get<int>(), 2);
  EXPECT_GT(j["prefill_tok_s"].get<double>(), 0);
  EXPECT_GT(j["decode_tok_s"].get<double>(), 0);
  EXPECT_GE(j["decode_tok_s_stddev"].get<double>(), 0);
  EXPECT_GT(j["ttft_s"].get<double>(), 0);
  // per repetition, rate = 16 prompt tokens / time; over repetitions mean(16 / t) * mean(t) >= 16 (AM-HM), with
  // equality when the times agree (a busy machine can make them differ a lot, so no upper bound)
  EXPECT_GE(j["prefill_tok_s"].get<double>() * j["ttft_s"].get<double>(), 16.0 * (1 - 1e-9));
  const double wb = j["weight_bytes_per_token"].get<double>();
  EXPECT_GT(wb, 0);
  EXPECT_LT(wb, j["model_bytes"].get<double>());
  EXPECT_NEAR(j["decode_gb_s"].get<double>(), j["decode_tok_s"].get<double>() * wb / 1e9, 1e-9 + 1e-6 * j["decode_gb_s"].get<double>());
  EXPECT_GT(j["read_bw_gb_s"].get<double>(), 0.1);
  EXPECT_NEAR(j["bw_ratio"].get<double>(), j["decode_gb_s"].get<double>() / j["read_bw_gb_s"].get<double>(), 1e-9);
  EXPECT_GT(j["peak_rss_bytes"].get<double>(), 64.0 * (1 << 20));  // at least the probe buffer
  ASSERT_EQ(j["depths"].size(), 2u);
  EXPECT_EQ(j["depths"][1]["depth"].get<int>(), 8);
  EXPECT_GT(j["depths"][1]["decode_tok_s"].get<double>(), 0);
}

TEST(Bench, MarkdownTableAndBadArguments) {
  const std::string dir = test::make_temp_dir();
  ASSERT_EQ(test::run_oss4("synth --config tiny --out " + dir + "/m").code, 0);
  test::CmdResult r = test::run_oss4("bench -m " + dir + "/m -p 8 -n 4 -r 1 --probe-mib 16 --kernels ref");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| pp8 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| tg4 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| ref |"), std::string::npos) << r.out;
  test::expect_clean_error(test::run_oss4("bench -m " + dir + "/m --depth 1,x"), "--depth");
  test::expect_clean_error(test::run_oss4("bench -m " + dir + "/m --kernels sse9"), "--kernels");
  test::expect_clean_error(test::run_oss4("bench -m " + dir + "/m -p 0 -n 0"), "nothing to measure");
}

TEST(LmHeadOption, CompareShowsTheCostOfAnNvfp4LmHead) {
  const std::string dir = test::make_temp_dir();
  ASSERT_EQ(test::run_oss4("synth --config tiny --seed 5 --out " + dir + "/m").code, 0);
  const std::string ids = "--ids 1,5,9,200,7,3,3,40,11,12,13,14";
  test::CmdResult same = test::run_oss4("compare -q -m " + dir + "/m -m " + dir + "/m " + ids + " --json");
  ASSERT_EQ(same.code, 0) << same.err;
  EXPECT_EQ(nlohmann::json::parse(same.out)["mean_kl"].get<double>(), 0.0);
  test::CmdResult r = test::run_oss4("compare -q -m " + dir + "/m -m " + dir + "/m " + ids + " --lm-head-b nvfp4 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  // 4-bit lm_head: logits move, but the distributions stay close
  EXPECT_GT(j["max_abs_diff"].get<double>(), 0.0);
  EXPECT_GT(j["mean_kl"].get<double>(), 0.0);
  EXPECT_LT(j["mean_kl"].get<double>(), 0.5);
  test::expect_clean_error(test::run_oss4("generate -q -m " + dir + "/m --ids 1,2 -n 1 --lm-head int3"), "int3");
  test::CmdResult g = test::run_oss4("generate -q -m " + dir + "/m --ids 1,2 -n 3 --lm-head nvfp4");
  EXPECT_EQ(g.code, 0) << g.err;
}

// oss4 quantize --lm-head nvfp4 stores the bytes --lm-head nvfp4 would make at load: the same logits, no work at load
TEST(LmHeadOption, QuantizeStoresWhatLoadingWouldMake) {
  const std::string dir = test::make_temp_dir();
  ASSERT_EQ(test::run_oss4("synth --config tiny --seed 7 --out " + dir + "/m").code, 0);
  ASSERT_EQ(test::run_oss4("quantize -m " + dir + "/m -o " + dir + "/n --method transcode").code, 0);
  test::CmdResult q = test::run_oss4("quantize -m " + dir + "/m -o " + dir + "/q --method transcode --lm-head nvfp4 --report");
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_NE(q.out.find("| lm_head.weight |"), std::string::npos) << q.out;
  const std::string ids = "--ids 1,5,9,200,7,3,3,40,11,12";
  // A: the stored NVFP4 lm_head; B: the BF16 one quantized at load -> identical logits
  test::CmdResult same = test::run_oss4("compare -q -m " + dir + "/q -m " + dir + "/n " + ids + " --lm-head-b nvfp4 --json");
  ASSERT_EQ(same.code, 0) << same.err;
  EXPECT_EQ(nlohmann::json::parse(same.out)["max_abs_diff"].get<double>(), 0.0) << same.out;
  // and against the BF16 lm_head it differs as an NVFP4 lm_head does
  test::CmdResult diff = test::run_oss4("compare -q -m " + dir + "/n -m " + dir + "/q " + ids + " --json");
  ASSERT_EQ(diff.code, 0) << diff.err;
  const auto j = nlohmann::json::parse(diff.out);
  EXPECT_EQ(j["b_lm_head"].get<std::string>(), "stored");
  EXPECT_GT(j["mean_kl"].get<double>(), 0.0);
  EXPECT_LT(j["mean_kl"].get<double>(), 0.5);
  // the export no longer lists lm_head among the modules left unquantized
  const auto hf = nlohmann::json::parse(test::read_bytes(dir + "/q/hf_quant_config.json"));
  for (const auto& m : hf["quantization"]["exclude_modules"]) EXPECT_NE(m.get<std::string>(), "lm_head");
  test::CmdResult info = test::run_oss4("info -m " + dir + "/q");
  EXPECT_NE(info.out.find("lm_head nvfp4"), std::string::npos) << info.out;
  test::expect_clean_error(test::run_oss4("generate -q -m " + dir + "/q --ids 1,2 -n 1 --lm-head bf16"), "stored as nvfp4");
  EXPECT_EQ(test::run_oss4("generate -q -m " + dir + "/q --ids 1,2 -n 2 --lm-head nvfp4").code, 0);
  // weight-only: not with calibrated input scales
  test::expect_clean_error(test::run_oss4("quantize -m " + dir + "/m -o " + dir + "/c --lm-head nvfp4 --calibration builtin"), "weight-only");
}

TEST(ActivationsOption, CompareShowsTheCostOfEightBitActivations) {
  const std::string dir = test::make_temp_dir();
  ASSERT_EQ(test::run_oss4("synth --config tiny --seed 6 --out " + dir + "/m").code, 0);
  ASSERT_EQ(test::run_oss4("quantize -m " + dir + "/m -o " + dir + "/n --method transcode").code, 0);
  const std::string ids = "--ids 1,5,9,200,7,3,3,40,11,12,13,14,99,98,97";
  // NVFP4 experts: the 8-bit activations move the logits a little
  test::CmdResult r = test::run_oss4("compare -q -m " + dir + "/n -m " + dir + "/n " + ids + " --activations-b q8 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["b_activations"].get<std::string>(), "q8");
  EXPECT_GT(j["max_abs_diff"].get<double>(), 0.0);
  EXPECT_GT(j["mean_kl"].get<double>(), 0.0);
  EXPECT_LT(j["mean_kl"].get<double>(), 1e-2);
  // the MXFP4 checkpoint has no NVFP4 matmul, so the option changes nothing there
  test::CmdResult mx = test::run_oss4("compare -q -m " + dir + "/m -m " + dir + "/m " + ids + " --activations-b q8 --json");
  ASSERT_EQ(mx.code, 0) << mx.err;
  EXPECT_EQ(nlohmann::json::parse(mx.out)["max_abs_diff"].get<double>(), 0.0);
  // the running commands take it, and the bench reports it
  test::CmdResult g = test::run_oss4("generate -q -m " + dir + "/n --ids 1,2 -n 3 --activations q8 --lm-head nvfp4");
  EXPECT_EQ(g.code, 0) << g.err;
  test::CmdResult b = test::run_oss4("bench -m " + dir + "/n -p 8 -n 4 -r 1 --probe-mib 16 --activations q8 --json");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(nlohmann::json::parse(b.out)["activations"].get<std::string>(), "q8");
  test::expect_clean_error(test::run_oss4("generate -q -m " + dir + "/n --ids 1,2 -n 1 --activations int4"), "--activations");
  test::expect_clean_error(test::run_oss4("compare -q -m " + dir + "/n -m " + dir + "/n " + ids + " --activations-b fp8"), "--activations");
}

}  // namespace
}  // namespace oss4
