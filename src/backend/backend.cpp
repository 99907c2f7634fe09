#include "backend/backend.h"

#include "backend/cpu/cpu_forward.h"

namespace oss4 {

namespace {
bool is_cpu(const BackendOptions& o) { return o.device == "auto" || o.device == "cpu"; }
Status unknown_device(const BackendOptions& o) {
  return error("--device '" + o.device + "': this build runs models on the CPU only (auto or cpu)");
}
}  // namespace

Status check_backend_options(const BackendOptions& o) {
  if (o.threads < 0) return error("--threads: must be 0 (every core) or more, not " + std::to_string(o.threads));
  if (is_cpu(o)) return check_cpu_options(o);
  return unknown_device(o);
}

Result<std::unique_ptr<Forward>> make_forward(const ModelWeights& m, const BackendOptions& o) {
  OSS4_TRY(check_backend_options(o));
  if (is_cpu(o)) return make_cpu_forward(m, o);
  return unknown_device(o);
}

}  // namespace oss4
