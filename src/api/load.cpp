#include "api/load.h"

#include "backend/backend.h"

namespace oss4 {

Result<BackendOptions> backend_options(const RunOptions& o) {
  BackendOptions b;
  b.device = o.device;
  b.kernels = o.kernels;
  b.threads = o.threads;
  if (o.activations != "auto") {
    auto act = parse_act_precision(o.activations.c_str());
    if (!act.ok()) return act.status().with_context("--activations");
    b.activations = *act;
    b.activations_given = true;
  }
  OSS4_ASSIGN_OR_RETURN(b.lm_head, parse_lm_head_type(o.lm_head));
  OSS4_TRY(check_backend_options(b));
  return b;
}

Result<LoadedModel> load_model_to_run(const std::string& dir, const RunOptions& o, const ProgressFn& progress,
                                      const ProgressFn& prepare_progress) {
  OSS4_ASSIGN_OR_RETURN(BackendOptions bo, backend_options(o));
  LoadedModel lm;
  OSS4_ASSIGN_OR_RETURN(ModelWeights m, load_model(dir, progress));
  lm.weights = std::make_unique<ModelWeights>(std::move(m));
  OSS4_ASSIGN_OR_RETURN(lm.fwd, make_forward(*lm.weights, bo, prepare_progress));
  return lm;
}

}  // namespace oss4
