#include "numeric/mxfp4.h"

#include "numeric/float_formats.h"

namespace oss4 {

void mxfp4_decode_row_ref(const uint8_t* blocks, const uint8_t* scales, int64_t n_in, float* out) {
  const int64_t n_groups = n_in / 32;
  for (int64_t g = 0; g < n_groups; ++g) {
    const float s = e8m0_to_f32(scales[g]);
    const uint8_t* b = blocks + g * 16;
    for (int64_t j = 0; j < 16; ++j) {
      out[g * 32 + 2 * j] = kE2m1Lut[b[j] & 0x0f] * s;
      out[g * 32 + 2 * j + 1] = kE2m1Lut[b[j] >> 4] * s;
    }
  }
}

}  // namespace oss4
