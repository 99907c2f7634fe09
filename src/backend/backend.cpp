#include "backend/backend.h"

#include <string>

#include "backend/cpu/cpu_forward.h"

namespace oss4 {

namespace {

struct BackendEntry {
  const char* device;
  Status (*check)(const BackendOptions&);  // the options alone (before any weights)
  Result<std::unique_ptr<Forward>> (*make)(const ModelWeights&, const BackendOptions&, const ProgressFn&);
};

// every backend this build has, one line each; "auto" takes the first
constexpr BackendEntry kBackends[] = {
    {"cpu", check_cpu_options, make_cpu_forward},
};

Result<const BackendEntry*> find_backend(const BackendOptions& o) {
  if (o.threads < 0) return error("--threads: must be 0 (every core) or more, not " + std::to_string(o.threads));
  if (o.device == "auto") return &kBackends[0];
  std::string names;
  for (const BackendEntry& b : kBackends) {
    if (o.device == b.device) return &b;
    names += std::string(names.empty() ? "" : ", ") + b.device;
  }
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
