// The kernels the CPU backend's ops call: each runs the rung its CpuExec names (runtime ISA dispatch) and spreads the
// work over the CpuExec's thread pool (core/thread_pool.h). Nothing here is process-wide: the backend makes one
// CpuExec from its BackendOptions, tests make their own. The scalar reference rung (kernels_ref.h) is KernelIsa::kRef
// (single thread), which is how tests compare the rungs. Signatures and shapes are those of the *_ref functions.
#pragma once

#include <cstdint>
#include <string>

#include "backend/cpu/kernels_ref.h"
#include "backend/options.h"
#include "core/thread_pool.h"
#include "oss4/status.h"

namespace oss4 {

// rungs. kAvx512 (AVX-512 F/BW/VL/DQ, VNNI, VBMI) runs its own kernels where it has them (kernels_avx512.h: NVFP4 in
// the 32-output tile layout its prepare step makes) and the AVX2 kernels everywhere else; kNeon is a slot for kernels
// not written yet (never chosen).
enum class KernelIsa { kRef, kAvx2, kAvx512, kNeon };

const char* kernel_isa_name(KernelIsa isa);
// the best rung this CPU and this build support.
KernelIsa best_kernel_isa();
// whether this CPU and this build run the rung; an error naming the CPU's features if not.
Status check_kernel_isa(KernelIsa isa);
// "ref" / "avx2" / "avx512" -> rung; error for anything else.
Result<KernelIsa> parse_kernel_isa(const char* name);
// "auto" -> OSS4_KERNELS from the environment when it names a rung this CPU runs, else best_kernel_isa(); a rung's
// name -> that rung, an error when this CPU or build cannot run it.
Result<KernelIsa> resolve_kernel_isa(const std::string& name);


// how the kernels run: made once by whoever owns the threads (the CPU backend, a test, a benchmark).
struct CpuExec {
  KernelIsa isa = KernelIsa::kRef;
  ActPrecision act = ActPrecision::kF32;
  ThreadPool* pool = nullptr;  // null: every task on the calling thread
  int n_threads() const { return pool ? pool->n_threads() : 1; }
};

// y = x W^T (+ bias): x [n_tok, n_in] f32, bias [n_out] or null, y [n_tok, n_out] f32.
void f32_linear(const CpuExec& ex, const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y);

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
void f32_linear_jobs(const CpuExec& ex, const LinearJob* jobs, int64_t n_jobs);

// as f32_swiglu_ref, for rows [0, n_rows) of gu [n_rows, 2 n_ff] into out [n_rows, n_ff]; parallel over rows.
void f32_swiglu(const CpuExec& ex, const float* gu, int64_t n_rows, int64_t n_ff, float alpha, float limit, float* out);

// as f32_sdpa_sink_ref; parallel over (token, key/value head) or (token, head).
void f32_sdpa_sink(const CpuExec& ex, const float* q, const int64_t* pos, int64_t n_tok, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                   const KvLayerView& kv, int64_t window, const float* sinks, float scale, float* out);

}  // namespace oss4
