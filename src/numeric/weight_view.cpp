#include "numeric/weight_view.h"

namespace oss4 {

const char* weight_type_name(WeightType t) {
  switch (t) {
    case WeightType::kF32: return "f32";
    case WeightType::kBF16: return "bf16";
    case WeightType::kMxfp4: return "mxfp4";
    case WeightType::kNvfp4: return "nvfp4";
  }
  return "?";
}

size_t WeightView::nbytes() const {
  const auto n = static_cast<size_t>(n_out * n_in);
  switch (type) {
    case WeightType::kF32: return n * 4;
    case WeightType::kBF16: return n * 2;
    case WeightType::kMxfp4: return n / 2 + n / 32;
    case WeightType::kNvfp4: return n / 2 + n / 16;
  }
  return 0;
}

}  // namespace oss4
