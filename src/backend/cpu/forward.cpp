#include "backend/cpu/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/kernels.h"
#include "core/thread_pool.h"

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
  const LinearJob qkv[3] = {{&L.wq, h_.data(), n_tok, bias(L.bq), q_.data()},
                            {&L.wk, h_.data(), n_tok, bias(L.bk), k_.data()},
                            {&L.wv, h_.data(), n_tok, bias(L.bv), v_.data()}};
  f32_linear_jobs(qkv, 3);
  f32_rope_ref(q_.data(), pos_.data(), n_tok, c.n_heads, m_.rope);
  f32_rope_ref(k_.data(), pos_.data(), n_tok, c.n_kv_heads, m_.rope);
  const int64_t kvd = c.kv_dim();
  for (int64_t t = 0; t < n_tok; ++t) {
    std::memcpy(cache.k_row(il, pos_[t]), k_.data() + t * kvd, static_cast<size_t>(kvd) * sizeof(float));
    std::memcpy(cache.v_row(il, pos_[t]), v_.data() + t * kvd, static_cast<size_t>(kvd) * sizeof(float));
  }
  const int64_t window = L.kind == LayerKind::kSliding ? c.sliding_window : 0;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  f32_sdpa_sink(q_.data(), pos_.data(), n_tok, c.n_heads, c.n_kv_heads, c.head_dim, cache.view(il), window, L.sinks.data(), scale,
                    attn_.data());
  if (trace_) (*trace_)("attn_out", il, attn_.data(), n_tok, c.q_dim());
  f32_linear(L.wo, attn_.data(), n_tok, bias(L.bo), out_.data());
}

void CpuForward::moe(const LayerWeights& L, int64_t il, int64_t n_tok) {
  const ModelConfig& c = m_.cfg;
  const int64_t H = c.n_embd, F = c.n_ff, K = c.n_experts_used, E = c.n_experts;
  f32_linear(L.router, h_.data(), n_tok, L.router_bias.data(), router_.data());
  for (int64_t t = 0; t < n_tok; ++t)
    f32_topk_softmax_ref(router_.data() + t * E, E, K, sel_.data() + t * K, sel_w_.data() + t * K);
  // group the chunk's (token, slot) pairs by expert, so each expert's weights are decoded once for all its tokens
  std::vector<int64_t> start(static_cast<size_t>(E + 1), 0);  // [E + 1] offsets into order
  for (int64_t i = 0; i < n_tok * K; ++i) ++start[static_cast<size_t>(sel_[i] + 1)];
  for (int64_t e = 0; e < E; ++e) start[static_cast<size_t>(e + 1)] += start[static_cast<size_t>(e)];
  std::vector<int64_t> order(static_cast<size_t>(n_tok * K));  // [n_tok * K] (t * K + k), grouped by expert
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n_tok * K; ++i) order[static_cast<size_t>(fill[static_cast<size_t>(sel_[i])]++)] = i;
  // every expert's rows, grouped: pair r of order (token order[r] / K) is row r of xe_, gu_ and act_. The
  // experts' gate_up matmuls run as one parallel region, then their down matmuls as another: at decode each expert
  // has a token or two, too little work to keep every thread busy to the end of a region of its own.
  const int64_t n_pairs = n_tok * K;
  for (int64_t r = 0; r < n_pairs; ++r)
    std::memcpy(xe_.data() + r * H, h_.data() + order[static_cast<size_t>(r)] / K * H, static_cast<size_t>(H) * sizeof(float));
  std::vector<LinearJob> jobs;
  jobs.reserve(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    const int64_t b = start[static_cast<size_t>(e)], n_e = start[static_cast<size_t>(e + 1)] - b;
    if (n_e > 0) jobs.push_back({&L.gate_up[static_cast<size_t>(e)], xe_.data() + b * H, n_e, L.gate_up_bias.data() + e * 2 * F, gu_.data() + b * 2 * F});
  }
  f32_linear_jobs(jobs.data(), static_cast<int64_t>(jobs.size()));
  f32_swiglu(gu_.data(), n_pairs, F, static_cast<float>(c.swiglu_alpha), static_cast<float>(c.swiglu_limit), act_.data());
  if (trace_) (*trace_)("expert_act", il, act_.data(), n_pairs, F);
  jobs.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t b = start[static_cast<size_t>(e)], n_e = start[static_cast<size_t>(e + 1)] - b;
    // the down outputs reuse xe_, whose inputs gate_up has consumed
    if (n_e > 0) jobs.push_back({&L.down[static_cast<size_t>(e)], act_.data() + b * F, n_e, L.down_bias.data() + e * H, xe_.data() + b * H});
  }
  f32_linear_jobs(jobs.data(), static_cast<int64_t>(jobs.size()));
  for (int64_t r = 0; r < n_pairs; ++r)
    std::memcpy(ye_.data() + order[static_cast<size_t>(r)] * H, xe_.data() + r * H, static_cast<size_t>(H) * sizeof(float));
  // weighted sum in slot order (the reference's order), independent of the grouping
  for (int64_t t = 0; t < n_tok; ++t) {
    float* o = out_.data() + t * H;
    std::fill(o, o + H, 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float wk = sel_w_[static_cast<size_t>(t * K + k)];
      const float* y = ye_.data() + (t * K + k) * H;
      for (int64_t i = 0; i < H; ++i) o[i] += wk * y[i];
    }
  }
}

void CpuForward::fit_scratch(int64_t n_tok) {
  const ModelConfig& c = m_.cfg;
  const int64_t H = c.n_embd;
  auto fit = [](std::vector<float>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  };
  fit(x_, n_tok * H);
  fit(h_, n_tok * H);
  fit(q_, n_tok * c.q_dim());
  fit(k_, n_tok * c.kv_dim());
  fit(v_, n_tok * c.kv_dim());
  fit(attn_, n_tok * c.q_dim());
  fit(out_, n_tok * H);
  fit(router_, n_tok * c.n_experts);
  const int64_t n_slots = n_tok * c.n_experts_used;  // (token, expert) pairs of the chunk; an expert sees each token once
  fit(gu_, n_slots * 2 * c.n_ff);
  fit(act_, n_slots * c.n_ff);
  fit(xe_, n_slots * H);
  fit(ye_, n_slots * H);
  if (static_cast<int64_t>(sel_.size()) < n_slots) {
    sel_.resize(static_cast<size_t>(n_slots));
    sel_w_.resize(static_cast<size_t>(n_slots));
  }
}

void CpuForward::forward_chunk(KvCache& cache, const int32_t* ids, int64_t n_tok, LogitsMode mode, float* logits,
                               const TraceFn& trace) {
  const ModelConfig& c = m_.cfg;
  const int64_t H = c.n_embd;
  trace_ = trace ? &trace : nullptr;
  fit_scratch(n_tok);
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
    f32_linear(m_.lm_head, h_.data(), n_tok, nullptr, logits);
  } else if (mode == LogitsMode::kLast) {
    f32_linear(m_.lm_head, h_.data() + (n_tok - 1) * H, 1, nullptr, logits);
  }
}

}  // namespace oss4
