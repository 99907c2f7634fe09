// AVX2 + FMA attention for one (query, head): scores q.k over the visible keys, softmax with the learned sink in the
// denominator, weighted sum of values; the order of f32_sdpa_sink_ref, with 8-wide dot products.
//
// For head_dim = 8V (V <= 16; gpt-oss has 64) the query and the output stay in V registers each: a key costs V loads
// and V FMAs for its score (four keys' sums reduced together with hadd) and V loads and V FMAs for its value, with no
// load or store of the output per key. Ring slots advance by an add and a compare, not a division per key.
// Compiled with -mavx2 -mfma -mf16c; no standard-library templates here (see kernels_avx2.h).
#include <immintrin.h>

#include <math.h>

#include "backend/cpu/x86/kernels_avx2.h"
#include "backend/cpu/x86/simd_avx2.h"

namespace oss4::avx2 {

namespace {
template <int... Vs>
struct IntList {};

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
// the cache slot of position p, and its successor's
inline int64_t first_slot(const SdpaHeadArgs& a) { return a.ring ? a.lo % a.capacity : a.lo; }
inline int64_t next_slot(const SdpaHeadArgs& a, int64_t slot) { return ++slot == a.capacity && a.ring ? 0 : slot; }

// the four sums of the lanes of a, b, c, d
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  const __m256 r = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));  // [a b c d | a b c d] half sums
  return _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
}

template <int V>
void sdpa_head_regs(const SdpaHeadArgs& a, float* s, float* out) {
  const int64_t n = a.hi - a.lo + 1, ks = a.kv_stride;
  __m256 q[V];
  for (int i = 0; i < V; ++i) q[i] = _mm256_loadu_ps(a.q + 8 * i);
  float m = a.sink;
  int64_t slot = first_slot(a);
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const float* k[4];
    for (int u = 0; u < 4; ++u, slot = next_slot(a, slot)) k[u] = a.k + slot * ks;
    __m256 acc[4];
    for (int u = 0; u < 4; ++u) acc[u] = _mm256_mul_ps(q[0], _mm256_loadu_ps(k[u]));
    for (int i = 1; i < V; ++i)
      for (int u = 0; u < 4; ++u) acc[u] = _mm256_fmadd_ps(q[i], _mm256_loadu_ps(k[u] + 8 * i), acc[u]);
    _mm_storeu_ps(s + j, _mm_mul_ps(hsum4(acc[0], acc[1], acc[2], acc[3]), _mm_set1_ps(a.scale)));
    for (int u = 0; u < 4; ++u) m = s[j + u] > m ? s[j + u] : m;
  }
  for (; j < n; ++j, slot = next_slot(a, slot)) {
    const float* k = a.k + slot * ks;
    __m256 acc = _mm256_mul_ps(q[0], _mm256_loadu_ps(k));
    for (int i = 1; i < V; ++i) acc = _mm256_fmadd_ps(q[i], _mm256_loadu_ps(k + 8 * i), acc);
    s[j] = hsum(acc) * a.scale;
    m = s[j] > m ? s[j] : m;
  }
  float denom = expf(a.sink - m);
  for (j = 0; j < n; ++j) {
    s[j] = expf(s[j] - m);
    denom += s[j];
  }
  const __m256 inv = _mm256_set1_ps(1.0f / denom);
  __m256 o[V];
  for (int i = 0; i < V; ++i) o[i] = _mm256_setzero_ps();
  slot = first_slot(a);
  for (j = 0; j < n; ++j, slot = next_slot(a, slot)) {
    const float* v = a.v + slot * ks;
    const __m256 p = _mm256_mul_ps(_mm256_broadcast_ss(s + j), inv);
    for (int i = 0; i < V; ++i) o[i] = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8 * i), o[i]);
  }
  for (int i = 0; i < V; ++i) _mm256_storeu_ps(out + 8 * i, o[i]);
}

using SdpaHeadFn = void (*)(const SdpaHeadArgs&, float*, float*);
template <int... Vs>
SdpaHeadFn sdpa_for(int64_t v, IntList<Vs...>) {
  SdpaHeadFn f = nullptr;
  ((f = v == Vs ? sdpa_head_regs<Vs> : f), ...);
  return f;
}

}  // namespace

void f32_sdpa_sink_head(const SdpaHeadArgs& a, float* s, float* out) {
  if (a.head_dim % 8 == 0) {
    if (SdpaHeadFn f = sdpa_for(a.head_dim / 8, IntList<1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16>{})) {
      f(a, s, out);
      return;
    }
  }
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
