// Calibration for NVFP4 export, as ModelOpt's max calibration does it: run prompts through the model and record
// the largest |input| of every quantized linear; input_scale = amax / (6 * 448).
#pragma once

#include <cstdint>
#include <vector>

#include "model/weights.h"
#include "runtime/forward.h"

namespace oss4 {

struct LayerInputAmax {
  float qkv = 0;      // q/k/v input (the normed residual), shared as ModelOpt's export fuses them
  float o = 0;        // o_proj input (attention output)
  float gate_up = 0;  // experts' gate_up input (the normed residual of every routed token)
  float down = 0;     // experts' down_proj input (SwiGLU output of every routed token and expert)
};

// runs each prompt (token ids) through the model from an empty cache; progress counts prompts.
Result<std::vector<LayerInputAmax>> calibrate_input_amax(Forward& fwd, const std::vector<std::vector<int32_t>>& prompts,
                                                        const ProgressFn& progress = nullptr);

// the NVFP4 activation scale of an amax (NVFP4QTensor.get_activation_scaling_factor): amax / (6 * 448) in f32.
float nvfp4_input_scale(float amax);

// a few varied prompts (chat in the harmony format, prose, code, numbers) for calibration without a file.
const std::vector<const char*>& builtin_calibration_texts();

}  // namespace oss4
