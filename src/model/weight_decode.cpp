#include "model/weight_decode.h"

#include "numeric/float_formats.h"
#include "numeric/mxfp4.h"
#include "numeric/nvfp4.h"
#include "numeric/nvfp4_tiles.h"

namespace oss4 {

void decode_weight_f32(const LinearWeight& w, float* out) {
  const int64_t n_out = w.n_out, n_in = w.n_in;
  auto at = [&](int64_t o, int64_t i) -> float& { return out[o * n_in + i]; };
  switch (w.type) {
    case WeightType::kF32:
    case WeightType::kBF16:
      for (int64_t o = 0; o < n_out; ++o)
        for (int64_t i = 0; i < n_in; ++i) {
          const int64_t k = w.in_major() ? i * n_out + o : o * n_in + i;
          at(o, i) = w.type == WeightType::kF32 ? reinterpret_cast<const float*>(w.data)[k]
                                                : bf16_to_f32(reinterpret_cast<const uint16_t*>(w.data)[k]);
        }
      return;
    case WeightType::kMxfp4:
      for (int64_t o = 0; o < n_out; ++o) mxfp4_decode_row_ref(w.data + o * n_in / 2, w.scales + o * n_in / 32, n_in, out + o * n_in);
      return;
    case WeightType::kNvfp4:
      if (w.layout == WeightLayout::kRowMajor) {
        for (int64_t o = 0; o < n_out; ++o) nvfp4_decode_row_ref(w.data + o * n_in / 2, w.scales + o * n_in / 16, w.scale2, n_in, out + o * n_in);
        return;
      }
      for (int64_t i = 0; i < n_in; ++i)
        for (int64_t o = 0; o < n_out; ++o) at(o, i) = kE2m1Lut[nvfp4_code_at(w, o, i)] * (e4m3_to_f32(nvfp4_scale_at(w, o, i / 16)) * w.scale2);
      return;
  }
}

}  // namespace oss4
