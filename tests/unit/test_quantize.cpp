// oss4 quantize against ModelOpt's real export (tests/data/nvfp4/export_gptoss_tiny.safetensors), and the
// transcode / mse methods against their promises.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "format/safetensors.h"
#include "model/weight_decode.h"
#include "numeric/float_formats.h"
#include "quant/quantize.h"
#include "test_helpers.h"

namespace oss4 {
namespace {

namespace fs = std::filesystem;
const std::string kData = OSS4_TEST_DATA;

// a BF16 checkpoint of the exported model's shape whose layer-0 attention and experts are ModelOpt's source weights.
std::string checkpoint_from_export(const TensorStore& ex) {
  const std::string dir = test::make_temp_dir() + "/bf16";
  fs::create_directories(dir);
  auto cfg = nlohmann::json::parse(test::read_bytes(kData + "/golden/c1/bf16/config.json"));
  cfg["intermediate_size"] = 32;
  test::write_bytes(dir + "/config.json", cfg.dump());
  const int64_t H = 64, I = 32, E = 4, V = cfg["vocab_size"].get<int64_t>();
  struct T {
    std::string name;
    std::vector<int64_t> shape;
    std::string source;  // export tensor to take values from, else a ramp
  };
  std::vector<T> ts = {{"model.embed_tokens.weight", {V, H}, ""}, {"model.norm.weight", {H}, ""}, {"lm_head.weight", {V, H}, ""}};
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string s = "source.model.layers.0.";
    for (auto [n, o, i] : {std::tuple<const char*, int64_t, int64_t>{"q_proj", 64, H}, {"k_proj", 32, H}, {"v_proj", 32, H}, {"o_proj", H, 64}}) {
      ts.push_back({p + "self_attn." + n + ".weight", {o, i}, s + "self_attn." + n + ".weight"});
      ts.push_back({p + "self_attn." + n + ".bias", {o}, ""});
    }
    ts.push_back({p + "self_attn.sinks", {4}, ""});
    ts.push_back({p + "input_layernorm.weight", {H}, ""});
    ts.push_back({p + "post_attention_layernorm.weight", {H}, ""});
    ts.push_back({p + "mlp.router.weight", {E, H}, ""});
    ts.push_back({p + "mlp.router.bias", {E}, ""});
    ts.push_back({p + "mlp.experts.gate_up_proj", {E, H, 2 * I}, s + "mlp.experts.gate_up_proj"});
    ts.push_back({p + "mlp.experts.gate_up_proj_bias", {E, 2 * I}, ""});
    ts.push_back({p + "mlp.experts.down_proj", {E, I, H}, s + "mlp.experts.down_proj"});
    ts.push_back({p + "mlp.experts.down_proj_bias", {E, H}, ""});
  }
  SafetensorsWriter w(dir + "/model.safetensors");
  for (const auto& t : ts) w.declare(t.name, DType::kBF16, t.shape);
  EXPECT_TRUE(w.begin().ok());
  for (const auto& t : ts) {
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    std::vector<uint16_t> v(static_cast<size_t>(n));
    const TensorView* src = t.source.empty() ? nullptr : ex.find(t.source);
    if (!t.source.empty()) {
      EXPECT_NE(src, nullptr) << t.source;
    }
    for (int64_t k = 0; k < n; ++k) {
      const float f = src ? reinterpret_cast<const float*>(src->data)[k] : 0.01f * static_cast<float>((k * 37) % 23 - 11);
      v[static_cast<size_t>(k)] = f32_to_bf16(f);
      if (src) {
        EXPECT_EQ(bf16_to_f32(v[static_cast<size_t>(k)]), f) << "source weights are bf16 values";
      }
    }
    EXPECT_TRUE(w.write(v.data(), v.size() * 2).ok());
  }
  EXPECT_TRUE(w.finish().ok());
  return dir;
}

TEST(Quantize, AmaxReproducesModelOptExportBitForBit) {
  auto ex = TensorStore::open_file(kData + "/nvfp4/export_gptoss_tiny.safetensors");
  ASSERT_TRUE(ex.ok()) << ex.status().message();
  const std::string in = checkpoint_from_export(*ex);
  const std::string out = test::make_temp_dir() + "/nvfp4";
  QuantizeReport report;
  Status s = quantize_checkpoint({in, out, QuantMethod::kAmax, QuantScope::kAll, {}}, nullptr, &report);
  ASSERT_TRUE(s.ok()) << s.message();
  auto got = TensorStore::open_dir(out);
  ASSERT_TRUE(got.ok()) << got.status().message();
  int n_compared = 0;
  for (const std::string& name : ex->names()) {
    if (name.rfind("model.layers.0.", 0) != 0) continue;
    const TensorView* want = ex->find(name);
    const TensorView* have = got->find(name);
    ASSERT_NE(have, nullptr) << name;
    EXPECT_EQ(have->dtype, want->dtype) << name;
    EXPECT_EQ(have->shape, want->shape) << name;
    ASSERT_EQ(have->nbytes, want->nbytes) << name;
    EXPECT_EQ(std::memcmp(have->data, want->data, want->nbytes), 0) << name << " differs from ModelOpt's export";
    ++n_compared;
  }
  EXPECT_EQ(n_compared, 18);  // q/k/v/o x3 + 2 experts x3
  // and the result loads and runs as an NVFP4 checkpoint
  auto m = load_model(out);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m->checkpoint_kind, CheckpointKind::kNvfp4Export);
  EXPECT_EQ(m->layers[0].wq.type, WeightType::kNvfp4);
  EXPECT_EQ(m->layers[0].router.type, WeightType::kBF16) << "router stays BF16";
  auto cfg = nlohmann::json::parse(test::read_bytes(out + "/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], "modelopt");
  EXPECT_TRUE(fs::exists(out + "/hf_quant_config.json"));
}

TEST(Quantize, TranscodeIsExactAndMseNeverWorse) {
  const std::string in = kData + "/golden/c2/mxfp4";
  const std::string dir = test::make_temp_dir();
  QuantizeReport rt, ra, rm;
  ASSERT_TRUE(quantize_checkpoint({in, dir + "/t", QuantMethod::kTranscode, QuantScope::kExperts, {}}, nullptr, &rt).ok());
  ASSERT_TRUE(quantize_checkpoint({in, dir + "/a", QuantMethod::kAmax, QuantScope::kAll, {}}, nullptr, &ra).ok());
  ASSERT_TRUE(quantize_checkpoint({in, dir + "/m", QuantMethod::kMse, QuantScope::kAll, {}}, nullptr, &rm).ok());
  auto src = load_model(in), t = load_model(dir + "/t");
  ASSERT_TRUE(src.ok() && t.ok());
  EXPECT_EQ(t->layers[0].wq.type, WeightType::kBF16) << "--scope experts leaves attention alone";
  for (size_t l = 0; l < src->layers.size(); ++l) {
    for (size_t e = 0; e < src->layers[l].down.size(); ++e) {
      for (auto sel : {&LayerWeights::gate_up, &LayerWeights::down}) {
        const LinearWeight& a = (src->layers[l].*sel)[e];
        const LinearWeight& b = (t->layers[l].*sel)[e];
        ASSERT_EQ(b.type, WeightType::kNvfp4);
        std::vector<float> da(static_cast<size_t>(a.n_out * a.n_in)), db(da.size());
        decode_weight_f32(a, da.data());
        decode_weight_f32(b, db.data());
        EXPECT_EQ(da, db) << "layer " << l << " expert " << e;
      }
    }
  }
  for (const auto& r : rt.tensors) EXPECT_EQ(r.n_inexact, 0) << r.name;
  ASSERT_EQ(ra.tensors.size(), rm.tensors.size());
  for (size_t i = 0; i < ra.tensors.size(); ++i) {
    EXPECT_EQ(ra.tensors[i].name, rm.tensors[i].name);
    EXPECT_LE(rm.tensors[i].rel_mse, ra.tensors[i].rel_mse) << rm.tensors[i].name;
  }
}

TEST(Quantize, TranscodeReportsBlocksBelowE4m3Range) {
  // two 32-blocks 2^20 apart in scale: the small one cannot share the tensor scale exactly
  std::vector<uint8_t> blocks(2 * 16, 0x21), scales = {127, 107};
  LinearWeight mx{{WeightType::kMxfp4, WeightLayout::kRowMajor, 1, 64, blocks.data(), scales.data()}, "mx"};
  Nvfp4Matrix q;
  int64_t n_inexact = 0;
  double worst = 0;
  mxfp4_transcode(mx, 0, &q, &n_inexact, &worst);
  EXPECT_EQ(n_inexact, 1);
  EXPECT_GT(worst, 0.0);
  EXPECT_EQ(q.scale2, std::ldexp(1.0f, -8));
  EXPECT_EQ(e4m3_to_f32(q.scales[0]), 256.0f);
  EXPECT_EQ(std::memcmp(q.packed.data(), blocks.data(), 16), 0) << "exact block keeps its nibbles";
}

TEST(Quantize, RefusesToOverwrite) {
  const std::string in = kData + "/golden/c1/mxfp4";
  QuantizeReport r;
  Status s = quantize_checkpoint({in, in, QuantMethod::kAmax, QuantScope::kAll, {}}, nullptr, &r);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("refusing to overwrite"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace oss4
