#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace oss4 {

namespace {
double correction_dim(double n_rot, int64_t dim, double base, int64_t max_pos) {
  return (static_cast<double>(dim) * std::log(static_cast<double>(max_pos) / (n_rot * 2.0 * M_PI))) / (2.0 * std::log(base));
}
}  // namespace

RopeTable rope_table_init(const ModelConfig& cfg) {
  RopeTable t;
  t.head_dim = cfg.head_dim;
  const int64_t half = cfg.head_dim / 2;
  const float base = static_cast<float>(cfg.rope.theta);
  t.inv_freq.resize(static_cast<size_t>(half));
  std::vector<float> pos_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    pos_freq[i] = std::pow(base, static_cast<float>(2 * i) / static_cast<float>(cfg.head_dim));
  if (!cfg.rope.yarn) {
    for (int64_t i = 0; i < half; ++i) t.inv_freq[i] = 1.0f / pos_freq[i];
    return t;
  }
  const auto& r = cfg.rope;
  double low = correction_dim(r.beta_fast, cfg.head_dim, r.theta, r.original_max_position_embeddings);
  double high = correction_dim(r.beta_slow, cfg.head_dim, r.theta, r.original_max_position_embeddings);
  if (r.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(cfg.head_dim - 1));
  if (low == high) high += 0.001;
  t.yarn_low = low;
  t.yarn_high = high;
  const float factor = static_cast<float>(r.factor);
  for (int64_t i = 0; i < half; ++i) {
    float ramp = (static_cast<float>(i) - static_cast<float>(low)) / static_cast<float>(high - low);
    ramp = std::clamp(ramp, 0.0f, 1.0f);
    float extrapolation = 1.0f - ramp;  // weight of the unscaled frequency
    float inv_interp = 1.0f / (factor * pos_freq[i]);
    float inv_extrap = 1.0f / pos_freq[i];
    t.inv_freq[i] = inv_interp * (1.0f - extrapolation) + inv_extrap * extrapolation;
  }
  t.concentration = static_cast<float>(0.1 * std::log(r.factor) + 1.0);
  return t;
}

}  // namespace oss4
