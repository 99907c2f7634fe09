// A backend under test, as the kernel checks (kernel_checks.h) see it: memory hooks to move data between the host and
// the backend's memory, a step that takes a host weight into the backend's layout and memory, and the ops with the
// signatures of the dispatching kernels (backend/cpu/kernels.h), run on backend memory. Every check's data goes in
// through upload and its results come back through download, so a new backend inherits every error bound and shape
// the CPU's SIMD rung is held to.
//
// cpu_backend makes the CPU's instances: host memory, memcpy hooks, kernels.h with a CpuExec that owns a thread pool.
// A CUDA backend adds its own instance (tests/cuda) with cudaMalloc/cudaFree and cudaMemcpy hooks, a prepare_weight
// that repacks and uploads, and its launchers as the ops; the checks stay as they are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/options.h"
#include "model/weights.h"
#include "runtime/kv_view.h"

namespace oss4 {

struct KernelBackend {
  std::string name;  // names the instance in failures: rung, activation precision, threads

  // backend memory: alloc(bytes) -> pointer the ops take (never null, also for 0 bytes); free(pointer)
  std::function<void*(size_t bytes)> alloc;
  std::function<void(void* p)> free;
  // host -> backend and backend -> host, bytes each
  std::function<void(void* dev, const void* host, size_t bytes)> upload;
  std::function<void(void* host, const void* dev, size_t bytes)> download;

  // a host weight (data and scales in host memory) -> the same weight in the backend's layout and memory; the
  // backend owns that memory until it is destroyed
  std::function<LinearWeight(const LinearWeight& host)> prepare_weight;

  // the ops, on backend memory (weights from prepare_weight); shapes as in kernels.h
  std::function<void(const LinearJob* jobs, int64_t n_jobs)> linear_jobs;
  // gu [n_rows, 2 n_ff] -> out [n_rows, n_ff]
  std::function<void(const float* gu, int64_t n_rows, int64_t n_ff, float alpha, float limit, float* out)> swiglu;
  // q [n_tok, n_heads, head_dim], pos [n_tok], kv.k / kv.v [capacity, n_kv_heads, head_dim], sinks [n_heads]
  // -> out [n_tok, n_heads * head_dim]
  std::function<void(const float* q, const int64_t* pos, int64_t n_tok, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                     const KvLayerView& kv, int64_t window, const float* sinks, float scale, float* out)>
      sdpa_sink;

  // what the hooks share (thread pool, prepared weights' memory); released with the last copy of the backend
  std::shared_ptr<void> state;
};

// the CPU at a rung (check_kernel_isa(isa) must be ok), an activation precision and a thread count (0: every core)
KernelBackend cpu_backend(KernelIsa isa, ActPrecision act, int threads);

// bytes of a weight's data and of its scales in the host layouts of model/weights.h
size_t weight_data_bytes(const LinearWeight& w);
size_t weight_scale_bytes(const LinearWeight& w);

// one allocation in a backend's memory, freed with the buffer
class BackendBuffer {
 public:
  BackendBuffer(KernelBackend& be, size_t bytes) : be_(&be), bytes_(bytes), p_(be.alloc(bytes)) {}
  ~BackendBuffer() { be_->free(p_); }
  BackendBuffer(const BackendBuffer&) = delete;
  BackendBuffer& operator=(const BackendBuffer&) = delete;

  // a buffer holding a copy of host
  template <class T>
  static std::unique_ptr<BackendBuffer> upload(KernelBackend& be, const std::vector<T>& host) {
    auto b = std::make_unique<BackendBuffer>(be, host.size() * sizeof(T));
    be.upload(b->p_, host.data(), b->bytes_);
    return b;
  }
  // the buffer's contents as n values of T (n * sizeof(T) <= bytes)
  template <class T>
  std::vector<T> download(size_t n) const {
    std::vector<T> host(n);
    be_->download(host.data(), p_, n * sizeof(T));
    return host;
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  KernelBackend* be_;
  size_t bytes_;
  void* p_;
};

}  // namespace oss4
