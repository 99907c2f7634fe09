// End-to-end: oss4 perplexity on the synthetic tiny model, checked against `oss4 tokenize` + `oss4 logits` (an
// independent path: one forward per chunk through another command, the NLL computed here), KL of a model against its
// own saved run, and the error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "format/npy.h"

namespace oss4 {
namespace {

namespace fs = std::filesystem;
using test::CmdResult;
using test::expect_clean_error;

CmdResult run(const std::string& args) { return test::run_oss4(args); }

// a plain English text of a few hundred tokens, the same every run
std::string sample_text() {
  const char* words[] = {"the", "river", "carried", "small", "boats", "past", "old", "mills", "while", "children",
                         "counted", "them", "from", "a", "stone", "bridge", "and", "wrote", "numbers", "in"};
  std::string s;
  uint32_t x = 12345;
  for (int i = 0; i < 400; ++i) {
    x = x * 1664525u + 1013904223u;
    s += words[(x >> 16) % 20];
    s += (i % 13 == 12) ? ". " : " ";
  }
  return s;
}

struct Fixture {
  std::string dir, model, text_path;
  std::vector<int32_t> ids;
};

const Fixture& fixture() {
  static Fixture f = [] {
    Fixture f;
    f.dir = test::make_temp_dir();
    f.model = f.dir + "/tiny";
    CmdResult s = run("synth --config tiny --seed 5 --out " + f.model);
    EXPECT_EQ(s.code, 0) << s.err;
    f.text_path = f.dir + "/text.txt";
    std::ofstream(f.text_path) << sample_text();
    std::ofstream(f.dir + "/text.jsonl") << nlohmann::json{{"text", sample_text()}}.dump() << "\n";
    CmdResult t = run("tokenize --tokenizer " + f.model + " --jsonl " + f.dir + "/text.jsonl");
    EXPECT_EQ(t.code, 0) << t.err;
    f.ids = nlohmann::json::parse(t.out).at("ids").get<std::vector<int32_t>>();
    return f;
  }();
  return f;
}

std::string join(const std::vector<int32_t>& v, size_t from, size_t n) {
  std::string s;
  for (size_t i = from; i < from + n; ++i) {
    if (i > from) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

TEST(PerplexityCli, EqualsTheNllOfOss4Logits) {
  const Fixture& f = fixture();
  ASSERT_GE(f.ids.size(), 128u);
  const std::string base = f.dir + "/out/base.safetensors";
  CmdResult r = run("perplexity -m " + f.model + " --file " + f.text_path + " --ctx 64 --chunks 2 --chunk 24 --json --save-logits " + base);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("[2/2] ppl"), std::string::npos) << r.err;  // per-chunk progress
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("n_chunks"), 2);
  EXPECT_EQ(j.at("n_scored"), 2 * 31);
  // the same chunks through oss4 logits, scored here
  double sum = 0, sum2 = 0;
  int n = 0;
  for (size_t c = 0; c < 2; ++c) {
    const std::string npy = f.dir + "/chunk" + std::to_string(c) + ".npy";
    CmdResult l = run("logits -q -m " + f.model + " --ids " + join(f.ids, c * 64, 64) + " --out " + npy);
    ASSERT_EQ(l.code, 0) << l.err;
    auto lg = read_npy_f32(npy);
    ASSERT_TRUE(lg.ok());
    const int64_t V = lg->shape[1];
    double chunk = 0;
    for (int64_t t = 32; t < 63; ++t) {
      const float* row = lg->data.data() + t * V;
      double m = -INFINITY, s = 0;
      for (int64_t i = 0; i < V; ++i) m = std::max(m, static_cast<double>(row[i]));
      for (int64_t i = 0; i < V; ++i) s += std::exp(row[i] - m);
      const double nll = m + std::log(s) - row[f.ids[c * 64 + static_cast<size_t>(t) + 1]];
      chunk += nll;
      sum += nll;
      sum2 += nll * nll;
      ++n;
    }
    EXPECT_NEAR(j.at("chunk_ppl")[c].get<double>() / std::exp(chunk / 31), 1.0, 1e-5) << c;
  }
  const double mean = sum / n, ppl = std::exp(mean);
  EXPECT_NEAR(j.at("ppl").get<double>() / ppl, 1.0, 1e-5);
  EXPECT_NEAR(j.at("ppl_stderr").get<double>() / (ppl * std::sqrt((sum2 / n - mean * mean) / (n - 1))), 1.0, 1e-3);

  // against its own saved distributions (the same forward chunks, so the same logits): KL 0, every top token agrees,
  // no change in perplexity
  CmdResult k = run("perplexity -q -m " + f.model + " --file " + f.text_path + " --ctx 64 --chunks 2 --chunk 24 --json --kl-base " + base);
  ASSERT_EQ(k.code, 0) << k.err;
  const auto kl = nlohmann::json::parse(k.out).at("kl");
  EXPECT_EQ(kl.at("mean_kl").get<double>(), 0.0);
  EXPECT_EQ(kl.at("max_kl").get<double>(), 0.0);
  EXPECT_EQ(kl.at("top1_agreement").get<double>(), 1.0);
  EXPECT_EQ(kl.at("delta_ppl").get<double>(), 0.0);
  // the NVFP4 lm_head against the stored one: a positive divergence (tiny: the random model is nearly uniform)
  CmdResult q = run("perplexity -q -m " + f.model + " --file " + f.text_path + " --ctx 64 --chunks 2 --lm-head nvfp4 --json --kl-base " + base);
  ASSERT_EQ(q.code, 0) << q.err;
  const auto qk = nlohmann::json::parse(q.out).at("kl");
  EXPECT_GT(qk.at("mean_kl").get<double>(), 0.0);
  EXPECT_GE(qk.at("max_kl").get<double>(), qk.at("p99_kl").get<double>());
  EXPECT_GE(qk.at("p99_kl").get<double>(), qk.at("median_kl").get<double>());
  // the text form, as llama-perplexity prints it
  CmdResult t = run("perplexity -q -m " + f.model + " --file " + f.text_path + " --ctx 64 --chunks 2 --kl-base " + base);
  ASSERT_EQ(t.code, 0) << t.err;
  for (const char* line : {"Mean PPL(Q)", "Mean PPL(base)", "Mean PPL(Q)-PPL(base)", "Mean    KLD:", "99.0%   KLD:", "Median  KLD:", "Same top p:"})
    EXPECT_NE(t.out.find(line), std::string::npos) << line << " in " << t.out;
}

TEST(PerplexityCli, BadInputGivesOneLineErrors) {
  const Fixture& f = fixture();
  const std::string m = "perplexity -q -m " + f.model;
  expect_clean_error(run(m + " --file " + f.dir + "/missing.txt"), "missing.txt");
  expect_clean_error(run(m + " --file " + f.text_path + " --ctx 4096"), "fewer than one chunk");
  expect_clean_error(run(m + " --file " + f.text_path + " --ctx 2"), "at least 4");
  expect_clean_error(run(m + " --file " + f.text_path + " --ctx 1000000"), "exceeds");
  expect_clean_error(run(m + " --file " + f.text_path + " --ctx 64 --chunks 0"), "--chunks");
  expect_clean_error(run(m + " --file " + f.text_path + " --ctx 64 --chunks -5"), "--chunks");
  expect_clean_error(run(m + " --file " + f.text_path + " --ctx 64 --save-top-k 0 --save-logits " + f.dir + "/k0.safetensors"), "--save-top-k");
  expect_clean_error(run(m + " --file " + f.text_path + " --ctx 64 --chunks 1 --save-top-k 300000 --save-logits " + f.dir + "/big.safetensors"),
                     "cannot keep");
  expect_clean_error(run(m + " --file " + f.text_path + " --save-logits " + f.text_path), "overwrite an input");
  expect_clean_error(run(m + " --file " + f.text_path + " --ctx 64 --kl-base " + f.model + "/model.safetensors"), "not a saved-logits file");
  // a base saved with another ctx
  const std::string b32 = f.dir + "/b32.safetensors";
  ASSERT_EQ(run(m + " --file " + f.text_path + " --ctx 32 --chunks 1 --save-logits " + b32).code, 0);
  expect_clean_error(run(m + " --file " + f.text_path + " --ctx 64 --chunks 1 --kl-base " + b32), "--ctx 32");
  expect_clean_error(run(m + " --file " + f.text_path + " --ctx 32 --chunks 1 --save-logits " + b32 + " --kl-base " + b32), "overwrite an input");
  std::ofstream(f.dir + "/empty.txt") << "";
  expect_clean_error(run(m + " --file " + f.dir + "/empty.txt"), "fewer than one chunk");
}

}  // namespace
}  // namespace oss4
