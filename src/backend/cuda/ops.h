// Launchers of the CUDA backend's small ops (ops.cu): everything of the gpt-oss step except the FP4 and BF16
// matmuls and the MoE (kernels.h). Device pointers in, device pointers out; each checks its arguments and the launch
// and returns a Status naming the op and its shapes; none synchronizes. The arithmetic that decides results (key
// ranges, the online softmax and the sink, page addressing, the router's top-k) lives in __host__ __device__ headers
// the CPU tests run: attn_math.h, kv_pages.h, topk.h.
#pragma once

#include <cstdint>

#include "backend/cuda/flash_attention.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/kv_pages.h"
#include "oss4/status.h"

namespace oss4::cuda {

// rows of an embedding table: table [n_vocab, n] bf16 (f32 when table_f32), ids [n_tok] i32 -> x [n_tok, n] f32.
Status embed_rows(const void* table, bool table_f32, int64_t n_vocab, int64_t n, const int32_t* ids, int64_t n_tok, float* x,
                  Stream s);

// RMSNorm in f32: x [n_tok, n] f32, w [n] f32 -> y [n_tok, n] f32 (may alias x; may be null) and y16 [n_tok, n] bf16
// (may be null).
Status f32_rmsnorm(const float* x, const float* w, int64_t n_tok, int64_t n, float eps, float* y, uint16_t* y16, Stream s);

// the residual add fused into the norm after it: x [n_tok, n] += add [n_tok, n] (written back), then y / y16 =
// RMSNorm(x) as f32_rmsnorm. y must not alias x.
Status f32_add_rmsnorm(float* x, const float* add, const float* w, int64_t n_tok, int64_t n, float eps, float* y, uint16_t* y16,
                       Stream s);

// acc [n] += y [n], f32
Status f32_add(float* acc, const float* y, int64_t n, Stream s);

// f32 -> bf16, n elements
Status f32_to_bf16(const float* x, int64_t n, uint16_t* y, Stream s);

// rows src [n_src, width] bf16 -> dst [n_idx, width] bf16, dst row i = src row idx[i] (idx: device i32)
Status gather_rows_bf16(const uint16_t* src, const int32_t* idx, int64_t n_idx, int64_t width, uint16_t* dst, Stream s);

// one step's rows as the attention kernels read them: row i at position pos[i] of sequence seq[i]; tables [n_seq * 2]
// the page tables of each sequence, full-attention group first, sliding group second (kv_pages.h).
struct RowsView {
  const int32_t* pos = nullptr;      // [n_rows] i32
  const int32_t* seq = nullptr;      // [n_rows] i32
  const PageTable* tables = nullptr; // [n_seq, 2]
  int64_t n_rows = 0;
};

// where a layer's K/V live: its group (0 full, 1 sliding), its index in the group and the group's page geometry
struct LayerKv {
  int group = 0;
  int64_t gl = 0;
  PageGeom geom;
};

// RoPE (half-split, YaRN) on q [n_rows, n_heads, head_dim] and k [n_rows, n_kv_heads, head_dim] f32 in place,
// then k and v [n_rows, kv_dim] f32 stored as BF16 at each row's position in its sequence's pages. rope_cs
// [n_rope_pos, head_dim] f32: per position cos(p inv_freq_i) c for i < head_dim / 2, then the sines, times the YaRN
// concentration c, computed on the host as the CPU's RoPE computes them (the device's cosf of a large angle would take
// a local-memory range reduction); every row's position must be below n_rope_pos (the caller checks).
Status rope_store_kv(const RowsView& rows, const LayerKv& lk, float* q, float* k, const float* v, int64_t n_heads,
                     int64_t n_kv_heads, int64_t head_dim, const float* rope_cs, Stream s);

// scratch of the split attention for n_rows rows whose longest key range is max_keys keys
size_t attention_scratch_bytes(int64_t n_rows, int64_t n_heads, int64_t head_dim, int64_t max_keys);
// where the f32 accumulators start in that scratch, after the slots' softmax states
size_t attention_scratch_acc_offset(int64_t slots);
// the most rows one attention call takes so its scratch stays within kAttentionScratchCap (a long prefill chunk at
// a deep position is attended in tiles of this many rows); at least 1
inline constexpr size_t kAttentionScratchCap = size_t{256} << 20;
int64_t attention_tile_rows(int64_t n_heads, int64_t head_dim, int64_t max_keys);

// attention with sinks, GQA and the window (0: full causal) of every row against its sequence's pages: q
// [n_rows, n_heads, head_dim] f32 (RoPE applied), sinks [n_heads] f32 (null: none, for the tests) -> out
// [n_rows, n_heads * head_dim] f32 and out16 bf16 (either may be null). Split along the keys in kKeysPerSplit chunks,
// the sink entering in the final combine (attn_math.h). head_dim % 8 == 0, head_dim <= 128. max_keys: the longest key
// range of any row (the host knows the positions), which sizes the grid.
Status attention(const RowsView& rows, const LayerKv& lk, const float* q, int64_t n_heads, int64_t n_kv_heads,
                 int64_t head_dim, int64_t window, const float* sinks, float scale, int64_t max_keys, void* scratch,
                 float* out, uint16_t* out16, Stream s);

// the prefill attention of one sequence's chunk on the tensor cores (flash_attention.h): rows at positions a.p0 ..
// a.p0 + a.n_rows - 1, their K/V already stored. head_dim 16 or 64 (attention_prefill_supports). Q and P are rounded to BF16 (mma
// operands), sums in f32; the sink joins the denominator, the window and causality mask per row.
Status attention_prefill(const FlashArgs& a, int64_t head_dim, Stream s);
inline bool attention_prefill_supports(int64_t head_dim) { return head_dim == 16 || head_dim == 64; }

// router logits [n_tok, n_experts] f32 -> top-k ids [n_tok, k] i32 and softmax weights [n_tok, k] f32 (topk.h)
Status router_topk(const float* logits, int64_t n_tok, int64_t n_experts, int64_t k, int32_t* idx, float* w, Stream s);

}  // namespace oss4::cuda
