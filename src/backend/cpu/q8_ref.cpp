#include "backend/cpu/q8_ref.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "numeric/float_formats.h"
#include "numeric/nvfp4_tiles.h"

namespace oss4 {

void q8_quantize_ref(const float* x, int64_t n_tok, int64_t n_in, int8_t* q, float* d) {
  const int64_t n_blk = n_in / kQ8Block;
  for (int64_t b = 0; b < n_tok * n_blk; ++b) {
    const float* xb = x + b * kQ8Block;
    float amax = 0.0f;
    for (int64_t i = 0; i < kQ8Block; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    d[b] = amax / 127.0f;
    for (int64_t i = 0; i < kQ8Block; ++i) {
      // finite x gives -127..127; the clamp only keeps a NaN or infinite activation (a broken model) defined
      const float r = std::nearbyint(xb[i] * inv);
      q[b * kQ8Block + i] = static_cast<int8_t>(r >= -127.0f && r <= 127.0f ? r : (r > 0.0f ? 127.0f : -128.0f));
    }
  }
}

void f32_nvfp4w_q8a_linear_ref(const LinearWeight& w, const float* x, int64_t n_tok, const float* bias, float* y) {
  // twice the E2M1 value of each code: integers -12 .. 12
  static constexpr int kE2m1Twice[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  const int64_t n_in = w.n_in, n_out = w.n_out, n_blk = n_in / kQ8Block;
  std::vector<int8_t> q(static_cast<size_t>(n_tok * n_in));  // [n_tok, n_in]
  std::vector<float> d(static_cast<size_t>(n_tok * n_blk));  // [n_tok, n_blk]
  q8_quantize_ref(x, n_tok, n_in, q.data(), d.data());
  auto code = [&](int64_t o, int64_t i) -> int { return kE2m1Twice[nvfp4_code_at(w, o, i)]; };
  auto factor = [&](int64_t o, int64_t k) { return e4m3_to_f32(nvfp4_scale_at(w, o, k)) * w.scale2 * 0.5f; };
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t o = 0; o < n_out; ++o) {
      float acc = 0.0f;
      for (int64_t k = 0; k < n_blk; ++k) {
        int32_t s = 0;
        for (int64_t i = k * kQ8Block; i < (k + 1) * kQ8Block; ++i) s += q[static_cast<size_t>(t * n_in + i)] * code(o, i);
        acc += static_cast<float>(s) * (factor(o, k) * d[static_cast<size_t>(t * n_blk + k)]);
      }
      y[t * n_out + o] = acc + (bias ? bias[o] : 0.0f);
    }
}

}  // namespace oss4
