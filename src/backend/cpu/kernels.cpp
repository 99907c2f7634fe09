#include "backend/cpu/kernels.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backend/cpu/q8_ref.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "numeric/float_formats.h"
#include "numeric/nvfp4_tiles.h"

#if defined(OSS4_HAVE_AVX2)
#include "backend/cpu/x86/gemv_fp4_avx2.h"
#include "backend/cpu/x86/kernels_avx2.h"
#include "backend/cpu/x86/q8_avx2.h"
#endif
#if defined(OSS4_HAVE_AVX512)
#include "backend/cpu/x86/kernels_avx512.h"
#endif

namespace oss4 {

namespace {

bool isa_available(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kRef: return true;
#if defined(OSS4_HAVE_AVX2)
    case KernelIsa::kAvx2: return cpu_features().avx2 && cpu_features().fma && cpu_features().f16c;
#endif
#if defined(OSS4_HAVE_AVX512)
    case KernelIsa::kAvx512: {
      const CpuFeatures& f = cpu_features();
      return isa_available(KernelIsa::kAvx2) && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.avx512vbmi;
    }
#endif
    default: return false;
  }
}

#if defined(OSS4_HAVE_AVX2)
// the AVX-512 rung runs the AVX2 kernels wherever it has none of its own
bool runs_avx2(KernelIsa isa) { return isa == KernelIsa::kAvx2 || isa == KernelIsa::kAvx512; }
#endif

// the BF16-activation path rounds the activations of every NVFP4 matmul
bool bf16_applies(const CpuExec& ex, const LinearWeight& w) { return ex.act == ActPrecision::kBf16 && w.type == WeightType::kNvfp4; }

// x [n_tok, n_in] rounded to BF16 (nearest even), as f32: out [n_tok, n_in]
void round_bf16(const float* x, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(f32_to_bf16(x[i]));
}

bool q8_applies(const CpuExec& ex, const LinearWeight& w) {
  return ex.act == ActPrecision::kQ8 && w.type == WeightType::kNvfp4 && (w.in_major() || w.tiles32());
}

// fn(task) for every task in [0, n_tasks): on the pool, or on this thread when there is none
void run_tasks(const CpuExec& ex, int64_t n_tasks, const std::function<void(int64_t)>& fn) {
  if (ex.pool != nullptr) {
    ex.pool->run(n_tasks, fn);
  } else {
    for (int64_t t = 0; t < n_tasks; ++t) fn(t);
  }
}

#if defined(OSS4_HAVE_AVX2)
struct Luts {
  float e4m3[256];
  float e8m0[256];
  Luts() {
    for (int b = 0; b < 256; ++b) {
      e4m3[b] = e4m3_to_f32(static_cast<uint8_t>(b));
      e8m0[b] = e8m0_to_f32(static_cast<uint8_t>(b));
    }
  }
};
const Luts& luts() {
  static const Luts l;
  return l;
}

// scratch of the calling thread, 32-byte aligned: [n] f32
float* thread_scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n + 8) buf.resize(static_cast<size_t>(n + 8));
  auto p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<float*>((p + 31) & ~uintptr_t{31});
}

bool avx2_args(const WeightView& w, avx2::LinearArgs* a) {
  switch (w.type) {
    case WeightType::kF32:
      if (w.in_major()) return false;
      a->kind = avx2::WKind::kF32;
      break;
    case WeightType::kBF16: a->kind = w.in_major() ? avx2::WKind::kBF16InMajor : avx2::WKind::kBF16; break;
    case WeightType::kMxfp4:
      if (w.n_in % 32 != 0) return false;
      a->kind = avx2::WKind::kMxfp4;
      break;
    case WeightType::kNvfp4:
      if (w.n_in % 16 != 0) return false;
      a->kind = w.tiles32() ? avx2::WKind::kNvfp4Tiles32 : w.in_major() ? avx2::WKind::kNvfp4InMajor : avx2::WKind::kNvfp4;
      break;
  }
  a->w = w;
  a->e4m3_lut = luts().e4m3;
  a->e8m0_lut = luts().e8m0;
  return true;
}

// outputs at most summed on one thread: the model's matrices (a few thousand outputs, tens of microseconds, less than a
// parallel region costs); an lm_head (201088) is summed in ranges of this many on the pool
constexpr int64_t kFinishRange = 8192;

// How one weight's matmul runs inside a parallel region:
//  kRanges   f32_linear_range over ranges of 32 outputs (every layout; GEMV or GEMM by token count)
//  kParts    in-major NVFP4 decode GEMV split along the inputs into a fixed number of parts, summed in part order
//            (every thread streams a contiguous range; the fixed count keeps results independent of the thread count)
//  kQ8Parts  the same with 8-bit activations (ActPrecision::kQ8)
//  kQ8Gemm   in-major NVFP4 GEMM with 8-bit activations, ranges of 32 outputs
//  kTiles, kTilesQ8, kTilesGemm   NVFP4 in 32-output tiles (the AVX-512 rung): ranges of whole output groups; GEMV
//            with f32 activations, the VNNI kernel with 8-bit activations at any token count, and the AVX2 GEMM on one
//            group at a time put back in the input-major layout (f32 activations, from kInMajorGemmMinTok tokens)
//  kTilesBf16Gemm   the same with BF16 activations on a CPU with AVX512_BF16: vdpbf16ps over a BF16 panel per group
enum class JobMode { kRanges, kParts, kQ8Parts, kQ8Gemm, kTiles, kTilesQ8, kTilesGemm, kTilesBf16Gemm };

constexpr int64_t kParts = 16;

struct JobPlan {
  avx2::LinearArgs a;
  JobMode mode = JobMode::kRanges;
  int64_t first = 0, n_tasks = 0;  // the job's tasks are first .. first + n_tasks - 1 of the region
  int64_t per_task = 0;            // 32-output units (output groups of the tile modes) per task
  int64_t n_parts = 0;             // kParts, kQ8Parts
  float* parts = nullptr;          // [n_parts, n_tok, n_out] partial sums
  avx2::Q8Act q8;                  // kQ8Parts, kQ8Gemm
  const uint32_t* xpair = nullptr; // kTilesBf16Gemm: [n_tok, n_in / 2] BF16 activation pairs
};

// outputs [o0, o1) of a parts job: the parts summed in part order, put in output order, plus bias
void finish_parts(const JobPlan& p, int64_t o0, int64_t o1) { avx2::fp4_gemv_in_major_finish(p.a, p.parts, p.n_parts, o0, o1); }

// the same for a job of more than kFinishRange outputs (an lm_head): in ranges on the pool (smaller jobs are summed
// inside their region, see linear_jobs_avx2)
void finish_parts_pooled(const CpuExec& ex, const JobPlan& p) {
  run_tasks(ex, (p.a.w.n_out + kFinishRange - 1) / kFinishRange,
            [&](int64_t r) { finish_parts(p, r * kFinishRange, std::min(p.a.w.n_out, (r + 1) * kFinishRange)); });
}

// activations of one q8 job, quantized once before the region
struct Q8Buffers {
  std::vector<int8_t> q;     // [n_tok, n_in]
  std::vector<float> d;      // [n_tok, n_in / 16]
  std::vector<uint32_t> pr;  // [n_tok, n_in / 2] pairs, then (GEMV) [n_tok, n_in / 2] sign flips
  std::vector<int32_t> nsum12;  // [n_tok, n_in / 16] (tiles)
};

// activations of one BF16-path job, rounded once before the region: as f32, or as the BF16 GEMM's pairs
struct Bf16Buffers {
  std::vector<float> xr;         // [n_tok, n_in]
  std::vector<uint32_t> xpair;   // [n_tok, n_in / 2]
};

void bf16_prepare(JobPlan& p, Bf16Buffers& b) {
  const int64_t n = p.a.n_tok * p.a.w.n_in;
#if defined(OSS4_HAVE_AVX512)
  if (p.mode == JobMode::kTilesBf16Gemm) {
    b.xpair.resize(static_cast<size_t>(n / 2));
    avx512::bf16_pairs(p.a.x, p.a.n_tok, p.a.w.n_in, b.xpair.data());
    p.xpair = b.xpair.data();
    return;
  }
#endif
  b.xr.resize(static_cast<size_t>(n));
  round_bf16(p.a.x, n, b.xr.data());
  p.a.x = b.xr.data();
}

void q8_prepare(JobPlan& p, Q8Buffers& b) {
  const int64_t n_tok = p.a.n_tok, n_in = p.a.w.n_in, half = n_tok * n_in / 2;
  if (p.mode == JobMode::kTilesQ8) {
    b.q.resize(static_cast<size_t>(n_tok * n_in));
    b.d.resize(static_cast<size_t>(n_tok * n_in / 16));
    b.nsum12.resize(b.d.size());
    avx2::q8_quantize(p.a.x, n_tok, n_in, b.q.data(), b.d.data());
    for (size_t k = 0; k < b.nsum12.size(); ++k) {
      int32_t s = 0;
      for (size_t i = 16 * k; i < 16 * k + 16; ++i) s += b.q[i];
      b.nsum12[k] = -12 * s;
    }
    p.q8.d = b.d.data();
    p.q8.q = b.q.data();
    p.q8.nsum12 = b.nsum12.data();
    return;
  }
  const bool gemv = p.mode == JobMode::kQ8Parts;
  b.q.resize(static_cast<size_t>(n_tok * n_in));
  b.d.resize(static_cast<size_t>(n_tok * n_in / 16));
  b.pr.resize(static_cast<size_t>(half * (gemv ? 2 : 1)));
  avx2::q8_quantize(p.a.x, n_tok, n_in, b.q.data(), b.d.data());
  avx2::q8_pairs(b.q.data(), n_tok, n_in, b.pr.data(), gemv ? b.pr.data() + half : nullptr);
  p.q8.d = b.d.data();
  p.q8.pair = b.pr.data();
  p.q8.flip = gemv ? b.pr.data() + half : nullptr;
}

bool plan_job(const CpuExec& ex, const LinearJob& j, int n_threads, JobPlan* p) {
  if (!avx2_args(*j.w, &p->a)) return false;
  p->a.x = j.x;
  p->a.n_tok = j.n_tok;
  p->a.bias = j.bias;
  p->a.y = j.y;
  const bool gemv = j.n_tok < avx2::kInMajorGemmMinTok;
  if (p->a.kind == avx2::WKind::kNvfp4Tiles32) {
#if defined(OSS4_HAVE_AVX512)
    if (ex.isa != KernelIsa::kAvx512 || !avx512::nvfp4_tiles_takes(p->a)) return false;
    p->mode = q8_applies(ex, *j.w) ? JobMode::kTilesQ8 : gemv ? JobMode::kTiles : JobMode::kTilesGemm;
    if (p->mode == JobMode::kTilesGemm && bf16_applies(ex, *j.w) && cpu_features().avx512bf16) p->mode = JobMode::kTilesBf16Gemm;
    const int64_t n_groups = j.w->n_out / 32;
    p->per_task = std::max<int64_t>(1, n_groups / (4 * n_threads));
    p->n_tasks = (n_groups + p->per_task - 1) / p->per_task;
    return true;
#else
    return false;
#endif
  }
  if (q8_applies(ex, *j.w) && avx2::nvfp4_q8_takes(p->a)) {
    p->mode = gemv ? JobMode::kQ8Parts : JobMode::kQ8Gemm;
  } else if (p->a.kind == avx2::WKind::kNvfp4InMajor && gemv && avx2::fp4_gemv_takes(p->a)) {
    p->mode = JobMode::kParts;
  } else {
    p->mode = JobMode::kRanges;
  }
  if (p->mode == JobMode::kParts || p->mode == JobMode::kQ8Parts) {
    p->n_parts = std::min<int64_t>(j.w->n_in / 16, kParts);
    p->n_tasks = p->n_parts;
  } else {
    // about 4 ranges per thread, so that a busy core does not hold the others up
    const int64_t n_units = (j.w->n_out + 31) / 32;
    p->per_task = std::max<int64_t>(1, n_units / (4 * n_threads));
    p->n_tasks = (n_units + p->per_task - 1) / p->per_task;
  }
  return true;
}

#if defined(OSS4_HAVE_AVX512)
// output group g of a tiled weight for n_tok >= kInMajorGemmMinTok tokens with f32 activations: the group put back in
// the input-major layout of a 32-output matrix (a few tens of kB, in cache) and run through the AVX2 GEMM, whose
// result goes to y's 32 columns of the group
void tiles_group_gemm(const avx2::LinearArgs& a, int64_t g) {
  thread_local std::vector<uint8_t> codes, scales;  // [n_in/2, 32], [n_in/16, 32]
  thread_local std::vector<float> y32;              // [n_tok, 32]
  const int64_t n_in = a.w.n_in, n_tok = a.n_tok;
  codes.resize(static_cast<size_t>(n_in / 2 * 32));
  scales.resize(static_cast<size_t>(n_in / 16 * 32));
  y32.resize(static_cast<size_t>(n_tok * 32));
  nvfp4_tiles_group_to_in_major(a.w, g, codes.data(), scales.data());
  avx2::LinearArgs s = a;
  s.kind = avx2::WKind::kNvfp4InMajor;
  s.w.layout = WeightLayout::kInMajor;
  s.w.n_out = 32;
  s.w.data = codes.data();
  s.w.scales = scales.data();
  s.bias = a.bias ? a.bias + 32 * g : nullptr;
  s.y = y32.data();
  avx2::f32_linear_range(s, 0, 32, thread_scratch(avx2::linear_scratch_floats(n_in, 32)));
  for (int64_t t = 0; t < n_tok; ++t) std::memcpy(a.y + t * a.w.n_out + 32 * g, y32.data() + t * 32, 32 * sizeof(float));
}
#endif

void run_task(const JobPlan& p, int64_t task) {
  const avx2::LinearArgs& a = p.a;
  switch (p.mode) {
    case JobMode::kParts:
    case JobMode::kQ8Parts: {
      const int64_t n_blk = a.w.n_in / 16, b0 = task * n_blk / p.n_parts, b1 = (task + 1) * n_blk / p.n_parts;
      float* part = p.parts + task * a.n_tok * a.w.n_out;
      if (p.mode == JobMode::kParts) {
        avx2::fp4_gemv_in_major_part(a, b0, b1, part);
      } else {
        avx2::nvfp4_q8_gemv_in_major_part(a, p.q8, b0, b1, part);
      }
      return;
    }
#if defined(OSS4_HAVE_AVX512)
    case JobMode::kTiles:
    case JobMode::kTilesQ8:
    case JobMode::kTilesGemm:
    case JobMode::kTilesBf16Gemm: {
      const int64_t g0 = task * p.per_task, g1 = std::min(a.w.n_out / 32, (task + 1) * p.per_task);
      if (p.mode == JobMode::kTilesBf16Gemm) {
        avx512::bf16a_nvfp4t_gemm(a, p.xpair, g0, g1, reinterpret_cast<uint32_t*>(thread_scratch(16 * a.w.n_in)));
      } else if (p.mode == JobMode::kTiles) {
        avx512::f32_nvfp4t_gemv(a, g0, g1);
      } else if (p.mode == JobMode::kTilesQ8) {
        avx512::q8a_nvfp4t_linear(a, p.q8, g0, g1);
      } else {
        for (int64_t g = g0; g < g1; ++g) tiles_group_gemm(a, g);
      }
      return;
    }
#else
    case JobMode::kTiles:
    case JobMode::kTilesQ8:
    case JobMode::kTilesGemm:
    case JobMode::kTilesBf16Gemm: return;  // never planned without the AVX-512 kernels
#endif
    case JobMode::kRanges:
    case JobMode::kQ8Gemm: {
      const int64_t o0 = task * p.per_task * 32, o1 = std::min(a.w.n_out, (task + 1) * p.per_task * 32);
      if (p.mode == JobMode::kRanges) {
        avx2::f32_linear_range(a, o0, o1, thread_scratch(avx2::linear_scratch_floats(a.w.n_in, a.w.n_out)));
      } else {
        avx2::nvfp4_q8_gemm_in_major(a, p.q8, o0, o1, reinterpret_cast<uint8_t*>(thread_scratch(avx2::nvfp4_q8_gemm_scratch_bytes() / 4)));
      }
      return;
    }
  }
}

// every job's tasks in one parallel region, then the parts' sums; false (nothing done) if a weight has no AVX2 kernel
bool linear_jobs_avx2(const CpuExec& ex, const LinearJob* jobs, int64_t n_jobs) {
  thread_local std::vector<JobPlan> plans;
  thread_local std::vector<Q8Buffers> q8_bufs;
  thread_local std::vector<Bf16Buffers> bf16_bufs;
  thread_local std::vector<float> parts;
  plans.assign(static_cast<size_t>(n_jobs), JobPlan{});
  if (static_cast<int64_t>(q8_bufs.size()) < n_jobs) q8_bufs.resize(static_cast<size_t>(n_jobs));
  if (static_cast<int64_t>(bf16_bufs.size()) < n_jobs) bf16_bufs.resize(static_cast<size_t>(n_jobs));
  int64_t n_tasks = 0, n_part_floats = 0;
  for (int64_t j = 0; j < n_jobs; ++j) {
    JobPlan& p = plans[static_cast<size_t>(j)];
    if (!plan_job(ex, jobs[j], ex.n_threads(), &p)) return false;
    p.first = n_tasks;
    n_tasks += p.n_tasks;
    n_part_floats += p.n_parts * p.a.n_tok * p.a.w.n_out;
  }
  if (static_cast<int64_t>(parts.size()) < n_part_floats) parts.resize(static_cast<size_t>(n_part_floats));
  int64_t off = 0;
  for (int64_t j = 0; j < n_jobs; ++j) {
    JobPlan& p = plans[static_cast<size_t>(j)];
    p.parts = parts.data() + off;
    off += p.n_parts * p.a.n_tok * p.a.w.n_out;
    if (p.mode == JobMode::kQ8Parts || p.mode == JobMode::kQ8Gemm || p.mode == JobMode::kTilesQ8) q8_prepare(p, q8_bufs[static_cast<size_t>(j)]);
    if (bf16_applies(ex, *jobs[j].w)) bf16_prepare(p, bf16_bufs[static_cast<size_t>(j)]);
  }
  // parts of a job of at most kFinishRange outputs are summed by whichever thread completes the job's last part, inside
  // the region (in part order, so the result does not depend on which thread it is); larger ones (an lm_head) after
  // the region, on the pool
  thread_local std::vector<std::atomic<int64_t>> parts_done;  // [n_jobs]
  if (static_cast<int64_t>(parts_done.size()) < n_jobs) parts_done = std::vector<std::atomic<int64_t>>(static_cast<size_t>(n_jobs));
  for (int64_t j = 0; j < n_jobs; ++j) parts_done[static_cast<size_t>(j)].store(0, std::memory_order_relaxed);
  const JobPlan* pl = plans.data();  // a thread_local named inside the lambda would be each worker's own
  std::atomic<int64_t>* done = parts_done.data();
  run_tasks(ex, n_tasks, [pl, n_jobs, done](int64_t task) {
    int64_t j = 0;
    while (j + 1 < n_jobs && task >= pl[j + 1].first) ++j;
    const JobPlan& p = pl[j];
    run_task(p, task - p.first);
    if (p.n_parts > 0 && p.a.w.n_out <= kFinishRange && done[j].fetch_add(1, std::memory_order_acq_rel) + 1 == p.n_parts)
      finish_parts(p, 0, p.a.w.n_out);
  });
  for (int64_t j = 0; j < n_jobs; ++j)
    if (pl[j].n_parts > 0 && pl[j].a.w.n_out > kFinishRange) finish_parts_pooled(ex, pl[j]);
  return true;
}
#endif

}  // namespace

const char* kernel_isa_name(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kRef: return "ref";
    case KernelIsa::kAvx2: return "avx2";
    case KernelIsa::kAvx512: return "avx512";
    case KernelIsa::kNeon: return "neon";
  }
  return "?";
}

Result<KernelIsa> parse_kernel_isa(const char* name) {
  const std::string s = name;
  if (s == "ref") return KernelIsa::kRef;
  if (s == "avx2") return KernelIsa::kAvx2;
  if (s == "avx512") return KernelIsa::kAvx512;
  if (s == "neon") return KernelIsa::kNeon;
  return error("unknown kernel rung '" + s + "' (expected ref, avx2, avx512 or neon)");
}

KernelIsa best_kernel_isa() {
  if (isa_available(KernelIsa::kAvx512)) return KernelIsa::kAvx512;
  return isa_available(KernelIsa::kAvx2) ? KernelIsa::kAvx2 : KernelIsa::kRef;
}

Status check_kernel_isa(KernelIsa isa) {
  if (!isa_available(isa)) {
    return error(std::string("kernel rung '") + kernel_isa_name(isa) + "' is not available on this CPU or in this build (CPU: " +
                 cpu_features_string() + ")");
  }
  return ok_status();
}

Result<KernelIsa> resolve_kernel_isa(const std::string& name) {
  if (name == "auto") {
    if (const char* e = std::getenv("OSS4_KERNELS")) {
      auto isa = parse_kernel_isa(e);
      if (isa.ok() && isa_available(*isa)) return *isa;
    }
    return best_kernel_isa();
  }
  OSS4_ASSIGN_OR_RETURN(KernelIsa isa, parse_kernel_isa(name.c_str()));
  OSS4_TRY(check_kernel_isa(isa));
  return isa;
}

void f32_linear_jobs(const CpuExec& ex, const LinearJob* jobs, int64_t n_jobs) {
#if defined(OSS4_HAVE_AVX2)
  if (runs_avx2(ex.isa) && linear_jobs_avx2(ex, jobs, n_jobs)) return;
#endif
  for (int64_t j = 0; j < n_jobs; ++j) {
    const LinearJob& jb = jobs[j];
    if (q8_applies(ex, *jb.w)) {
      f32_nvfp4w_q8a_linear_ref(*jb.w, jb.x, jb.n_tok, jb.bias, jb.y);
    } else if (bf16_applies(ex, *jb.w)) {
      std::vector<float> xr(static_cast<size_t>(jb.n_tok * jb.w->n_in));  // [n_tok, n_in] rounded to BF16
      round_bf16(jb.x, jb.n_tok * jb.w->n_in, xr.data());
      f32_linear_ref(*jb.w, xr.data(), jb.n_tok, jb.bias, jb.y);
    } else {
      f32_linear_ref(*jb.w, jb.x, jb.n_tok, jb.bias, jb.y);
    }
  }
}

void f32_linear(const CpuExec& ex, const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y) {
  const LinearJob job{&w, x, n_tok, bias, y};
  f32_linear_jobs(ex, &job, 1);
}

void f32_swiglu(const CpuExec& ex, const float* gu, int64_t n_rows, int64_t n_ff, float alpha, float limit, float* out) {
#if defined(OSS4_HAVE_AVX2)
  if (runs_avx2(ex.isa)) {
    // rows per task: a prompt chunk's few thousand rows are worth spreading, a decode step's four are not
    constexpr int64_t kRows = 16;
    run_tasks(ex, (n_rows + kRows - 1) / kRows, [&](int64_t task) {
      for (int64_t r = task * kRows; r < std::min(n_rows, (task + 1) * kRows); ++r)
        avx2::f32_swiglu(gu + r * 2 * n_ff, n_ff, alpha, limit, out + r * n_ff);
    });
    return;
  }
#endif
  for (int64_t r = 0; r < n_rows; ++r) f32_swiglu_ref(gu + r * 2 * n_ff, n_ff, alpha, limit, out + r * n_ff);
}

void f32_sdpa_sink(const CpuExec& ex, const float* q, const int64_t* pos, int64_t n_tok, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                   const KvLayerView& kv, int64_t window, const float* sinks, float scale, float* out) {
#if defined(OSS4_HAVE_AVX2)
  if (runs_avx2(ex.isa)) {
    const int64_t group = n_heads / n_kv_heads;
    // token t's query head h (and from it, for the group kernel, the rest of h's group) against its key/value head
    auto args = [&](int64_t t, int64_t h) {
      avx2::SdpaHeadArgs a;
      a.q = q + (t * n_heads + h) * head_dim;
      a.k = kv.k + (h / group) * head_dim;
      a.v = kv.v + (h / group) * head_dim;
      a.kv_stride = n_kv_heads * head_dim;
      a.capacity = kv.capacity;
      a.ring = kv.ring;
      a.head_dim = head_dim;
      a.hi = pos[t];
      a.lo = window > 0 ? std::max<int64_t>(0, pos[t] - window + 1) : 0;
      a.sink = sinks[h];
      a.scale = scale;
      return a;
    };
    if (avx2::sdpa_group_takes(head_dim)) {
      // one task per (token, key/value head): the group's query heads share each K and V row it reads
      run_tasks(ex, n_tok * n_kv_heads, [&](int64_t task) {
        const int64_t t = task / n_kv_heads, h0 = task % n_kv_heads * group;
        const avx2::SdpaHeadArgs a = args(t, h0);
        avx2::f32_sdpa_sink_group(a, group, sinks + h0, thread_scratch(group * (a.hi - a.lo + 3)), out + (t * n_heads + h0) * head_dim);
      });
    } else {
      run_tasks(ex, n_tok * n_heads, [&](int64_t task) {
        const int64_t t = task / n_heads, h = task % n_heads;
        const avx2::SdpaHeadArgs a = args(t, h);
        avx2::f32_sdpa_sink_head(a, thread_scratch(a.hi - a.lo + 1), out + (t * n_heads + h) * head_dim);
      });
    }
    return;
  }
#endif
  f32_sdpa_sink_ref(q, pos, n_tok, n_heads, n_kv_heads, head_dim, kv, window, sinks, scale, out);
}

}  // namespace oss4
