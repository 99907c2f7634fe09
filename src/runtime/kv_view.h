// What an attention kernel reads of one layer's K/V: host f32 rows addressed by position. Backends with host K/V (the
// CPU) hand this to their kernels; a device backend has its own view of its own pages.
#pragma once

#include <cstdint>

namespace oss4 {

// keys and values of one layer: [capacity, n_kv_heads, head_dim] f32 each; a ring buffer keeps position p
// in slot p % capacity, otherwise slot p.
struct KvLayerView {
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t capacity = 0;
  bool ring = false;
  int64_t slot(int64_t pos) const { return ring ? pos % capacity : pos; }
};

}  // namespace oss4
