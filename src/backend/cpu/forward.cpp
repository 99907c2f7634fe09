#include "backend/cpu/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/kernels_ref.h"

namespace oss4 {

Status CpuForward::eval(KvCache& cache, const int32_t* ids, int64_t n_tok, LogitsMode mode, std::vector<float>* logits,
                        const TraceFn& trace) {
  const ModelConfig& c = m_.cfg;
  for (int64_t i = 0; i < n_tok; ++i) {
    if (ids[i] < 0 || ids[i] >= c.n_vocab) {
      return error("token id " + std::to_string(ids[i]) + " at index " + std::to_string(i) + " is outside the vocabulary [0, " +
                   std::to_string(c.n_vocab) + ")");
    }
  }
  if (n_tok < 1) return error("nothing to evaluate: no tokens");
  if (cache.n_pos() + n_tok > cache.max_ctx()) {
    return error("context overflow: " + std::to_string(cache.n_pos()) + " cached + " + std::to_string(n_tok) +
                 " new tokens exceed the context size " + std::to_string(cache.max_ctx()));
  }
  if (logits != nullptr) {
    logits->assign(mode == LogitsMode::kAll ? static_cast<size_t>(n_tok * c.n_vocab)
                                            : mode == LogitsMode::kLast ? static_cast<size_t>(c.n_vocab) : 0,
                   0.0f);
  }
  for (int64_t done = 0; done < n_tok;) {
    const int64_t n = std::min(cache.max_chunk(), n_tok - done);
    OSS4_TRY(cache.reserve(n));
    LogitsMode chunk_mode = LogitsMode::kNone;
    float* out = nullptr;
    if (logits != nullptr && mode == LogitsMode::kAll) {
      chunk_mode = LogitsMode::kAll;
      out = logits->data() + done * c.n_vocab;
    } else if (logits != nullptr && mode == LogitsMode::kLast && done + n == n_tok) {
      chunk_mode = LogitsMode::kLast;
      out = logits->data();
    }
    forward_chunk(cache, ids + done, n, chunk_mode, out, trace);
    done += n;
  }
  return ok_status();
}

void CpuForward::attention(const LayerWeights& L, int64_t il, KvCache& cache, int64_t n_tok) {
  const ModelConfig& c = m_.cfg;
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };
  f32_linear_ref(L.wq, h_.data(), n_tok, bias(L.bq), q_.data());
  f32_linear_ref(L.wk, h_.data(), n_tok, bias(L.bk), k_.data());
  f32_linear_ref(L.wv, h_.data(), n_tok, bias(L.bv), v_.data());
  f32_rope_ref(q_.data(), pos_.data(), n_tok, c.n_heads, m_.rope);
  f32_rope_ref(k_.data(), pos_.data(), n_tok, c.n_kv_heads, m_.rope);
  const int64_t kvd = c.kv_dim();
  for (int64_t t = 0; t < n_tok; ++t) {
    std::memcpy(cache.k_row(il, pos_[t]), k_.data() + t * kvd, static_cast<size_t>(kvd) * sizeof(float));
    std::memcpy(cache.v_row(il, pos_[t]), v_.data() + t * kvd, static_cast<size_t>(kvd) * sizeof(float));
  }
  const int64_t window = L.kind == LayerKind::kSliding ? c.sliding_window : 0;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  f32_sdpa_sink_ref(q_.data(), pos_.data(), n_tok, c.n_heads, c.n_kv_heads, c.head_dim, cache.view(il), window, L.sinks.data(), scale,
                    attn_.data());
  if (trace_) (*trace_)("attn_out", il, attn_.data(), n_tok, c.q_dim());
  f32_linear_ref(L.wo, attn_.data(), n_tok, bias(L.bo), out_.data());
}

void CpuForward::moe(const LayerWeights& L, int64_t il, int64_t n_tok) {
  const ModelConfig& c = m_.cfg;
  const int64_t H = c.n_embd, F = c.n_ff, K = c.n_experts_used;
  f32_linear_ref(L.router, h_.data(), n_tok, L.router_bias.data(), router_.data());
  std::vector<int32_t> idx(static_cast<size_t>(K));  // [K] selected experts
  std::vector<float> w(static_cast<size_t>(K));      // [K] routing weights
  for (int64_t t = 0; t < n_tok; ++t) {
    f32_topk_softmax_ref(router_.data() + t * c.n_experts, c.n_experts, K, idx.data(), w.data());
    float* o = out_.data() + t * H;
    std::fill(o, o + H, 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t e = idx[static_cast<size_t>(k)];
      f32_linear_ref(L.gate_up[static_cast<size_t>(e)], h_.data() + t * H, 1, L.gate_up_bias.data() + e * 2 * F, gu_.data());
      f32_swiglu_ref(gu_.data(), F, static_cast<float>(c.swiglu_alpha), static_cast<float>(c.swiglu_limit), act_.data());
      if (trace_) (*trace_)("expert_act", il, act_.data(), 1, F);
      f32_linear_ref(L.down[static_cast<size_t>(e)], act_.data(), 1, L.down_bias.data() + e * H, y_.data());
      for (int64_t i = 0; i < H; ++i) o[i] += w[static_cast<size_t>(k)] * y_[i];
    }
  }
}

void CpuForward::forward_chunk(KvCache& cache, const int32_t* ids, int64_t n_tok, LogitsMode mode, float* logits,
                               const TraceFn& trace) {
  const ModelConfig& c = m_.cfg;
  const int64_t H = c.n_embd;
  auto fit = [](std::vector<float>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  };
  trace_ = trace ? &trace : nullptr;
  fit(x_, n_tok * H);
  fit(h_, n_tok * H);
  fit(q_, n_tok * c.q_dim());
  fit(k_, n_tok * c.kv_dim());
  fit(v_, n_tok * c.kv_dim());
  fit(attn_, n_tok * c.q_dim());
  fit(out_, n_tok * H);
  fit(router_, n_tok * c.n_experts);
  fit(gu_, 2 * c.n_ff);
  fit(act_, c.n_ff);
  fit(y_, H);
  pos_.resize(static_cast<size_t>(n_tok));
  for (int64_t t = 0; t < n_tok; ++t) pos_[t] = cache.n_pos() + t;

  f32_embed_rows_ref(m_.embed, ids, n_tok, x_.data());
  if (trace) trace("embed", -1, x_.data(), n_tok, H);
  const float eps = static_cast<float>(c.rms_norm_eps);
  for (int64_t il = 0; il < c.n_layers; ++il) {
    const LayerWeights& L = m_.layers[static_cast<size_t>(il)];
    f32_rmsnorm_ref(x_.data(), L.attn_norm.data(), n_tok, H, eps, h_.data());
    if (trace) trace("attn_in", il, h_.data(), n_tok, H);
    attention(L, il, cache, n_tok);
    for (int64_t i = 0; i < n_tok * H; ++i) x_[i] += out_[i];
    f32_rmsnorm_ref(x_.data(), L.mlp_norm.data(), n_tok, H, eps, h_.data());
    if (trace) trace("mlp_in", il, h_.data(), n_tok, H);
    moe(L, il, n_tok);
    for (int64_t i = 0; i < n_tok * H; ++i) x_[i] += out_[i];
    if (trace) trace("layer_out", il, x_.data(), n_tok, H);
  }
  cache.advance(n_tok);
  if (mode == LogitsMode::kNone && !trace) return;
  f32_rmsnorm_ref(x_.data(), m_.final_norm.data(), n_tok, H, eps, h_.data());
  if (trace) trace("final_norm", c.n_layers, h_.data(), n_tok, H);
  if (mode == LogitsMode::kAll) {
    f32_linear_ref(m_.lm_head, h_.data(), n_tok, nullptr, logits);
  } else if (mode == LogitsMode::kLast) {
    f32_linear_ref(m_.lm_head, h_.data() + (n_tok - 1) * H, 1, nullptr, logits);
  }
}

}  // namespace oss4
