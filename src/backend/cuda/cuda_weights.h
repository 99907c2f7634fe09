// The CUDA backend's prepare step: every weight of a loaded model on the device, in the layout its kernels read.
// FP4 matrices (NVFP4 in either layout, MXFP4) repacked into the tile layout (repack.h), BF16 matrices as they are
// (row-major), norms, biases and sinks as f32, the experts of a layer back to back per projection (Fp4ExpertsView),
// the embedding table on the device, and the RoPE cos/sin table of every position (host-computed as the CPU's RoPE).
// Every tensor the forward reads is uploaded or the prepare fails naming it; nothing is skipped silently.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/cuda/kernels.h"
#include "backend/cuda/upload.h"
#include "backend/options.h"
#include "model/weights.h"

namespace oss4::cuda {

// one linear map on the device: FP4 tiles or a row-major BF16 matrix
struct DevMatrix {
  bool fp4 = false;
  Fp4MatrixView tiles;              // fp4
  const uint16_t* bf16 = nullptr;   // !fp4: [n_out, n_in] bf16
  int64_t n_out = 0, n_in = 0;
  size_t bytes = 0;                 // device bytes one pass reads
};

struct DevLayer {
  const float* attn_norm = nullptr;  // [n_embd]
  const float* mlp_norm = nullptr;   // [n_embd]
  const float* sinks = nullptr;      // [n_heads]
  DevMatrix wq, wk, wv, wo;
  const float* bq = nullptr;         // [q_dim] or null
  const float* bk = nullptr;         // [kv_dim] or null
  const float* bv = nullptr;         // [kv_dim] or null
  const float* bo = nullptr;         // [n_embd] or null
  DevMatrix router;                  // [n_experts, n_embd] bf16
  const float* router_bias = nullptr;  // [n_experts] or null
  Fp4ExpertsView gate_up, down;
  const float* gate_up_bias = nullptr;  // [n_experts, 2 n_ff] (interleaved like the rows)
  const float* down_bias = nullptr;     // [n_experts, n_embd]
};

struct CudaWeights {
  std::vector<DeviceBuffer> owned;  // every allocation below
  const void* embed = nullptr;      // [n_vocab, n_embd] bf16 (f32 when embed_f32)
  bool embed_f32 = false;
  std::vector<DevLayer> layers;
  const float* final_norm = nullptr;  // [n_embd]
  DevMatrix lm_head;
  const float* rope_cs = nullptr;     // [n_rope_pos, head_dim] f32: cos x head_dim/2, then sin, times concentration
  int64_t n_rope_pos = 0;
  size_t bytes = 0;                   // device bytes of all of the above
  size_t bytes_per_token = 0;         // weight bytes one decoded token reads (the active experts only)
  const char* lm_head_type = "bf16";
};

// the RoPE table of positions 0 .. n_pos - 1: out [n_pos, head_dim] (host), cos then sin times the concentration,
// each value the CPU's f32_rope_ref uses.
void rope_cos_sin_table(const RopeTable& rope, int64_t n_pos, float* out);

// uploads everything; progress: matrices done of total. lm: the lm_head option (kNvfp4 quantizes a BF16 lm_head at
// load as the CPU does). Errors name the tensor: BF16 or F32 experts (the MoE kernel runs FP4 experts; `oss4 quantize`
// makes an NVFP4 checkpoint), experts of one layer in different formats, a shape the kernels refuse.
Result<CudaWeights> cuda_prepare_weights(const ModelWeights& m, LmHeadType lm, int threads, const ProgressFn& progress);

}  // namespace oss4::cuda
