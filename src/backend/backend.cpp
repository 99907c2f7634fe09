#include "backend/backend.h"

#include "backend/cpu/cpu_forward.h"

namespace oss4 {

Result<std::unique_ptr<Forward>> make_forward(const ModelWeights& m, const BackendOptions& o) {
  if (o.device == "auto" || o.device == "cpu") return make_cpu_forward(m, o);
  return error("device '" + o.device + "': this build runs models on the CPU only (auto or cpu)");
}

}  // namespace oss4
