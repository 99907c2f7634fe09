// The gpt-oss forward pass on the CPU, written out explicitly (no graph): batched prefill in chunks and
// incremental decode against a KvCache. Kernels are called through kernels.h, which dispatches to the fastest rung
// the CPU runs (or the scalar reference, OSS4_KERNELS=ref) and spreads the work over the kernel thread pool.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/weights.h"
#include "runtime/kv_cache.h"

namespace oss4 {

enum class LogitsMode { kNone, kLast, kAll };

// called with named intermediates: "embed" (layer -1), "layer_out" (residual after each layer), "final_norm";
// and the inputs of the quantized linears (calibration): "attn_in" (normed input of q/k/v), "attn_out" (input of
// o_proj), "mlp_in" (normed input of the router and experts' gate_up) and "expert_act" (inputs of the experts'
// down_proj, one row per routed (token, expert) pair, grouped by expert). data is [n_tok, n] f32 for the rows given.
using TraceFn = std::function<void(const char* name, int64_t layer, const float* data, int64_t n_tok, int64_t n)>;

class CpuForward {
 public:
  explicit CpuForward(const ModelWeights& m) : m_(m) {}

  // evaluates ids [n_tok] at positions cache.n_pos() onward, in chunks of at most cache.max_chunk() tokens,
  // appending their K/V. logits: [n_tok, n_vocab] for kAll, [n_vocab] of the last token for kLast.
  Status eval(KvCache& cache, const int32_t* ids, int64_t n_tok, LogitsMode mode, std::vector<float>* logits,
              const TraceFn& trace = nullptr);

  // one decode step of n_seq sequences (forward_batch.cpp): ids[b] [n_seq] at position caches[b]->n_pos() of its own
  // cache. Linear layers run on the [n_seq, n_embd] batch (weights read once for all), attention per sequence
  // against its own cache, MoE per token. logits: [n_seq, n_vocab]. Gives what eval(kLast) of each alone gives.
  Status decode_batch(KvCache* const* caches, const int32_t* ids, int64_t n_seq, std::vector<float>* logits);

  const ModelWeights& model() const { return m_; }

 private:
  // mode kAll: logits [n_tok, n_vocab]; kLast: logits [n_vocab] of the chunk's last token.
  void forward_chunk(KvCache& cache, const int32_t* ids, int64_t n_tok, LogitsMode mode, float* logits, const TraceFn& trace);
  void attention(const LayerWeights& L, int64_t il, KvCache& cache, int64_t n_tok);
  void fit_scratch(int64_t n_tok);  // grows the scratch buffers below for n_tok tokens
  void moe(const LayerWeights& L, int64_t il, int64_t n_tok);
  void attention_batch(const LayerWeights& L, int64_t il, KvCache* const* caches, int64_t n_seq);

  const ModelWeights& m_;
  const TraceFn* trace_ = nullptr;  // during forward_chunk: the caller's trace, or null
  // scratch, sized per chunk
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
  std::vector<int64_t> pos_;  // [n_tok]
};

}  // namespace oss4
