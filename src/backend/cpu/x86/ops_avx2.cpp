// AVX2 + FMA elementwise ops of the forward pass. Compiled with -mavx2 -mfma -mf16c; no standard-library templates here
// (see kernels_avx2.h).
#include <immintrin.h>

#include <math.h>

#include "backend/cpu/x86/kernels_avx2.h"
#include "backend/cpu/x86/simd_avx2.h"

namespace oss4::avx2 {

void f32_swiglu(const float* gu, int64_t n_ff, float alpha, float limit, float* out) {
  const __m256 lim = _mm256_set1_ps(limit), neg_lim = _mm256_set1_ps(-limit), na = _mm256_set1_ps(-alpha), one = _mm256_set1_ps(1.0f);
  int64_t j = 0;
  for (; j + 8 <= n_ff; j += 8) {
    // 16 interleaved floats (gate, up, gate, up, ...) -> 8 gates and 8 ups in order
    const __m256 a = _mm256_loadu_ps(gu + 2 * j), b = _mm256_loadu_ps(gu + 2 * j + 8);
    const __m256 ev = _mm256_shuffle_ps(a, b, 0x88), od = _mm256_shuffle_ps(a, b, 0xDD);  // per lane: a0 a2 b0 b2 | ...
    const __m256 g0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8));
    const __m256 u0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xD8));
    // as the reference: min(gate, limit), clamp(up, -limit, limit) (a NaN stays NaN either way)
    const __m256 gate = _mm256_min_ps(lim, g0), up = _mm256_max_ps(neg_lim, _mm256_min_ps(lim, u0));
    const __m256 glu = _mm256_div_ps(gate, _mm256_add_ps(one, exp256(_mm256_mul_ps(na, gate))));
    _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_add_ps(up, one), glu));
  }
  for (; j < n_ff; ++j) {
    const float g0 = gu[2 * j], u0 = gu[2 * j + 1], g = limit < g0 ? limit : g0;
    const float up = u0 < -limit ? -limit : (limit < u0 ? limit : u0);
    out[j] = (up + 1.0f) * (g / (1.0f + expf(-alpha * g)));
  }
}

}  // namespace oss4::avx2
