#include "kernel_backend.h"

#include <cstring>
#include <new>

#include "core/thread_pool.h"
#include "numeric/nvfp4_tiles.h"

namespace oss4 {

namespace {

// 64-byte aligned host memory, as the CPU backend's own buffers are
constexpr std::align_val_t kAlign{64};
void* host_alloc(size_t bytes) { return ::operator new(bytes == 0 ? 1 : bytes, kAlign); }
void host_free(void* p) { ::operator delete(p, kAlign); }

// what a CPU instance's hooks share
struct CpuState {
  std::unique_ptr<ThreadPool> pool;
  CpuExec ex;
  std::vector<void*> weights;  // data and scales of prepared weights
  ~CpuState() {
    for (void* p : weights) host_free(p);
  }
};

}  // namespace

size_t weight_data_bytes(const LinearWeight& w) {
  const size_t n = static_cast<size_t>(w.n_out * w.n_in);
  switch (w.type) {
    case WeightType::kF32: return n * 4;
    case WeightType::kBF16: return n * 2;
    case WeightType::kMxfp4:
    case WeightType::kNvfp4: return n / 2;
  }
  return 0;
}

size_t weight_scale_bytes(const LinearWeight& w) {
  const size_t n = static_cast<size_t>(w.n_out * w.n_in);
  switch (w.type) {
    case WeightType::kF32:
    case WeightType::kBF16: return 0;
    case WeightType::kMxfp4: return n / 32;
    case WeightType::kNvfp4: return n / 16;
  }
  return 0;
}

KernelBackend cpu_backend(KernelIsa isa, ActPrecision act, int threads) {
  auto st = std::make_shared<CpuState>();
  const int n_threads = resolve_threads(threads);
  st->pool = std::make_unique<ThreadPool>(n_threads);
  st->ex = CpuExec{isa, act, st->pool.get()};
  CpuState* s = st.get();  // the hooks' copy; the backend's state keeps it alive

  KernelBackend be;
  be.name = std::string(kernel_isa_name(isa)) + " " + act_precision_name(act) + " " + std::to_string(n_threads) + " threads";
  be.alloc = host_alloc;
  be.free = host_free;
  be.upload = [](void* dev, const void* host, size_t bytes) {
    if (bytes > 0) std::memcpy(dev, host, bytes);
  };
  be.download = [](void* host, const void* dev, size_t bytes) {
    if (bytes > 0) std::memcpy(host, dev, bytes);
  };
  // the kernels take every host layout as it is (a copy into memory the backend owns), except that the AVX-512 rung
  // runs NVFP4 in 32-output tiles, as the CPU backend's prepare step makes them (backend/cpu/prepare.h)
  be.prepare_weight = [s](const LinearWeight& host) {
    LinearWeight w = host;
    const size_t n_data = weight_data_bytes(host), n_scales = weight_scale_bytes(host);
    const bool tiles = s->ex.isa == KernelIsa::kAvx512 && host.type == WeightType::kNvfp4 && nvfp4_tiles_fit(host.n_out, host.n_in);
    void* data = host_alloc(n_data);  // [n_data] bytes
    s->weights.push_back(data);
    void* scales = n_scales > 0 ? host_alloc(n_scales) : nullptr;  // [n_scales] bytes
    if (scales != nullptr) s->weights.push_back(scales);
    if (tiles) {
      nvfp4_to_tiles(host, 0, host.n_out / 32, static_cast<uint8_t*>(data), static_cast<uint8_t*>(scales));
      w.layout = WeightLayout::kTiles32;
    } else {
      std::memcpy(data, host.data, n_data);
      if (scales != nullptr) std::memcpy(scales, host.scales, n_scales);
    }
    w.data = static_cast<const uint8_t*>(data);
    if (scales != nullptr) w.scales = static_cast<const uint8_t*>(scales);
    return w;
  };
  be.linear_jobs = [s](const LinearJob* jobs, int64_t n_jobs) { f32_linear_jobs(s->ex, jobs, n_jobs); };
  be.swiglu = [s](const float* gu, int64_t n_rows, int64_t n_ff, float alpha, float limit, float* out) {
    f32_swiglu(s->ex, gu, n_rows, n_ff, alpha, limit, out);
  };
  be.sdpa_sink = [s](const float* q, const int64_t* pos, int64_t n_tok, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                     const KvLayerView& kv, int64_t window, const float* sinks, float scale, float* out) {
    f32_sdpa_sink(s->ex, q, pos, n_tok, n_heads, n_kv_heads, head_dim, kv, window, sinks, scale, out);
  };
  be.state = std::move(st);
  return be;
}

}  // namespace oss4
