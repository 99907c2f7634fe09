// Sizes and carves of the CUDA kernels' device scratch (kernels.h, ops.h): plain C++, in every build, so the device
// memory plan (device_plan.h) counts exactly what the backend allocates.
#include <cstdint>

#include "backend/cuda/attn_math.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/ops.h"

namespace oss4::cuda {

namespace {
size_t up256(size_t b) { return (b + 255) / 256 * 256; }
}  // namespace

size_t moe_scratch_bytes(int64_t n_tok, int64_t k, int64_t n_experts, int64_t n_ff, int64_t n_embd) {
  const size_t np = static_cast<size_t>(n_tok * k);
  return up256(4 * static_cast<size_t>(n_experts + 1)) + 3 * up256(4 * np) + up256(2 * np * static_cast<size_t>(n_ff)) +
         up256(4 * np * static_cast<size_t>(n_embd));
}

MoeScratch moe_scratch_carve(void* base, int64_t n_tok, int64_t k, int64_t n_experts, int64_t n_ff, int64_t /*n_embd: y_pair is last*/) {
  const size_t np = static_cast<size_t>(n_tok * k);
  auto* p = static_cast<uint8_t*>(base);
  MoeScratch m;
  m.expert_offsets = reinterpret_cast<int32_t*>(p);
  p += up256(4 * static_cast<size_t>(n_experts + 1));
  m.pair_token = reinterpret_cast<int32_t*>(p);
  p += up256(4 * np);
  m.pair_weight = reinterpret_cast<float*>(p);
  p += up256(4 * np);
  m.pair_of_slot = reinterpret_cast<int32_t*>(p);
  p += up256(4 * np);
  m.h = reinterpret_cast<uint16_t*>(p);
  p += up256(2 * np * static_cast<size_t>(n_ff));
  m.y_pair = reinterpret_cast<float*>(p);
  return m;
}

// [slots] SoftmaxPart, then [slots, head_dim] f32 accumulators; slots = rows x heads x splits of the longest range
size_t attention_scratch_acc_offset(int64_t slots) { return up256(static_cast<size_t>(slots) * sizeof(SoftmaxPart)); }

size_t attention_scratch_bytes(int64_t n_rows, int64_t n_heads, int64_t head_dim, int64_t max_keys) {
  const int64_t slots = n_rows * n_heads * n_key_splits(max_keys > 0 ? max_keys : 1);
  return attention_scratch_acc_offset(slots) + static_cast<size_t>(slots * head_dim) * sizeof(float);
}

int64_t attention_tile_rows(int64_t n_heads, int64_t head_dim, int64_t max_keys) {
  const int64_t per_row = n_heads * n_key_splits(max_keys > 0 ? max_keys : 1) * (static_cast<int64_t>(sizeof(SoftmaxPart)) + 4 * head_dim);
  const int64_t rows = static_cast<int64_t>(kAttentionScratchCap) / (per_row > 0 ? per_row : 1) - 1;  // (the 256-byte alignment)
  return rows > 1 ? rows : 1;
}

}  // namespace oss4::cuda
