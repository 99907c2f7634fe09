// The kernels the forward pass calls: each picks the fastest rung this CPU runs (runtime ISA dispatch) and spreads
// the work over the kernel thread pool (core/thread_pool.h). The scalar reference rung (kernels_ref.h) stays
// available: OSS4_KERNELS=ref in the environment, or set_kernel_isa(KernelIsa::kRef), forces it (single thread),
// which is how tests compare the rungs. Signatures and shapes are those of the *_ref functions.
#pragma once

#include <cstdint>

#include "backend/cpu/kernels_ref.h"
#include "oss4/status.h"

namespace oss4 {

// rungs; kAvx512 and kNeon are slots for kernels not written yet (they are never chosen today).
enum class KernelIsa { kRef, kAvx2, kAvx512, kNeon };

const char* kernel_isa_name(KernelIsa isa);
// the rung in use: the best this CPU supports unless OSS4_KERNELS (ref, avx2) or set_kernel_isa chose another.
KernelIsa kernel_isa();
// the best rung this CPU and this build support.
KernelIsa best_kernel_isa();
// fails (and changes nothing) if the CPU cannot run the rung or it is not built.
Status set_kernel_isa(KernelIsa isa);
// "ref" / "avx2" -> rung; error for anything else.
Result<KernelIsa> parse_kernel_isa(const char* name);

// numeric path of the 4-bit matmuls. kF32 (default): activations stay f32, W4A16 as the checkpoint specifies.
// kQ8 (opt-in, faster): activations are quantized to int8 per 16 inputs before every in-major NVFP4 matmul (the
// experts of NVFP4 checkpoints, and the attention and lm_head after load's repack), see q8_ref.h; other weights keep
// f32 activations. `oss4 compare --activations-b q8` reports what it costs.
enum class ActPrecision { kF32, kQ8 };
const char* act_precision_name(ActPrecision p);
// "f32" / "q8" -> precision; error for anything else.
Result<ActPrecision> parse_act_precision(const char* name);
ActPrecision act_precision();
void set_act_precision(ActPrecision p);

// y = x W^T (+ bias): x [n_tok, n_in] f32, bias [n_out] or null, y [n_tok, n_out] f32.
void f32_linear(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y);

// several independent y = x W^T (+ bias), as f32_linear each, in one parallel region: the projections that share an
// input (q, k, v) and the experts a decoded token routes to, which one at a time are too small to keep every thread
// busy to the end. Results are those of f32_linear on each job.
struct LinearJob {
  const LinearWeight* w = nullptr;
  const float* x = nullptr;  // [n_tok, n_in]
  int64_t n_tok = 0;
  const float* bias = nullptr;  // [n_out] or null
  float* y = nullptr;           // [n_tok, n_out]
};
void f32_linear_jobs(const LinearJob* jobs, int64_t n_jobs);

// as f32_swiglu_ref, for rows [0, n_rows) of gu [n_rows, 2 n_ff] into out [n_rows, n_ff]; parallel over rows.
void f32_swiglu(const float* gu, int64_t n_rows, int64_t n_ff, float alpha, float limit, float* out);

// as f32_sdpa_sink_ref; parallel over (token, key/value head) or (token, head).
void f32_sdpa_sink(const float* q, const int64_t* pos, int64_t n_tok, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                   const KvLayerView& kv, int64_t window, const float* sinks, float scale, float* out);

}  // namespace oss4
