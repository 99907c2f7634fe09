// The CUDA backend's KV cache: BF16 K/V in fixed-size device pages (kv_pages.h), two groups of layers (full
// attention, sliding window), one page table per group on the device. Pages come from a pool shared by the caches of
// one backend, in slabs; a cache gives its pages back when destroyed. A sliding group keeps a ring of
// ring_slots(window, max_chunk) pages unless the cache is rewindable (sliding_ring false), when it grows like the
// full group.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/cuda/kv_pages.h"
#include "backend/cuda/upload.h"
#include "model/config.h"
#include "runtime/kv_cache.h"

namespace oss4::cuda {

// the layers of a model in their two groups: group (0 full, 1 sliding) and index in the group of each layer
struct KvLayout {
  PageGeom geom[2];
  std::vector<int> group;    // [n_layers]
  std::vector<int64_t> gl;   // [n_layers]
  int64_t window = 0;
  static KvLayout of(const ModelConfig& cfg);
  // bytes one position takes on every layer, K and V, BF16 (the growing tables')
  int64_t bytes_per_position() const;
};

class PagePool {
 public:
  explicit PagePool(KvLayout layout) : layout_(std::move(layout)) {}
  const KvLayout& layout() const { return layout_; }
  size_t page_bytes(int group) const { return static_cast<size_t>(page_elems(layout_.geom[group])) * 2; }
  Result<uint16_t*> take(int group);
  void give(int group, uint16_t* page);
  size_t bytes_allocated() const;

 private:
  static constexpr int kSlabPages = 32;
  KvLayout layout_;
  mutable std::mutex mu_;
  std::vector<DeviceBuffer> slabs_[2];
  std::vector<uint16_t*> free_[2];
};

class CudaKvCache final : public KvCache {
 public:
  static Result<std::unique_ptr<CudaKvCache>> create(std::shared_ptr<PagePool> pool, int64_t max_ctx, int64_t max_chunk,
                                                     bool sliding_ring);
  ~CudaKvCache() override;
  // the device table of a group as the kernels read it (valid until the next reserve)
  PageTable table(int group) const;

  bool has_ring() const override { return ring_; }
  size_t bytes() const override;
  std::unique_ptr<KvCache> clone() const override;

 private:
  CudaKvCache(std::shared_ptr<PagePool> pool, int64_t max_ctx, int64_t max_chunk, bool ring)
      : KvCache(max_ctx, max_chunk), pool_(std::move(pool)), ring_(ring) {}
  Status grow(int64_t need) override;
  // the table's slots: a ring's fixed count, else the pages allocated
  int64_t n_slots(int group) const;
  // the group's table to the device (synchronously)
  Status upload_table(int group);

  std::shared_ptr<PagePool> pool_;
  bool ring_ = false;  // the sliding group keeps a ring
  struct Group {
    std::vector<uint16_t*> pages;  // [pages allocated] device pages
    DeviceBuffer table;            // [capacity] device pointers, the first n_slots valid
    int64_t ring_slots = 0;        // 0: grows
    size_t uploaded = 0;           // pages the device table holds
  };
  Group g_[2];
};

}  // namespace oss4::cuda
