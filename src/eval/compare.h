// Comparing two models' logits on the same tokens: KL divergence, top-1 agreement, max logit difference.
#pragma once

#include <cstdint>
#include <vector>

namespace oss4 {

struct PositionCompare {
  double kl = 0;             // KL(softmax(a) || softmax(b)) in nats
  bool top1_agree = false;   // argmax(a) == argmax(b)
  double max_abs_diff = 0;   // max_i |a_i - b_i|
  double max_abs_ref = 0;    // max_i |a_i|
};

struct CompareSummary {
  std::vector<PositionCompare> positions;
  double mean_kl = 0, max_kl = 0;
  double top1_agreement = 0;  // fraction of positions
  double max_abs_diff = 0;
  double max_rel_diff = 0;  // worst position's max|a - b| / max|a|
};

// a, b: [n_pos, n_vocab] f32 logits; a is the reference. Sums in double.
CompareSummary compare_logits(const float* a, const float* b, int64_t n_pos, int64_t n_vocab);

}  // namespace oss4
