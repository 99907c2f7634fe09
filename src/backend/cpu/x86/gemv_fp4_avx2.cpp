// AVX2 GEMV for 4-bit weights with f32 activations (the W4A16 decode path): NVFP4 row-major and in-major, MXFP4.
//
// Decoding. A 32-byte load holds 64 E2M1 codes. Every E2M1 value is exact in the top 9 bits of an f32 (sign, 8
// exponent bits, 1 mantissa bit), so two pshufb table lookups per nibble half give the top two bytes of each f32, and
// two rounds of unpacking against zero spread them into f32 lanes: 10 shuffles and 3 integer ops per 64 weights, no
// int -> float conversion and no per-weight scale multiply (block scales multiply a block's partial sum instead).
// The spreading leaves the 32 bytes in "lane order": vector q (0..3), 128-bit lane L (0..1), element e (0..3)
// holds byte lane_byte(q, L, e) = 16L + 8(q/2) + 2e + q%2. Row-major kernels permute the activations once per call to match; in-major kernels
// produce outputs in lane order and put them back in order at the end.
// Compiled with -mavx2 -mfma -mf16c; no standard-library templates here (see kernels_avx2.h).
#include <immintrin.h>

#include "backend/cpu/x86/gemv_fp4_avx2.h"
#include "backend/cpu/x86/simd_avx2.h"

namespace oss4::avx2 {

namespace {

alignas(32) const uint8_t kTopByte[32] = {0x00, 0x3F, 0x3F, 0x3F, 0x40, 0x40, 0x40, 0x40, 0x80, 0xBF, 0xBF,
                                          0xBF, 0xC0, 0xC0, 0xC0, 0xC0, 0x00, 0x3F, 0x3F, 0x3F, 0x40, 0x40,
                                          0x40, 0x40, 0x80, 0xBF, 0xBF, 0xBF, 0xC0, 0xC0, 0xC0, 0xC0};
alignas(32) const uint8_t kNextByte[32] = {0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0, 0x00, 0x00, 0x80,
                                           0xC0, 0x00, 0x40, 0x80, 0xC0, 0x00, 0x00, 0x80, 0xC0, 0x00, 0x40,
                                           0x80, 0xC0, 0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0};

struct Tables {
  __m256i top, next, low4;
};
inline Tables tables() {
  return {_mm256_load_si256(reinterpret_cast<const __m256i*>(kTopByte)), _mm256_load_si256(reinterpret_cast<const __m256i*>(kNextByte)),
          _mm256_set1_epi8(0x0F)};
}

// byte of a 32-byte group that vector q, 128-bit lane l, element e holds after spread / bytes_to_dwords
inline int64_t lane_byte(int64_t q, int64_t l, int64_t e) { return 16 * l + 8 * (q >> 1) + 2 * e + (q & 1); }

// bytes b3 (bits 24..31) and b2 (bits 16..23) of 32 f32 values -> f[4] in lane order. The byte interleave is a
// shuffle; the word spread is a shift and a mask, which leaves the shuffle ports to pshufb.
inline void spread(__m256i b2, __m256i b3, __m256 f[4]) {
  const __m256i wa = _mm256_unpacklo_epi8(b2, b3), wb = _mm256_unpackhi_epi8(b2, b3);
  const __m256i hi16 = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  f[0] = _mm256_castsi256_ps(_mm256_slli_epi32(wa, 16));
  f[1] = _mm256_castsi256_ps(_mm256_and_si256(wa, hi16));
  f[2] = _mm256_castsi256_ps(_mm256_slli_epi32(wb, 16));
  f[3] = _mm256_castsi256_ps(_mm256_and_si256(wb, hi16));
}

// 32 bytes of E2M1 pairs -> lo[4] (low nibbles) and hi[4] (high nibbles) as f32, lane order
inline void decode32(const uint8_t* p, const Tables& t, __m256 lo[4], __m256 hi[4]) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i il = _mm256_and_si256(v, t.low4), ih = _mm256_and_si256(_mm256_srli_epi16(v, 4), t.low4);
  spread(_mm256_shuffle_epi8(t.next, il), _mm256_shuffle_epi8(t.top, il), lo);
  spread(_mm256_shuffle_epi8(t.next, ih), _mm256_shuffle_epi8(t.top, ih), hi);
}

// ---- row-major: [n_out, n_in/2] codes, NVFP4 (E4M3 per 16 inputs) or MXFP4 (E8M0 per 32) ----

// factors of the blocks of 64-input chunk c of a row, for lo/hi vectors 0,1 (fa) and 2,3 (fb): lane L of vector q
// holds bytes 16L + 8(q/2) .. +7, which lie in NVFP4 block 2L + q/2 and in MXFP4 block L.
inline void row_factors(const LinearArgs& a, const uint8_t* s, int64_t c, __m256 s2, __m256& fa, __m256& fb) {
  if (a.kind == WKind::kNvfp4) {
    int32_t four;
    __builtin_memcpy(&four, s + 4 * c, 4);
    const __m256 f = e4m3_times(_mm256_cvtepu8_epi32(_mm_cvtsi32_si128(four)), s2);  // [f0 f1 f2 f3 0 0 0 0]
    fa = _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2));
    fb = _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3));
  } else {
    fa = fb = _mm256_setr_m128(_mm_set1_ps(a.e8m0_lut[s[2 * c]]), _mm_set1_ps(a.e8m0_lut[s[2 * c + 1]]));
  }
}

template <int T>
void rows_t(const LinearArgs& a, int64_t o0, int64_t o1, int64_t t0, const float* xp) {
  const Tables tb = tables();
  const __m256 s2 = _mm256_set1_ps(a.kind == WKind::kNvfp4 ? a.w.scale2 : 1.0f);
  const int64_t n_in = a.w.n_in, n_chunks = n_in / 64, row_bytes = n_in / 2;
  const int64_t row_scales = a.kind == WKind::kNvfp4 ? n_in / 16 : n_in / 32;
  for (int64_t o = o0; o < o1; ++o) {
    const uint8_t* q = a.w.data + o * row_bytes;
    const uint8_t* s = a.w.scales + o * row_scales;
    __m256 acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    for (int64_t c = 0; c < n_chunks; ++c) {
      __m256 lo[4], hi[4], fa, fb;
      decode32(q + 32 * c, tb, lo, hi);
      row_factors(a, s, c, s2, fa, fb);
      for (int t = 0; t < T; ++t) {
        const float* xc = xp + t * n_in + 64 * c;
        __m256 pa = _mm256_mul_ps(lo[0], _mm256_load_ps(xc));
        __m256 pb = _mm256_mul_ps(lo[2], _mm256_load_ps(xc + 16));
        pa = _mm256_fmadd_ps(lo[1], _mm256_load_ps(xc + 8), pa);
        pb = _mm256_fmadd_ps(lo[3], _mm256_load_ps(xc + 24), pb);
        pa = _mm256_fmadd_ps(hi[0], _mm256_load_ps(xc + 32), pa);
        pb = _mm256_fmadd_ps(hi[2], _mm256_load_ps(xc + 48), pb);
        pa = _mm256_fmadd_ps(hi[1], _mm256_load_ps(xc + 40), pa);
        pb = _mm256_fmadd_ps(hi[3], _mm256_load_ps(xc + 56), pb);
        acc[t][0] = _mm256_fmadd_ps(pa, fa, acc[t][0]);
        acc[t][1] = _mm256_fmadd_ps(pb, fb, acc[t][1]);
      }
    }
    for (int t = 0; t < T; ++t) a.y[(t0 + t) * a.w.n_out + o] = hsum(_mm256_add_ps(acc[t][0], acc[t][1])) + (a.bias ? a.bias[o] : 0.0f);
  }
}

// ---- in-major NVFP4: [n_in/2, n_out] codes + [n_in/16, n_out] E4M3 ----

constexpr int64_t kPrefetchAhead = 512;  // bytes ahead along a row (measured: 256-1024 all help; none is slower)

// yp [T, o1 - o0] (lane order per 32-output tile) += the sums over input blocks [b0, b1) of outputs [o0, o1)
// (a multiple of 32 wide) for tokens t0 .. t0 + T - 1
template <int T>
void in_major_t(const LinearArgs& a, int64_t o0, int64_t o1, int64_t b0, int64_t b1, int64_t t0, float* yp) {
  const Tables tb = tables();
  const __m256 s2 = _mm256_set1_ps(a.w.scale2);
  const int64_t n_out = a.w.n_out, width = o1 - o0;
  const float* x = a.x + t0 * a.w.n_in;
  for (int64_t b = b0; b < b1; ++b) {
    for (int64_t o = o0; o < o1; o += 32) {
      __m256 acc[T][4];  // 4 T accumulators: with 16 registers, more would spill the decoded vectors
      for (int t = 0; t < T; ++t)
        for (int k = 0; k < 4; ++k) acc[t][k] = _mm256_setzero_ps();
      for (int64_t j = 0; j < 8; ++j) {
        const uint8_t* row = a.w.data + (b * 8 + j) * n_out + o;
        // 8 interleaved row streams per block are more than the hardware prefetcher keeps ahead of
        _mm_prefetch(reinterpret_cast<const char*>(row + kPrefetchAhead), _MM_HINT_T0);
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
        for (int h = 0; h < 2; ++h) {
          const __m256i idx = _mm256_and_si256(h == 0 ? v : _mm256_srli_epi16(v, 4), tb.low4);
          __m256 w[4];
          spread(_mm256_shuffle_epi8(tb.next, idx), _mm256_shuffle_epi8(tb.top, idx), w);
          for (int t = 0; t < T; ++t) {
            const __m256 xb = _mm256_broadcast_ss(x + t * a.w.n_in + b * 16 + 2 * j + h);
            for (int k = 0; k < 4; ++k) acc[t][k] = _mm256_fmadd_ps(w[k], xb, acc[t][k]);
          }
        }
      }
      __m256i sd[4];
      bytes_to_dwords(a.w.scales + b * n_out + o, sd);
      for (int k = 0; k < 4; ++k) {
        const __m256 f = e4m3_times(sd[k], s2);
        for (int t = 0; t < T; ++t) {
          float* p = yp + t * width + (o - o0) + 8 * k;
          _mm256_storeu_ps(p, _mm256_fmadd_ps(acc[t][k], f, _mm256_loadu_ps(p)));
        }
      }
    }
  }
}

// y[0..32) = p[0..32) (lane order) in output order, + bias[0..32) when given. Vector q's lane L element e is output
// 16L + 8(q/2) + 2e + q%2, so interleaving vectors 0 and 1 (2 and 3) gives outputs 0..7 | 16..23 (8..15 | 24..31).
// y may be p.
inline void unpermute32_to(const float* p, float* y, const float* bias) {
  const __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8), v2 = _mm256_loadu_ps(p + 16), v3 = _mm256_loadu_ps(p + 24);
  const __m256 lo01 = _mm256_unpacklo_ps(v0, v1), hi01 = _mm256_unpackhi_ps(v0, v1);
  const __m256 lo23 = _mm256_unpacklo_ps(v2, v3), hi23 = _mm256_unpackhi_ps(v2, v3);
  __m256 o[4] = {_mm256_permute2f128_ps(lo01, hi01, 0x20), _mm256_permute2f128_ps(lo23, hi23, 0x20),
                 _mm256_permute2f128_ps(lo01, hi01, 0x31), _mm256_permute2f128_ps(lo23, hi23, 0x31)};
  for (int k = 0; k < 4; ++k) _mm256_storeu_ps(y + 8 * k, bias ? _mm256_add_ps(o[k], _mm256_loadu_ps(bias + 8 * k)) : o[k]);
}

// y[t0 + t, o0 .. o1) = yp[t] put back in output order (+ bias)
void unpermute_rows(const LinearArgs& a, int64_t o0, int64_t o1, int64_t t0, int64_t n_tok, const float* yp) {
  const int64_t width = o1 - o0;
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t o = o0; o < o1; o += 32) unpermute32_to(yp + t * width + (o - o0), a.y + (t0 + t) * a.w.n_out + o, a.bias ? a.bias + o : nullptr);
}

template <int T>
void in_major_blocks(const LinearArgs& a, int64_t o0, int64_t o1, int64_t b0, int64_t b1, int64_t t0, float* yp) {
  for (int64_t i = 0; i < T * (o1 - o0); ++i) yp[i] = 0.0f;
  in_major_t<T>(a, o0, o1, b0, b1, t0, yp);
}

}  // namespace

void fp4_in_major_panels(const LinearArgs& a, int64_t o, int64_t k0, int64_t k1, float* pa, float* pb) {
  const Tables tb = tables();
  const __m256 s2 = _mm256_set1_ps(a.w.scale2);
  for (int64_t b = k0 / 16; b < k1 / 16; ++b) {
    __m256i sd[4];
    bytes_to_dwords(a.w.scales + b * a.w.n_out + o, sd);
    __m256 f[4];
    for (int q = 0; q < 4; ++q) f[q] = e4m3_times(sd[q], s2);
    for (int64_t j = 0; j < 8; ++j) {
      const uint8_t* row = a.w.data + (b * 8 + j) * a.w.n_out + o;
      // the caller walks o across the rows of a k block; the hardware prefetcher does not follow that many streams
      _mm_prefetch(reinterpret_cast<const char*>(row + 256), _MM_HINT_T0);
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
      for (int64_t h = 0; h < 2; ++h) {
        const __m256i idx = _mm256_and_si256(h == 0 ? v : _mm256_srli_epi16(v, 4), tb.low4);
        __m256 w[4];
        spread(_mm256_shuffle_epi8(tb.next, idx), _mm256_shuffle_epi8(tb.top, idx), w);
        const int64_t k = b * 16 + 2 * j + h - k0;
        _mm256_store_ps(pa + k * 16, _mm256_mul_ps(w[0], f[0]));
        _mm256_store_ps(pa + k * 16 + 8, _mm256_mul_ps(w[1], f[1]));
        _mm256_store_ps(pb + k * 16, _mm256_mul_ps(w[2], f[2]));
        _mm256_store_ps(pb + k * 16 + 8, _mm256_mul_ps(w[3], f[3]));
      }
    }
  }
}

void fp4_unpermute32(float* y, const float* bias) { unpermute32_to(y, y, bias); }

bool fp4_gemv_takes(const LinearArgs& a) {
  switch (a.kind) {
    case WKind::kNvfp4:
    case WKind::kMxfp4: return a.w.n_in % 64 == 0;
    case WKind::kNvfp4InMajor: return a.w.n_in % 16 == 0 && a.w.n_out % 32 == 0;
    default: return false;
  }
}

void fp4_permute_x(const float* x, int64_t n_in, int64_t n_tok, float* xp) {
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t c = 0; c < n_in / 64; ++c)
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t q = 0; q < 4; ++q)
          for (int64_t l = 0; l < 2; ++l)
            for (int64_t e = 0; e < 4; ++e)
              xp[t * n_in + c * 64 + (h * 4 + q) * 8 + l * 4 + e] = x[t * n_in + c * 64 + 2 * lane_byte(q, l, e) + h];
}

void fp4_gemv_rows(const LinearArgs& a, int64_t o0, int64_t o1, int64_t t0, int64_t n_tok, const float* xp) {
  int64_t t = 0;
  for (; t + 2 <= n_tok; t += 2) rows_t<2>(a, o0, o1, t0 + t, xp + t * a.w.n_in);
  if (t < n_tok) rows_t<1>(a, o0, o1, t0 + t, xp + t * a.w.n_in);
}

void fp4_gemv_in_major(const LinearArgs& a, int64_t o0, int64_t o1, float* yp) {
  const int64_t n_blk = a.w.n_in / 16;
  int64_t t = 0;
  for (; t + 2 <= a.n_tok; t += 2) {
    in_major_blocks<2>(a, o0, o1, 0, n_blk, t, yp);
    unpermute_rows(a, o0, o1, t, 2, yp);
  }
  if (t < a.n_tok) {
    in_major_blocks<1>(a, o0, o1, 0, n_blk, t, yp);
    unpermute_rows(a, o0, o1, t, 1, yp);
  }
}

void fp4_gemv_in_major_part(const LinearArgs& a, int64_t b0, int64_t b1, float* part) {
  int64_t t = 0;
  for (; t + 2 <= a.n_tok; t += 2) in_major_blocks<2>(a, 0, a.w.n_out, b0, b1, t, part + t * a.w.n_out);
  if (t < a.n_tok) in_major_blocks<1>(a, 0, a.w.n_out, b0, b1, t, part + t * a.w.n_out);
}

void fp4_gemv_in_major_finish(const LinearArgs& a, const float* parts, int64_t n_parts, int64_t o0, int64_t o1) {
  const int64_t n = a.n_tok * a.w.n_out;
  for (int64_t t = 0; t < a.n_tok; ++t)
    for (int64_t o = o0; o < o1; o += 32) {
      alignas(32) float sum[32];  // lane order
      const float* p0 = parts + t * a.w.n_out + o;
      for (int64_t j = 0; j < 32; ++j) sum[j] = p0[j];
      for (int64_t p = 1; p < n_parts; ++p)
        for (int64_t j = 0; j < 32; ++j) sum[j] += p0[p * n + j];
      unpermute32_to(sum, a.y + t * a.w.n_out + o, a.bias ? a.bias + o : nullptr);
    }
}

}  // namespace oss4::avx2
