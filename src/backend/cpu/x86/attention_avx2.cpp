// AVX2 + FMA attention for one (query, head): scores q.k over the visible keys, softmax with the learned sink in the
// denominator, weighted sum of values. Same order of operations as f32_sdpa_sink_ref, with 8-wide dot products.
// Compiled with -mavx2 -mfma -mf16c; no standard-library templates here (see kernels_avx2.h).
#include <immintrin.h>

#include <math.h>

#include "backend/cpu/x86/kernels_avx2.h"
#include "backend/cpu/x86/simd_avx2.h"

namespace oss4::avx2 {

namespace {
inline float dot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// out += p * v
inline void axpy(float p, const float* v, float* out, int64_t n) {
  const __m256 pv = _mm256_set1_ps(p);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_fmadd_ps(pv, _mm256_loadu_ps(v + i), _mm256_loadu_ps(out + i)));
  for (; i < n; ++i) out[i] += p * v[i];
}
}  // namespace

void f32_sdpa_sink_head(const SdpaHeadArgs& a, float* s, float* out) {
  const int64_t n = a.hi - a.lo + 1;
  float m = a.sink;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t p = a.lo + j;
    const int64_t slot = a.ring ? p % a.capacity : p;
    s[j] = dot(a.q, a.k + slot * a.kv_stride, a.head_dim) * a.scale;
    if (s[j] > m) m = s[j];
  }
  float denom = expf(a.sink - m);
  for (int64_t j = 0; j < n; ++j) {
    s[j] = expf(s[j] - m);
    denom += s[j];
  }
  for (int64_t i = 0; i < a.head_dim; ++i) out[i] = 0.0f;
  const float inv = 1.0f / denom;
  for (int64_t j = 0; j < n; ++j) {
    const int64_t p = a.lo + j;
    const int64_t slot = a.ring ? p % a.capacity : p;
    axpy(s[j] * inv, a.v + slot * a.kv_stride, out, a.head_dim);
  }
}

}  // namespace oss4::avx2
