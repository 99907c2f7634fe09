// AVX2 + FMA attention with sinks and a sliding window: scores q.k over the visible keys, softmax with the learned sink
// in the denominator, weighted sum of values; the order of f32_sdpa_sink_ref, with 8-wide dot products.
//
// For head_dim = 8V (V <= 16; gpt-oss has 64) a task takes the query heads that share one key/value head
// (f32_sdpa_sink_group): K and V are walked in tiles of 32 rows that stay in L1 while every head of the group uses
// them, so at a long context each row comes from memory once instead of once per query head; a head's query and
// output stay in registers, and four keys' scores are reduced together with hadd. Ring slots advance by an add and a
// compare, not a division per key. Other head sizes take the per-head loop (f32_sdpa_sink_head).
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

constexpr int64_t kKeyTile = 32;  // keys per tile: 32 rows of K (or V) of a 64-wide head are 8 KB, within L1

// head_dim = 8V: per head, the query and the output stay in V registers; a key costs V loads and V FMAs for its score
// (four keys' sums reduced together) and V loads and V FMAs for its value. Each K and V tile serves every head of the
// group while it is in L1.
template <int V>
void sdpa_group_regs(const SdpaHeadArgs& a, int64_t G, const float* sinks, float* s, float* out) {
  const int64_t n = a.hi - a.lo + 1, ks = a.kv_stride, hd = 8 * V;
  float* m = s + G * n;  // [G] running max, then 1 / denominator
  const float* row[kKeyTile];  // the tile's K (then V) rows
  for (int64_t g = 0; g < G; ++g) m[g] = sinks[g];
  int64_t slot = first_slot(a);
  for (int64_t j0 = 0; j0 < n; j0 += kKeyTile) {
    const int64_t nt = n - j0 < kKeyTile ? n - j0 : kKeyTile;
    for (int64_t u = 0; u < nt; ++u, slot = next_slot(a, slot)) row[u] = a.k + slot * ks;
    for (int64_t g = 0; g < G; ++g) {
      __m256 q[V];
      for (int i = 0; i < V; ++i) q[i] = _mm256_loadu_ps(a.q + g * hd + 8 * i);
      float* sg = s + g * n + j0;
      float mg = m[g];
      int64_t j = 0;
      for (; j + 4 <= nt; j += 4) {
        __m256 acc[4];
        for (int u = 0; u < 4; ++u) acc[u] = _mm256_mul_ps(q[0], _mm256_loadu_ps(row[j + u]));
        for (int i = 1; i < V; ++i)
          for (int u = 0; u < 4; ++u) acc[u] = _mm256_fmadd_ps(q[i], _mm256_loadu_ps(row[j + u] + 8 * i), acc[u]);
        _mm_storeu_ps(sg + j, _mm_mul_ps(hsum4(acc[0], acc[1], acc[2], acc[3]), _mm_set1_ps(a.scale)));
        for (int u = 0; u < 4; ++u) mg = sg[j + u] > mg ? sg[j + u] : mg;
      }
      for (; j < nt; ++j) {
        __m256 acc = _mm256_mul_ps(q[0], _mm256_loadu_ps(row[j]));
        for (int i = 1; i < V; ++i) acc = _mm256_fmadd_ps(q[i], _mm256_loadu_ps(row[j] + 8 * i), acc);
        sg[j] = hsum(acc) * a.scale;
        mg = sg[j] > mg ? sg[j] : mg;
      }
      m[g] = mg;
    }
  }
  for (int64_t g = 0; g < G; ++g) {
    float* sg = s + g * n;
    const __m256 mv = _mm256_set1_ps(m[g]);
    __m256 sum = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(sg + j), mv));
      _mm256_storeu_ps(sg + j, e);
      sum = _mm256_add_ps(sum, e);
    }
    float denom = expf(sinks[g] - m[g]) + hsum(sum);
    for (; j < n; ++j) {
      sg[j] = expf(sg[j] - m[g]);
      denom += sg[j];
    }
    m[g] = 1.0f / denom;
  }
  slot = first_slot(a);
  for (int64_t j0 = 0; j0 < n; j0 += kKeyTile) {
    const int64_t nt = n - j0 < kKeyTile ? n - j0 : kKeyTile;
    for (int64_t u = 0; u < nt; ++u, slot = next_slot(a, slot)) row[u] = a.v + slot * ks;
    for (int64_t g = 0; g < G; ++g) {
      __m256 o[V];
      float* og = out + g * hd;
      for (int i = 0; i < V; ++i) o[i] = j0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(og + 8 * i);
      const __m256 inv = _mm256_set1_ps(m[g]);
      const float* sg = s + g * n + j0;
      for (int64_t u = 0; u < nt; ++u) {
        const __m256 p = _mm256_mul_ps(_mm256_broadcast_ss(sg + u), inv);
        for (int i = 0; i < V; ++i) o[i] = _mm256_fmadd_ps(p, _mm256_loadu_ps(row[u] + 8 * i), o[i]);
      }
      for (int i = 0; i < V; ++i) _mm256_storeu_ps(og + 8 * i, o[i]);
    }
  }
}

using SdpaGroupFn = void (*)(const SdpaHeadArgs&, int64_t, const float*, float*, float*);
template <int... Vs>
SdpaGroupFn sdpa_group_for(int64_t v, IntList<Vs...>) {
  SdpaGroupFn f = nullptr;
  ((f = v == Vs ? sdpa_group_regs<Vs> : f), ...);
  return f;
}
using Vs16 = IntList<1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16>;

}  // namespace

bool sdpa_group_takes(int64_t head_dim) { return head_dim % 8 == 0 && head_dim / 8 >= 1 && head_dim / 8 <= 16; }

void f32_sdpa_sink_group(const SdpaHeadArgs& a, int64_t n_group, const float* sinks, float* s, float* out) {
  sdpa_group_for(a.head_dim / 8, Vs16{})(a, n_group, sinks, s, out);
}

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
