// Token sampling: greedy at temperature 0, else temperature, top-k, top-p with a seeded generator.
//
// The distribution, exactly (sample and sample_ref agree on it bit for bit):
//   p_i = exp((l_i - max l) / T) in double, NaN logits left out;
//   top-k keeps the k largest logits (ties: lower id first);
//   top-p (< 1) keeps the shortest prefix of the candidates sorted by logit (descending, lower id first) whose
//   running sum of p_i / Z reaches top_p, Z being the sum of p_i over all candidates (in id order without top-k,
//   in sorted order with it);
//   the token is drawn by inverse CDF, u uniform in [0, total of the kept p_i), over the kept candidates in sorted
//   order; with nothing truncated (top_p = 1, no top-k) over all candidates in id order.
// sample() finds the kept prefix by partial selection (nth_element, then sorting only the survivors, growing the
// prefix until top_p is reached) instead of sorting the whole vocabulary; sample_ref() sorts everything.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "oss4/status.h"

namespace oss4 {

struct SamplerParams {
  float temperature = 1.0f;  // 0 = greedy
  float top_p = 1.0f;        // (0, 1]
  int64_t top_k = 0;         // 0 = off
  uint64_t seed = 0;
};

Status validate_sampler_params(const SamplerParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {}
  // logits [n_vocab] f32; returns a token id. NaN logits never win.
  int32_t sample(const float* logits, int64_t n_vocab);
  // the same draw by a full sort of the candidates: the reference sample() is tested against.
  int32_t sample_ref(const float* logits, int64_t n_vocab);

 private:
  // candidates (logit, id) without NaN into cand_; their largest logit. False when there are none.
  bool gather(const float* logits, int64_t n_vocab, float* max_logit);
  // inverse CDF over prob[0, keep) with the candidates cand_[0, keep).
  int32_t draw(const std::vector<double>& prob, size_t keep);

  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // [n_vocab] (logit, id) candidates
  std::vector<double> prob_;                     // [n_vocab] their unnormalised probabilities
};

// index of the largest logit, lowest index on ties; NaN is skipped.
int32_t argmax(const float* logits, int64_t n);

}  // namespace oss4
