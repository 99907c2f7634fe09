// Loading a checkpoint to run it: the numeric options every running command takes, applied in one place (the CLI's
// loader and the public API's Model::load both come here).
#pragma once

#include <string>

#include "model/weights.h"
#include "oss4/status.h"

namespace oss4 {

struct RunOptions {
  std::string lm_head = "stored";   // stored | bf16 | nvfp4
  std::string activations = "f32";  // f32 | q8
};

// sets the activation precision (process-wide, like the kernel rung), loads the checkpoint, applies the lm_head
// option ("stored" keeps it as it is), then repacks row-major NVFP4 matrices to the layout the CPU kernels stream
// fastest (model/repack.h).
Result<ModelWeights> load_model_to_run(const std::string& dir, const RunOptions& o, const ProgressFn& progress);

}  // namespace oss4
