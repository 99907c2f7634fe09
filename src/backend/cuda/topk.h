// The router's top-k and softmax of one row, __host__ __device__: the CUDA kernel runs it one thread per token, and the
// CPU tests hold it to f32_topk_softmax_ref (descending, ties to the lower index, softmax over the k chosen).
#pragma once

#include <cmath>
#include <cstdint>

#include "backend/cuda/fp4_dequant.h"  // OSS4_HD

namespace oss4::cuda {

inline constexpr int kMaxTopK = 16;

// the router's order: a before b when its logit is larger, or equal with the lower index
OSS4_HD bool topk_before(float a, int ia, float b, int ib) { return a > b || (a == b && ia < ib); }

// logits [n] -> idx [k] (descending logit, ties to the lower index), w [k] = softmax of the k logits. k <= n. A NaN
// logit is never chosen (a row with fewer than k numbers gets weight 0, id 0, in the slots left). Round j takes the
// first element in the router's order after round j-1's choice: no arrays, so the kernel keeps it in registers.
OSS4_HD void topk_softmax_row(const float* logits, int n, int k, int32_t* idx, float* w) {
  float pv = 0.0f;
  int pi = -1;  // the previous round's choice
  for (int j = 0; j < k; ++j) {
    float bv = 0.0f;
    int bi = -1;
    for (int i = 0; i < n; ++i) {
      const float x = logits[i];
      if (!(x == x)) continue;  // NaN
      if (pi >= 0 && !topk_before(pv, pi, x, i)) continue;
      if (bi < 0 || topk_before(x, i, bv, bi)) bv = x, bi = i;
    }
    idx[j] = bi < 0 ? 0 : bi;
    w[j] = bi < 0 ? -INFINITY : bv;  // the logit for now
    if (bi >= 0) pv = bv, pi = bi;
  }
  const float m = w[0];
  float sum = 0.0f;
  for (int j = 0; j < k; ++j) {
    w[j] = expf(w[j] - m);
    sum += w[j];
  }
  for (int j = 0; j < k; ++j) w[j] /= sum;
}

}  // namespace oss4::cuda
