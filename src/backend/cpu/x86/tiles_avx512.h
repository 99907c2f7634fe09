// What the AVX-512 tile kernels (linear_tiles_avx512.cpp, linear_tiles_bf16_avx512.cpp) share: the E2M1 table, the
// block factors of a tile, a group's output store. Included only by .cpp files compiled with -mavx512f and above.
#pragma once

#include <immintrin.h>

#include "backend/cpu/x86/kernels_avx512.h"

namespace oss4::avx512 {

alignas(64) inline constexpr float kE2m1Tile[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f,
                                                     -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// E4M3 bytes (one per dword) -> f32 times s: exponent and mantissa shifted to bits 20..26 read as 2^-120 times the
// value, subnormals included; one exact multiply by 2^120, one rounded by s (exact for s = 1)
inline __m512 e4m3_times(__m512i v, __m512 s) {
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 20)), _mm512_set1_ps(0x1p120f)), s);
}

// the 32 block factors of a tile, scales at sc: outputs +0..15 and +16..31
inline void tile_factors(const uint8_t* sc, __m512 s, __m512& f0, __m512& f1) {
  f0 = e4m3_times(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc))), s);
  f1 = e4m3_times(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + 16))), s);
}

// y[t, 32g .. 32g + 32) = (y0, y1) plus bias
inline void store_group(const LinearArgs& a, int64_t g, int64_t t, __m512 y0, __m512 y1) {
  if (a.bias) {
    y0 = _mm512_add_ps(y0, _mm512_loadu_ps(a.bias + 32 * g));
    y1 = _mm512_add_ps(y1, _mm512_loadu_ps(a.bias + 32 * g + 16));
  }
  float* y = a.y + t * a.w.n_out + 32 * g;
  _mm512_storeu_ps(y, y0);
  _mm512_storeu_ps(y + 16, y1);
}

}  // namespace oss4::avx512
