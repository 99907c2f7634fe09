// Loading a model for a command, with progress and one-line errors.
#pragma once

#include <cstdio>
#include <memory>

#include "core/progress.h"
#include "model/lm_head.h"
#include "model/repack.h"
#include "model/weights.h"

namespace oss4::cli {

inline Result<ModelWeights> load_with_progress(const std::string& dir, bool quiet) {
  std::unique_ptr<Progress> p;
  auto m = load_model(dir, [&](int64_t done, int64_t total) {
    if (quiet) return;
    if (!p) p = std::make_unique<Progress>("loading " + dir, total, "layers");
    p->update(done);
  });
  if (p) p->finish();
  return m;
}

// loads a model to run it: applies the --lm-head option ("bf16" keeps it as stored), then repacks row-major NVFP4
// matrices to the layout the CPU kernels stream fastest (model/repack.h).
inline Result<ModelWeights> load_with_lm_head(const std::string& dir, bool quiet, const std::string& lm_head) {
  OSS4_ASSIGN_OR_RETURN(ModelWeights m, load_with_progress(dir, quiet));
  OSS4_TRY(set_lm_head_type(m, lm_head));
  OSS4_TRY(repack_nvfp4_in_major(m).status());
  return m;
}

inline constexpr const char* kLmHeadHelp = "lm_head weights: bf16 (as stored) or nvfp4 (requantized at load; see oss4 compare --lm-head-b)";

}  // namespace oss4::cli
