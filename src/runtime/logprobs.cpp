#include "runtime/logprobs.h"

#include <algorithm>
#include <cmath>

namespace oss4 {

LogitsSummary summarize_logits(const float* logits, int64_t n_vocab) {
  LogitsSummary s;
  double m = -INFINITY;
  for (int64_t i = 0; i < n_vocab; ++i) {
    if (logits[i] > m) {
      m = logits[i];
      s.argmax = static_cast<int32_t>(i);
    }
  }
  if (!std::isfinite(m)) {
    s.lse = m;
    return s;
  }
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - m);
  s.lse = m + std::log(sum);
  return s;
}

std::vector<TopLogprob> top_logprobs(const float* logits, int64_t n_vocab, double lse, int64_t k) {
  k = std::clamp<int64_t>(k, 0, n_vocab);
  std::vector<int32_t> idx(static_cast<size_t>(n_vocab));  // [n_vocab] candidate ids
  for (int64_t i = 0; i < n_vocab; ++i) idx[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  // NaN sorts last, so the order stays a strict weak ordering whatever the logits hold
  auto key = [&](int32_t a) { return std::isnan(logits[a]) ? -INFINITY : logits[a]; };
  auto before = [&](int32_t a, int32_t b) { return key(a) > key(b) || (key(a) == key(b) && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), before);
  std::vector<TopLogprob> out(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) {
    const int32_t id = idx[static_cast<size_t>(i)];
    out[static_cast<size_t>(i)] = TopLogprob{id, static_cast<double>(logits[id]) - lse};
  }
  return out;
}

}  // namespace oss4
