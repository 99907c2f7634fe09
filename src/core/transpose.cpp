#include "core/transpose.h"

#include <algorithm>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace oss4 {

namespace {

#if defined(__SSE2__)
// 16 x 16 bytes: rows src + r * ls (r < 16) -> rows dst + c * ld (c < 16), by four rounds of interleaving
void transpose16(const uint8_t* src, int64_t ls, uint8_t* dst, int64_t ld) {
  __m128i a[16], b[16], c[16], d[16];
  for (int r = 0; r < 16; ++r) a[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + r * ls));
  for (int k = 0; k < 8; ++k) {  // b[k]: columns 0-7 of rows 2k, 2k+1; b[k + 8]: columns 8-15
    b[k] = _mm_unpacklo_epi8(a[2 * k], a[2 * k + 1]);
    b[k + 8] = _mm_unpackhi_epi8(a[2 * k], a[2 * k + 1]);
  }
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 4; ++k) {  // c[8h + k]: columns 8h..8h+3 of rows 4k..4k+3; c[8h + 4 + k]: columns 8h+4..8h+7
      c[8 * h + k] = _mm_unpacklo_epi16(b[8 * h + 2 * k], b[8 * h + 2 * k + 1]);
      c[8 * h + 4 + k] = _mm_unpackhi_epi16(b[8 * h + 2 * k], b[8 * h + 2 * k + 1]);
    }
  for (int g = 0; g < 16; g += 4)
    for (int k = 0; k < 2; ++k) {  // d[g + k]: columns g, g+1 of rows 8k..8k+7; d[g + 2 + k]: columns g+2, g+3
      d[g + k] = _mm_unpacklo_epi32(c[g + 2 * k], c[g + 2 * k + 1]);
      d[g + 2 + k] = _mm_unpackhi_epi32(c[g + 2 * k], c[g + 2 * k + 1]);
    }
  for (int g = 0; g < 16; g += 4) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (g + 0) * ld), _mm_unpacklo_epi64(d[g], d[g + 1]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (g + 1) * ld), _mm_unpackhi_epi64(d[g], d[g + 1]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (g + 2) * ld), _mm_unpacklo_epi64(d[g + 2], d[g + 3]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (g + 3) * ld), _mm_unpackhi_epi64(d[g + 2], d[g + 3]));
  }
}
#endif

}  // namespace

void transpose_u8(const uint8_t* src, int64_t rows, int64_t cols, int64_t src_ld, uint8_t* dst, int64_t dst_ld) {
  constexpr int64_t kTile = 64;  // 64 x 64 bytes: a tile of each side fits L1
  for (int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
      int64_t rv = r0, cv = c0;  // the part in whole 16 x 16 blocks: [r0, rv) x [c0, cv)
#if defined(__SSE2__)
      rv = r0 + (r1 - r0) / 16 * 16;
      cv = c0 + (c1 - c0) / 16 * 16;
      for (int64_t r = r0; r < rv; r += 16)
        for (int64_t c = c0; c < cv; c += 16) transpose16(src + r * src_ld + c, src_ld, dst + c * dst_ld + r, dst_ld);
#endif
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r)
          if (r >= rv || c >= cv) dst[c * dst_ld + r] = src[r * src_ld + c];
    }
}

void transpose_u8(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) { transpose_u8(src, rows, cols, cols, dst, rows); }

}  // namespace oss4
