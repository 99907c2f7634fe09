#include "backend/backend.h"

#include <string>

#include "backend/cpu/cpu_forward.h"
#ifdef OSS4_HAVE_CUDA
#include "backend/cuda/cuda_forward.h"
#endif

namespace oss4 {

namespace {

struct BackendEntry {
  const char* device;
  Status (*check)(const BackendOptions&);  // the options alone (before any weights)
  Result<std::unique_ptr<Forward>> (*make)(const ModelWeights&, const BackendOptions&, const ProgressFn&);
};

// every backend this build has, one line each
constexpr BackendEntry kBackends[] = {
    {"cpu", check_cpu_options, make_cpu_forward},
#ifdef OSS4_HAVE_CUDA
    {"cuda", check_cuda_options, make_cuda_forward},
#endif
};

Result<const BackendEntry*> find_backend(const BackendOptions& o) {
  if (o.threads < 0) return error("--threads: must be 0 (every core) or more, not " + std::to_string(o.threads));
  if (o.device == "auto") {
#ifdef OSS4_HAVE_CUDA
    if (cuda_device_count() > 0) return &kBackends[1];  // the GPU when one is visible
#endif
    return &kBackends[0];
  }
  std::string names;
  for (const BackendEntry& b : kBackends) {
    if (o.device == b.device) return &b;
    names += std::string(names.empty() ? "" : ", ") + b.device;
  }
  if (o.device == "cuda") return error("--device cuda: this build has no CUDA backend (it was built without nvcc)");
  return error("--device '" + o.device + "': this build runs models on: auto, " + names);
}

}  // namespace

Status check_backend_options(const BackendOptions& o) {
  OSS4_ASSIGN_OR_RETURN(const BackendEntry* b, find_backend(o));
  return b->check(o);
}

Result<std::unique_ptr<Forward>> make_forward(const ModelWeights& m, const BackendOptions& o, const ProgressFn& progress) {
  OSS4_ASSIGN_OR_RETURN(const BackendEntry* b, find_backend(o));
  OSS4_TRY(b->check(o));
  return b->make(m, o, progress);
}

}  // namespace oss4
