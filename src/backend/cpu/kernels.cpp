#include "backend/cpu/kernels.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "quant/float_formats.h"

#if defined(OSS4_HAVE_AVX2)
#include "backend/cpu/x86/gemv_fp4_avx2.h"
#include "backend/cpu/x86/kernels_avx2.h"
#endif

namespace oss4 {

namespace {

bool isa_available(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kRef: return true;
#if defined(OSS4_HAVE_AVX2)
    case KernelIsa::kAvx2: return cpu_features().avx2 && cpu_features().fma && cpu_features().f16c;
#endif
    default: return false;
  }
}

KernelIsa initial_isa() {
  if (const char* e = std::getenv("OSS4_KERNELS")) {
    auto isa = parse_kernel_isa(e);
    if (isa.ok() && isa_available(*isa)) return *isa;
  }
  return best_kernel_isa();
}

KernelIsa& isa_slot() {
  static KernelIsa isa = initial_isa();
  return isa;
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

bool avx2_args(const LinearWeight& w, avx2::LinearArgs* a) {
  switch (w.type) {
    case WeightType::kF32:
      if (w.in_major) return false;
      a->kind = avx2::WKind::kF32;
      break;
    case WeightType::kBF16: a->kind = w.in_major ? avx2::WKind::kBF16InMajor : avx2::WKind::kBF16; break;
    case WeightType::kMxfp4:
      if (w.n_in % 32 != 0) return false;
      a->kind = avx2::WKind::kMxfp4;
      break;
    case WeightType::kNvfp4:
      if (w.n_in % 16 != 0) return false;
      a->kind = w.in_major ? avx2::WKind::kNvfp4InMajor : avx2::WKind::kNvfp4;
      break;
  }
  a->n_out = w.n_out;
  a->n_in = w.n_in;
  a->data = w.data;
  a->scales = w.scales;
  a->scale2 = w.scale2;
  a->e4m3_lut = luts().e4m3;
  a->e8m0_lut = luts().e8m0;
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

KernelIsa best_kernel_isa() { return isa_available(KernelIsa::kAvx2) ? KernelIsa::kAvx2 : KernelIsa::kRef; }

KernelIsa kernel_isa() { return isa_slot(); }

Status set_kernel_isa(KernelIsa isa) {
  if (!isa_available(isa)) {
    return error(std::string("kernel rung '") + kernel_isa_name(isa) + "' is not available on this CPU or in this build (CPU: " +
                 cpu_features_string() + ")");
  }
  isa_slot() = isa;
  return ok_status();
}

void f32_linear(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y) {
#if defined(OSS4_HAVE_AVX2)
  avx2::LinearArgs a;
  if (kernel_isa() == KernelIsa::kAvx2 && avx2_args(w, &a)) {
    a.x = x;
    a.n_tok = n_tok;
    a.bias = bias;
    a.y = y;
    ThreadPool& pool = kernel_pool();
    if (a.kind == avx2::WKind::kNvfp4InMajor && n_tok < avx2::kInMajorGemmMinTok && avx2::fp4_gemv_takes(a)) {
      // decode GEMV of in-major NVFP4 (experts, repacked attention and lm_head): split along the inputs so every
      // thread streams a contiguous range, the parts summed in order at the end. A fixed number of parts (not one
      // per thread) keeps the result independent of the thread count and lets a free core take a busy one's share.
      constexpr int64_t kParts = 16;
      const int64_t n_blk = w.n_in / 16, n = n_tok * w.n_out;
      const int64_t n_parts = std::min<int64_t>(n_blk, kParts);
      thread_local std::vector<float> parts;  // [n_parts, n_tok, n_out]
      if (static_cast<int64_t>(parts.size()) < n_parts * n) parts.resize(static_cast<size_t>(n_parts * n));
      float* buf = parts.data();  // a thread_local named inside the lambda would be each worker's own
      pool.run(n_parts, [&](int64_t p) {
        avx2::fp4_gemv_in_major_part(a, p * n_blk / n_parts, (p + 1) * n_blk / n_parts, buf + p * n);
      });
      // the sum of the parts: on the caller for the model's matrices (a few thousand outputs, tens of microseconds,
      // less than a parallel region costs), in ranges of 8192 outputs on the pool for an lm_head (201088)
      constexpr int64_t kFinishRange = 8192;
      if (w.n_out <= kFinishRange) {
        avx2::fp4_gemv_in_major_finish(a, buf, n_parts, 0, w.n_out);
      } else {
        pool.run((w.n_out + kFinishRange - 1) / kFinishRange, [&](int64_t r) {
          avx2::fp4_gemv_in_major_finish(a, buf, n_parts, r * kFinishRange, std::min(w.n_out, (r + 1) * kFinishRange));
        });
      }
      return;
    }
    // ranges of 32 outputs or more, about 4 per thread so that a busy core does not hold the others up
    const int64_t n_units = (w.n_out + 31) / 32;
    const int64_t per_task = std::max<int64_t>(1, n_units / (4 * pool.n_threads()));
    const int64_t n_tasks = (n_units + per_task - 1) / per_task;
    const int64_t scratch_n = avx2::linear_scratch_floats(w.n_in, w.n_out);
    pool.run(n_tasks, [&](int64_t task) {
      const int64_t o0 = task * per_task * 32, o1 = std::min(w.n_out, (task + 1) * per_task * 32);
      avx2::f32_linear_range(a, o0, o1, thread_scratch(scratch_n));
    });
    return;
  }
#endif
  f32_linear_ref(w, x, n_tok, bias, y);
}

void f32_sdpa_sink(const float* q, const int64_t* pos, int64_t n_tok, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                   const KvLayerView& kv, int64_t window, const float* sinks, float scale, float* out) {
#if defined(OSS4_HAVE_AVX2)
  if (kernel_isa() == KernelIsa::kAvx2) {
    const int64_t group = n_heads / n_kv_heads;
    kernel_pool().run(n_tok * n_heads, [&](int64_t task) {
      const int64_t t = task / n_heads, h = task % n_heads;
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
      avx2::f32_sdpa_sink_head(a, thread_scratch(a.hi - a.lo + 1), out + (t * n_heads + h) * head_dim);
    });
    return;
  }
#endif
  f32_sdpa_sink_ref(q, pos, n_tok, n_heads, n_kv_heads, head_dim, kv, window, sinks, scale, out);
}

}  // namespace oss4
