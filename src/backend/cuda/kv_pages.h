// Where a position's K and V live in the CUDA backend's paged cache: one __host__ __device__ header, used by the
// kernels that store and read K/V and by the CPU tests (tests/cuda_host/test_attention_math.cpp).
//
// K/V are BF16 in fixed-size pages of kPagePositions positions. The layers of a model fall in two groups, full
// attention and sliding window, and a page holds one group's K and V for its positions on every layer of the group:
//   page [n_group_layers, 2 (K, V), kPagePositions, kv_dim] bf16
// A sequence has one page table per group, device pointers to its pages. Position p lives in table slot
// (p / kPagePositions) % n_slots: a table that grows with the sequence (full layers, and sliding layers of a cache
// that can be rewound) never wraps, so the slot is p / kPagePositions; a sliding group's ring keeps n_slots =
// ring_slots(window, max_chunk), enough for the keys any query of a chunk of up to max_chunk new tokens reads, the
// chunk's own K/V included (the store of a chunk runs before its attention).
#pragma once

#include <cstdint>

#include "backend/cuda/fp4_dequant.h"  // OSS4_HD

namespace oss4::cuda {

inline constexpr int kPagePositions = 16;

struct PageGeom {
  int64_t n_layers = 0;  // layers of the group
  int64_t kv_dim = 0;    // n_kv_heads * head_dim
};
// elements (bf16) of one page
OSS4_HD int64_t page_elems(PageGeom g) { return g.n_layers * 2 * kPagePositions * g.kv_dim; }
// element offset, inside its page, of K (kv 0) or V (kv 1) of position p on the group's layer gl
OSS4_HD int64_t page_row_offset(PageGeom g, int64_t gl, int kv, int64_t p) {
  return ((gl * 2 + kv) * kPagePositions + p % kPagePositions) * g.kv_dim;
}
// the table slot of position p
OSS4_HD int64_t page_slot(int64_t p, int64_t n_slots) { return (p / kPagePositions) % n_slots; }
// pages a table needs to hold positions 0 .. n - 1 without wrapping
OSS4_HD int64_t pages_for(int64_t n) { return (n + kPagePositions - 1) / kPagePositions; }
// the ring of a sliding group: a position keeps its offset inside its page, so n slots are a ring of
// n * kPagePositions rows, and the positions one chunk reads (and writes) span window + max_chunk - 1.
OSS4_HD int64_t ring_slots(int64_t window, int64_t max_chunk) { return pages_for(window + max_chunk - 1); }
// the slots of a sliding group's ring for a sequence of max_ctx positions, or 0 where a ring would not hold fewer
// pages than the whole context (the group then grows like the full one): what the cache allocates and the plan counts
OSS4_HD int64_t sliding_ring_slots(int64_t window, int64_t max_chunk, int64_t max_ctx) {
  return window > 0 && ring_slots(window, max_chunk) < pages_for(max_ctx) ? ring_slots(window, max_chunk) : 0;
}

// one sequence's table of one group, as a kernel reads it
struct PageTable {
  uint16_t* const* pages = nullptr;  // [n_slots] device pointers to pages (page_elems bf16 each)
  int64_t n_slots = 0;
};
// the bf16 row (kv_dim elements) of K or V of position p on the group's layer gl
OSS4_HD uint16_t* kv_row(const PageTable& t, PageGeom g, int64_t gl, int kv, int64_t p) {
  return t.pages[page_slot(p, t.n_slots)] + page_row_offset(g, gl, kv, p);
}

}  // namespace oss4::cuda
