// AVX-512 BF16 GEMM of NVFP4 weights in 32-output tiles (numeric/nvfp4_tiles.h) with BF16 activations
// (ActPrecision::kBf16): the prefill of that path on CPUs with AVX512_BF16. A thread owns whole output groups; per group
// the weights are decoded once into a BF16 panel (in L2), then every 8 tokens run vdpbf16ps over it: 32 multiply-adds
// per instruction where an f32 FMA does 16.
//
// Exactness: a weight times its E4M3 block scale has at most 2 + 4 significant bits and lies within BF16's range, so
// the panel holds it exactly (the f32 product, whose low 16 bits are zero, is cut to its high half); the per-tensor
// scale2 multiplies each sum once at the end. vdpbf16ps multiplies exactly and adds in f32 (round to nearest even,
// denormals flushed), so the result is the f32 sum of exact products of the rounded activations, as the reference
// (f32_linear_ref on BF16-rounded activations) up to summation order.
//
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16; no standard-library templates.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's AVX-512 headers (GCC bug 105593)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "backend/cpu/x86/tiles_avx512.h"

namespace oss4::avx512 {

namespace {

// two f32 vectors whose low 16 bits are zero -> dwords (BF16 of lo, BF16 of hi)
inline __m512i pair_bf16(__m512 lo, __m512 hi) {
  return _mm512_or_si512(_mm512_srli_epi32(_mm512_castps_si512(lo), 16),
                         _mm512_and_si512(_mm512_castps_si512(hi), _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
}

// group g's panel [n_in / 2, 32] dwords: pair p = 4 (2b + q) + j holds inputs 16b + 8q + j (low half) and + 4 (high)
// of the 32 outputs, each times its block scale
void decode_panel(const LinearArgs& a, int64_t g, uint32_t* panel) {
  const __m512 lut = _mm512_load_ps(kE2m1Tile);
  const int64_t n_blk = a.w.n_in / 16;
  const uint8_t* codes = a.w.data + g * n_blk * 256;
  const uint8_t* scales = a.w.scales + g * n_blk * 32;
  for (int64_t b = 0; b < n_blk; ++b) {
    __m512 f[2];
    tile_factors(scales + b * 32, _mm512_set1_ps(1.0f), f[0], f[1]);  // exact block scales
    for (int c = 0; c < 4; ++c) {
      const int h = c & 1, q = c >> 1;
      const __m512i v = _mm512_loadu_si512(codes + b * 256 + 64 * c);
      // nibble s of a dword is input 8q + 4 (s & 1) + s / 2: nibbles 2j and 2j + 1 are inputs j and j + 4
      for (int j = 0; j < 4; ++j) {
        const __m512 lo = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 8 * j), lut), f[h]);
        const __m512 hi = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 8 * j + 4), lut), f[h]);
        _mm512_storeu_si512(panel + ((4 * (2 * b + q) + j) * 32 + 16 * h), pair_bf16(lo, hi));
      }
    }
  }
}

// y rows t0 .. t0 + T - 1 of group g from the panel; xpair [n_tok, n_in / 2] activation pairs in the panel's order
template <int T>
void tile(const LinearArgs& a, const uint32_t* panel, const uint32_t* xpair, int64_t g, int64_t t0) {
  const int64_t n_pairs = a.w.n_in / 2;
  __m512 acc[T][2];
  for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm512_setzero_ps();
  const uint32_t* x = xpair + t0 * n_pairs;
  for (int64_t p = 0; p < n_pairs; ++p) {
    const __m512bh w0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(panel + p * 32));
    const __m512bh w1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(panel + p * 32 + 16));
    for (int t = 0; t < T; ++t) {
      const __m512bh xb = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(x[t * n_pairs + p])));
      acc[t][0] = _mm512_dpbf16_ps(acc[t][0], w0, xb);
      acc[t][1] = _mm512_dpbf16_ps(acc[t][1], w1, xb);
    }
  }
  const __m512 s2 = _mm512_set1_ps(a.w.scale2);
  for (int t = 0; t < T; ++t) store_group(a, g, t0 + t, _mm512_mul_ps(acc[t][0], s2), _mm512_mul_ps(acc[t][1], s2));
}

}  // namespace

void bf16_pairs(const float* x, int64_t n_tok, int64_t n_in, uint32_t* xpair) {
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t k = 0; k < n_in / 8; ++k)  // 8 inputs: pairs (j, j + 4), j = 0..3
      for (int64_t j = 0; j < 4; ++j) {
        const __m128 v = _mm_set_ps(0.0f, 0.0f, x[t * n_in + 8 * k + j + 4], x[t * n_in + 8 * k + j]);
        const __m128bh h = _mm_cvtneps_pbh(v);  // round to nearest even, as f32_to_bf16
        uint64_t bits;
        __builtin_memcpy(&bits, &h, 8);
        xpair[t * (n_in / 2) + 4 * k + j] = static_cast<uint32_t>(bits);
      }
}

void bf16a_nvfp4t_gemm(const LinearArgs& a, const uint32_t* xpair, int64_t g0, int64_t g1, uint32_t* panel) {
  for (int64_t g = g0; g < g1; ++g) {
    decode_panel(a, g, panel);
    int64_t t = 0;
    for (; t + 8 <= a.n_tok; t += 8) tile<8>(a, panel, xpair, g, t);
    if (a.n_tok - t >= 4) {
      tile<4>(a, panel, xpair, g, t);
      t += 4;
    }
    if (a.n_tok - t >= 2) {
      tile<2>(a, panel, xpair, g, t);
      t += 2;
    }
    if (t < a.n_tok) tile<1>(a, panel, xpair, g, t);
  }
}

}  // namespace oss4::avx512
