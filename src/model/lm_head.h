// The lm_head option: gpt-oss checkpoints (and ModelOpt's NVFP4 export) keep lm_head in BF16, about 1.16 GB that
// every decoded token reads. Requantizing it to NVFP4 at load time cuts that to 0.33 GB; `oss4 compare` shows the
// accuracy it costs (--lm-head-b nvfp4).
#pragma once

#include <string>

#include "model/weights.h"

namespace oss4 {

// "bf16" (as stored: nothing to do) or "nvfp4": lm_head quantized with ModelOpt's NVFP4 rules (global amax = max |w|,
// E4M3 block scales per 16 inputs) into memory m owns; the stored tensor's pages are released afterwards.
Status set_lm_head_type(ModelWeights& m, const std::string& type);

}  // namespace oss4
