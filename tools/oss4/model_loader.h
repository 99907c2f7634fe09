// Loading a model for a command, with progress and one-line errors.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "backend/cpu/kernels.h"
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


inline constexpr const char* kLmHeadHelp =
    "lm_head weights: stored (as the checkpoint has them: BF16, or NVFP4 from oss4 quantize --lm-head nvfp4), bf16 (a BF16 "
    "lm_head as stored), or nvfp4 (a BF16 one quantized at load; see oss4 compare --lm-head-b)";
inline constexpr const char* kActivationsHelp =
    "activations of the NVFP4 matmuls: f32 (default, W4A16) or q8 (opt-in fast path: quantized to 8 bits per 16 inputs; "
    "see oss4 compare --activations-b)";

// how a command runs the model: the numeric options every running command takes
struct RunOptions {
  std::string lm_head = "stored";
  std::string activations = "f32";
};

inline void add_run_options(CLI::App* sub, RunOptions* o) {
  sub->add_option("--lm-head", o->lm_head, kLmHeadHelp)->capture_default_str();
  sub->add_option("--activations", o->activations, kActivationsHelp)->capture_default_str();
}

// loads a model to run it: sets the activation precision (process-wide, like the kernel rung), applies the
// --lm-head option ("stored" keeps it as it is), then repacks row-major NVFP4 matrices to the layout the CPU kernels
// stream fastest (model/repack.h).
inline Result<ModelWeights> load_to_run(const std::string& dir, bool quiet, const RunOptions& o) {
  auto act = parse_act_precision(o.activations.c_str());
  if (!act.ok()) return act.status().with_context("--activations");
  set_act_precision(*act);
  OSS4_ASSIGN_OR_RETURN(ModelWeights m, load_with_progress(dir, quiet));
  OSS4_TRY(set_lm_head_type(m, o.lm_head));
  OSS4_TRY(repack_nvfp4_in_major(m).status());
  return m;
}

}  // namespace oss4::cli
