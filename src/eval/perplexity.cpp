#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "runtime/logprobs.h"

namespace oss4 {

MeanStderr mean_stderr(const std::vector<double>& v) {
  MeanStderr r;
  const auto n = static_cast<double>(v.size());
  if (v.empty()) return r;
  double s = 0, s2 = 0;
  for (double x : v) {
    s += x;
    s2 += x * x;
  }
  r.mean = s / n;
  const double var = std::max(0.0, s2 / n - r.mean * r.mean);
  r.stderr_ = v.size() > 1 ? std::sqrt(var / (n - 1)) : 0.0;
  return r;
}

namespace {

// sum of exp(logits[j] - lse) over the tokens that are not among ids [k]; mark: [n_vocab] scratch, all zero
double rest_mass(const float* logits, int64_t n_vocab, double lse, const int32_t* ids, int64_t k, std::vector<uint8_t>& mark) {
  for (int64_t i = 0; i < k; ++i) mark[static_cast<size_t>(ids[i])] = 1;
  double s = 0;
  for (int64_t j = 0; j < n_vocab; ++j) {
    if (!mark[static_cast<size_t>(j)]) s += std::exp(static_cast<double>(logits[j]) - lse);
  }
  for (int64_t i = 0; i < k; ++i) mark[static_cast<size_t>(ids[i])] = 0;
  return s;
}

double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double at = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(at));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (at - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

KlSummary summarize_kl(const PerplexityResult& r, const SavedLogits& base) {
  KlSummary k;
  k.kl = mean_stderr(r.kl);
  std::vector<double> sorted = r.kl;
  std::sort(sorted.begin(), sorted.end());
  k.median = quantile(sorted, 0.5);
  k.p90 = quantile(sorted, 0.9);
  k.p99 = quantile(sorted, 0.99);
  k.p999 = quantile(sorted, 0.999);
  k.max = sorted.empty() ? 0 : sorted.back();
  k.min = sorted.empty() ? 0 : sorted.front();
  k.top1_same = mean_stderr(std::vector<double>(r.top1_same.begin(), r.top1_same.end()));
  const size_t n = r.nll.size();
  // both sides rounded to f32 as the base's were saved, so a model against its own saved run gives exactly 0
  std::vector<double> nll_q(n), nll_base(n), diff(n);
  for (size_t i = 0; i < n; ++i) {
    nll_q[i] = -static_cast<double>(static_cast<float>(-r.nll[i]));
    nll_base[i] = -static_cast<double>(base.target_logprob[i]);
    diff[i] = nll_q[i] - nll_base[i];
  }
  const MeanStderr mq = mean_stderr(nll_q), mb = mean_stderr(nll_base);
  k.ppl_base = std::exp(mb.mean);
  k.ln_ppl_ratio = mean_stderr(diff);
  // covariance of the two means, for the first-order error of PPL - PPL(base)
  double cov = 0, vq = 0, vb = 0;
  for (size_t i = 0; i < n; ++i) {
    cov += (nll_q[i] - mq.mean) * (nll_base[i] - mb.mean);
    vq += (nll_q[i] - mq.mean) * (nll_q[i] - mq.mean);
    vb += (nll_base[i] - mb.mean) * (nll_base[i] - mb.mean);
  }
  k.corr_nll = vq > 0 && vb > 0 ? cov / std::sqrt(vq * vb) : 1.0;
  const double nn = static_cast<double>(n);
  const double cov_means = n > 1 ? cov / (nn * (nn - 1)) : 0.0;
  const double ppl_q = std::exp(mq.mean);
  k.delta_ppl = ppl_q - k.ppl_base;
  const double var = ppl_q * ppl_q * mq.stderr_ * mq.stderr_ + k.ppl_base * k.ppl_base * mb.stderr_ * mb.stderr_ -
                     2 * ppl_q * k.ppl_base * cov_means;
  k.delta_ppl_stderr = std::sqrt(std::max(0.0, var));
  return k;
}

}  // namespace

double kl_against_saved(const SavedLogits& base, int64_t pos, const float* logits, double lse, int32_t argmax, bool* top1_same) {
  const int64_t K = base.top_k;
  const int32_t* ids = base.top_ids.data() + pos * K;
  const float* lp = base.top_logprobs.data() + pos * K;
  double kl = 0;
  for (int64_t i = 0; i < K; ++i) {
    // rounded to f32 as the base's were, so a model against its own saved run gives exactly 0
    const double lq = static_cast<float>(static_cast<double>(logits[ids[i]]) - lse);
    const double lpi = lp[i];
    if (std::isinf(lpi)) continue;  // probability 0 contributes nothing
    kl += std::exp(lpi) * (lpi - lq);
  }
  const double p_rest = base.rest_mass[static_cast<size_t>(pos)];
  if (p_rest > 0) {
    // the model's rest, summed over the other tokens as the base's was (1 - sum of the top would cancel digits)
    std::vector<uint8_t> mark(static_cast<size_t>(base.n_vocab), 0);
    double q_rest = static_cast<float>(rest_mass(logits, base.n_vocab, lse, ids, K, mark));
    q_rest = std::max(q_rest, static_cast<double>(std::numeric_limits<float>::denorm_min()));
    kl += p_rest * (std::log(p_rest) - std::log(q_rest));
  }
  *top1_same = argmax == ids[0];
  return std::max(0.0, kl);  // rounding can make a zero divergence slightly negative
}

Result<PerplexityResult> run_perplexity(Forward& fwd, const std::vector<int32_t>& ids, const PerplexityConfig& cfg,
                                        const SavedLogits* base, const PerplexityProgress& progress) {
  const ModelConfig& mc = fwd.config();
  const int64_t V = mc.n_vocab;
  const int64_t ctx = cfg.ctx;
  const auto n_text = static_cast<int64_t>(ids.size());
  if (ctx < 4) return error("--ctx must be at least 4, got " + std::to_string(ctx));
  if (ctx > mc.max_position_embeddings) {
    return error("--ctx " + std::to_string(ctx) + " exceeds the model's " + std::to_string(mc.max_position_embeddings) + " positions");
  }
  if (cfg.eval_chunk < 1) return error("the forward chunk must be at least 1");
  for (int32_t id : ids) {
    if (id < 0 || id >= V) return error("token id " + std::to_string(id) + " is outside the model's vocabulary of " + std::to_string(V));
  }
  int64_t n_chunks = n_text / ctx;
  if (n_chunks == 0) {
    return error("the text has " + std::to_string(n_text) + " tokens, fewer than one chunk of --ctx " + std::to_string(ctx));
  }
  if (cfg.max_chunks >= 0) n_chunks = std::min(n_chunks, cfg.max_chunks);
  if (n_chunks == 0) return error("--chunks must be at least 1");
  const int64_t first = ctx / 2, per_chunk = scored_per_chunk(ctx);
  if (base != nullptr) {
    if (base->n_vocab != V) {
      return error("the base was saved with a vocabulary of " + std::to_string(base->n_vocab) + ", this model has " + std::to_string(V));
    }
    if (base->ctx != ctx) return error("the base was saved with --ctx " + std::to_string(base->ctx) + ", this run has " + std::to_string(ctx));
    if (base->n_chunks < n_chunks) {
      return error("the base holds " + std::to_string(base->n_chunks) + " chunks, this run scores " + std::to_string(n_chunks));
    }
    if (!std::equal(ids.begin(), ids.begin() + n_chunks * ctx, base->ids.begin())) {
      return error("the base was saved on other tokens (another text or tokenizer)");
    }
  }
  if (cfg.save_top_k > V) return error("cannot keep " + std::to_string(cfg.save_top_k) + " tokens of a vocabulary of " + std::to_string(V));

  PerplexityResult r;
  r.n_chunks = n_chunks;
  r.ctx = ctx;
  r.n_text_tokens = n_text;
  const auto n_scored = static_cast<size_t>(n_chunks * per_chunk);
  r.nll.reserve(n_scored);
  SavedLogits& sv = r.saved;
  const int64_t K = cfg.save_top_k;
  if (K > 0) {
    sv.ctx = ctx;
    sv.n_chunks = n_chunks;
    sv.n_vocab = V;
    sv.top_k = K;
    sv.ids.assign(ids.begin(), ids.begin() + n_chunks * ctx);
    sv.top_ids.reserve(n_scored * static_cast<size_t>(K));
    sv.top_logprobs.reserve(n_scored * static_cast<size_t>(K));
    sv.rest_mass.reserve(n_scored);
    sv.target_logprob.reserve(n_scored);
  }
  std::vector<uint8_t> mark(K > 0 ? static_cast<size_t>(V) : 0, 0);  // [n_vocab] scratch of rest_mass
  std::vector<float> logits;  // [ctx - first, n_vocab] the second half's logits
  double nll_sum = 0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int32_t* tok = ids.data() + c * ctx;
    OSS4_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, fwd.new_cache(ctx, cfg.eval_chunk));
    OSS4_TRY(eval(fwd, *cache, tok, first, LogitsMode::kNone, nullptr).with_context("chunk " + std::to_string(c)));
    OSS4_TRY(eval(fwd, *cache, tok + first, ctx - first, LogitsMode::kAll, &logits).with_context("chunk " + std::to_string(c)));
    double chunk_sum = 0;
    for (int64_t j = 0; j < per_chunk; ++j) {
      const float* row = logits.data() + j * V;
      const LogitsSummary s = summarize_logits(row, V);
      if (!std::isfinite(s.lse)) return error("chunk " + std::to_string(c) + ": the logits are not finite");
      const int32_t target = tok[first + j + 1];
      const double nll = s.lse - static_cast<double>(row[target]);
      r.nll.push_back(nll);
      chunk_sum += nll;
      const auto pos = static_cast<int64_t>(r.nll.size()) - 1;
      if (base != nullptr) {
        bool same = false;
        r.kl.push_back(kl_against_saved(*base, pos, row, s.lse, s.argmax, &same));
        r.top1_same.push_back(same ? 1 : 0);
      }
      if (K > 0) {
        const std::vector<TopLogprob> top = top_logprobs(row, V, s.lse, K);
        for (const TopLogprob& t : top) {
          sv.top_ids.push_back(t.id);
          sv.top_logprobs.push_back(static_cast<float>(t.logprob));
        }
        sv.rest_mass.push_back(static_cast<float>(rest_mass(row, V, s.lse, sv.top_ids.data() + pos * K, K, mark)));
        sv.target_logprob.push_back(static_cast<float>(static_cast<double>(row[target]) - s.lse));
      }
    }
    nll_sum += chunk_sum;
    r.chunk_ppl.push_back(std::exp(chunk_sum / static_cast<double>(per_chunk)));
    if (progress) progress(c + 1, n_chunks, std::exp(nll_sum / static_cast<double>(r.nll.size())));
  }
  const MeanStderr m = mean_stderr(r.nll);
  r.ppl = std::exp(m.mean);
  r.ppl_stderr = r.ppl * m.stderr_;
  if (base != nullptr) r.kl_summary = summarize_kl(r, *base);
  return r;
}

}  // namespace oss4
