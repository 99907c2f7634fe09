// A weight of any form decoded to f32 with the scalar reference codecs: what the quantizer reads and what a load
// that quantizes (ModelOpt fake-quant) starts from.
#pragma once

#include "model/weights.h"

namespace oss4 {

// every element of a weight as f32, [n_out, n_in] row-major (any WeightType, either orientation).
void decode_weight_f32(const LinearWeight& w, float* out);

}  // namespace oss4
