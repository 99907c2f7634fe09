// Token sampling: greedy at temperature 0, else temperature, top-k, top-p with a seeded generator.
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

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // [n_vocab] (logit, id) candidates
};

// index of the largest logit, lowest index on ties; NaN is skipped.
int32_t argmax(const float* logits, int64_t n);

}  // namespace oss4
