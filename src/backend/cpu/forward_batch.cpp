// The batched decode step of the CPU forward pass: one new token for each of n_seq sequences, each with its own KV
// cache and position. Written out like forward_chunk (forward.cpp), with attention per sequence.
#include <cmath>
#include <cstring>

#include "backend/cpu/forward.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/kernels_ref.h"

namespace oss4 {

Status CpuForward::decode_batch(KvCache* const* caches, const int32_t* ids, int64_t n_seq, std::vector<float>* logits) {
  const ModelConfig& c = m_.cfg;
  if (n_seq < 1) return error("decode_batch: no sequences");
  for (int64_t b = 0; b < n_seq; ++b) {
    if (ids[b] < 0 || ids[b] >= c.n_vocab) {
      return error("token id " + std::to_string(ids[b]) + " of sequence " + std::to_string(b) + " is outside the vocabulary [0, " +
                   std::to_string(c.n_vocab) + ")");
    }
    for (int64_t o = 0; o < b; ++o) {
      if (caches[o] == caches[b]) return error("decode_batch: sequence " + std::to_string(b) + " shares its KV cache with " + std::to_string(o));
    }
    OSS4_TRY(caches[b]->reserve(1).with_context("sequence " + std::to_string(b)));
  }
  const int64_t H = c.n_embd;
  trace_ = nullptr;
  fit_scratch(n_seq);
  pos_.resize(static_cast<size_t>(n_seq));  // [n_seq] position of each sequence's new token
  for (int64_t b = 0; b < n_seq; ++b) pos_[b] = caches[b]->n_pos();

  f32_embed_rows_ref(m_.embed, ids, n_seq, x_.data());
  const float eps = static_cast<float>(c.rms_norm_eps);
  for (int64_t il = 0; il < c.n_layers; ++il) {
    const LayerWeights& L = m_.layers[static_cast<size_t>(il)];
    f32_rmsnorm_ref(x_.data(), L.attn_norm.data(), n_seq, H, eps, h_.data());
    attention_batch(L, il, caches, n_seq);
    for (int64_t i = 0; i < n_seq * H; ++i) x_[i] += out_[i];
    f32_rmsnorm_ref(x_.data(), L.mlp_norm.data(), n_seq, H, eps, h_.data());
    moe(L, il, n_seq);
    for (int64_t i = 0; i < n_seq * H; ++i) x_[i] += out_[i];
  }
  for (int64_t b = 0; b < n_seq; ++b) caches[b]->advance(1);
  f32_rmsnorm_ref(x_.data(), m_.final_norm.data(), n_seq, H, eps, h_.data());
  logits->resize(static_cast<size_t>(n_seq * c.n_vocab));
  f32_linear(m_.lm_head, h_.data(), n_seq, nullptr, logits->data());
  return ok_status();
}

void CpuForward::attention_batch(const LayerWeights& L, int64_t il, KvCache* const* caches, int64_t n_seq) {
  const ModelConfig& c = m_.cfg;
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
  const LinearJob qkv[3] = {{&L.wq, h_.data(), n_seq, bias(L.bq), q_.data()},
                            {&L.wk, h_.data(), n_seq, bias(L.bk), k_.data()},
                            {&L.wv, h_.data(), n_seq, bias(L.bv), v_.data()}};
  f32_linear_jobs(qkv, 3);
  f32_rope_ref(q_.data(), pos_.data(), n_seq, c.n_heads, m_.rope);
  f32_rope_ref(k_.data(), pos_.data(), n_seq, c.n_kv_heads, m_.rope);
  const int64_t kvd = c.kv_dim(), qd = c.q_dim();
  const int64_t window = L.kind == LayerKind::kSliding ? c.sliding_window : 0;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  for (int64_t b = 0; b < n_seq; ++b) {
    KvCache& cache = *caches[b];
    std::memcpy(cache.k_row(il, pos_[b]), k_.data() + b * kvd, static_cast<size_t>(kvd) * sizeof(float));
    std::memcpy(cache.v_row(il, pos_[b]), v_.data() + b * kvd, static_cast<size_t>(kvd) * sizeof(float));
    f32_sdpa_sink(q_.data() + b * qd, pos_.data() + b, /*n_tok=*/1, c.n_heads, c.n_kv_heads, c.head_dim, cache.view(il), window,
                      L.sinks.data(), scale, attn_.data() + b * qd);
  }
  f32_linear(L.wo, attn_.data(), n_seq, bias(L.bo), out_.data());
}

}  // namespace oss4
