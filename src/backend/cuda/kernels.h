// Launchers of the CUDA kernels (oss4_cuda): plain device pointers and the weight views of repack.h, so the backend
// seam (issue 13) can call them from its op table. Every launcher checks its arguments and the launch, and returns a
// Status naming the op and the shapes; none synchronizes. Activations are BF16 (the f32_* variants take f32, for the
// tests that hold the GPU to the CPU goldens' bounds); all sums accumulate in f32. Names carry the dtypes:
// <activation>_<weight>w_<op>.
#pragma once

#include <cstdint>

#include "backend/cuda/repack.h"
#include "oss4/status.h"

struct CUstream_st;

namespace oss4::cuda {

using Stream = CUstream_st*;  // cudaStream_t; nullptr = the legacy default stream

// --- FP4 weights x BF16 activations on the tensor cores (mma.sync m16n8k16, tokens on the n = 8 side) ---
// y = x W^T (+ bias): x [n_tok, n_in] bf16, bias [n_out] f32 or null, y [n_tok, n_out] f32 (bf16 for the _bf16out
// form). n_tok 1..16 is the decode path (one pass over W); larger n_tok runs 16-token chunks over the same kernel
// (the prefill path; W is re-read per chunk from L2).
Status bf16_fp4w_matmul(const Fp4MatrixView& w, const uint16_t* x, int64_t n_tok, const float* bias, float* y, Stream s);
Status bf16_fp4w_matmul_bf16out(const Fp4MatrixView& w, const uint16_t* x, int64_t n_tok, const float* bias, uint16_t* y,
                                Stream s);
// the f32-activation variant (SIMT, f32 FMA on the same exact BF16 weights): x [n_tok, n_in] f32, y [n_tok, n_out] f32.
Status f32_fp4w_matmul(const Fp4MatrixView& w, const float* x, int64_t n_tok, const float* bias, float* y, Stream s);

// --- BF16 weights (router, embeddings' transpose, BF16 lm_head, BF16 checkpoints) ---
// w [n_out, n_in] bf16 row-major, n_in % 8 == 0; x [n_tok, n_in] bf16 (f32 for the f32_ form); y [n_tok, n_out] f32.
Status bf16_bf16w_matmul(const uint16_t* w, int64_t n_out, int64_t n_in, const uint16_t* x, int64_t n_tok, const float* bias,
                         float* y, Stream s);
Status f32_bf16w_matmul(const uint16_t* w, int64_t n_out, int64_t n_in, const float* x, int64_t n_tok, const float* bias,
                        float* y, Stream s);

// --- the MoE pair, grouped by expert on the device ---
// all experts of one projection, each repacked alike (same shape and format) and stored back to back.
struct Fp4ExpertsView {
  const uint8_t* tiles = nullptr;        // [n_experts, n_row_tiles, n_k_tiles, tile_bytes] u8
  int64_t expert_stride = 0;             // bytes per expert
  Fp4Format format = Fp4Format::kNvfp4;
  int64_t n_out = 0, n_in = 0, n_row_tiles = 0, n_k_tiles = 0;
  bool paired = false;                   // gate_up: true; down: false
  const float* epilogue_scale = nullptr; // [n_experts] f32 (device)
  const int32_t* mx_shift = nullptr;     // [n_experts] i32 (device; MXFP4 only, may be null for NVFP4)
};

// device scratch of one MoE call, sized for n_tok tokens and top-k (moe_scratch_bytes).
struct MoeScratch {
  int32_t* expert_offsets = nullptr;  // [n_experts + 1] start of each expert's pairs
  int32_t* pair_token = nullptr;      // [n_tok * k] token of each pair, pairs grouped by expert
  float* pair_weight = nullptr;       // [n_tok * k] router weight of each pair
  int32_t* pair_of_slot = nullptr;    // [n_tok * k] pair index of (token, slot)
  uint16_t* h = nullptr;              // [n_tok * k, n_ff] bf16 SwiGLU outputs, one row per pair
  float* y_pair = nullptr;            // [n_tok * k, n_embd] f32 down outputs times the router weight
};
size_t moe_scratch_bytes(int64_t n_tok, int64_t k, int64_t n_experts, int64_t n_ff, int64_t n_embd);
MoeScratch moe_scratch_carve(void* base, int64_t n_tok, int64_t k, int64_t n_experts, int64_t n_ff, int64_t n_embd);

// gpt-oss's MoE block after the router: x [n_tok, n_embd] bf16, topk_idx [n_tok, k] i32, topk_w [n_tok, k] f32
// (softmax over the k), gate_up_bias [n_experts, 2 n_ff] f32 (interleaved like the rows), down_bias [n_experts, n_embd]
// f32 -> y [n_tok, n_embd] f32 = sum over the k slots, in slot order, of w * (down_e(swiglu(gate_up_e x + b)) + b).
// SwiGLU: gate = min(g, limit), up = clamp(u, -limit, limit), (up + 1) * gate * sigmoid(alpha * gate).
struct SwigluParams {
  float alpha = 1.702f;
  float limit = 7.0f;
};
Status bf16_fp4w_moe(const Fp4ExpertsView& gate_up, const Fp4ExpertsView& down, int64_t n_experts, const uint16_t* x,
                     int64_t n_tok, const int32_t* topk_idx, const float* topk_w, int64_t k, const float* gate_up_bias,
                     const float* down_bias, SwigluParams sw, const MoeScratch& scratch, float* y, Stream s);

// --- synthetic data made on the device from a seed (tools/device/check.sh: no weights travel) ---
// n_tiles tiles of random FP4 codes with valid scales (NVFP4: E4M3 codes 0x20..0x47; MXFP4: E8M0 120..130), and n
// random BF16 activations in about [-2, 2].
Status fill_random_fp4_tiles(uint8_t* tiles, int64_t n_tiles, Fp4Format f, uint64_t seed, Stream s);
Status fill_random_bf16(uint16_t* x, int64_t n, uint64_t seed, Stream s);

// --- checks ---
// the exact dequant table on the device: out [256, 16] bf16 bits, out[s * 16 + q] = w' of E2M1 code q and E4M3 code s
// (fp4_dequant.h), and out_mx [255, 16] for E8M0 code b with shift c = b - 126. Synchronizes.
Status fp4_dequant_table_on_device(uint16_t* out_host, uint16_t* out_mx_host);

}  // namespace oss4::cuda
