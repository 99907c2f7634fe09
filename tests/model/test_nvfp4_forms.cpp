// The three NVFP4 checkpoint forms of one tiny gpt-oss, made by the real tools (tools/reference/make_nvfp4_forms.py):
// (a) ModelOpt fake-quant save (BF16 + _amax, quantized by oss4 at load), (b) ModelOpt's export, (c) compressed-
// tensors nvfp4-pack-quantized. Each must run to transformers' logits on its own dequantized weights, and a, b and c
// must hold the same NVFP4 numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "format/safetensors.h"
#include "logit_compare.h"
#include "model/lm_head.h"
#include "backend/cpu/prepare.h"
#include "core/thread_pool.h"
#include "core/transpose.h"
#include "forward_for_test.h"
#include "model/weight_decode.h"
#include "numeric/float_formats.h"
#include "numeric/nvfp4.h"
#include "numeric/nvfp4_tiles.h"

namespace oss4 {
namespace {

namespace fs = std::filesystem;
const std::string kForms = std::string(OSS4_TEST_DATA) + "/nvfp4_forms";
constexpr double kTol = 1e-4;  // max |logit diff| / max |logit|, per position, as the foundation goldens

ModelWeights load(const std::string& form) {
  auto m = load_model(kForms + "/" + form);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : ModelWeights{};
}

class Forms : public ::testing::TestWithParam<std::string> {};

TEST_P(Forms, LogitsMatchTransformersOnTheDequantizedWeights) {
  const std::string form = GetParam();
  auto golden = TensorStore::open_file(kForms + "/golden.safetensors");
  ASSERT_TRUE(golden.ok()) << golden.status().message();
  const TensorView* ids_t = golden->find("ids");
  const TensorView* ref = golden->find(form == "c" ? "logits_compressed_tensors" : "logits_modelopt");
  ASSERT_TRUE(ids_t && ref);
  std::vector<int32_t> ids(reinterpret_cast<const int32_t*>(ids_t->data), reinterpret_cast<const int32_t*>(ids_t->data) + ids_t->numel());
  ModelWeights m = load(form);
  ASSERT_EQ(m.cfg.n_vocab, ref->shape[1]);
  EXPECT_TRUE(checkpoint_kind_is_nvfp4(m.checkpoint_kind)) << checkpoint_kind_name(m.checkpoint_kind);
  // through the backend, which runs row-major NVFP4 attention repacked input-major (backend/cpu/prepare.h); on the
  // reference rung too, whose row-major and input-major kernels are separate code
  for (const char* kernels : {"auto", "ref"}) {
    BackendOptions o;
    o.kernels = kernels;
    auto fwd = test::forward_for(m, o);
    ASSERT_TRUE(fwd);
    for (int64_t chunk : {int64_t{64}, int64_t{5}}) {
      auto cache = fwd->new_cache(64, chunk);
      ASSERT_TRUE(cache.ok());
      std::vector<float> logits;
      ASSERT_TRUE(eval(*fwd, **cache, ids.data(), static_cast<int64_t>(ids.size()), LogitsMode::kAll, &logits).ok());
      const double err = test::worst_rel_err(logits.data(), reinterpret_cast<const float*>(ref->data), static_cast<int64_t>(ids.size()), m.cfg.n_vocab);
      std::printf("form %s kernels %s chunk %lld: max rel logit err %.3g\n", form.c_str(), kernels, static_cast<long long>(chunk), err);
      EXPECT_LE(err, kTol) << "form " << form << " kernels " << kernels << " chunk " << chunk;
    }
  }
}

// the AVX-512 rung's prepare step puts every NVFP4 matrix (attention, experts, lm_head) into 32-output tiles holding
// the checkpoint's codes and scales, read back through the layout's accessors
TEST(Forms, PrepareTilesEveryNvfp4MatrixExactly) {
  ModelWeights m = load("b");
  ThreadPool pool(2);
  auto cw = cpu_prepare_weights(m, LmHeadType::kNvfp4, pool, WeightLayout::kTiles32);
  ASSERT_TRUE(cw.ok()) << cw.status().message();
  int64_t n_tiled = 0;
  auto same = [&](const LinearWeight& host, const LinearWeight& prep) {
    if (host.type != WeightType::kNvfp4 || !nvfp4_tiles_fit(host.n_out, host.n_in)) return;
    ASSERT_TRUE(prep.tiles32()) << host.name;
    ++n_tiled;
    for (int64_t o = 0; o < host.n_out; ++o)
      for (int64_t i = 0; i < host.n_in; ++i) {
        ASSERT_EQ(nvfp4_code_at(prep, o, i), nvfp4_code_at(host, o, i)) << host.name << " o " << o << " i " << i;
        if (i % 16 == 0) {
          ASSERT_EQ(nvfp4_scale_at(prep, o, i / 16), nvfp4_scale_at(host, o, i / 16)) << host.name;
        }
      }
    EXPECT_EQ(prep.scale2, host.scale2) << host.name;
  };
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const LayerWeights& L = m.layers[l];
    const CpuLayerWeights& P = cw->layers[l];
    same(L.wq, P.wq);
    same(L.wk, P.wk);
    same(L.wv, P.wv);
    same(L.wo, P.wo);
    ASSERT_EQ(P.gate_up.size(), L.gate_up.size());
    for (size_t e = 0; e < L.gate_up.size(); ++e) {
      same(L.gate_up[e], P.gate_up[e]);
      same(L.down[e], P.down[e]);
    }
  }
  EXPECT_TRUE(cw->lm_head.tiles32());
  EXPECT_GE(n_tiled, static_cast<int64_t>(m.layers.size()) * (4 + 2 * m.cfg.n_experts));
  EXPECT_FALSE(m.layers[0].gate_up[0].tiles32()) << "the host weights stay as loaded";
}

// the CPU prepare step's copies are exact transposes of the checkpoint's row-major NVFP4 bytes (attention, and an
// lm_head quantized at load against the row-major quantization), and the host weights stay as loaded
TEST(Forms, PrepareRepacksRowMajorNvfp4Exactly) {
  ModelWeights m = load("b");
  const LinearWeight wq = m.layers[0].wq;
  ASSERT_EQ(wq.type, WeightType::kNvfp4);
  ASSERT_FALSE(wq.in_major());
  ThreadPool pool(2);
  auto cw = cpu_prepare_weights(m, LmHeadType::kNvfp4, pool);
  ASSERT_TRUE(cw.ok()) << cw.status().message();
  EXPECT_GT(cw->repacked_bytes, 0u);
  EXPECT_FALSE(m.layers[0].wq.in_major()) << "the host weights stay row-major";
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const LayerWeights& L = m.layers[l];
    const CpuLayerWeights& P = cw->layers[l];
    for (auto [host, prep] : {std::pair{&L.wq, &P.wq}, std::pair{&L.wk, &P.wk}, std::pair{&L.wv, &P.wv}, std::pair{&L.wo, &P.wo}}) {
      if (!repack_wants_in_major(host->n_out, host->n_in)) continue;
      ASSERT_TRUE(prep->in_major()) << host->name;
      std::vector<uint8_t> codes(static_cast<size_t>(host->n_out * host->n_in / 2)), scales(static_cast<size_t>(host->n_out * host->n_in / 16));
      transpose_u8(host->data, host->n_out, host->n_in / 2, codes.data());
      transpose_u8(host->scales, host->n_out, host->n_in / 16, scales.data());
      EXPECT_EQ(std::memcmp(prep->data, codes.data(), codes.size()), 0) << host->name;
      EXPECT_EQ(std::memcmp(prep->scales, scales.data(), scales.size()), 0) << host->name;
      EXPECT_EQ(prep->scale2, host->scale2) << host->name;
    }
  }
  // the lm_head: quantized row-major as oss4 quantize --lm-head nvfp4 writes it, then transposed, gives the same bytes
  ASSERT_TRUE(cw->lm_head.in_major());
  LmHeadNvfp4 q;
  ASSERT_TRUE(nvfp4_quantize_lm_head(m.lm_head, /*in_major=*/false, pool, &q).ok());
  const LinearWeight& h = cw->lm_head;
  std::vector<uint8_t> codes(q.packed.size()), scales(q.scales.size());
  transpose_u8(q.packed.data(), h.n_out, h.n_in / 2, codes.data());
  transpose_u8(q.scales.data(), h.n_out, h.n_in / 16, scales.data());
  EXPECT_EQ(std::memcmp(h.data, codes.data(), codes.size()), 0);
  EXPECT_EQ(std::memcmp(h.scales, scales.data(), scales.size()), 0);
  EXPECT_EQ(h.scale2, q.scale2);
}

INSTANTIATE_TEST_SUITE_P(AllForms, Forms, ::testing::Values("a", "b", "c"));

// element (o, i) of an NVFP4 weight in either orientation: its E2M1 code and its block's E4M3 scale byte.
uint8_t code_at(const LinearWeight& w, int64_t o, int64_t i) {
  const uint8_t byte = w.in_major() ? w.data[(i / 2) * w.n_out + o] : w.data[o * (w.n_in / 2) + i / 2];
  return i % 2 == 0 ? byte & 15 : byte >> 4;
}
uint8_t scale_at(const LinearWeight& w, int64_t o, int64_t i) {
  return w.in_major() ? w.scales[(i / 16) * w.n_out + o] : w.scales[o * (w.n_in / 16) + i / 16];
}

std::vector<std::pair<const LinearWeight*, const LinearWeight*>> pairs(const ModelWeights& x, const ModelWeights& y) {
  std::vector<std::pair<const LinearWeight*, const LinearWeight*>> out;
  for (size_t l = 0; l < x.layers.size(); ++l) {
    const LayerWeights &A = x.layers[l], &B = y.layers[l];
    out.insert(out.end(), {{&A.wq, &B.wq}, {&A.wk, &B.wk}, {&A.wv, &B.wv}, {&A.wo, &B.wo}});
    for (size_t e = 0; e < A.gate_up.size(); ++e) {
      out.push_back({&A.gate_up[e], &B.gate_up[e]});
      out.push_back({&A.down[e], &B.down[e]});
    }
  }
  return out;
}

TEST(Forms, FakeQuantConvertedAtLoadIsTheExportBitForBit) {
  ModelWeights a = load("a"), b = load("b");
  ASSERT_EQ(a.layers.size(), b.layers.size());
  int64_t n = 0;
  for (auto [x, y] : pairs(a, b)) {
    ASSERT_EQ(x->type, WeightType::kNvfp4) << x->name;
    ASSERT_EQ(y->type, WeightType::kNvfp4) << y->name;
    ASSERT_EQ(x->n_out, y->n_out);
    ASSERT_EQ(x->n_in, y->n_in);
    EXPECT_EQ(x->scale2, y->scale2) << x->name;  // amax / 2688 from the same (for q/k/v fused) amax
    for (int64_t o = 0; o < x->n_out; ++o)
      for (int64_t i = 0; i < x->n_in; ++i, ++n) {
        ASSERT_EQ(code_at(*x, o, i), code_at(*y, o, i)) << x->name << " (" << o << ", " << i << ")";
        ASSERT_EQ(scale_at(*x, o, i), scale_at(*y, o, i)) << x->name << " (" << o << ", " << i << ")";
      }
  }
  EXPECT_GT(n, 50000);
}

// the BF16 source of every pair() entry, from form a's file: attention [n_out, n_in], experts [E, in, out].
std::vector<LinearWeight> sources(const TensorStore& st, const ModelWeights& m) {
  std::vector<LinearWeight> out;
  auto dense = [&](const std::string& name, int64_t n_out, int64_t n_in, bool in_major, size_t offset) {
    const TensorView* t = st.find(name);
    EXPECT_TRUE(t != nullptr && t->dtype == DType::kBF16) << name;
    LinearWeight w;
    w.type = WeightType::kBF16;
    w.n_out = n_out;
    w.n_in = n_in;
    w.set_in_major(in_major);
    w.data = t != nullptr ? t->data + offset * 2 : nullptr;
    w.name = name;
    out.push_back(w);
  };
  const ModelConfig& c = m.cfg;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    dense(p + "self_attn.q_proj.weight", c.q_dim(), c.n_embd, false, 0);
    dense(p + "self_attn.k_proj.weight", c.kv_dim(), c.n_embd, false, 0);
    dense(p + "self_attn.v_proj.weight", c.kv_dim(), c.n_embd, false, 0);
    dense(p + "self_attn.o_proj.weight", c.n_embd, c.q_dim(), false, 0);
    for (int64_t e = 0; e < c.n_experts; ++e) {
      dense(p + "mlp.experts.gate_up_proj", 2 * c.n_ff, c.n_embd, true, static_cast<size_t>(e * 2 * c.n_ff * c.n_embd));
      dense(p + "mlp.experts.down_proj", c.n_embd, c.n_ff, true, static_cast<size_t>(e * c.n_ff * c.n_embd));
    }
  }
  return out;
}

// compressed-tensors computes w / (s / gs) where ModelOpt computes w / (s * wsf2) (gs = 1/wsf2): the two can round
// an element that sits on an E2M1 rounding boundary to opposite sides. Everything else must be identical.
TEST(Forms, CompressedTensorsHoldsTheSameNumbersButForBoundaryTies) {
  ModelWeights b = load("b"), c = load("c");
  auto st = TensorStore::open_dir(kForms + "/a");
  ASSERT_TRUE(st.ok()) << st.status().message();
  const auto pb = pairs(b, c);
  const auto src = sources(*st, b);
  ASSERT_EQ(src.size(), pb.size());
  static const float kBounds[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
  int64_t n = 0, n_diff = 0;
  for (size_t k = 0; k < pb.size(); ++k) {
    const LinearWeight &x = *pb[k].first, &y = *pb[k].second;
    ASSERT_EQ(y.type, WeightType::kNvfp4) << y.name;
    EXPECT_NEAR(y.scale2, x.scale2, 1e-6 * x.scale2) << y.name;  // 1 / (2688 / amax) vs amax / 2688
    std::vector<float> w(static_cast<size_t>(x.n_out * x.n_in));  // [n_out, n_in] source weights
    decode_weight_f32(src[k], w.data());
    for (int64_t o = 0; o < x.n_out; ++o)
      for (int64_t i = 0; i < x.n_in; ++i, ++n) {
        ASSERT_EQ(scale_at(x, o, i), scale_at(y, o, i)) << y.name << " (" << o << ", " << i << ")";
        const uint8_t qb = code_at(x, o, i), qc = code_at(y, o, i);
        if (qb == qc) continue;
        ++n_diff;
        // one E2M1 step apart, same sign, and the element sits on a rounding boundary (to f32 precision)
        EXPECT_EQ(qb & 8, qc & 8) << y.name;
        EXPECT_EQ(std::abs((qb & 7) - (qc & 7)), 1) << y.name << " (" << o << ", " << i << ")";
        const float v = std::fabs(w[static_cast<size_t>(o * x.n_in + i)]) / (e4m3_to_f32(scale_at(x, o, i)) * x.scale2);
        double nearest = 1e9;
        for (float t : kBounds) nearest = std::min(nearest, std::fabs(static_cast<double>(v) - t) / t);
        EXPECT_LT(nearest, 1e-6) << y.name << " (" << o << ", " << i << "): scaled value " << v << " is not on a boundary";
      }
  }
  std::printf("compressed-tensors vs ModelOpt: %lld of %lld elements round to the neighbouring E2M1 code\n",
              static_cast<long long>(n_diff), static_cast<long long>(n));
  EXPECT_LE(n_diff * 1000, n) << "more than 1 in 1000 elements differ";
}

// a broken file in either new form is a clear error that names the tensor
TEST(Forms, NanOrNegativeE4m3BlockScalesAreErrorsWithTheirIndex) {
  const std::string tmp = testing::TempDir() + "/oss4_e4m3_" + std::to_string(::getpid());
  struct Case {
    const char* tensor;
    size_t at;
    uint8_t byte;
    const char* hex;
  };
  for (const Case& c : {Case{"model.layers.0.self_attn.q_proj.weight_scale", 100, 0x7f, "0x7f"},
                        Case{"model.layers.1.mlp.experts.down_proj_weight_scale", 3, 0xff, "0xff"},
                        Case{"model.layers.1.mlp.experts.gate_up_proj_weight_scale", 777, 0x90, "0x90"}}) {
    fs::create_directories(tmp);
    fs::copy_file(kForms + "/b/config.json", tmp + "/config.json", fs::copy_options::overwrite_existing);
    auto st = SafetensorsFile::open(kForms + "/b/model.safetensors");
    ASSERT_TRUE(st.ok());
    SafetensorsWriter w(tmp + "/model.safetensors");
    for (const TensorView& t : (*st)->tensors()) w.declare(t.name, t.dtype, t.shape);
    ASSERT_TRUE(w.begin().ok());
    bool found = false;
    for (const TensorView& t : (*st)->tensors()) {
      std::vector<uint8_t> bytes(t.data, t.data + t.nbytes);
      if (t.name == c.tensor) {
        ASSERT_LT(c.at, bytes.size());
        bytes[c.at] = c.byte;
        found = true;
      }
      ASSERT_TRUE(w.write(bytes.data(), bytes.size()).ok());
    }
    ASSERT_TRUE(found) << c.tensor;
    ASSERT_TRUE(w.finish().ok());
    auto m = load_model(tmp);
    ASSERT_FALSE(m.ok()) << c.tensor;
    const std::string msg = m.status().message();
    EXPECT_NE(msg.find(c.tensor), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::string(c.hex) + " at element " + std::to_string(c.at)), std::string::npos) << msg;
  }
  fs::remove_all(tmp);
}

TEST(Forms, BadScalesAreErrorsNamingTheTensor) {
  const std::string tmp = testing::TempDir() + "/oss4_forms_" + std::to_string(::getpid());
  for (const char* form : {"a", "c"}) {
    const std::string dir = tmp + "/" + form;
    fs::create_directories(dir);
    fs::copy_file(kForms + "/" + form + "/config.json", dir + "/config.json", fs::copy_options::overwrite_existing);
    auto st = SafetensorsFile::open(kForms + "/" + form + "/model.safetensors");
    ASSERT_TRUE(st.ok());
    const std::string victim = std::string(form) == "a" ? "model.layers.1.self_attn.o_proj.weight_quantizer._amax"
                                                          : "model.layers.0.mlp.experts.experts.2.up_proj.weight_global_scale";
    SafetensorsWriter w(dir + "/model.safetensors");
    for (const TensorView& t : (*st)->tensors()) w.declare(t.name, t.dtype, t.shape);
    ASSERT_TRUE(w.begin().ok());
    for (const TensorView& t : (*st)->tensors()) {
      std::vector<uint8_t> bytes(t.data, t.data + t.nbytes);
      if (t.name == victim && t.dtype == DType::kBF16) {
        const uint16_t neg = f32_to_bf16(-1.0f);
        std::memcpy(bytes.data(), &neg, 2);
      } else if (t.name == victim) {
        const float v = reinterpret_cast<const float*>(t.data)[0] * 2.0f;
        std::memcpy(bytes.data(), &v, 4);
      }
      ASSERT_TRUE(w.write(bytes.data(), bytes.size()).ok());
    }
    ASSERT_TRUE(w.finish().ok());
    auto m = load_model(dir);
    ASSERT_FALSE(m.ok()) << form;
    EXPECT_NE(m.status().message().find(std::string(form) == "a" ? victim : "up_proj.weight_global_scale"), std::string::npos)
        << m.status().message();
  }
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace oss4
