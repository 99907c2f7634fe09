// End-to-end: the oss4 binary as a user runs it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "cli_runner.h"
#include "format/npy.h"
#include "format/safetensors.h"
#include <nlohmann/json.hpp>

namespace oss4 {
namespace {

namespace fs = std::filesystem;
const std::string kBin = OSS4_BIN;
const std::string kGolden = std::string(OSS4_TEST_DATA) + "/golden";

using test::CmdResult;
using test::expect_clean_error;

CmdResult run(const std::string& args) { return test::run_oss4(args); }

std::string copy_checkpoint(const std::string& from) {
  std::string dir = test::make_temp_dir() + "/ckpt";
  fs::copy(from, dir, fs::copy_options::recursive);
  return dir;
}

TEST(Cli, HelpForEveryCommand) {
  CmdResult top = run("--help");
  EXPECT_EQ(top.code, 0);
  for (const char* cmd : {"synth", "generate", "logits", "info", "tokenize", "compare", "quantize", "perplexity"}) {
    EXPECT_NE(top.out.find(cmd), std::string::npos);
    CmdResult r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd;
  }
  EXPECT_NE(run("").code, 0);
  EXPECT_NE(run("frobnicate").code, 0);
}

TEST(Cli, LogitsMatchTransformersThroughTheCli) {
  auto ref = TensorStore::open_file(kGolden + "/c2/reference.safetensors");
  ASSERT_TRUE(ref.ok());
  const TensorView* ids = ref->find("ids");
  const TensorView* logits = ref->find("logits");
  const int n = 40;
  std::string id_list;
  for (int i = 0; i < n; ++i) {
    if (i > 0) id_list += ",";
    id_list += std::to_string(reinterpret_cast<const int32_t*>(ids->data)[i]);
  }
  const std::string out = test::make_temp_dir() + "/l.npy";
  CmdResult r = run("logits -m " + kGolden + "/c2/mxfp4 --ids " + id_list + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  auto npy = read_npy_f32(out);
  ASSERT_TRUE(npy.ok()) << npy.status().message();
  const int64_t V = logits->shape[1];
  ASSERT_EQ(npy->shape, (std::vector<int64_t>{n, V}));
  const auto* want = reinterpret_cast<const float*>(logits->data);
  for (int t = 0; t < n; ++t) {
    double md = 0, mr = 0;
    for (int64_t i = 0; i < V; ++i) {
      md = std::max(md, std::fabs(static_cast<double>(npy->data[t * V + i]) - want[t * V + i]));
      mr = std::max(mr, std::fabs(static_cast<double>(want[t * V + i])));
    }
    EXPECT_LE(md / mr, 1e-4) << "position " << t;
  }
}

TEST(Cli, SynthBothLayoutsAreTheSameModel) {
  const std::string dir = test::make_temp_dir();
  ASSERT_EQ(run("synth --config tiny --seed 7 --out " + dir + "/mx").code, 0);
  ASSERT_EQ(run("synth --config tiny --seed 7 --dtype bf16 --out " + dir + "/bf").code, 0);
  EXPECT_TRUE(fs::exists(dir + "/mx/config.json"));
  EXPECT_TRUE(fs::exists(dir + "/mx/generation_config.json"));
  CmdResult info = run("info -m " + dir + "/mx");
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("mxfp4"), std::string::npos);
  // the release layout: experts 4-bit with E8M0 scales, everything else BF16
  auto st = TensorStore::open_dir(dir + "/mx");
  ASSERT_TRUE(st.ok());
  auto blocks = st->require("model.layers.0.mlp.experts.gate_up_proj_blocks", DType::kU8, {8, 256, 4, 16});
  EXPECT_TRUE(blocks.ok()) << blocks.status().message();
  EXPECT_TRUE(st->require("model.layers.3.self_attn.sinks", DType::kBF16, {8}).ok());
  auto bst = TensorStore::open_dir(dir + "/bf");
  ASSERT_TRUE(bst.ok());
  EXPECT_TRUE(bst->require("model.layers.0.mlp.experts.down_proj", DType::kBF16, {8, 128, 128}).ok());

  CmdResult a = run("logits -m " + dir + "/mx --ids 1,2,3,200000,5 --out " + dir + "/a.npy");
  CmdResult b = run("logits -m " + dir + "/bf --ids 1,2,3,200000,5 --out " + dir + "/b.npy");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  auto la = read_npy_f32(dir + "/a.npy"), lb = read_npy_f32(dir + "/b.npy");
  ASSERT_TRUE(la.ok() && lb.ok());
  ASSERT_EQ(la->shape, (std::vector<int64_t>{5, 201088}));
  double md = 0, mr = 0;
  for (size_t i = 0; i < la->data.size(); ++i) {
    md = std::max(md, std::fabs(static_cast<double>(la->data[i]) - lb->data[i]));
    mr = std::max(mr, std::fabs(static_cast<double>(la->data[i])));
  }
  EXPECT_LE(md / mr, 1e-5);
  EXPECT_GT(mr, 0.0);

  // synth never overwrites
  CmdResult again = run("synth --config tiny --out " + dir + "/mx");
  expect_clean_error(again, "refusing to overwrite");
}

TEST(Cli, GenerateIsGreedyAndSeeded) {
  const std::string m = kGolden + "/c1/mxfp4";
  CmdResult a = run("generate -m " + m + " --ids 1,2,3 -n 12 --temperature 0 --ignore-eos -q");
  CmdResult b = run("generate -m " + m + " --ids 1,2,3 -n 12 --temperature 0 --ignore-eos -q");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(std::count(a.out.begin(), a.out.end(), ' '), 11) << a.out;
  CmdResult s1 = run("generate -m " + m + " --ids 1,2,3 -n 12 --temperature 1 --seed 5 --ignore-eos -q");
  CmdResult s2 = run("generate -m " + m + " --ids 1,2,3 -n 12 --temperature 1 --seed 5 --ignore-eos -q");
  CmdResult s3 = run("generate -m " + m + " --ids 1,2,3 -n 12 --temperature 1 --seed 6 --ignore-eos -q");
  EXPECT_EQ(s1.out, s2.out);
  EXPECT_NE(s1.out, s3.out);
  // greedy continuation = argmax of the full-forward logits at each step
  const std::string out = test::make_temp_dir() + "/g.npy";
  std::string ids = "1,2,3";
  std::string first = a.out.substr(0, a.out.find(' '));
  ASSERT_EQ(run("logits -m " + m + " --ids " + ids + " --out " + out + " -q").code, 0);
  auto l = read_npy_f32(out);
  ASSERT_TRUE(l.ok());
  const int64_t V = l->shape[1];
  const float* last = l->data.data() + 2 * V;
  EXPECT_EQ(std::to_string(std::max_element(last, last + V) - last), first);
}

TEST(Cli, BadInputGivesOneLineErrors) {
  const std::string good = kGolden + "/c1/mxfp4";
  const std::string tmp = test::make_temp_dir();
  expect_clean_error(run("logits -m " + good + " --ids 1,2,512 --out " + tmp + "/x.npy"), "token id 512");
  expect_clean_error(run("logits -m " + good + " --ids 1,a,3 --out " + tmp + "/x.npy"), "'a' is not a token id");
  expect_clean_error(run("generate -m " + good + " --ids 1 --top-p 0"), "top-p");
  expect_clean_error(run("generate -m " + good + " --ids 1 -n 5000"), "exceeds the context");
  expect_clean_error(run("logits -m " + tmp + "/nope --ids 1 --out " + tmp + "/x.npy"), "config.json");
  EXPECT_FALSE(fs::exists(tmp + "/x.npy"));

  // truncated safetensors
  std::string d = copy_checkpoint(good);
  fs::resize_file(d + "/model.safetensors", fs::file_size(d + "/model.safetensors") - 100);
  expect_clean_error(run("info -m " + d), "model.safetensors");
  // corrupt header
  d = copy_checkpoint(good);
  {
    std::string bytes = test::read_bytes(d + "/model.safetensors");
    bytes[12] = '\x01';
    test::write_bytes(d + "/model.safetensors", bytes);
  }
  expect_clean_error(run("info -m " + d), "model.safetensors");
  // impossible config
  d = copy_checkpoint(good);
  {
    std::string cfg = test::read_bytes(d + "/config.json");
    cfg.replace(cfg.find("\"num_key_value_heads\": 2"), 24, "\"num_key_value_heads\": 3");
    test::write_bytes(d + "/config.json", cfg);
  }
  expect_clean_error(run("info -m " + d), "num_key_value_heads");
  // malformed config
  d = copy_checkpoint(good);
  test::write_bytes(d + "/config.json", "{\"hidden_size\": 64,");
  expect_clean_error(run("info -m " + d), "not well-formed JSON");

  // a missing tensor, a wrong shape, a wrong dtype: rewrite the checkpoint with one tensor changed
  auto src = TensorStore::open_dir(good);
  ASSERT_TRUE(src.ok());
  struct Edit {
    std::string tensor, mode, expect;
  } edits[] = {
      {"model.layers.1.self_attn.sinks", "drop", "missing tensor 'model.layers.1.self_attn.sinks'"},
      {"model.layers.0.self_attn.q_proj.weight", "shape", "expected [64, 64]"},
      {"model.layers.0.mlp.experts.down_proj_scales", "dtype", "model.layers.0.mlp.experts.down_proj_scales"},
  };
  for (const auto& e : edits) {
    std::string dir = test::make_temp_dir();
    fs::copy(good + "/config.json", dir + "/config.json");
    SafetensorsWriter w(dir + "/model.safetensors");
    std::vector<const TensorView*> keep;
    for (const auto& name : src->names()) {
      const TensorView* t = src->find(name);
      if (name == e.tensor && e.mode == "drop") continue;
      keep.push_back(t);
      std::vector<int64_t> shape = t->shape;
      DType dt = t->dtype;
      if (name == e.tensor && e.mode == "shape") shape = {32, 128};  // same bytes, wrong shape
      if (name == e.tensor && e.mode == "dtype") dt = DType::kI8;
      w.declare(name, dt, shape);
    }
    ASSERT_TRUE(w.begin().ok());
    for (const TensorView* t : keep) ASSERT_TRUE(w.write(t->data, t->nbytes).ok());
    ASSERT_TRUE(w.finish().ok());
    expect_clean_error(run("info -m " + dir), e.expect);
  }
  // E8M0 NaN scale byte
  d = test::make_temp_dir();
  {
    fs::copy(good + "/config.json", d + "/config.json");
    SafetensorsWriter w(d + "/model.safetensors");
    for (const auto& name : src->names()) w.declare(name, src->find(name)->dtype, src->find(name)->shape);
    ASSERT_TRUE(w.begin().ok());
    for (const auto& name : src->names()) {
      const TensorView* t = src->find(name);
      std::string bytes(reinterpret_cast<const char*>(t->data), t->nbytes);
      if (name == "model.layers.1.mlp.experts.gate_up_proj_scales") bytes[3] = '\xff';
      ASSERT_TRUE(w.write(bytes.data(), bytes.size()).ok());
    }
    ASSERT_TRUE(w.finish().ok());
  }
  expect_clean_error(run("info -m " + d), "E8M0 NaN");
}

}  // namespace
}  // namespace oss4

namespace oss4 {
namespace {

TEST(Cli, TextPromptAndTokenizerFilesFromSynth) {
  const std::string dir = test::make_temp_dir() + "/m";
  CmdResult s = run("synth --config tiny --seed 3 --out " + dir);
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_TRUE(fs::exists(dir + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(dir + "/tokenizer_config.json"));
  // the chat template beside the weights is the one transformers rendered identically to openai-harmony
  // (tools/reference/check_chat_template.py wrote the template it checked into renders.json)
  {
    std::ifstream golden(std::string(OSS4_TEST_DATA) + "/chat_template/renders.json");
    ASSERT_TRUE(golden.good());
    const nlohmann::json g = nlohmann::json::parse(golden);
    std::ifstream written(dir + "/chat_template.jinja", std::ios::binary);
    ASSERT_TRUE(written.good());
    const std::string text((std::istreambuf_iterator<char>(written)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, g.at("template").get<std::string>()) << "data/chat_template.jinja changed: rerun check_chat_template.py";
    EXPECT_GE(g.at("cases").size(), 19u);
  }
  // the text prompt tokenizes as the ids prompt does, so greedy output ids agree
  const std::string prompt = "<|start|>user<|message|>Hello, world!<|end|><|start|>assistant";
  CmdResult ids = run("tokenize --tokenizer " + dir + " --allow-special --text '" + prompt + "'");
  ASSERT_EQ(ids.code, 0) << ids.err;
  const auto open = ids.out.find('['), close = ids.out.find(']');
  ASSERT_NE(close, std::string::npos) << ids.out;
  std::string list = ids.out.substr(open + 1, close - open - 1);
  list.erase(std::remove(list.begin(), list.end(), ' '), list.end());
  EXPECT_EQ(list.rfind("200006,", 0), 0u) << list;
  CmdResult a = run("generate -m " + dir + " --prompt '" + prompt + "' -n 8 --temperature 0 --ignore-eos --print-ids -q");
  CmdResult b = run("generate -m " + dir + " --ids " + list + " -n 8 --temperature 0 --ignore-eos -q");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  CmdResult text = run("generate -m " + dir + " --prompt '" + prompt + "' -n 8 --temperature 0 --ignore-eos -q");
  ASSERT_EQ(text.code, 0) << text.err;
  // the text output is the decode of those ids
  std::string out_ids = a.out.substr(0, a.out.find('\n'));
  std::replace(out_ids.begin(), out_ids.end(), ' ', ',');
  CmdResult dec = run("tokenize --tokenizer " + dir + " --decode " + out_ids);
  ASSERT_EQ(dec.code, 0) << dec.err;
  EXPECT_EQ(text.out, dec.out + "\n");
  // built-in calibration texts (real text, harmony specials) through the real tokenizer
  CmdResult cal = run("quantize -m " + dir + " -o " + dir + "_nvfp4 --calibration builtin --scope experts");
  ASSERT_EQ(cal.code, 0) << cal.err;
  EXPECT_NE(cal.err.find("calibrated on 6 prompts"), std::string::npos) << cal.err;
  {
    std::ifstream hq(dir + "_nvfp4/hf_quant_config.json");
    EXPECT_EQ(nlohmann::json::parse(hq)["quantization"]["quant_algo"], "NVFP4");
  }
  expect_clean_error(run("generate -m " + dir + " -n 2"), "exactly one of --ids and --prompt");
  expect_clean_error(run("generate -m " + dir + " --prompt \"$(printf '\\377\\376')\" -n 2"), "invalid UTF-8");
}

}  // namespace
}  // namespace oss4

namespace oss4 {
namespace {

TEST(Cli, CompareLayoutsAndModels) {
  const std::string g = kGolden + "/c1/";
  CmdResult same = run("compare -m " + g + "mxfp4 -m " + g + "bf16 --ids 1,2,3,4,5,6,7,8 --json -q");
  ASSERT_EQ(same.code, 0) << same.err;
  auto j = nlohmann::json::parse(same.out);
  EXPECT_EQ(j["n_positions"], 8);
  EXPECT_LT(j["mean_kl"].get<double>(), 1e-9) << "MXFP4 and BF16 layouts hold the same weights";
  EXPECT_EQ(j["top1_agreement"].get<double>(), 1.0);
  CmdResult diff = run("compare -m " + g + "mxfp4 -m " + kGolden + "/c3/mxfp4 --ids 1,2,3 -q");
  expect_clean_error(diff, "vocabulary sizes differ");
  CmdResult table = run("compare -m " + g + "mxfp4 -m " + g + "bf16 --ids 1,2,3 --per-position -q");
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("| 2 |"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("top-1 agreement  100.00%"), std::string::npos) << table.out;
  expect_clean_error(run("compare -m " + g + "mxfp4 -m " + g + "bf16 --ids 1 --text hi"), "at most one");
}

}  // namespace
}  // namespace oss4

namespace oss4 {
namespace {

TEST(Cli, QuantizeThenRunTheNvfp4Checkpoint) {
  const std::string in = kGolden + "/c3/mxfp4";  // sharded input
  const std::string out = test::make_temp_dir() + "/nvfp4";
  CmdResult q = run("quantize -m " + in + " -o " + out + " --method transcode --report");
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_NE(q.out.find("| model.layers.3.mlp.experts.down_proj | 0.000e+00 | inf | 0 | 0 |"), std::string::npos) << q.out;
  CmdResult info = run("info -m " + out);
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("nvfp4"), std::string::npos);
  CmdResult g = run("generate -m " + out + " --ids 1,2,3 -n 4 --temperature 0 --ignore-eos -q");
  EXPECT_EQ(g.code, 0) << g.err;
  // attention went to 4 bits: a measurable but bounded change; experts were transcoded exactly
  CmdResult c = run("compare -m " + in + " -m " + out + " --ids 5,6,7,8,9,10 --json -q");
  ASSERT_EQ(c.code, 0) << c.err;
  auto j = nlohmann::json::parse(c.out);
  EXPECT_GT(j["mean_kl"].get<double>(), 0.0);
  expect_clean_error(run("quantize -m " + in + " -o " + out), "refusing to overwrite");
  expect_clean_error(run("quantize -m " + out + " -o " + out + "2"), "already NVFP4");
  expect_clean_error(run("quantize -m " + kGolden + "/c3/bf16 -o " + out + "3 --method transcode"), "needs MXFP4 experts");
  EXPECT_FALSE(fs::exists(out + "3"));
  EXPECT_NE(run("quantize -m " + in + " -o " + out + "4 --method fancy").code, 0);
}

// every writing command creates the missing folders above its output, as users expect (mkdir -p), and names a
// level that exists as a file
TEST(Cli, WritersCreateMissingParentFolders) {
  const std::string dir = test::make_temp_dir();
  const std::string in = kGolden + "/c2/mxfp4";
  CmdResult s = run("synth --config tiny --seed 1 --out " + dir + "/a/b/tiny");
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_TRUE(fs::exists(dir + "/a/b/tiny/config.json"));
  CmdResult q = run("quantize -m " + in + " -o " + dir + "/c/d/nvfp4");
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_TRUE(fs::exists(dir + "/c/d/nvfp4/config.json"));
  CmdResult l = run("logits -m " + in + " --ids 1,2,3 --out " + dir + "/e/f/l.npy");
  ASSERT_EQ(l.code, 0) << l.err;
  EXPECT_TRUE(fs::exists(dir + "/e/f/l.npy"));
  test::write_bytes(dir + "/file", "x");
  expect_clean_error(run("logits -m " + in + " --ids 1,2,3 --out " + dir + "/file/g/l.npy"), dir + "/file: exists and is not a directory");
  expect_clean_error(run("synth --config tiny --out " + dir + "/file/m"), dir + "/file: exists and is not a directory");
  // nothing was left behind next to the outputs (no temporaries, no partial folders)
  for (const auto& e : fs::recursive_directory_iterator(dir))
    EXPECT_EQ(e.path().string().find("tmp."), std::string::npos) << e.path();
}

}  // namespace
}  // namespace oss4

namespace oss4 {
namespace {

// ModelOpt's fake-quant save (form a) through `oss4 quantize` is ModelOpt's own export (form b), tensor for tensor,
// input scales included; and oss4's calibration on the same prompts lands within BF16 precision of ModelOpt's
// (which ran the calibration forward pass in BF16).
TEST(Cli, QuantizeFakeQuantReproducesModelOptsExportAndRepacksCompressedTensors) {
  const std::string forms = std::string(OSS4_TEST_DATA) + "/nvfp4_forms";
  const std::string tmp = test::make_temp_dir();
  CmdResult q = run("quantize -m " + forms + "/a -o " + tmp + "/q");
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_NE(q.err.find("input scales: ModelOpt _amax buffers"), std::string::npos) << q.err;
  auto want = SafetensorsFile::open(forms + "/b/model.safetensors");
  auto got = SafetensorsFile::open(tmp + "/q/model.safetensors");
  ASSERT_TRUE(want.ok() && got.ok());
  ASSERT_EQ((*got)->tensors().size(), (*want)->tensors().size());
  for (const TensorView& w : (*want)->tensors()) {
    const TensorView* g = (*got)->find(w.name);
    ASSERT_NE(g, nullptr) << w.name;
    EXPECT_EQ(g->dtype, w.dtype) << w.name;
    EXPECT_EQ(g->shape, w.shape) << w.name;
    ASSERT_EQ(g->nbytes, w.nbytes) << w.name;
    EXPECT_EQ(std::memcmp(g->data, w.data, w.nbytes), 0) << w.name;
  }
  std::ifstream hq(tmp + "/q/hf_quant_config.json");
  EXPECT_EQ(nlohmann::json::parse(hq)["quantization"]["quant_algo"], "NVFP4");

  // calibration from the same two prompts ModelOpt saw
  auto golden = SafetensorsFile::open(forms + "/golden.safetensors");
  ASSERT_TRUE(golden.ok());
  const TensorView* calib = (*golden)->find("calib_ids");
  ASSERT_NE(calib, nullptr);
  {
    std::ofstream f(tmp + "/calib.jsonl");
    const auto* ids = reinterpret_cast<const int32_t*>(calib->data);
    for (int64_t r = 0; r < calib->shape[0]; ++r) {
      nlohmann::json row = nlohmann::json::array();
      for (int64_t i = 0; i < calib->shape[1]; ++i) row.push_back(ids[r * calib->shape[1] + i]);
      f << nlohmann::json{{"ids", row}}.dump() << "\n";
    }
  }
  CmdResult c = run("quantize -m " + forms + "/a -o " + tmp + "/c --calibration " + tmp + "/calib.jsonl");
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.err.find("calibrated on 2 prompts"), std::string::npos) << c.err;
  auto cal = SafetensorsFile::open(tmp + "/c/model.safetensors");
  ASSERT_TRUE(cal.ok());
  int n_scales = 0;
  for (const TensorView& w : (*want)->tensors()) {
    if (w.name.find("input_scale") == std::string::npos) continue;
    const TensorView* g = (*cal)->find(w.name);
    ASSERT_NE(g, nullptr) << w.name;
    const float a = *reinterpret_cast<const float*>(w.data), b = *reinterpret_cast<const float*>(g->data);
    EXPECT_NEAR(b, a, 0.01 * a) << w.name;  // BF16 activations and BF16-stored amax in ModelOpt: ~0.4%
    ++n_scales;
  }
  EXPECT_EQ(n_scales, 12);
  // bad calibration input is a one-line error: built-in texts outside this 256-token vocabulary, a malformed line
  expect_clean_error(run("quantize -m " + forms + "/a -o " + tmp + "/w --calibration builtin"), "outside the vocabulary");
  {
    std::ofstream f(tmp + "/bad.jsonl");
    f << "{\"ids\": [1, 2]}\n{\"text\": 5}\n";
  }
  expect_clean_error(run("quantize -m " + forms + "/a -o " + tmp + "/x --calibration " + tmp + "/bad.jsonl"), "bad.jsonl:2");
  expect_clean_error(run("quantize -m " + forms + "/b -o " + tmp + "/y"), "already NVFP4");

  // compressed-tensors (form c) converts to ModelOpt's layout without re-quantizing: b's tensors but for the
  // elements the two tools round differently (boundary ties) and the last bit of 1/(1/x); the same logits as c
  CmdResult r = run("quantize -m " + forms + "/c -o " + tmp + "/cb");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("repacked, not re-quantized"), std::string::npos) << r.err;
  auto cb = SafetensorsFile::open(tmp + "/cb/model.safetensors");
  ASSERT_TRUE(cb.ok());
  ASSERT_EQ((*cb)->tensors().size(), (*want)->tensors().size());
  for (const TensorView& w : (*want)->tensors()) {
    const TensorView* g = (*cb)->find(w.name);
    ASSERT_NE(g, nullptr) << w.name;
    ASSERT_EQ(g->dtype, w.dtype) << w.name;
    ASSERT_EQ(g->shape, w.shape) << w.name;
    if (w.dtype == DType::kF32) {
      for (int64_t i = 0; i < w.numel(); ++i) {
        const float a = reinterpret_cast<const float*>(w.data)[i], b = reinterpret_cast<const float*>(g->data)[i];
        EXPECT_NEAR(b, a, 1e-6 * std::fabs(a)) << w.name;
      }
    } else {
      size_t diff = 0;
      for (size_t i = 0; i < w.nbytes; ++i) diff += g->data[i] != w.data[i];
      EXPECT_LE(diff * 500, w.nbytes) << w.name << ": " << diff << " bytes differ";
    }
  }
  const std::string ids = "1,5,9,13,200,17,42,3";
  CmdResult lc = run("logits -m " + forms + "/c --ids " + ids + " --out " + tmp + "/c.npy -q");
  CmdResult lcb = run("logits -m " + tmp + "/cb --ids " + ids + " --out " + tmp + "/cb.npy -q");
  ASSERT_EQ(lc.code, 0) << lc.err;
  ASSERT_EQ(lcb.code, 0) << lcb.err;
  std::ifstream f1(tmp + "/c.npy", std::ios::binary), f2(tmp + "/cb.npy", std::ios::binary);
  const std::string b1((std::istreambuf_iterator<char>(f1)), std::istreambuf_iterator<char>());
  const std::string b2((std::istreambuf_iterator<char>(f2)), std::istreambuf_iterator<char>());
  ASSERT_EQ(b1.size(), b2.size());
  // the same weights, summed in another order by the input-major expert kernel: equal to f32 rounding
  const size_t data = b1.find('\n') + 1;
  ASSERT_GT(data, 10u);
  const auto* x = reinterpret_cast<const float*>(b1.data() + data);
  const auto* y = reinterpret_cast<const float*>(b2.data() + data);
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < (b1.size() - data) / 4; ++i) {
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(x[i]) - y[i]));
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(x[i])));
  }
  EXPECT_LT(max_diff, 1e-5 * max_ref) << "repacking changed the numbers";
}

}  // namespace
}  // namespace oss4
