#include "backend/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace oss4 {

namespace {
const float* bias_of(const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); }
}  // namespace

float* CpuOps::buf(Act a) {
  switch (a) {
    case Act::kX: return x_.data();
    case Act::kH: return h_.data();
    case Act::kQ: return q_.data();
    case Act::kK: return k_.data();
    case Act::kV: return v_.data();
    case Act::kAttn: return attn_.data();
    case Act::kOut: return out_.data();
  }
  return nullptr;
}

Status CpuOps::begin(const Batch& b, const BatchPlan& plan, KvCache* const* caches) {
  int32_t n_seq = 0;
  for (const SeqRun& r : plan.runs) n_seq = std::max(n_seq, r.seq + 1);
  caches_.assign(static_cast<size_t>(n_seq), nullptr);
  for (const SeqRun& r : plan.runs) {
    auto* c = dynamic_cast<HostKvCache*>(caches[r.seq]);
    if (c == nullptr) return error("sequence " + std::to_string(r.seq) + ": its KV cache was not made by the CPU backend");
    caches_[static_cast<size_t>(r.seq)] = c;
  }
  b_ = &b;
  plan_ = &plan;
  n_ = b.size();
  fit_scratch(n_);
  return ok_status();
}

void CpuOps::fit_scratch(int64_t n_tok) {
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
  const int64_t n_slots = n_tok * c.n_experts_used;  // (token, expert) pairs of the batch; an expert sees each token once
  fit(gu_, n_slots * 2 * c.n_ff);
  fit(act_, n_slots * c.n_ff);
  fit(xe_, n_slots * H);
  fit(ye_, n_slots * H);
  if (static_cast<int64_t>(sel_.size()) < n_slots) {
    sel_.resize(static_cast<size_t>(n_slots));
    sel_w_.resize(static_cast<size_t>(n_slots));
  }
}

void CpuOps::embed(Act out) { f32_embed_rows_ref(m_.embed, b_->ids.data(), n_, buf(out)); }

void CpuOps::rmsnorm(int64_t layer, Norm w, Act in, Act out) {
  const std::vector<float>& g = w == Norm::kFinal ? m_.final_norm
                                : w == Norm::kAttn ? m_.layers[static_cast<size_t>(layer)].attn_norm
                                                   : m_.layers[static_cast<size_t>(layer)].mlp_norm;
  f32_rmsnorm_ref(buf(in), g.data(), n_, m_.cfg.n_embd, static_cast<float>(m_.cfg.rms_norm_eps), buf(out));
}

void CpuOps::linear(int64_t layer, const ProjJob* jobs, int64_t n_jobs) {
  const LayerWeights& L = m_.layers[static_cast<size_t>(layer)];
  const CpuLayerWeights& W = w_.layers[static_cast<size_t>(layer)];
  LinearJob lj[4];
  for (int64_t j = 0; j < n_jobs && j < 4; ++j) {
    const ProjJob& p = jobs[j];
    const LinearWeight* w = p.w == Proj::kQ ? &W.wq : p.w == Proj::kK ? &W.wk : p.w == Proj::kV ? &W.wv : &W.wo;
    const float* bias = bias_of(p.w == Proj::kQ ? L.bq : p.w == Proj::kK ? L.bk : p.w == Proj::kV ? L.bv : L.bo);
    lj[j] = LinearJob{w, buf(p.in), n_, bias, buf(p.out)};
  }
  f32_linear_jobs(ex_, lj, std::min<int64_t>(n_jobs, 4));
}

void CpuOps::rope_store_kv(int64_t layer, Act q, Act k, Act v) {
  const ModelConfig& c = m_.cfg;
  const int64_t* pos = b_->pos.data();
  f32_rope_ref(buf(q), pos, n_, c.n_heads, m_.rope);
  f32_rope_ref(buf(k), pos, n_, c.n_kv_heads, m_.rope);
  const int64_t kvd = c.kv_dim();
  const float* kr = buf(k);
  const float* vr = buf(v);
  for (int64_t t = 0; t < n_; ++t) {
    HostKvCache& cache = *caches_[static_cast<size_t>(b_->seq[t])];
    std::memcpy(cache.k_row(layer, pos[t]), kr + t * kvd, static_cast<size_t>(kvd) * sizeof(float));
    std::memcpy(cache.v_row(layer, pos[t]), vr + t * kvd, static_cast<size_t>(kvd) * sizeof(float));
  }
}

void CpuOps::attention(int64_t layer, Act q, Act out) {
  const ModelConfig& c = m_.cfg;
  const LayerWeights& L = m_.layers[static_cast<size_t>(layer)];
  const int64_t window = L.kind == LayerKind::kSliding ? c.sliding_window : 0;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const int64_t qd = c.q_dim();
  // each sequence's rows against its own cache: a prefill chunk as one call, a decode step's sequences one row each
  for (const SeqRun& r : plan_->runs) {
    const HostKvCache& cache = *caches_[static_cast<size_t>(r.seq)];
    f32_sdpa_sink(ex_, buf(q) + r.row0 * qd, b_->pos.data() + r.row0, r.n, c.n_heads, c.n_kv_heads, c.head_dim, cache.view(layer), window,
                  L.sinks.data(), scale, buf(out) + r.row0 * qd);
  }
}

void CpuOps::moe(int64_t layer, Act in, Act out_act, const TraceFn* trace) {
  const ModelConfig& c = m_.cfg;
  const LayerWeights& L = m_.layers[static_cast<size_t>(layer)];
  const CpuLayerWeights& W = w_.layers[static_cast<size_t>(layer)];
  const int64_t H = c.n_embd, F = c.n_ff, K = c.n_experts_used, E = c.n_experts, n_tok = n_;
  const float* h = buf(in);
  float* out = buf(out_act);
  f32_linear(ex_, L.router, h, n_tok, L.router_bias.data(), router_.data());
  for (int64_t t = 0; t < n_tok; ++t)
    f32_topk_softmax_ref(router_.data() + t * E, E, K, sel_.data() + t * K, sel_w_.data() + t * K);
  // group the batch's (token, slot) pairs by expert, so each expert's weights are decoded once for all its tokens
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
    std::memcpy(xe_.data() + r * H, h + order[static_cast<size_t>(r)] / K * H, static_cast<size_t>(H) * sizeof(float));
  std::vector<LinearJob> jobs;
  jobs.reserve(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    const int64_t b = start[static_cast<size_t>(e)], n_e = start[static_cast<size_t>(e + 1)] - b;
    if (n_e > 0) jobs.push_back({&W.gate_up[static_cast<size_t>(e)], xe_.data() + b * H, n_e, L.gate_up_bias.data() + e * 2 * F, gu_.data() + b * 2 * F});
  }
  f32_linear_jobs(ex_, jobs.data(), static_cast<int64_t>(jobs.size()));
  f32_swiglu(ex_, gu_.data(), n_pairs, F, static_cast<float>(c.swiglu_alpha), static_cast<float>(c.swiglu_limit), act_.data());
  if (trace) (*trace)("expert_act", layer, act_.data(), n_pairs, F);
  jobs.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t b = start[static_cast<size_t>(e)], n_e = start[static_cast<size_t>(e + 1)] - b;
    // the down outputs reuse xe_, whose inputs gate_up has consumed
    if (n_e > 0) jobs.push_back({&W.down[static_cast<size_t>(e)], act_.data() + b * F, n_e, L.down_bias.data() + e * H, xe_.data() + b * H});
  }
  f32_linear_jobs(ex_, jobs.data(), static_cast<int64_t>(jobs.size()));
  for (int64_t r = 0; r < n_pairs; ++r)
    std::memcpy(ye_.data() + order[static_cast<size_t>(r)] * H, xe_.data() + r * H, static_cast<size_t>(H) * sizeof(float));
  // weighted sum in slot order (the reference's order), independent of the grouping
  for (int64_t t = 0; t < n_tok; ++t) {
    float* o = out + t * H;
    std::fill(o, o + H, 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float wk = sel_w_[static_cast<size_t>(t * K + k)];
      const float* y = ye_.data() + (t * K + k) * H;
      for (int64_t i = 0; i < H; ++i) o[i] += wk * y[i];
    }
  }
}

void CpuOps::add(Act acc, Act y) {
  float* a = buf(acc);
  const float* b = buf(y);
  const int64_t n = n_ * m_.cfg.n_embd;
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

void CpuOps::lm_head(Act in, float* logits) {
  const int64_t H = m_.cfg.n_embd;
  const std::vector<int64_t>& rows = plan_->logit_rows;
  const auto n_rows = static_cast<int64_t>(rows.size());
  const float* h = buf(in);
  // the rows that ask, as one matmul: in place when they are consecutive (all of a chunk, its last row, a decode
  // step), else gathered
  if (rows.back() - rows.front() + 1 == n_rows) {
    f32_linear(ex_, w_.lm_head, h + rows.front() * H, n_rows, nullptr, logits);
    return;
  }
  if (static_cast<int64_t>(rows_.size()) < n_rows * H) rows_.resize(static_cast<size_t>(n_rows * H));
  for (int64_t i = 0; i < n_rows; ++i) std::memcpy(rows_.data() + i * H, h + rows[static_cast<size_t>(i)] * H, static_cast<size_t>(H) * sizeof(float));
  f32_linear(ex_, w_.lm_head, rows_.data(), n_rows, nullptr, logits);
}

}  // namespace oss4
