// The CUDA backend's device memory plan (device_plan.h), on the CPU: gpt-oss-20b in NVFP4 runs in 16 GB with an 8k
// context (issue 15), every byte counted adds up, and what the backend refuses the plan refuses too. The GPU test
// (tests/cuda/test_cuda_forward.cpp) holds the backend's real weight allocations to the same count.
#include <gtest/gtest.h>

#include "backend/cuda/device_plan.h"
#include "backend/cuda/tile_layout.h"
#include "model/config.h"
#include "model/weights.h"

namespace oss4 {
namespace {

LinearWeight shape(WeightType t, int64_t n_out, int64_t n_in, const char* name) {
  LinearWeight w;
  w.type = t;
  w.n_out = n_out;
  w.n_in = n_in;
  w.name = name;
  return w;
}

// the weights of a config as shapes and types only (no data): what the plan reads
ModelWeights shapes_of(const ModelConfig& c, WeightType experts, WeightType attn, WeightType lm_head) {
  ModelWeights m;
  m.cfg = c;
  m.embed = shape(WeightType::kBF16, c.n_vocab, c.n_embd, "embed");
  m.lm_head = shape(lm_head, c.n_vocab, c.n_embd, "lm_head");
  m.final_norm.assign(static_cast<size_t>(c.n_embd), 1.0f);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    L.attn_norm.assign(static_cast<size_t>(c.n_embd), 1.0f);
    L.mlp_norm = L.attn_norm;
    L.sinks.assign(static_cast<size_t>(c.n_heads), 0.0f);
    L.wq = shape(attn, c.q_dim(), c.n_embd, "wq");
    L.wk = shape(attn, c.kv_dim(), c.n_embd, "wk");
    L.wv = shape(attn, c.kv_dim(), c.n_embd, "wv");
    L.wo = shape(attn, c.n_embd, c.q_dim(), "wo");
    L.bq.assign(static_cast<size_t>(c.q_dim()), 0.0f);
    L.bk.assign(static_cast<size_t>(c.kv_dim()), 0.0f);
    L.bv = L.bk;
    L.bo.assign(static_cast<size_t>(c.n_embd), 0.0f);
    L.router = shape(WeightType::kBF16, c.n_experts, c.n_embd, "router");
    L.router_bias.assign(static_cast<size_t>(c.n_experts), 0.0f);
    for (int64_t e = 0; e < c.n_experts; ++e) {
      L.gate_up.push_back(shape(experts, 2 * c.n_ff, c.n_embd, "gate_up"));
      L.down.push_back(shape(experts, c.n_embd, c.n_ff, "down"));
    }
    L.gate_up_bias.assign(static_cast<size_t>(c.n_experts * 2 * c.n_ff), 0.0f);
    L.down_bias.assign(static_cast<size_t>(c.n_experts * c.n_embd), 0.0f);
    m.layers.push_back(std::move(L));
  }
  return m;
}

TEST(CudaDevicePlan, Gpt20bNvfp4FitsIn16GBWithAn8kContext) {
  auto c = builtin_model_config("gpt-oss-20b");
  ASSERT_TRUE(c.ok());
  const ModelWeights m = shapes_of(*c, WeightType::kNvfp4, WeightType::kNvfp4, WeightType::kBF16);
  auto p = cuda::plan_device_memory(m, LmHeadType::kStored, 8192, 512, 1);
  ASSERT_TRUE(p.ok()) << p.status().message();
  for (const auto& it : p->items) std::printf("  %-60s %8.3f GB\n", it.what.c_str(), static_cast<double>(it.bytes) / 1e9);
  std::printf("  total %.3f GB\n", static_cast<double>(p->total()) / 1e9);
  EXPECT_LT(p->total(), size_t{16} * 1000 * 1000 * 1000);  // 16 GB, with room left for the CUDA context
  EXPECT_LT(p->total(), size_t{15} * 1000 * 1000 * 1000);
  // the experts: 24 layers x 32 experts x ([5760 x 2880] + [2880 x 2880]) at 576 bytes per 16 x 64 tile
  const size_t tiles = static_cast<size_t>(24 * 32) * ((5760 / 16) * (2880 / 64) + (2880 / 16) * (2880 / 64));
  bool found = false;
  for (const auto& it : p->items)
    if (it.what == "experts") {
      EXPECT_EQ(it.bytes, tiles * 576);
      found = true;
    }
  EXPECT_TRUE(found);
  size_t sum = 0;
  for (const auto& it : p->items) sum += it.bytes;
  EXPECT_EQ(sum, p->total());
}

TEST(CudaDevicePlan, KvGrowsWithContextAndSequencesRingsDoNot) {
  auto c = builtin_model_config("gpt-oss-20b");
  ASSERT_TRUE(c.ok());
  const ModelWeights m = shapes_of(*c, WeightType::kMxfp4, WeightType::kBF16, WeightType::kBF16);
  auto a = cuda::plan_device_memory(m, LmHeadType::kStored, 8192, 512, 1);
  auto b = cuda::plan_device_memory(m, LmHeadType::kStored, 16384, 512, 1);
  auto d = cuda::plan_device_memory(m, LmHeadType::kStored, 8192, 512, 4);
  ASSERT_TRUE(a.ok() && b.ok() && d.ok());
  // full layers: 12 x 2 x 512 x 2 bytes per position; the sliding rings stay put
  EXPECT_EQ(b->kv_bytes - a->kv_bytes, size_t{8192} * 12 * 2 * 512 * 2);
  EXPECT_GT(d->kv_bytes, 3 * a->kv_bytes);
  EXPECT_EQ(a->weight_bytes, b->weight_bytes);
  // an NVFP4 lm_head quantized at load is smaller than the stored BF16 one
  auto q = cuda::plan_device_memory(m, LmHeadType::kNvfp4, 8192, 512, 1);
  ASSERT_TRUE(q.ok());
  EXPECT_LT(q->weight_bytes, a->weight_bytes);
}

TEST(CudaDevicePlan, RefusesBf16ExpertsAsTheBackendDoes) {
  auto c = builtin_model_config("tiny");
  ASSERT_TRUE(c.ok());
  const ModelWeights m = shapes_of(*c, WeightType::kBF16, WeightType::kBF16, WeightType::kBF16);
  auto p = cuda::plan_device_memory(m, LmHeadType::kStored, 1024, 64, 1);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("experts"), std::string::npos) << p.status().message();
}

}  // namespace
}  // namespace oss4
