// The attention arithmetic of the CUDA backend, one __host__ __device__ header so the CPU tests run the same code the
// kernels run (tests/cuda_host/test_attention_math.cpp holds it to f32_sdpa_sink_ref over paged K/V):
//   - which keys a query row sees (causal, with the sliding window) and how they split into chunks of kKeysPerSplit;
//   - the online softmax of one chunk (running max m, sum l, unnormalised acc) and the final combine of the chunks'
//     partials with the head's sink, which joins the denominator only (gpt-oss: a per-head logit concatenated to the
//     scores and dropped after the softmax). Libraries have shipped kernels that left the sink out (vLLM PR #52148):
//     the combine is the one place it enters, and the tests run with and without sinks.
#pragma once

#include <cmath>
#include <cstdint>

#include "backend/cuda/fp4_dequant.h"  // OSS4_HD

namespace oss4::cuda {

inline constexpr int kKeysPerSplit = 256;  // keys one warp of the decode kernel walks before its partial is written

// keys of a query at position pos: [lo, pos] (window 0: every earlier position)
struct KeyRange {
  int64_t lo = 0, hi = 0;  // hi exclusive
};
OSS4_HD KeyRange query_keys(int64_t pos, int64_t window) {
  const int64_t lo = (window > 0 && pos - window + 1 > 0) ? pos - window + 1 : 0;
  return KeyRange{lo, pos + 1};
}
OSS4_HD int64_t n_key_splits(int64_t n_keys) { return (n_keys + kKeysPerSplit - 1) / kKeysPerSplit; }
// split j of a query's keys; empty (lo == hi) past its last split
OSS4_HD KeyRange split_keys(KeyRange r, int64_t j) {
  int64_t lo = r.lo + j * kKeysPerSplit;
  if (lo > r.hi) lo = r.hi;
  int64_t hi = lo + kKeysPerSplit;
  if (hi > r.hi) hi = r.hi;
  return KeyRange{lo, hi};
}

// a chunk's softmax state: running max (-inf while empty) and the sum of exp(s - m); the accumulator lives beside it
struct SoftmaxPart {
  float m = -INFINITY;
  float l = 0.0f;
};

// the factor that carries an accumulator of max m_old to max m_new (0 for an empty state)
OSS4_HD float rescale_factor(float m_old, float m_new) { return m_old == -INFINITY ? 0.0f : expf(m_old - m_new); }

// folds a block of scores with block maximum m_blk and sum sum_p = sum exp(s - m_new) into the state; returns the
// factor the accumulator must be multiplied by before the block's p·v are added. m_new = max(part.m, m_blk).
OSS4_HD float online_update(SoftmaxPart& part, float m_new, float sum_p) {
  const float c = rescale_factor(part.m, m_new);
  part.l = part.l * c + sum_p;
  part.m = m_new;
  return c;
}

// the combine of n chunk partials with the sink: the maximum over the partials and the sink, and the denominator
// exp(sink - M) + sum_j l_j exp(m_j - M). Each chunk's accumulator then enters as acc_j * exp(m_j - M) / denom
// (chunk_weight). has_sink false: the plain softmax (for the test that shows the sink matters).
struct SinkCombine {
  float m = -INFINITY;
  float inv_denom = 0.0f;
};
OSS4_HD SinkCombine sink_combine(const SoftmaxPart* parts, int64_t n, float sink, bool has_sink) {
  float m = has_sink ? sink : -INFINITY;
  for (int64_t j = 0; j < n; ++j) m = parts[j].m > m ? parts[j].m : m;
  float denom = has_sink ? expf(sink - m) : 0.0f;
  for (int64_t j = 0; j < n; ++j) denom += parts[j].l * rescale_factor(parts[j].m, m);
  return SinkCombine{m, denom > 0.0f ? 1.0f / denom : 0.0f};
}
OSS4_HD float chunk_weight(const SinkCombine& c, const SoftmaxPart& p) { return rescale_factor(p.m, c.m) * c.inv_denom; }

}  // namespace oss4::cuda
