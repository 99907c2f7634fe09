// Per-sequence KV cache. Full-attention layers keep every position; sliding-window layers keep a ring of
// window + max_chunk - 1 positions, enough for any query of a chunk of up to max_chunk new tokens.
// Later (batched serving) the same slot interface will sit on shared, reference-counted pages so that
// sequences can share a prefix; the forward pass only ever asks for layer views and slots.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cpu/kernels_ref.h"
#include "model/config.h"
#include "oss4/status.h"

namespace oss4 {

class KvCache {
 public:
  // max_ctx: the most positions this sequence may reach; max_chunk: the most tokens one forward call adds.
  // sliding_ring false: sliding-window layers keep every position too (the window is applied by position only), so
  // the cache can be rolled back to any earlier length (truncate); the server keeps its sequences this way.
  static Result<KvCache> create(const ModelConfig& cfg, int64_t max_ctx, int64_t max_chunk, bool sliding_ring = true);

  int64_t n_pos() const { return n_pos_; }
  int64_t max_ctx() const { return max_ctx_; }
  int64_t max_chunk() const { return max_chunk_; }
  // makes room for positions up to n_pos() + n_new; fails past max_ctx.
  Status reserve(int64_t n_new);
  // k/v row of one position: [n_kv_heads, head_dim] f32.
  float* k_row(int64_t layer, int64_t pos);
  float* v_row(int64_t layer, int64_t pos);
  KvLayerView view(int64_t layer) const;
  void advance(int64_t n) { n_pos_ += n; }
  void clear() { n_pos_ = 0; }
  // forgets every position from n on (keeps 0 .. n-1). Errors when n > n_pos() or when a ring has already
  // overwritten a position the shorter cache would still need.
  Status truncate(int64_t n);
  bool has_ring() const;
  // changes the most positions this sequence may reach (at least n_pos(); not for a cache with rings).
  Status set_max_ctx(int64_t max_ctx);
  size_t bytes() const;

 private:
  struct Layer {
    std::vector<float> k, v;  // [capacity, n_kv_heads, head_dim] f32
    int64_t capacity = 0;
    bool ring = false;
  };
  std::vector<Layer> layers_;
  int64_t row_ = 0;  // n_kv_heads * head_dim
  int64_t n_pos_ = 0, max_ctx_ = 0, max_chunk_ = 0;
};

}  // namespace oss4
