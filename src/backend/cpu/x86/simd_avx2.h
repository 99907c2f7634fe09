// Small AVX2 helpers shared by the x86 kernel files. Included only by files compiled with -mavx2 -mfma -mf16c (see
// kernels_avx2.h for why no other file may see these).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace oss4::avx2 {

// sum of the 8 lanes
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x in every lane, within 2 ulp of expf over [-87.3, 88.4] (Cephes' expf: x = n ln2 + r, a degree-6 polynomial for
// e^r, times 2^n through the exponent bits). Inputs are clamped to that range: below, the result is ~1.2e-38 where
// expf underflows toward 0, which no sum of softmax terms or SwiGLU gate can tell apart.
inline __m256 exp256(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)), _mm256_set1_ps(-87.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);  // ln 2 in two parts, the first exact in 8 bits
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// E4M3 bytes (one per 32-bit lane) -> f32 times s2. The byte's exponent and mantissa shifted to bits 20..26 of an
// f32 read as 2^-120 times the E4M3 value, subnormals included, so one exact multiply by 2^120 gives it; the product
// with s2 is then rounded once, as the reference's f32(e4m3(s) * scale2). Takes the bytes 0x00..0x7e only: loaders
// reject negative and NaN block scales (check_e4m3_scales) and the quantizers never make them.
inline __m256 e4m3_times(__m256i v, __m256 s2) {
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_castsi256_ps(_mm256_slli_epi32(v, 20)), _mm256_set1_ps(0x1p120f)), s2);
}

// 32 bytes -> d[4] with one byte per 32-bit lane in "lane order": vector q (0..3), 128-bit lane l (0..1), element e
// (0..3) holds byte 16l + 8(q/2) + 2e + q%2 (see gemv_fp4_avx2.cpp).
inline void bytes_to_dwords(const uint8_t* p, __m256i d[4]) {
  const __m256i z = _mm256_setzero_si256(), v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i wa = _mm256_unpacklo_epi8(v, z), wb = _mm256_unpackhi_epi8(v, z), lo16 = _mm256_set1_epi32(0xFFFF);
  d[0] = _mm256_and_si256(wa, lo16);
  d[1] = _mm256_srli_epi32(wa, 16);
  d[2] = _mm256_and_si256(wb, lo16);
  d[3] = _mm256_srli_epi32(wb, 16);
}

}  // namespace oss4::avx2
