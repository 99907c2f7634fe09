// End-to-end, without a GPU (these tests run with CUDA_VISIBLE_DEVICES empty): what the CUDA backend adds to the CLI
// that a machine without one can check. `oss4 info --device cuda` prints the device memory plan (and refuses what the
// backend refuses), `--device cuda` fails with one clear line, `--device auto` runs on the CPU, `oss4 synth --layers`
// cuts a config, `oss4 bench --seqs` decodes several sequences together.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace oss4 {
namespace {

TEST(CudaCli, InfoPrintsTheDevicePlanWithoutAGpu) {
  const std::string dir = test::make_temp_dir();
  ASSERT_EQ(test::run_oss4("synth --config tiny --seed 1 --out " + dir + "/m").code, 0);
  test::CmdResult r = test::run_oss4("info -m " + dir + "/m --device cuda --ctx 4096 --seqs 2");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* what : {"device memory", "experts", "embedding table", "K/V, full-attention layers x 2 sequences of 4096", "step scratch", "total"})
    EXPECT_NE(r.out.find(what), std::string::npos) << what << "\n" << r.out;
  // BF16 experts: the backend runs FP4 experts only, and the plan says so
  ASSERT_EQ(test::run_oss4("synth --config tiny --dtype bf16 --seed 1 --out " + dir + "/b").code, 0);
  test::expect_clean_error(test::run_oss4("info -m " + dir + "/b --device cuda"), "experts");
  test::expect_clean_error(test::run_oss4("info -m " + dir + "/m --device gpu"), "--device");
}

TEST(CudaCli, DeviceCudaWithoutAGpuIsOneClearError) {
  const std::string dir = test::make_temp_dir();
  ASSERT_EQ(test::run_oss4("synth --config tiny --out " + dir + "/m").code, 0);
  for (const std::string& cmd : {std::string("generate --prompt hi -n 2"), "logits --ids 1,2,3 --out " + dir + "/l.npy",
                                std::string("bench -p 4 -n 2 -r 1 --probe-mib 16")}) {
    test::CmdResult r = test::run_oss4(cmd + " -m " + dir + "/m --device cuda");
    EXPECT_NE(r.code, 0) << cmd;
    EXPECT_NE(r.err.find("--device cuda"), std::string::npos) << cmd << ": " << r.err;
  }
  test::expect_clean_error(test::run_oss4("compare -q -m " + dir + "/m -m " + dir + "/m --ids 1,2 --device-b cuda"), "--device cuda");
  test::expect_clean_error(test::run_oss4("generate -m " + dir + "/m --prompt hi --device tpu"), "--device");
  // auto runs on the CPU here, with the CPU's default activations
  test::CmdResult b = test::run_oss4("bench -m " + dir + "/m -p 4 -n 2 -r 1 --probe-mib 16 --json --device auto");
  ASSERT_EQ(b.code, 0) << b.err;
  const auto j = nlohmann::json::parse(b.out);
  EXPECT_EQ(j["device"].get<std::string>(), "cpu");
  EXPECT_EQ(j["activations"].get<std::string>(), "f32");
}

TEST(CudaCli, SynthLayersCutsTheConfig) {
  const std::string dir = test::make_temp_dir();
  ASSERT_EQ(test::run_oss4("synth --config tiny --layers 1 --no-tokenizer --out " + dir + "/cut").code, 0);
  test::CmdResult r = test::run_oss4("info -m " + dir + "/cut");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("layers          1 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("hidden          128"), std::string::npos) << r.out;
  test::expect_clean_error(test::run_oss4("synth --config tiny --layers 99 --out " + dir + "/x"), "--layers");
}

TEST(CudaCli, BenchDecodesSeveralSequencesTogether) {
  const std::string dir = test::make_temp_dir();
  ASSERT_EQ(test::run_oss4("synth --config tiny --seed 2 --out " + dir + "/m").code, 0);
  test::CmdResult r = test::run_oss4("bench -m " + dir + "/m -p 4 -n 6 -r 2 --depth 5 --seqs 1,3 --probe-mib 16 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["seqs"].size(), 2u);
  EXPECT_EQ(j["seqs"][1]["n_seq"].get<int>(), 3);
  EXPECT_EQ(j["seqs"][1]["depth"].get<int>(), 5);
  EXPECT_GT(j["seqs"][1]["decode_tok_s"].get<double>(), 0);
  test::expect_clean_error(test::run_oss4("bench -m " + dir + "/m --seqs 0"), "--seqs");
}

}  // namespace
}  // namespace oss4
