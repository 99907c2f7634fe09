// The CPU backend's op table (runtime/schedule.h) over the kernels of kernels.h: activations are host f32 buffers
// owned here, K/V are HostKvCaches, weights are ModelWeights' (router, experts, norms, biases) and the prepared copies
// of prepare.h (attention projections, lm_head).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/cpu/prepare.h"
#include "model/weights.h"
#include "runtime/kv_cache.h"
#include "runtime/schedule.h"

namespace oss4 {

class CpuOps final : public ForwardOps {
 public:
  CpuOps(const ModelWeights& m, const CpuWeights& w, const CpuExec& ex) : m_(m), w_(w), ex_(ex) {}

  Status begin(const Batch& b, const BatchPlan& plan, KvCache* const* caches) override;
  void embed(Act out) override;
  void rmsnorm(int64_t layer, Norm w, Act in, Act out) override;
  void linear(int64_t layer, const ProjJob* jobs, int64_t n_jobs) override;
  void rope_store_kv(int64_t layer, Act q, Act k, Act v) override;
  void attention(int64_t layer, Act q, Act out) override;
  void moe(int64_t layer, Act in, Act out, const TraceFn* trace) override;
  void add(Act acc, Act y) override;
  void lm_head(Act in, float* logits) override;
  const float* host_rows(Act a) override { return buf(a); }

 private:
  float* buf(Act a);
  void fit_scratch(int64_t n_tok);  // grows the scratch buffers below for n_tok rows

  const ModelWeights& m_;
  const CpuWeights& w_;
  const CpuExec ex_;
  // the batch being run (begin .. lm_head)
  const Batch* b_ = nullptr;
  const BatchPlan* plan_ = nullptr;
  std::vector<HostKvCache*> caches_;  // [n_caches] the batch's caches, by sequence index
  int64_t n_ = 0;                     // rows of the batch
  // scratch, sized per batch
  std::vector<float> x_;      // [n_tok, n_embd] residual stream
  std::vector<float> h_;      // [n_tok, n_embd] normed input of a block
  std::vector<float> q_;      // [n_tok, n_heads, head_dim]
  std::vector<float> k_, v_;  // [n_tok, n_kv_heads, head_dim]
  std::vector<float> attn_;   // [n_tok, n_heads * head_dim]
  std::vector<float> out_;    // [n_tok, n_embd] block output
  std::vector<float> router_; // [n_tok, n_experts]
  std::vector<float> xe_;     // [n_tok * n_experts_used, n_embd] (token, expert) inputs grouped by expert, then their down outputs
  std::vector<float> gu_;     // [n_tok * n_experts_used, 2 * n_ff] their gate_up outputs
  std::vector<float> act_;    // [n_tok * n_experts_used, n_ff] their SwiGLU outputs
  std::vector<float> ye_;     // [n_tok, n_experts_used, n_embd] expert outputs by (token, slot)
  std::vector<int32_t> sel_;  // [n_tok, n_experts_used] selected experts
  std::vector<float> sel_w_;  // [n_tok, n_experts_used] their routing weights
  std::vector<float> rows_;   // [n_logits, n_embd] the normed rows that want logits, when not all of them
};

}  // namespace oss4
