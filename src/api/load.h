// Loading a checkpoint to run it: the options every running command takes, turned into BackendOptions in one place
// (the CLI's loader and the public API's Model::load both come here), then the weights and their backend.
#pragma once

#include <memory>
#include <string>

#include "backend/options.h"
#include "model/weights.h"
#include "oss4/status.h"
#include "runtime/forward.h"

namespace oss4 {

struct RunOptions {
  std::string device = "auto";      // auto | cpu | cuda
  std::string lm_head = "stored";   // stored | bf16 | nvfp4
  std::string activations = "auto"; // auto (the backend's default: f32 on the CPU, bf16 on CUDA) | f32 | bf16 | q8
  std::string kernels = "auto";     // auto | ref | avx2 | avx512
  int threads = 0;                  // 0: OSS4_THREADS, else every core
};

// the options checked and typed; errors name the option
Result<BackendOptions> backend_options(const RunOptions& o);

// the host weights and the backend that runs them (fwd refers to *weights: keep them together, fwd destroyed first)
struct LoadedModel {
  std::unique_ptr<ModelWeights> weights;
  std::unique_ptr<Forward> fwd;
};

// checks the options, loads the checkpoint, makes its backend (which prepares its weights: the lm_head option, the
// CPU's repack). progress: layers loaded; prepare_progress (optional): matrices the backend has prepared.
Result<LoadedModel> load_model_to_run(const std::string& dir, const RunOptions& o, const ProgressFn& progress,
                                      const ProgressFn& prepare_progress = nullptr);

}  // namespace oss4
