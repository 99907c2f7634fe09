#include "api/load.h"

#include "backend/cpu/kernels.h"
#include "model/lm_head.h"
#include "model/repack.h"

namespace oss4 {

Result<ModelWeights> load_model_to_run(const std::string& dir, const RunOptions& o, const ProgressFn& progress) {
  auto act = parse_act_precision(o.activations.c_str());
  if (!act.ok()) return act.status().with_context("--activations");
  set_act_precision(*act);
  OSS4_ASSIGN_OR_RETURN(ModelWeights m, load_model(dir, progress));
  OSS4_TRY(set_lm_head_type(m, o.lm_head));
  OSS4_TRY(repack_nvfp4_in_major(m).status());
  return m;
}

}  // namespace oss4
