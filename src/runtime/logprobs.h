// Log-probabilities from logits: the log-partition (log-sum-exp), one token's log-probability, and the top-k
// tokens by log-probability. Shared by `oss4 perplexity` (src/eval/perplexity.h) and the engine's logprobs.
// Everything sums in double; a log-probability is logit - lse.
#pragma once

#include <cstdint>
#include <vector>

namespace oss4 {

struct LogitsSummary {
  double lse = 0;       // log(sum_i exp(logits[i]))
  int32_t argmax = -1;  // the first index of the largest logit
};

// logits: [n_vocab] f32. Non-finite logits make lse non-finite (callers check).
LogitsSummary summarize_logits(const float* logits, int64_t n_vocab);

struct TopLogprob {
  int32_t id = -1;
  double logprob = 0;
};

// the k most likely tokens (k clamped to n_vocab), most likely first; ties by the lower id. lse from
// summarize_logits of the same logits.
std::vector<TopLogprob> top_logprobs(const float* logits, int64_t n_vocab, double lse, int64_t k);

}  // namespace oss4
