// Scalar reference kernels of the CPU backend: the ground truth that SIMD and CUDA kernels are tested against.
// Activations are f32 and every sum accumulates in f32. Names carry the dtypes: f32_<weight>w_<op>.
#pragma once

#include <cstdint>

#include "model/rope.h"
#include "model/weights.h"
#include "runtime/kv_view.h"

namespace oss4 {

// y = x W^T (+ bias) for any LinearWeight: x [n_tok, n_in] f32, bias [n_out] f32 or null, y [n_tok, n_out] f32.
void f32_linear_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y);
void f32_f32w_matmul_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y);
void f32_bf16w_matmul_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y);
void f32_mxfp4w_matmul_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y);
// NVFP4 in both orientations; [n_out, n_in/2] goes to f32_nvfp4w_matmul_ref of nvfp4_ref.h.
void f32_nvfp4w_linear_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y);

// rows of an embedding table: ids [n_tok] -> out [n_tok, n_embd] f32. ids must be in range.
void f32_embed_rows_ref(const LinearWeight& table, const int32_t* ids, int64_t n_tok, float* out);

// RMSNorm in f32: x [n_tok, n], w [n] -> y [n_tok, n] (y may alias x).
void f32_rmsnorm_ref(const float* x, const float* w, int64_t n_tok, int64_t n, float eps, float* y);

// half-split (NeoX) RoPE in place with YaRN concentration: x [n_tok, n_heads, head_dim], pos [n_tok].
void f32_rope_ref(float* x, const int64_t* pos, int64_t n_tok, int64_t n_heads, const RopeTable& rope);

// attention with learned sinks and an optional sliding window (window 0 = full causal):
// q [n_tok, n_heads, head_dim] (RoPE applied), pos [n_tok], sinks [n_heads]; out [n_tok, n_heads * head_dim].
// query t sees keys at positions max(0, pos[t] - window + 1) .. pos[t], all already in kv.
void f32_sdpa_sink_ref(const float* q, const int64_t* pos, int64_t n_tok, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                       const KvLayerView& kv, int64_t window, const float* sinks, float scale, float* out);

// top-k of logits [n] (descending, ties to the lower index), then softmax over the k: idx [k], w [k].
void f32_topk_softmax_ref(const float* logits, int64_t n, int64_t k, int32_t* idx, float* w);

// clamped SwiGLU of gpt-oss: gu [2 * n_ff] interleaved (gate 2j, up 2j+1) -> out [n_ff].
void f32_swiglu_ref(const float* gu, int64_t n_ff, float alpha, float limit, float* out);

}  // namespace oss4
