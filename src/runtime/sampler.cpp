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

namespace {

// sorted order of the candidates: larger logit first, lower id on ties (a strict total order, so every selection
// below finds the same prefix as a full sort).
bool by_logit(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first != b.first ? a.first > b.first : a.second < b.second;
}

// how many of the sorted candidates' weights prob [n] (normaliser z) the top-p cut keeps: the shortest prefix whose
// running share reaches top_p, or all n
size_t top_p_keep(const std::vector<double>& prob, size_t n, double z, float top_p) {
  if (top_p >= 1.0f) return n;
  double cum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cum += prob[i] / z;
    if (cum >= top_p) return i + 1;
  }
  return n;
}

}  // namespace

bool Sampler::gather(const float* logits, int64_t n_vocab, float* max_logit) {
  cand_.clear();
  float m = -INFINITY;
  for (int64_t i = 0; i < n_vocab; ++i) {
    if (std::isnan(logits[i])) continue;
    cand_.emplace_back(logits[i], static_cast<int32_t>(i));
    m = std::max(m, logits[i]);
  }
  *max_logit = m;
  return !cand_.empty();
}

int32_t Sampler::draw(const std::vector<double>& prob, size_t keep) {
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

int32_t Sampler::sample_ref(const float* logits, int64_t n_vocab) {
  if (p_.temperature == 0.0f) return argmax(logits, n_vocab);
  float m;
  if (!gather(logits, n_vocab, &m)) return 0;
  size_t n = cand_.size();
  const bool top_k = p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n;
  std::vector<double> prob(n);  // [n] exp((logit - max) / T) of the candidates, in their current order
  auto fill = [&] {
    for (size_t i = 0; i < n; ++i) prob[i] = std::exp(static_cast<double>(cand_[i].first - m) / p_.temperature);
  };
  if (!top_k && p_.top_p >= 1.0f) {  // nothing truncated: the whole distribution in id order
    fill();
    return draw(prob, n);
  }
  double z = 0.0;
  if (top_k) {
    n = static_cast<size_t>(p_.top_k);
    std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(n), cand_.end(), by_logit);
    cand_.resize(n);
    prob.resize(n);
    fill();
    for (size_t i = 0; i < n; ++i) z += prob[i];
  } else {
    fill();
    for (size_t i = 0; i < n; ++i) z += prob[i];  // id order
    std::sort(cand_.begin(), cand_.end(), by_logit);
    fill();
  }
  return draw(prob, top_p_keep(prob, n, z, p_.top_p));
}

int32_t Sampler::sample(const float* logits, int64_t n_vocab) {
  if (p_.temperature == 0.0f) return argmax(logits, n_vocab);
  float m;
  if (!gather(logits, n_vocab, &m)) return 0;
  size_t n = cand_.size();
  const bool top_k = p_.top_k > 0 && static_cast<size_t>(p_.top_k) < n;
  prob_.resize(n);
  auto p_of = [&](size_t i) { return std::exp(static_cast<double>(cand_[i].first - m) / p_.temperature); };
  const auto at = [&](size_t i) { return cand_.begin() + static_cast<std::ptrdiff_t>(i); };
  if (!top_k && p_.top_p >= 1.0f) {
    for (size_t i = 0; i < n; ++i) prob_[i] = p_of(i);
    return draw(prob_, n);
  }
  if (top_k) {
    // the k survivors by selection, then sorted: the same prefix partial_sort gives
    n = static_cast<size_t>(p_.top_k);
    std::nth_element(cand_.begin(), at(n), cand_.end(), by_logit);
    std::sort(cand_.begin(), at(n), by_logit);
    cand_.resize(n);
    double z = 0.0;
    for (size_t i = 0; i < n; ++i) z += prob_[i] = p_of(i);
    return draw(prob_, top_p_keep(prob_, n, z, p_.top_p));
  }
  // top-p alone: the normaliser over every candidate in id order; a histogram of the probability mass over the logit
  // range estimates how many candidates the kept prefix takes (the first block); then the sorted prefix is grown a
  // block at a time (select the next block from the rest, sort only it) until its running sum reaches top_p. The
  // estimate only sizes the blocks: the prefix and its sums are those of the full sort whatever it says
  constexpr int kBuckets = 512;
  double mass[kBuckets] = {};  // [kBuckets] probability mass per logit bucket, bucket 0 at the largest logit
  int64_t count[kBuckets] = {};
  float lo = m;
  for (size_t i = 0; i < n; ++i) {
    if (std::isfinite(cand_[i].first)) lo = std::min(lo, cand_[i].first);
  }
  const double span = static_cast<double>(m) - static_cast<double>(lo);
  const double scale = span > 0 && std::isfinite(span) ? kBuckets / span : 0.0;
  double z = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double p = p_of(i);
    z += p;
    if (scale > 0) {
      const double d = (static_cast<double>(m) - static_cast<double>(cand_[i].first)) * scale;
      const int b = d >= kBuckets || !(d >= 0) ? kBuckets - 1 : static_cast<int>(d);
      mass[b] += p;
      ++count[b];
    }
  }
  size_t estimate = 64;
  if (scale > 0) {
    double c = 0.0;
    int64_t k = 0;
    for (int b = 0; b < kBuckets; ++b) {
      c += mass[b];
      k += count[b];
      if (c >= p_.top_p * z) break;
    }
    estimate = static_cast<size_t>(k) + k / 64 + 64;  // a little slack for rounding
  }
  double cum = 0.0;
  size_t done = 0, want = std::min(n, estimate), keep = n;
  while (done < n) {
    if (want < n) std::nth_element(at(done), at(want), cand_.end(), by_logit);
    std::sort(at(done), at(want), by_logit);
    for (size_t i = done; i < want; ++i) {
      prob_[i] = p_of(i);
      cum += prob_[i] / z;
      if (cum >= p_.top_p) {
        keep = i + 1;
        return draw(prob_, keep);
      }
    }
    done = want;
    want = std::min(n, want * 4);
  }
  return draw(prob_, keep);
}

}  // namespace oss4
