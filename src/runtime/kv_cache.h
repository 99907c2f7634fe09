// A sequence's KV cache. The position bookkeeping (how many positions it holds, the most it may reach, the most one
// forward call adds) is the runtime's and lives here; the storage is the backend's: Forward::new_cache makes the kind
// its kernels read (host f32 rows on the CPU; device pages on a GPU).
//
// HostKvCache is the host f32 kind. Full-attention layers keep every position; sliding-window layers keep a ring of
// window + max_chunk - 1 positions, enough for any query of a chunk of up to max_chunk new tokens, unless the cache
// is made rewindable (sliding_ring false), when they keep every position too and the window is applied by position.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"
#include "oss4/status.h"
#include "runtime/kv_view.h"

namespace oss4 {

class KvCache {
 public:
  virtual ~KvCache() = default;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  int64_t n_pos() const { return n_pos_; }
  int64_t max_ctx() const { return max_ctx_; }
  int64_t max_chunk() const { return max_chunk_; }
  // makes room for positions up to n_pos() + n_new; fails past max_ctx or for more than max_chunk new tokens.
  Status reserve(int64_t n_new);
  void advance(int64_t n) { n_pos_ += n; }
  void clear() { n_pos_ = 0; }
  // forgets every position from n on (keeps 0 .. n-1). Errors when n > n_pos() or when a ring has already
  // overwritten a position the shorter cache would still need.
  Status truncate(int64_t n);
  // changes the most positions this sequence may reach (at least n_pos(); not for a cache with rings).
  Status set_max_ctx(int64_t max_ctx);
  // whether some layer keeps only a sliding window's ring of positions
  virtual bool has_ring() const = 0;
  // bytes of K/V storage allocated now
  virtual size_t bytes() const = 0;
  // an independent copy: same positions, same contents
  virtual std::unique_ptr<KvCache> clone() const = 0;

 protected:
  KvCache(int64_t max_ctx, int64_t max_chunk) : max_ctx_(max_ctx), max_chunk_(max_chunk) {}
  // makes the storage hold positions 0 .. need - 1 (need <= max_ctx)
  virtual Status grow(int64_t need) = 0;

  int64_t n_pos_ = 0, max_ctx_ = 0, max_chunk_ = 0;
};

// K/V in host memory, f32, what the CPU backend's kernels read.
class HostKvCache final : public KvCache {
 public:
  // max_ctx: the most positions this sequence may reach; max_chunk: the most tokens one forward call adds.
  // sliding_ring false: sliding-window layers keep every position (the cache can be rolled back to any length).
  static Result<std::unique_ptr<HostKvCache>> create(const ModelConfig& cfg, int64_t max_ctx, int64_t max_chunk, bool sliding_ring = true);
  // bytes of K/V one position takes on every layer (K and V, f32), what a cache without rings grows by
  static int64_t bytes_per_position(const ModelConfig& cfg);

  // k/v row of one position: [n_kv_heads, head_dim] f32.
  float* k_row(int64_t layer, int64_t pos);
  float* v_row(int64_t layer, int64_t pos);
  KvLayerView view(int64_t layer) const;

  bool has_ring() const override;
  size_t bytes() const override;
  std::unique_ptr<KvCache> clone() const override;

 private:
  HostKvCache(int64_t max_ctx, int64_t max_chunk) : KvCache(max_ctx, max_chunk) {}
  Status grow(int64_t need) override;

  struct Layer {
    std::vector<float> k, v;  // [capacity, n_kv_heads, head_dim] f32
    int64_t capacity = 0;
    bool ring = false;
  };
  std::vector<Layer> layers_;
  int64_t row_ = 0;  // n_kv_heads * head_dim
};

}  // namespace oss4
