#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace oss4 {

Status validate_sampler_params(const SamplerParams& p) {
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature)) return error("temperature must be a finite number >= 0");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return error("top-p must be in (0, 1]");
  if (p.top_k < 0) return error("top-k must be >= 0");
  return ok_status();
}

int32_t argmax(const float* logits, int64_t n) {
  int32_t best = 0;
  float bv = -INFINITY;
  bool found = false;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(logits[i])) continue;
    if (!found || logits[i] > bv) {
      bv = logits[i];
      best = static_cast<int32_t>(i);
      found = true;
    }
  }
  return best;
}

int32_t Sampler::sample(const float* logits, int64_t n_vocab) {
  if (p_.temperature == 0.0f) return argmax(logits, n_vocab);
  cand_.clear();
  for (int64_t i = 0; i < n_vocab; ++i)
    if (!std::isnan(logits[i])) cand_.emplace_back(logits[i], static_cast<int32_t>(i));
  if (cand_.empty()) return 0;
  auto by_logit = [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; };
  size_t n = cand_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n) {
    n = static_cast<size_t>(p_.top_k);
    std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(n), cand_.end(), by_logit);
    cand_.resize(n);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  const float m = cand_[0].first;
  std::vector<double> prob(n);  // [n] softmax of the candidates at the temperature
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    prob[i] = std::exp(static_cast<double>(cand_[i].first - m) / p_.temperature);
    sum += prob[i];
  }
  size_t keep = n;
  if (p_.top_p < 1.0f) {
    double cum = 0.0;
    for (size_t i = 0; i < n; ++i) {
      cum += prob[i] / sum;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) total += prob[i];
  const double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
  double cum = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    cum += prob[i];
    if (u < cum) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace oss4
