#include "backend/cpu/nvfp4_ref.h"

#include <vector>

#include "numeric/nvfp4.h"

namespace oss4 {

void f32_nvfp4w_matmul_ref(const uint8_t* packed, const uint8_t* scales, float scale2, int64_t n_out, int64_t n_in,
                           const float* x, int64_t n_tok, const float* bias, float* y) {
  std::vector<float> row(static_cast<size_t>(n_in));  // [n_in] f32, one decoded weight row
  for (int64_t o = 0; o < n_out; ++o) {
    nvfp4_decode_row_ref(packed + o * (n_in / 2), scales + o * (n_in / kNvfp4Block), scale2, n_in, row.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      const float* xt = x + t * n_in;
      float acc = 0.0f;
      for (int64_t i = 0; i < n_in; ++i) acc += row[static_cast<size_t>(i)] * xt[i];
      y[t * n_out + o] = acc + (bias ? bias[o] : 0.0f);
    }
  }
}

}  // namespace oss4
