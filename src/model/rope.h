// RoPE with YaRN (spec §1.4): inverse frequencies and the attention "concentration" factor.
#pragma once

#include <vector>

#include "model/config.h"

namespace oss4 {

struct RopeTable {
  int64_t head_dim = 0;
  std::vector<float> inv_freq;  // [head_dim / 2] f32
  float concentration = 1.0f;   // multiplies both cos and sin (so q·k gains concentration^2)
  double yarn_low = 0, yarn_high = 0;
};

// computed in float32 exactly as transformers' _compute_yarn_parameters does.
RopeTable rope_table_init(const ModelConfig& cfg);

}  // namespace oss4
