// MXFP4 codec, scalar reference: FP4 E2M1 elements, one E8M0 scale per 32 elements along the input dim (the OCP MX
// layout of the released gpt-oss experts). The reference rung that SIMD and CUDA decoders are tested against.
#pragma once

#include <cstdint>

namespace oss4 {

// one row of an MXFP4 matrix decoded to f32: blocks [n_in/32, 16] u8, scales [n_in/32] e8m0 -> out [n_in].
void mxfp4_decode_row_ref(const uint8_t* blocks, const uint8_t* scales, int64_t n_in, float* out);

}  // namespace oss4
