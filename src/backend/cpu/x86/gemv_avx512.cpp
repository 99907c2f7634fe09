// AVX-512 decode GEMVs of in-major NVFP4 weights ([n_in/2, n_out] codes: byte (r, o) holds inputs 2r (low nibble)
// and 2r + 1 (high nibble) of output o; [n_in/16, n_out] E4M3 block scales; times scale2).
//
// f32 activations. 16 code bytes widen to 16 dwords (vpmovzxbd); vpermps looks up the low 4 bits of each dword in a
// 16-entry table of E2M1 values, so the low nibble needs no mask and the high nibble one shift: 3 shuffles per 32
// weights, outputs in natural order. Each of a 64-output tile's 4 vectors keeps two accumulator chains (even and odd
// inputs), 8 in all per token, enough independent FMAs to cover their latency; block scales multiply a block's sum.
//
// 8-bit activations. The AVX2 kernel's integer core (q8_avx2.cpp) on 64 bytes at a time: pshufb to twice the E2M1
// value as a signed byte, the activation's sign moved into the code (bit 3 of each nibble), vpmaddubsw against the
// absolute activations, a block's 8 rows summed exactly in 16 bits; then one vpermt2w puts 32 sums in natural order.
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c; no standard-library
// templates here (see kernels_avx512.h).
// GCC 12's own AVX-512 headers trip -W(maybe-)uninitialized (their _mm512_undefined_* placeholders, GCC bug 105593)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include "backend/cpu/x86/kernels_avx512.h"

namespace oss4::avx512 {

namespace {

alignas(64) const float kE2m1[16] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// twice the E2M1 value of each code, in all four 128-bit lanes (pshufb looks up within a lane)
alignas(64) const int8_t kTwiceE2m1[64] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12, 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
                                           0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12, 0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// No software prefetch, unlike the AVX2 kernels: on the Zen 4 host these were measured on, the hardware prefetcher
// follows a block's 8 row streams, and a prefetch 256-4096 bytes ahead was 1-16% slower in the 20b decode (13.1 tok/s
// without, 12.7 at 512 bytes, 11.0 at 2048; docs/benchmarks.md).

// E4M3 bytes 0x00..0x7e (one per dword) -> f32 times s2, exactly as avx2::e4m3_times: exponent and mantissa shifted to
// bits 20..26 read as 2^-120 times the value, subnormals included; one exact multiply by 2^120, one rounded by s2.
inline __m512 e4m3_times(__m512i v, __m512 s2) {
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 20)), _mm512_set1_ps(0x1p120f)), s2);
}

// 16 scale bytes of block b for outputs o .. o + 15 -> their factors
inline __m512 block_factors(const LinearArgs& a, int64_t b, int64_t o, __m512 s2) {
  return e4m3_times(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.w.scales + b * a.w.n_out + o))), s2);
}

// part rows 0 .. T-1 ([T, n_out], natural order) = sums over input blocks [b0, b1) of tokens t0 .. t0 + T - 1
template <int T>
void f32_part_t(const LinearArgs& a, int64_t b0, int64_t b1, int64_t t0, float* part) {
  const __m512 lut = _mm512_load_ps(kE2m1), s2 = _mm512_set1_ps(a.w.scale2);
  const int64_t n_out = a.w.n_out, n_in = a.w.n_in;
  const float* x = a.x + t0 * n_in;
  for (int64_t b = b0; b < b1; ++b) {
    for (int64_t o = 0; o < n_out; o += 64) {
      __m512 acc[T][4][2];  // [token][16-output vector][even / odd input chain]
      for (int t = 0; t < T; ++t)
        for (int k = 0; k < 4; ++k) acc[t][k][0] = acc[t][k][1] = _mm512_setzero_ps();
      for (int64_t j = 0; j < 8; ++j) {
        const uint8_t* row = a.w.data + (b * 8 + j) * n_out + o;
        __m512 xe[T], xo[T];
        for (int t = 0; t < T; ++t) {
          xe[t] = _mm512_set1_ps(x[t * n_in + b * 16 + 2 * j]);
          xo[t] = _mm512_set1_ps(x[t * n_in + b * 16 + 2 * j + 1]);
        }
        for (int k = 0; k < 4; ++k) {
          const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 16 * k)));
          const __m512 lo = _mm512_permutexvar_ps(v, lut);  // vpermps reads bits 0..3 of each index: the low nibble
          const __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lut);
          for (int t = 0; t < T; ++t) {
            acc[t][k][0] = _mm512_fmadd_ps(lo, xe[t], acc[t][k][0]);
            acc[t][k][1] = _mm512_fmadd_ps(hi, xo[t], acc[t][k][1]);
          }
        }
      }
      for (int k = 0; k < 4; ++k) {
        const __m512 f = block_factors(a, b, o + 16 * k, s2);
        for (int t = 0; t < T; ++t) {
          float* p = part + t * n_out + o + 16 * k;
          const __m512 s = _mm512_add_ps(acc[t][k][0], acc[t][k][1]);
          _mm512_storeu_ps(p, b == b0 ? _mm512_mul_ps(s, f) : _mm512_fmadd_ps(s, f, _mm512_loadu_ps(p)));
        }
      }
    }
  }
}

// word indices for vpermt2w: the 16-bit sums come out of unpacklo (a: outputs 16L + 0..7 of 128-bit lane L) and
// unpackhi (b: 16L + 8..15); kNatural[h] gathers outputs 32h .. 32h + 31 in order (indices >= 32 select b's words).
struct NaturalIdx {
  alignas(64) int16_t v[2][32];
  NaturalIdx() {
    for (int h = 0; h < 2; ++h)
      for (int n = 0; n < 32; ++n) {
        const int out = 32 * h + n, lane = out / 16, r = out % 16;
        v[h][n] = static_cast<int16_t>(r < 8 ? 8 * lane + r : 32 + 8 * lane + (r - 8));
      }
  }
};
const NaturalIdx kNatural;

// 64-output tiles per pass over a block's rows (20b decode, 8-bit activations, two rounds: 1 tile 12.8 tok/s, 2 tiles
// 12.9 / 13.3, 4 tiles 13.2 / 12.9: within the VM's noise, 2 kept)
constexpr int kQ8Tiles = 2;

// tokens t0 .. t0 + T - 1, block b, W 64-output tiles from o: part (+)= the block's sums times its factors
template <int T, int W>
inline void q8_tiles(const LinearArgs& a, const Q8Act& x, int64_t b, bool first, int64_t o, int64_t t0, float* part) {
  const __m512i lut = _mm512_load_si512(kTwiceE2m1), low4 = _mm512_set1_epi8(0x0F);
  const __m512 s2h = _mm512_set1_ps(a.w.scale2 * 0.5f);  // the codes decode to twice their value
  const int64_t n_out = a.w.n_out, half = a.w.n_in / 2, n_blk = a.w.n_in / 16;
  __m512i acc[T][W][2];  // 16-bit block sums: [token][tile][unpacklo / unpackhi outputs]
  for (int t = 0; t < T; ++t)
    for (int w = 0; w < W; ++w) acc[t][w][0] = acc[t][w][1] = _mm512_setzero_si512();
  for (int64_t j = 0; j < 8; ++j) {
    const uint8_t* row = a.w.data + (b * 8 + j) * n_out + o;
    for (int w = 0; w < W; ++w) {
      const __m512i v = _mm512_loadu_si512(row + 64 * w);
      for (int t = 0; t < T; ++t) {
        const int64_t r = (t0 + t) * half + b * 8 + j;
        const __m512i vf = _mm512_xor_si512(v, _mm512_set1_epi32(static_cast<int>(x.flip[r])));
        const __m512i lo = _mm512_shuffle_epi8(lut, _mm512_and_si512(vf, low4));
        const __m512i hi = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(vf, 4), low4));
        const __m512i xa = _mm512_set1_epi32(static_cast<int>(x.pair[r]));
        // |pair sum| <= 2 * 127 * 12 and 8 rows <= 24384: exact in 16 bits
        acc[t][w][0] = _mm512_add_epi16(acc[t][w][0], _mm512_maddubs_epi16(xa, _mm512_unpacklo_epi8(lo, hi)));
        acc[t][w][1] = _mm512_add_epi16(acc[t][w][1], _mm512_maddubs_epi16(xa, _mm512_unpackhi_epi8(lo, hi)));
      }
    }
  }
  const __m512i nat0 = _mm512_load_si512(kNatural.v[0]), nat1 = _mm512_load_si512(kNatural.v[1]);
  for (int w = 0; w < W; ++w) {
    __m512 f[4];
    for (int k = 0; k < 4; ++k) f[k] = block_factors(a, b, o + 64 * w + 16 * k, s2h);
    for (int t = 0; t < T; ++t) {
      const __m512 d = _mm512_set1_ps(x.d[(t0 + t) * n_blk + b]);
      const __m512i w0 = _mm512_permutex2var_epi16(acc[t][w][0], nat0, acc[t][w][1]);  // outputs +0 .. +31
      const __m512i w1 = _mm512_permutex2var_epi16(acc[t][w][0], nat1, acc[t][w][1]);  // +32 .. +63
      const __m512i s32[4] = {_mm512_cvtepi16_epi32(_mm512_castsi512_si256(w0)), _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(w0, 1)),
                              _mm512_cvtepi16_epi32(_mm512_castsi512_si256(w1)), _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(w1, 1))};
      for (int k = 0; k < 4; ++k) {
        float* p = part + t * n_out + o + 64 * w + 16 * k;
        const __m512 fd = _mm512_mul_ps(f[k], d), s = _mm512_cvtepi32_ps(s32[k]);
        _mm512_storeu_ps(p, first ? _mm512_mul_ps(s, fd) : _mm512_fmadd_ps(s, fd, _mm512_loadu_ps(p)));
      }
    }
  }
}

template <int T>
void q8_part_t(const LinearArgs& a, const Q8Act& x, int64_t b0, int64_t b1, int64_t t0, float* part) {
  const int64_t n_out = a.w.n_out;
  for (int64_t b = b0; b < b1; ++b) {
    int64_t o = 0;
    for (; o + 64 * kQ8Tiles <= n_out; o += 64 * kQ8Tiles) q8_tiles<T, kQ8Tiles>(a, x, b, b == b0, o, t0, part);
    for (; o < n_out; o += 64) q8_tiles<T, 1>(a, x, b, b == b0, o, t0, part);
  }
}

}  // namespace

bool nvfp4_in_major_takes(const LinearArgs& a) {
  return a.kind == avx2::WKind::kNvfp4InMajor && a.w.n_in % 16 == 0 && a.w.n_out % 64 == 0;
}

void f32_nvfp4w_gemv_part(const LinearArgs& a, int64_t b0, int64_t b1, float* part) {
  int64_t t = 0;
  for (; t + 2 <= a.n_tok; t += 2) f32_part_t<2>(a, b0, b1, t, part + t * a.w.n_out);
  if (t < a.n_tok) f32_part_t<1>(a, b0, b1, t, part + t * a.w.n_out);
}

void q8a_nvfp4w_gemv_part(const LinearArgs& a, const Q8Act& x, int64_t b0, int64_t b1, float* part) {
  int64_t t = 0;
  for (; t + 2 <= a.n_tok; t += 2) q8_part_t<2>(a, x, b0, b1, t, part + t * a.w.n_out);
  if (t < a.n_tok) q8_part_t<1>(a, x, b0, b1, t, part + t * a.w.n_out);
}

void gemv_parts_finish(const LinearArgs& a, const float* parts, int64_t n_parts, int64_t o0, int64_t o1) {
  const int64_t n_out = a.w.n_out, stride = a.n_tok * n_out;
  for (int64_t t = 0; t < a.n_tok; ++t)
    for (int64_t o = o0; o < o1; o += 16) {
      const float* p = parts + t * n_out + o;
      __m512 s = _mm512_loadu_ps(p);
      for (int64_t i = 1; i < n_parts; ++i) s = _mm512_add_ps(s, _mm512_loadu_ps(p + i * stride));
      if (a.bias) s = _mm512_add_ps(s, _mm512_loadu_ps(a.bias + o));
      _mm512_storeu_ps(a.y + t * n_out + o, s);
    }
}

}  // namespace oss4::avx512
