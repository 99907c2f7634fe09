// Shared by the model tests: how far oss4's logits are from a reference, position by position.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace oss4::test {

// worst over rows of max |got - want| / max |want| (rows of n values each); *worst_row gets that row when not null.
inline double worst_rel_err(const float* got, const float* want, int64_t n_rows, int64_t n, int64_t* worst_row = nullptr) {
  double worst = 0;
  for (int64_t t = 0; t < n_rows; ++t) {
    double max_diff = 0, max_ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      max_diff = std::max(max_diff, std::fabs(static_cast<double>(got[t * n + i]) - want[t * n + i]));
      max_ref = std::max(max_ref, std::fabs(static_cast<double>(want[t * n + i])));
    }
    const double rel = max_diff / max_ref;
    if (!(rel <= worst)) {
      worst = rel;
      if (worst_row != nullptr) *worst_row = t;
    }
  }
  return worst;
}

}  // namespace oss4::test
