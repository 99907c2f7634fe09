#include "eval/compare.h"

#include <algorithm>
#include <cmath>

#include "runtime/sampler.h"

namespace oss4 {

namespace {
double log_sum_exp(const float* x, int64_t n, double* max_out) {
  double m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(x[i]));
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i]) - m);
  *max_out = m;
  return m + std::log(s);
}
}  // namespace

CompareSummary compare_logits(const float* a, const float* b, int64_t n_pos, int64_t n_vocab) {
  CompareSummary s;
  s.positions.resize(static_cast<size_t>(n_pos));
  int64_t agree = 0;
  for (int64_t t = 0; t < n_pos; ++t) {
    const float* at = a + t * n_vocab;
    const float* bt = b + t * n_vocab;
    double ma, mb;
    const double lza = log_sum_exp(at, n_vocab, &ma), lzb = log_sum_exp(bt, n_vocab, &mb);
    PositionCompare& p = s.positions[static_cast<size_t>(t)];
    double kl = 0;
    for (int64_t i = 0; i < n_vocab; ++i) {
      const double la = at[i] - lza, lb = bt[i] - lzb;
      kl += std::exp(la) * (la - lb);
      p.max_abs_diff = std::max(p.max_abs_diff, std::fabs(static_cast<double>(at[i]) - bt[i]));
      p.max_abs_ref = std::max(p.max_abs_ref, std::fabs(static_cast<double>(at[i])));
    }
    p.kl = std::max(0.0, kl);  // rounding can make a zero divergence slightly negative
    p.top1_agree = argmax(at, n_vocab) == argmax(bt, n_vocab);
    agree += p.top1_agree;
    s.mean_kl += p.kl / static_cast<double>(n_pos);
    s.max_kl = std::max(s.max_kl, p.kl);
    s.max_abs_diff = std::max(s.max_abs_diff, p.max_abs_diff);
    if (p.max_abs_ref > 0) s.max_rel_diff = std::max(s.max_rel_diff, p.max_abs_diff / p.max_abs_ref);
  }
  s.top1_agreement = n_pos > 0 ? static_cast<double>(agree) / static_cast<double>(n_pos) : 0.0;
  return s;
}

}  // namespace oss4
